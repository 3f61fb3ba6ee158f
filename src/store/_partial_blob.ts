/**
 * A blob being downloaded into the store, kept under a name derived from its
 * digest so an interrupted transfer continues where it stopped, in the same
 * run or the next one.
 *
 * @module
 */

import { digestMismatch, sizeMismatch } from "../_errors.ts";
import { exists } from "../_files.ts";
import {
  type Digest,
  digestHex,
  loadNativeSha256,
  Sha256,
} from "../oci/digest.ts";
import {
  BlobWriter,
  BUFFER_SIZE,
  ByteCount,
  type DrainOptions,
} from "./_blob_writer.ts";
import { digestSmallFile } from "./_hash_file.ts";
import { WorkerWriter } from "./_worker_writer.ts";

/**
 * Blobs this large are hashed on a worker thread, beside the network. A
 * worker costs a JavaScript isolate (tens of MiB) and some time to start:
 * worth it for the big disk images and root file systems, not for kernels
 * and configs.
 */
const WORKER_THRESHOLD = 512 * 1024 * 1024;
/**
 * While another download runs in this process, blobs of an eighth of the
 * threshold (64 MiB by default) are hashed on a worker too, so that
 * concurrent downloads hash on every core instead of queueing on the main
 * thread. The workers are shared: a few threads serve all of them (see
 * `_worker_writer.ts`).
 */
const SHARED_FRACTION = 8;
/** Downloads open in this process, on any thread. */
let active = 0;
/**
 * Blobs up to this size are hashed whole once written, with the platform's
 * one-shot hash: a pull of kernels and configs then never loads the native
 * incremental hash, whose loading costs more than the hashing.
 */
const HASH_WHEN_WRITTEN = 8 * 1024 * 1024;

/** What hashes a blob on the main thread while it is written. */
function hashFor(size: number): Sha256 | ByteCount {
  return size <= HASH_WHEN_WRITTEN ? new ByteCount() : new Sha256();
}

/** Where a partial blob lives and where it goes when complete. */
export interface PartialBlobPaths {
  /** The partial file, e.g. `<store>/.tmp/partial-<hex>`. */
  partial: string;
  /** The final blob path. */
  blob: string;
  /**
   * The blob's corrupt marker: while it exists, a blob file already in
   * place does not count, and the download replaces it.
   */
  marker: string;
  /** Flush to disk before the rename. */
  durable: boolean;
  /** Blobs at least this large are hashed on a worker thread. */
  workerThreshold?: number | undefined;
}

/**
 * Tells whether the blob is in place with its size and not marked corrupt:
 * then there is nothing to download.
 */
