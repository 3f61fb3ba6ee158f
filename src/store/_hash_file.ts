/**
 * Hashes files with large reads, reading the next buffer while the current
 * one is hashed, so the disk and the CPU work at the same time.
 *
 * @module
 */

import { type Digest, loadNativeSha256, Sha256 } from "../oci/digest.ts";
import { BUFFER_SIZE } from "./_blob_writer.ts";

/**
 * Hashes a file from its current position to its end.
 *
 * @param file The open file.
 * @param onBytes Called with the running byte count after each buffer.
 * @param signal Aborts the hashing.
 * @returns Digest and size of the bytes read.
 *
 * @example Hash an open file
 * ```ts
 * import { hashOpenFile } from "./_hash_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * using file = await Deno.open(path);
 * const { digest, size } = await hashOpenFile(file);
 * ```
 */
export async function hashOpenFile(
  file: Deno.FsFile,
  onBytes?: (n: number) => void,
  signal?: AbortSignal | undefined,
): Promise<{ digest: Digest; size: number }> {
  await loadNativeSha256();
  const hash = new Sha256();
  let current = new Uint8Array(BUFFER_SIZE);
  let spare = new Uint8Array(BUFFER_SIZE);
  let reading = file.read(current);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const n = await reading;
      if (n === null) break;
      const filled = current;
      // Start the next read before hashing this buffer.
      reading = file.read(spare);
      hash.update(n === filled.byteLength ? filled : filled.subarray(0, n));
      onBytes?.(hash.bytes);
      [current, spare] = [spare, filled];
    }
  } catch (e) {
    // Leave no read behind to fail after the caller closes the file.
    await reading.catch(() => {});
    throw e;
  }
  return { digest: hash.digest(), size: hash.bytes };
}

/**
 * Hashes a small file whole, with the platform's one-shot SHA-256 (Web
 * Crypto), which needs no library loaded: for blobs of a few MiB, read back
 * once they are written.
 *
 * @param file The open file; read from its start.
 * @param size Its size, as already checked.
 * @returns The digest.
 *
 * @example Hash a small file whole
 * ```ts
 * import { digestSmallFile } from "./_hash_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "{}");
 * using file = await Deno.open(path);
 * await digestSmallFile(file, 2); // "sha256:44136fa3…"
 * ```
 */
export async function digestSmallFile(
  file: Deno.FsFile,
  size: number,
): Promise<Digest> {
  const bytes = new Uint8Array(size);
  await file.seek(0, Deno.SeekMode.Start);
  for (let off = 0; off < size;) {
    const n = await file.read(bytes.subarray(off));
    if (n === null) break;
    off += n;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${
    Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/**
 * Hashes a whole file.
 *
 * @param path The file.
 * @param onBytes Called with the running byte count after each buffer.
 * @param signal Aborts the hashing.
 * @returns Digest and size.
 *
 * @example Hash a file by its path
 * ```ts
 * import { hashFile } from "./_hash_file.ts";
 * const path = await Deno.makeTempFile();
 * const { digest } = await hashFile(path);
 * console.log(digest); // the digest of no bytes
 * ```
 */
export async function hashFile(
  path: string,
  onBytes?: (n: number) => void,
  signal?: AbortSignal | undefined,
): Promise<{ digest: Digest; size: number }> {
  using file = await Deno.open(path, { read: true });
  return await hashOpenFile(file, onBytes, signal);
}
