/**
 * Files a user names (build inputs, the Docker config) and small files of
 * the store: what kind of file a path is, told before anything opens it, and
 * reading within a limit whatever the file turns out to be. Opening a FIFO
 * waits for a writer and a device can yield bytes without end, so only
 * regular files are read.
 *
 * @module
 */

/**
 * Tells whether a path exists (without following a final link).
 *
 * @param path The path.
 * @returns `true` when it exists.
 *
 * @example Look for a file
 * ```ts
 * import { exists } from "./_files.ts";
 * console.log(await exists("/nonexistent/file")); // false
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * What kind of file a path is, in words for a message: `a directory`,
 * `a FIFO`, …; `undefined` for a regular file.
 *
 * @param info What `Deno.stat` (or `Deno.lstat`) said.
 * @returns The kind, or `undefined` for a regular file.
 *
 * @example Name a device
 * ```ts
 * import { specialKind } from "./_files.ts";
 * console.log(specialKind(await Deno.stat("/dev/null"))); // "a character device"
 * ```
 */
export function specialKind(info: Deno.FileInfo): string | undefined {
  if (info.isFile) return undefined;
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * Reads an open file from its current position, at most `limit` bytes.
 *
 * @param file The open file.
 * @param limit The most bytes wanted.
 * @returns The bytes, and whether the file holds more than `limit`.
 *
 * @example Read the start of a file
 * ```ts
 * import { readAtMost } from "./_files.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * using file = await Deno.open(path);
 * const { bytes, more } = await readAtMost(file, 4);
 * console.log(bytes.byteLength, more); // 4 true
 * ```
 */
export async function readAtMost(
  file: Deno.FsFile,
  limit: number,
): Promise<{ bytes: Uint8Array; more: boolean }> {
  // One byte past the limit tells a file of exactly `limit` bytes from a
  // longer one without reading the rest.
  const buf = new Uint8Array(limit + 1);
  let at = 0;
  while (at < buf.byteLength) {
    const n = await file.read(buf.subarray(at));
    if (n === null) break;
    at += n;
  }
  return { bytes: buf.subarray(0, Math.min(at, limit)), more: at > limit };
}

/**
 * Reads a regular file of at most `limit` bytes. The file is checked to be
 * regular before it is opened (a FIFO would block the open), and again on
 * the open file; then no more than `limit + 1` bytes are read, whatever
 * its size said.
 *
 * @param path The file.
 * @param limit The most bytes accepted.
 * @param problem Makes the error for a file that is not regular (given its
 * kind) or is larger than the limit (given `undefined`).
 * @returns The bytes.
 * @throws What `problem` makes; `Deno.errors.NotFound` when there is no
 * file.
 *
 * @example Read a small configuration file
 * ```ts
 * import { readSmallFile } from "./_files.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "{}");
 * const bytes = await readSmallFile(path, 1024, (kind) =>
 *   new TypeError(`${path} is ${kind ?? "too large"}`)
 * );
 * console.log(bytes.byteLength); // 2
 * ```
 */
export async function readSmallFile(
  path: string,
  limit: number,
  problem: (kind: string | undefined) => Error,
): Promise<Uint8Array> {
  const before = await Deno.stat(path);
  const kind = specialKind(before);
  if (kind !== undefined) throw problem(kind);
  if (before.size > limit) throw problem(undefined);
  using file = await Deno.open(path, { read: true });
  const now = specialKind(await file.stat());
  if (now !== undefined) throw problem(now);
  const { bytes, more } = await readAtMost(file, limit);
  if (more) throw problem(undefined);
  return bytes;
}