async function complete(
  paths: PartialBlobPaths,
  size: number,
): Promise<boolean> {
  if (await sizeOf(paths.blob) !== size) return false;
  return !(await exists(paths.marker));
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const st = await Deno.stat(path);
    return st.isFile ? st.size : undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * The name of a blob's partial file inside the store's temporary directory.
 *
 * @param digest The blob's digest.
 * @returns The file name.
 *
 * @example Name the partial file of a blob
 * ```ts
 * import { partialName } from "./_partial_blob.ts";
 * partialName(`sha256:${"a".repeat(64)}`); // "partial-aaaa…"
 * ```
 */
export function partialName(digest: Digest): string {
  return `partial-${digestHex(digest)}`;
}

/**
 * A blob download in progress. Only one process at a time holds a given
 * partial blob (a file lock); a second one waits and then finds the blob
 * complete.
 *
 * @example Fill a blob from where an earlier attempt stopped
 * ```ts
 * import { digestOf } from "../oci/digest.ts";
 * import { blobStoreOf } from "./_internal.ts";
 * import { Store } from "./store.ts";
 * const store = await Store.open(await Deno.makeTempDir());
 * const bytes = new TextEncoder().encode("kernel bytes");
 * const digest = digestOf(bytes);
 * const partial = await blobStoreOf(store).beginBlob({ digest, size: bytes.byteLength });
 * if (partial) {
 *   try {
 *     // A download would ask for `Range: bytes=${partial.offset}-` here.
 *     await partial.append(new Blob([bytes.subarray(partial.offset)]).stream());
 *     await partial.commit();
 *   } finally {
 *     partial.close();
 *   }
 * }
 * console.log(await store.hasBlob(digest)); // true
 * ```
 */
export class PartialBlob {
  readonly #file: Deno.FsFile;
  readonly #paths: PartialBlobPaths;
  readonly #digest: Digest;
  readonly #size: number;
  /** Hashes as it is written, or (small blobs) only counts. */
  #hash: Sha256 | ByteCount;
  /** Large blobs are hashed and written on a worker thread. */
  readonly #worker: WorkerWriter | undefined;
  #closed = false;

  private constructor(
    file: Deno.FsFile,
    paths: PartialBlobPaths,
    descriptor: { digest: Digest; size: number },
    hash: Sha256 | ByteCount,
    worker?: WorkerWriter | undefined,
  ) {
    this.#file = file;
    this.#paths = paths;
    this.#digest = descriptor.digest;
    this.#size = descriptor.size;
    this.#hash = hash;
    this.#worker = worker;
  }

  /**
   * Opens (or creates) the partial file of a blob, locks it, and re-hashes
   * the bytes already there.
   *
   * @param paths Partial and final paths.
   * @param descriptor Digest and size of the blob.
   * @returns The partial blob, or `undefined` when the blob is already complete.
   */
  static async open(
    paths: PartialBlobPaths,
    descriptor: { digest: Digest; size: number },
  ): Promise<PartialBlob | undefined> {
    // Counted from the start, so that downloads begun together see each
    // other and all but the first hash on workers.
    const others = active++;
    try {
      const partial = await PartialBlob.#open(paths, descriptor, others > 0);
      if (partial === undefined) active--;
      return partial;
    } catch (e) {
      active--;
      throw e;
    }
  }

  static async #open(
    paths: PartialBlobPaths,
    descriptor: { digest: Digest; size: number },
    concurrent: boolean,
  ): Promise<PartialBlob | undefined> {
    for (;;) {
      if (await complete(paths, descriptor.size)) return undefined;
      const file = await Deno.open(paths.partial, {
        read: true,
        write: true,
        create: true,
      });
      let locked = false;
      try {
        await file.lock(true);
        // Another process may have finished (renamed) or discarded this file
        // while we waited for the lock: then start again from the path.
        const [mine, now] = await Promise.all([
          file.stat(),
          Deno.stat(paths.partial).catch(() => undefined),
        ]);
        if (!now || now.ino !== mine.ino || now.dev !== mine.dev) {
          file.close();
          continue;
        }
        locked = true;
        if (await complete(paths, descriptor.size)) {
          await Deno.remove(paths.partial).catch(() => {});
          file.close();
          return undefined;
        }
        const threshold = paths.workerThreshold ?? WORKER_THRESHOLD;
        const shared = Math.ceil(threshold / SHARED_FRACTION);
        if (
          descriptor.size >= threshold ||
          (descriptor.size >= shared && concurrent)
        ) {
          const worker = await WorkerWriter.open(
            paths.partial,
            descriptor.size,
          );
          if (worker) {
            return new PartialBlob(
              file,
              paths,
              descriptor,
              new ByteCount(),
              worker,
            );
          }
          // No worker: hash on this thread, as for a small blob.
        }
        const small = descriptor.size <= HASH_WHEN_WRITTEN;
        if (!small) await loadNativeSha256();
        let hash = hashFor(descriptor.size);
        if (mine.size > descriptor.size) {
          await file.truncate(0);
        } else if (small) {
          // Hashed whole at the end: the bytes there only count.
          hash = new ByteCount(mine.size);
        } else if (mine.size > 0) {
          const buf = new Uint8Array(BUFFER_SIZE);
          await file.seek(0, Deno.SeekMode.Start);
          for (;;) {
            const n = await file.read(buf);
            if (n === null) break;
            hash.update(n === buf.byteLength ? buf : buf.subarray(0, n));
          }
        }
        await file.seek(0, Deno.SeekMode.End);
        return new PartialBlob(file, paths, descriptor, hash);
      } catch (e) {
        // An empty partial file holds nothing to resume: do not leave it.
        if (locked && (await file.stat().catch(() => undefined))?.size === 0) {
          await Deno.remove(paths.partial).catch(() => {});
        }
        file.close();
        throw e;
      }
    }
  }

  /** The blob's size: where {@linkcode offset} ends. */
  get size(): number {
    return this.#size;
  }

  /** Whether a worker thread hashes and writes this blob. */
  get onWorker(): boolean {
    return this.#worker !== undefined;
  }

  /** Bytes already present and hashed: where the next request starts. */
  get offset(): number {
    return this.#worker ? this.#worker.bytes : this.#hash.bytes;
  }

  /**
   * Appends a stream of the blob's bytes starting at {@linkcode offset}.
   * When the stream fails midway, the bytes received so far are kept, so a
   * retry continues from the new offset.
   *
   * @param body The bytes.
   * @param options Progress (running total including earlier bytes) and abort.
   * @throws {SizeMismatchError} When the stream runs past the blob's size.
   */
  async append(
    body: ReadableStream<Uint8Array>,
    options: {
      onBytes?: ((n: number) => void) | undefined;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<void> {
    const drain: DrainOptions = {
      limit: this.#size,
      onOverflow: (seen) =>
        sizeMismatch(this.#size, seen, `blob ${this.#digest}`),
      onBytes: options.onBytes,
      signal: options.signal,
    };
    if (this.#worker) {
      await this.#worker.readFrom(body, drain);
      return;
    }
    const writer = new BlobWriter(this.#file, this.#hash);
    let failure: unknown;
    try {
      await writer.readFrom(body, drain);
    } catch (e) {
      failure = e;
    }
    try {
      await writer.finish();
    } catch (e) {
      // The file may now disagree with the hash: start over on next open.
      await this.#file.truncate(0).catch(() => {});
      this.#hash = hashFor(this.#size);
      throw failure ?? e;
    } finally {
      writer.release();
    }
    if (failure !== undefined) throw failure;
  }

  /** Drops the bytes received so far (the server ignored the range). */
  async restart(): Promise<void> {
    if (this.#worker) {
      await this.#worker.truncate();
      return;
    }
    await this.#file.truncate(0);
    await this.#file.seek(0, Deno.SeekMode.Start);
    this.#hash = hashFor(this.#size);
  }

  /**
   * Checks size and digest and moves the blob into place. A blob whose bytes
   * do not match is emptied, still locked: fill it again from the start, or
   * {@linkcode discard} it.
   *
   * @throws {SizeMismatchError} When bytes are missing.
   * @throws {DigestMismatchError} When the bytes hash differently.
   */
  async commit(): Promise<void> {
    let actual: Digest;
    let bytes: number;
    if (this.#worker) {
      ({ digest: actual, bytes } = await this.#worker.finish(
        this.#paths.durable,
      ));
    } else {
      bytes = this.#hash.bytes;
      if (bytes !== this.#size) {
        throw sizeMismatch(this.#size, bytes, `blob ${this.#digest}`);
      }
      actual = this.#hash instanceof Sha256
        ? this.#hash.digest()
        : await digestSmallFile(this.#file, this.#size);
    }
    if (bytes !== this.#size) {
      throw sizeMismatch(this.#size, bytes, `blob ${this.#digest}`);
    }
    if (actual !== this.#digest) {
      // Emptied in place: the caller fills it again or discards it.
      await this.restart();
      throw digestMismatch(
        this.#digest,
        actual,
        `blob ${this.#digest}`,
      );
    }
    if (this.#paths.durable && !this.#worker) await this.#file.sync();
    this.#worker?.close();
    if (await complete(this.#paths, this.#size)) {
      await Deno.remove(this.#paths.partial).catch(() => {});
    } else {
      // Over a blob marked corrupt, if there is one: the good bytes replace
      // it in one step, and the mark goes.
      await Deno.rename(this.#paths.partial, this.#paths.blob);
      await Deno.remove(this.#paths.marker).catch(() => {});
    }
    this.close();
  }

  /** Deletes the partial bytes (they cannot be part of the blob). */
  async discard(): Promise<void> {
    await Deno.remove(this.#paths.partial).catch(() => {});
    if (!this.#closed) await this.restart().catch(() => {});
  }

  /** Releases the lock and closes the file; the partial bytes stay. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    active--;
    this.#worker?.close();
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }
}
