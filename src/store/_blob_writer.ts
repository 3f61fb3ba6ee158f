/**
 * Writes a blob to a file while hashing it in the same pass. Bytes are
 * gathered into large buffers so hashing runs at native speed, and the write
 * of one buffer overlaps with filling and hashing the next.
 */

import type { Sha256 } from "../oci/digest.ts";
import { writeAll } from "./_verified_copy.ts";
import { byobReaderOf } from "../_streams.ts";

/** Size of the buffers on the hot path. */
export const BUFFER_SIZE: number = 4 * 1024 * 1024;

/**
 * Buffers handed back by finished writers, reused by the next ones: a pull
 * of many blobs then allocates a few buffers, not two per blob, and memory
 * does not grow with the number of blobs while the collector lags.
 */
const pool: Uint8Array[] = [];
const POOL_LIMIT = 8;

function takeBuffer(): Uint8Array {
  return pool.pop() ?? new Uint8Array(BUFFER_SIZE);
}

/** What a {@linkcode BlobWriter} feeds each buffer to before writing it. */
export interface Hasher {
  /** Takes the next bytes. */
  update(chunk: Uint8Array): void;
  /** Bytes taken so far. */
  readonly bytes: number;
}

/** A hasher that only counts: for bytes hashed later, all at once. */
export class ByteCount implements Hasher {
  #bytes: number;

  /** @param start Bytes already there. */
  constructor(start = 0) {
    this.#bytes = start;
  }

  update(chunk: Uint8Array): void {
    this.#bytes += chunk.byteLength;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

/** How a writer drains a stream: {@linkcode BlobWriter.readFrom}. */
export interface DrainOptions {
  /** Most bytes accepted; more throws `onOverflow()`. */
  limit: number;
  /** Makes the error for a stream longer than `limit`. */
  onOverflow: (seen: number) => Error;
  /** Called with the running byte count. */
  onBytes?: ((n: number) => void) | undefined;
  /** Aborts the copy. */
  signal?: AbortSignal | undefined;
}

/** Hashing writer over an open file. */
export class BlobWriter<H extends Hasher = Sha256> {
  readonly #file: Deno.FsFile;
  readonly #hash: H;
  #buffers: [Uint8Array, Uint8Array] = [takeBuffer(), takeBuffer()];
  #released = false;
  #fill = 0;
  #pending: Promise<void> | undefined;

  /**
   * @param file The file, at the position to write.
   * @param hash What each buffer goes to; a native `Sha256` wants
   * `loadNativeSha256()` first.
   */
  constructor(file: Deno.FsFile, hash: H) {
    this.#file = file;
    this.#hash = hash;
  }

  /** Bytes accepted so far (including a resumed prefix hashed before). */
  get bytes(): number {
    return this.#hash.bytes + this.#fill;
  }

  /** The buffer to read into directly, saving a copy. */
  get spare(): Uint8Array {
    return this.#buffers[0].subarray(this.#fill);
  }

  /** Marks `n` bytes of {@linkcode spare} as filled. */
  async commit(n: number): Promise<void> {
    this.#fill += n;
    if (this.#fill === BUFFER_SIZE) await this.#flush();
  }

  /** Copies a chunk in; flushes full buffers. */
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.byteLength) {
      const n = Math.min(BUFFER_SIZE - this.#fill, chunk.byteLength - off);
      this.#buffers[0].set(chunk.subarray(off, off + n), this.#fill);
      off += n;
      this.#fill += n;
      if (this.#fill === BUFFER_SIZE) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.#fill === 0) return;
    const data = this.#buffers[0].subarray(0, this.#fill);
    this.#hash.update(data);
    await this.#pending;
    this.#pending = writeAll(this.#file, data);
    // Avoid an unhandled rejection while the next buffer fills; the error
    // surfaces on the next await of #pending.
    this.#pending.catch(() => {});
    this.#buffers = [this.#buffers[1], this.#buffers[0]];
    this.#fill = 0;
  }

  /**
   * Drains a byte stream into the writer. Streams that support BYOB readers
   * (fetch bodies do) are read straight into the writer's buffers, which
   * keeps memory flat however large the blob.
   *
   * @param stream The bytes.
   * @param options The limit, progress and abort signal.
   */
  async readFrom(
    stream: ReadableStream<Uint8Array>,
    options: DrainOptions,
  ): Promise<void> {
    const { limit, onOverflow, onBytes, signal } = options;
    const byob = byobReaderOf(stream);
    if (!byob) {
      const reader = stream.getReader();
      try {
        for (;;) {
          signal?.throwIfAborted();
          const { done, value } = await reader.read();
          if (done) return;
          if (this.bytes + value.byteLength > limit) {
            throw onOverflow(this.bytes + value.byteLength);
          }
          await this.write(value);
          onBytes?.(this.bytes);
        }
      } catch (e) {
        await reader.cancel().catch(() => {});
        throw e;
      } finally {
        reader.releaseLock();
      }
    }
    try {
      for (;;) {
        signal?.throwIfAborted();
        const buf = this.#buffers[0];
        // Ask for one byte past the limit so an oversized stream shows.
        const room = Math.min(BUFFER_SIZE - this.#fill, limit - this.bytes + 1);
        const { done, value } = await byob.read(
          new Uint8Array(buf.buffer, this.#fill, Math.max(1, room)),
        );
        if (value) this.#buffers[0] = new Uint8Array(value.buffer);
        if (done) return;
        if (this.bytes + value.byteLength > limit) {
          throw onOverflow(this.bytes + value.byteLength);
        }
        this.#fill += value.byteLength;
        if (this.#fill === BUFFER_SIZE) await this.#flush();
        onBytes?.(this.bytes);
      }
    } catch (e) {
      // A read that failed took the buffer with it (BYOB transfers it): the
      // bytes gathered there since the last flush are gone, and a resume
      // fetches them again.
      if (this.#buffers[0].buffer.byteLength === 0) {
        this.#buffers[0] = new Uint8Array(BUFFER_SIZE);
        this.#fill = 0;
      }
      await byob.cancel().catch(() => {});
      throw e;
    } finally {
      byob.releaseLock();
    }
  }

  /**
   * Gives the buffers back for reuse. Call only after {@linkcode finish}
   * (which waits for the last write), and do not use the writer afterwards.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const b of this.#buffers) {
      if (b.buffer.byteLength === BUFFER_SIZE && pool.length < POOL_LIMIT) {
        pool.push(new Uint8Array(b.buffer));
      }
    }
  }

  /** Flushes everything and returns the hash state. */
  async finish(): Promise<H> {
    await this.#flush();
    await this.#pending;
    return this.#hash;
  }
}

/**
 * Streams a file into a writer using the writer's own buffers.
 *
 * @param src Open source file.
 * @param writer Destination.
 * @param onBytes Called with the running byte count after each buffer.
 * @param signal Aborts the copy.
 */
export async function copyFileInto(
  src: Deno.FsFile,
  writer: BlobWriter<Hasher>,
  onBytes?: (n: number) => void,
  signal?: AbortSignal | undefined,
): Promise<void> {
  for (;;) {
    signal?.throwIfAborted();
    const n = await src.read(writer.spare);
    if (n === null) return;
    await writer.commit(n);
    onBytes?.(writer.bytes);
  }
}
