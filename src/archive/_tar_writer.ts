/**
 * A streaming tar writer for OCI archives: regular files and directories
 * with ustar headers, and pax records for long names and for sizes of 8 GiB
 * and more. See `_tar_reader.ts` for why this is not an npm package.
 *
 * @module
 */

/** Size of a tar block. */
const BLOCK = 512;
/** Largest size an 11-digit octal field holds: 8 GiB - 1. */
const MAX_OCTAL_SIZE = 0o77777777777;
const ZERO_BLOCKS = new Uint8Array(2 * BLOCK);

const encoder = new TextEncoder();

/** The header checksum: the sum of its bytes, the checksum field as spaces. */
function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  }
  return sum;
}

/** Where {@linkcode TarWriter} writes: a stream writer or anything like it. */
export interface TarSink {
  /** Takes a chunk; resolves when the chunk may be followed by the next. */
  write(chunk: Uint8Array): Promise<void>;
}

/** A header the writer writes. */
export interface TarHeader {
  /** Path inside the archive, `/`-separated, no leading `/`. */
  name: string;
  /** `file` or `directory`. */
  type: "file" | "directory";
  /** Bytes of data; 0 for a directory. */
  size?: number | undefined;
  /** Permission bits; 0o644 for files and 0o755 for directories. */
  mode?: number | undefined;
  /** Modification time in seconds since the epoch; 0 by default. */
  mtime?: number | undefined;
}

function writeString(
  block: Uint8Array,
  start: number,
  length: number,
  value: string,
): void {
  const bytes = encoder.encode(value);
  block.set(bytes.subarray(0, length), start);
}

function writeOctal(
  block: Uint8Array,
  start: number,
  length: number,
  value: number,
): void {
  // length - 1 digits and a NUL, as ustar wants.
  writeString(
    block,
    start,
    length,
    value.toString(8).padStart(length - 1, "0"),
  );
}

function writeBase256(
  block: Uint8Array,
  start: number,
  length: number,
  value: number,
): void {
  let v = value;
  for (let i = start + length - 1; i > start; i--) {
    block[i] = v % 256;
    v = Math.floor(v / 256);
  }
  block[start] = 0x80;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = encoder.encode(body).byteLength;
  // The length counts its own digits.
  let digits = 1;
  while (String(bodyLen + digits).length > digits) digits++;
  return `${bodyLen + digits}${body}`;
}

/** Splits a long name into ustar's prefix and name fields, when it fits. */
function splitName(name: string): [string, string] | undefined {
  const bytes = encoder.encode(name);
  if (bytes.byteLength <= 100) return ["", name];
  if (bytes.byteLength > 256 || /[^\x20-\x7e]/.test(name)) return undefined;
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) {
      return [prefix, rest];
    }
  }
  return undefined;
}

function headerBlock(
  fields: {
    name: string;
    prefix: string;
    mode: number;
    size: number;
    mtime: number;
    flag: string;
  },
): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  if (fields.size <= MAX_OCTAL_SIZE) writeOctal(block, 124, 12, fields.size);
  else writeBase256(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block[156] = fields.flag.charCodeAt(0);
  writeString(block, 257, 6, "ustar\0");
  writeString(block, 263, 2, "00");
  writeString(block, 345, 155, fields.prefix);
  block.fill(0x20, 148, 156);
  writeString(
    block,
    148,
    8,
    checksum(block).toString(8).padStart(6, "0") + "\0 ",
  );
  return block;
}

/**
 * Writes a tar stream: ustar headers, with a pax header in front of an entry
 * whose name does not fit ustar's fields or whose size is 8 GiB or more.
 * Call {@linkcode TarWriter.add}, then {@linkcode TarWriter.write} exactly
 * the entry's bytes, then the next `add` or {@linkcode TarWriter.finish}.
 */
export class TarWriter {
  readonly #writer: TarSink;
  #remaining = 0;
  #padding = 0;
  #name = "";

  /**
   * @param writer Receives the archive; each chunk is a fresh buffer or one
   * passed to {@linkcode TarWriter.write}.
   */
  constructor(writer: TarSink) {
    this.#writer = writer;
  }

  async #endEntry(): Promise<void> {
    if (this.#remaining !== 0) {
      throw new RangeError(
        `Tar entry ${this.#name} is ${this.#remaining} bytes short of its declared size`,
      );
    }
    if (this.#padding > 0) {
      await this.#writer.write(new Uint8Array(this.#padding));
      this.#padding = 0;
    }
  }

  /**
   * Starts an entry.
   *
   * @param header Name, type, size, mode and time.
   */
  async add(header: TarHeader): Promise<void> {
    await this.#endEntry();
    const size = header.type === "file" ? header.size ?? 0 : 0;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`Invalid tar entry size ${size} for ${header.name}`);
    }
    if (header.name === "" || header.name.includes("\0")) {
      throw new TypeError(
        `Invalid tar entry name ${JSON.stringify(header.name)}`,
      );
    }
    const name = header.type === "directory" && !header.name.endsWith("/")
      ? `${header.name}/`
      : header.name;
    const mode = header.mode ?? (header.type === "directory" ? 0o755 : 0o644);
    const mtime = header.mtime ?? 0;
    const split = splitName(name);
    let pax = "";
    if (!split) pax += paxRecord("path", name);
    if (size > MAX_OCTAL_SIZE) pax += paxRecord("size", String(size));
    if (pax !== "") {
      const data = encoder.encode(pax);
      const base = name.replace(/\/$/, "").split("/").pop()!;
      const paxName = `PaxHeaders/${base}`.slice(0, 100);
      await this.#writer.write(
        headerBlock({
          name: paxName,
          prefix: "",
          mode: 0o644,
          size: data.byteLength,
          mtime,
          flag: "x",
        }),
      );
      const padded = new Uint8Array(
        Math.ceil(data.byteLength / BLOCK) * BLOCK,
      );
      padded.set(data);
      await this.#writer.write(padded);
    }
    const [prefix, short] = split ?? ["", name.slice(0, 100)];
    await this.#writer.write(
      headerBlock({
        name: short,
        prefix,
        mode,
        size,
        mtime,
        flag: header.type === "directory" ? "5" : "0",
      }),
    );
    this.#name = name;
    this.#remaining = size;
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
  }

  /**
   * Writes data of the current entry. The chunk is handed to the sink as
   * is: reuse its buffer only once this resolved, and only with a sink that
   * keeps nothing of it.
   *
   * @param chunk The bytes.
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength > this.#remaining) {
      throw new RangeError(
        `Tar entry ${this.#name} got more bytes than its declared size`,
      );
    }
    this.#remaining -= chunk.byteLength;
    if (chunk.byteLength > 0) await this.#writer.write(chunk);
  }

  /** Ends the last entry and writes the end-of-archive marker. */
  async finish(): Promise<void> {
    await this.#endEntry();
    await this.#writer.write(ZERO_BLOCKS.slice());
  }
}
