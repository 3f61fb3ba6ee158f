/**
 * The blob half of the local store: `blobs/sha256/<hex>` and the temporary
 * directory `.tmp/`. Every blob is written to a temporary file, verified
 * against its digest, then renamed into place, so a reader never sees a
 * partial blob; interrupted downloads stay in `.tmp/` as partial blobs to be
 * resumed.
 *
 * @module
 */

import { corruptBlob, REPAIR_ADVICE, sizeMismatch } from "../_errors.ts";
import { exists, readAtMost, specialKind } from "../_files.ts";
import { NotFoundError } from "../errors.ts";
import {
  assertDigest,
  type Digest,
  digestHex,
  digestOf,
  isDigest,
  type Sha256,
  sha256For,
} from "../oci/digest.ts";
import {
  type Descriptor,
  MAX_MANIFEST_BYTES,
  type ParsedManifest,
  parseManifest,
} from "../oci/manifest.ts";
import type { OperationOptions } from "../progress.ts";
import { BlobWriter, copyFileInto } from "./_blob_writer.ts";
import { hashOpenFile } from "./_hash_file.ts";
import {
  PartialBlob,
  type PartialBlobPaths,
  partialName,
} from "./_partial_blob.ts";

/** The temporary directory inside a store. */
export const TMP_DIR = ".tmp";
/** Age after which an interrupted write's temporary file is removed. */
export const STALE_TEMP_MS: number = 60 * 60 * 1000;
/**
 * Prefix of a corrupt blob's marker in the temporary directory: an empty
 * file `corrupt-<hex>` that says the blob's bytes were found not to match
 * its digest, so the next build, pull or import replaces it.
 */
export const CORRUPT_PREFIX = "corrupt-";
/** Age after which a partial download is removed instead of resumed. */
export const STALE_PARTIAL_MS: number = 7 * 24 * 60 * 60 * 1000;

/** A blob file in the store. */
export interface BlobInfo {
  /** Its digest (from the file name). */
  digest: Digest;
  /** Its size in bytes. */
  size: number;
  /** When it was last written or used by a build or pull. */
  lastUsed: Date;
}

/** A temporary file in the store. */
export interface TempFile {
  /** Its path. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** When it was last written. */
  mtime: Date | null;
}

/** Options for {@linkcode BlobStore.readBlob}. */
export interface ReadBlobOptions {
  /** Refuse blobs larger than this many bytes. Default 16 MiB. */
  maxBytes?: number | undefined;
}

/** How a {@linkcode BlobStore} is set up. */
export interface BlobStoreOptions {
  /** Flush every blob to disk before it becomes visible. */
  durable: boolean;
  /** Downloads at least this large are hashed on a worker thread. */
  workerThreshold: number | undefined;
  /** Creates the layout on the first write. */
  prepare: () => Promise<void>;
}

/**
 * Joins path parts with single slashes.
 *
 * @param parts The parts.
 * @returns The path.
 */
export function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.size === b.size && a.ino === b.ino && a.dev === b.dev &&
    a.mtime?.getTime() === b.mtime?.getTime() &&
    a.ctime?.getTime() === b.ctime?.getTime();
}

/** The blobs and temporary files of a store. */
export class BlobStore {
  /** The store directory. */
  readonly path: string;
  /** Whether blobs are flushed to disk before they become visible. */
  readonly durable: boolean;
  readonly #workerThreshold: number | undefined;
  readonly #prepare: () => Promise<void>;

  /**
   * Creates the blob side of a store.
   *
   * @param path The store directory.
   * @param options Durability, worker threshold and layout creation.
   */
  constructor(path: string, options: BlobStoreOptions) {
    this.path = path;
    this.durable = options.durable;
    this.#workerThreshold = options.workerThreshold;
    this.#prepare = options.prepare;
  }

  /**
   * A fresh path in the temporary directory.
   *
   * @returns The path; no file exists there yet.
   */
  tempPath(): string {
    return join(this.path, TMP_DIR, crypto.randomUUID());
  }

  /**
   * The path of a blob's file. The file may not exist.
   *
   * @param digest The blob's digest.
   * @returns The path under `blobs/sha256/`.
   */
  blobPath(digest: Digest): string {
    return join(this.path, "blobs", "sha256", digestHex(digest));
  }
  /**
   * Tells whether a blob is present (with the given size, when given).
   *
   * @param digest The blob's digest.
   * @param size The expected size.
   * @returns `true` when present.
   */
  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    try {
      const st = await Deno.stat(this.blobPath(digest));
      return st.isFile && (size === undefined || st.size === size);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }
  /**
   * Tells whether a blob is present (with the given size, when given) and
   * trusted: not marked corrupt. Ingest writes a blob unless this holds.
   *
   * @param digest The blob's digest.
   * @param size The expected size.
   * @returns `true` when present and not marked corrupt.
   */
  async holds(digest: Digest, size?: number): Promise<boolean> {
    return await this.hasBlob(digest, size) && !(await this.isSuspect(digest));
  }
  /**
   * The path of a blob's corrupt marker. The file may not exist.
   *
   * @param digest The blob's digest.
   * @returns The path under `.tmp/`.
   */
  markerPath(digest: Digest): string {
    return join(this.path, TMP_DIR, `${CORRUPT_PREFIX}${digestHex(digest)}`);
  }
  /**
   * Tells whether a blob was found corrupt and not replaced since.
   *
   * @param digest The blob's digest.
   * @returns `true` when it is marked corrupt.
   */
  isSuspect(digest: Digest): Promise<boolean> {
    return exists(this.markerPath(digest));
  }
  /**
   * Records that a blob's bytes do not match its digest, so that the next
   * build, pull or import writes it again (over the bad file) instead of
   * skipping it, and the boot server's cache fetches it again. The store
   * stays an OCI layout: the mark lives in the temporary directory. Best
   * effort: without write access (a check, or a read-only store), nothing
   * is recorded.
   *
   * @param digest The blob's digest.
   * @returns `true` when the mark was written.
   */
  async markCorrupt(digest: Digest): Promise<boolean> {
    const marker = this.markerPath(digest);
    try {
      // Never a permission prompt: a reader marks only where it may write.
      const { state } = await Deno.permissions.query({
        name: "write",
        path: marker,
      });
      if (state !== "granted") return false;
      await Deno.mkdir(join(this.path, TMP_DIR), { recursive: true });
      await Deno.writeFile(marker, new Uint8Array(0));
      return true;
    } catch {
      return false;
    }
  }
  /**
   * Removes a blob and its corrupt marker: what repairing a corrupt blob
   * does, so that the next pull or build writes it anew.
   *
   * @param digest The blob's digest.
   */
  async removeBlob(digest: Digest): Promise<void> {
    try {
      await Deno.remove(this.blobPath(digest));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await this.#trust(digest);
  }
  /** Drops a blob's corrupt marker once good bytes are in place. */
  async #trust(digest: Digest): Promise<void> {
    try {
      await Deno.remove(this.markerPath(digest));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  /**
   * Reads a small blob (manifest, index, config) and checks its digest.
   *
   * @param descriptor The blob's descriptor.
   * @param options The largest blob read (default 16 MiB).
   * @returns The bytes.
   * @throws {NotFoundError} When the blob is missing.
   */
  async readBlob(
    descriptor: Pick<Descriptor, "digest" | "size">,
    options: ReadBlobOptions = {},
  ): Promise<Uint8Array> {
    const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    if (descriptor.size > maxBytes) {
      throw sizeMismatch(
        maxBytes,
        descriptor.size,
        `blob ${descriptor.digest}`,
      );
    }
    let bytes: Uint8Array;
    {
      // A blob file longer than its descriptor says is read no further.
      using file = await this.openBlob(descriptor.digest);
      const read = await readAtMost(file, descriptor.size);
      if (read.more) {
        await this.markCorrupt(descriptor.digest);
        throw sizeMismatch(
          descriptor.size,
          (await file.stat()).size,
          `blob ${descriptor.digest} in store ${this.path} (${REPAIR_ADVICE})`,
        );
      }
      bytes = read.bytes;
    }
    const hash = await sha256For(bytes.byteLength);
    hash.update(bytes);
    const actual = hash.digest();
    if (actual !== descriptor.digest) {
      // Then the next build, pull or import replaces it.
      await this.markCorrupt(descriptor.digest);
      throw corruptBlob(this.path, descriptor.digest, actual);
    }
    if (bytes.byteLength !== descriptor.size) {
      throw sizeMismatch(
        descriptor.size,
        bytes.byteLength,
        `blob ${descriptor.digest}`,
      );
    }
    return bytes;
  }
  /**
   * Reads and validates a manifest or index from the store.
   *
   * @param descriptor Its descriptor.
   * @returns The parsed document and its raw bytes.
   */
  async readManifest(
    descriptor: Descriptor,
  ): Promise<ParsedManifest & { bytes: Uint8Array }> {
    const bytes = await this.readBlob(descriptor, {
      maxBytes: MAX_MANIFEST_BYTES,
    });
    return {
      ...parseManifest(bytes, { mediaType: descriptor.mediaType }),
      bytes,
    };
  }
  /**
   * Opens a blob for reading.
   *
   * @param digest The blob's digest.
   * @returns The open file; the caller closes it.
   * @throws {NotFoundError} When the blob is missing.
   */
  async openBlob(digest: Digest): Promise<Deno.FsFile> {
    try {
      return await Deno.open(this.blobPath(digest), { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(
          `Blob ${digest} is missing from store ${this.path}: pull or build the image again`,
          { digest },
        );
      }
      throw e;
    }
  }
  /**
   * Stores bytes held in memory (a manifest, index or config).
   *
   * @param bytes The content.
   * @param mediaType Its media type.
   * @returns Its descriptor.
   */
  async putBytes(bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const digest = digestOf(bytes);
    const descriptor = { mediaType, digest, size: bytes.byteLength };
    if (await this.holds(digest, bytes.byteLength)) {
      await this.touchBlob(digest);
      return descriptor;
    }
    await this.#prepare();
    const tmp = this.tempPath();
    try {
      await Deno.writeFile(tmp, bytes);
      if (this.durable) await this.fsync(tmp);
      // Over a blob marked corrupt, if there is one.
      await Deno.rename(tmp, this.blobPath(digest));
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
    await this.#trust(digest);
    return descriptor;
  }
  /**
   * Streams a file into the store, hashing it in the same pass. A blob that
   * is already present is left untouched.
   *
   * @param path The file to add.
   * @param mediaType The media type for the descriptor.
   * @param options Abort signal and progress.
   * @returns The blob's descriptor.
   */
  async putFile(
    path: string,
    mediaType: string,
    options: OperationOptions & { name?: string | undefined } = {},
  ): Promise<Descriptor> {
    await this.#prepare();
    const name = options.name ?? path;
    const progress = options.onProgress;
    using src = await Deno.open(path, { read: true });
    const before = await src.stat();
    // What was opened may not be what the caller checked: read only a
    // regular file, which ends.
    const kind = specialKind(before);
    if (kind !== undefined) {
      throw new TypeError(
        `Cannot read ${path}: it is ${kind}, give a regular file`,
      );
    }
    progress?.({ name, done: 0, total: before.size, phase: "start" });
    const onBytes = progress
      ? (done: number) =>
        progress({ name, done, total: before.size, phase: "progress" })
      : undefined;
    // Through the hashing writer, for a file that may change meanwhile.
    const streaming = () =>
      this.#putFileStreaming(src, name, mediaType, options, before.size);
    // A file that changed in the last seconds may change again within the
    // timestamp granularity; stream it through the hashing writer instead.
    const settled = before.ctime !== null &&
      Date.now() - before.ctime.getTime() > 2000;
    if (!settled) return await streaming();
    // When the store may already hold this file (a blob of the same size
    // exists), hash first and copy only if needed, so a rebuild writes
    // nothing. Otherwise copy in the kernel (copy_file_range or reflink)
    // while hashing, and prove afterwards that the source did not change.
    const tmp = this.tempPath();
    let copying: Promise<void> | undefined;
    if (!(await this.#hasBlobOfSize(before.size))) {
      copying = Deno.copyFile(path, tmp);
      copying.catch(() => {});
    }
    let keep = false;
    let digest: Digest;
    let size: number;
    try {
      ({ digest, size } = await hashOpenFile(src, onBytes, options.signal));
      if (!(await this.holds(digest, size))) {
        await (copying ?? Deno.copyFile(path, tmp));
        const after = await Deno.stat(path);
        const copied = await Deno.stat(tmp);
        if (!sameFile(before, after) || copied.size !== size) {
          await src.seek(0, Deno.SeekMode.Start);
          return await streaming();
        }
        if (this.durable) await this.fsync(tmp);
        keep = await this.#place(tmp, digest, size);
      } else {
        await this.touchBlob(digest);
      }
    } finally {
      await copying?.catch(() => {});
      if (!keep) await Deno.remove(tmp).catch(() => {});
    }
    const descriptor = { mediaType, digest, size };
    progress?.({ name, digest, done: size, total: size, phase: "done" });
    return descriptor;
  }
  /**
   * Moves a checked temporary file into place as the blob, unless the store
   * holds that blob already; says whether it moved it.
   */
  async #place(tmp: string, digest: Digest, size: number): Promise<boolean> {
    if (await this.holds(digest, size)) return false;
    await Deno.rename(tmp, this.blobPath(digest));
    await this.#trust(digest);
    return true;
  }

  async #putFileStreaming(
    src: Deno.FsFile,
    name: string,
    mediaType: string,
    options: OperationOptions,
    total: number,
  ): Promise<Descriptor> {
    const tmp = this.tempPath();
    let keep = false;
    try {
      let hash: Sha256;
      {
        using dst = await Deno.open(tmp, { write: true, createNew: true });
        const writer = new BlobWriter(dst, await sha256For(total));
        await copyFileInto(
          src,
          writer,
          options.onProgress
            ? (done) =>
              options.onProgress!({ name, done, total, phase: "progress" })
            : undefined,
          options.signal,
        );
        hash = await writer.finish();
        writer.release();
        if (this.durable) await dst.sync();
      }
      const digest = hash.digest();
      const descriptor = { mediaType, digest, size: hash.bytes };
      keep = await this.#place(tmp, digest, hash.bytes);
      options.onProgress?.({
        name,
        digest,
        done: hash.bytes,
        total: hash.bytes,
        phase: "done",
      });
      return descriptor;
    } finally {
      if (!keep) await Deno.remove(tmp).catch(() => {});
    }
  }
  /**
   * Streams a blob of known digest and size into the store, verifying both
   * before it becomes visible. Nothing is written under the digest's name
   * unless the bytes match.
   *
   * @param descriptor The expected digest and size.
   * @param body The content.
   * @param options Abort signal and progress.
   * @throws {DigestMismatchError} When the bytes hash differently.
   * @throws {SizeMismatchError} When the size differs.
   */
  async putStream(
    descriptor: Pick<Descriptor, "digest" | "size"> & {
      name?: string | undefined;
    },
    body: ReadableStream<Uint8Array>,
    options: OperationOptions = {},
  ): Promise<void> {
    await this.#prepare();
    const { digest, size } = descriptor;
    const name = descriptor.name ?? digest;
    const tmp = this.tempPath();
    let keep = false;
    try {
      options.onProgress?.({
        name,
        digest,
        done: 0,
        total: size,
        phase: "start",
      });
      {
        using dst = await Deno.open(tmp, { write: true, createNew: true });
        const writer = new BlobWriter(dst, await sha256For(size));
        const progress = options.onProgress;
        await writer.readFrom(body, {
          limit: size,
          onOverflow: (seen) => sizeMismatch(size, seen, `blob ${digest}`),
          onBytes: progress
            ? (done) =>
              progress({ name, digest, done, total: size, phase: "progress" })
            : undefined,
          signal: options.signal,
        });
        const hash = await writer.finish();
        writer.release();
        if (hash.bytes !== size) {
          throw sizeMismatch(size, hash.bytes, `blob ${digest}`);
        }
        assertDigest(digest, hash.digest(), `blob ${digest}`);
        if (this.durable) await dst.sync();
      }
      keep = await this.#place(tmp, digest, size);
      options.onProgress?.({
        name,
        digest,
        done: size,
        total: size,
        phase: "done",
      });
    } catch (e) {
      // An error before the body was read leaves it unconsumed.
      if (!body.locked) await body.cancel().catch(() => {});
      throw e;
    } finally {
      if (!keep) await Deno.remove(tmp).catch(() => {});
    }
  }
  /**
   * Starts or continues a resumable download of a blob. The partial bytes
   * live in the temporary directory under a name derived from the digest,
   * locked while in use.
   *
   * @param descriptor Digest and size of the blob.
   * @returns The partial blob, or `undefined` when the blob is already present.
   */
  async beginBlob(
    descriptor: Pick<Descriptor, "digest" | "size">,
  ): Promise<PartialBlob | undefined> {
    await this.#prepare();
    const paths: PartialBlobPaths = {
      partial: join(this.path, TMP_DIR, partialName(descriptor.digest)),
      blob: this.blobPath(descriptor.digest),
      marker: this.markerPath(descriptor.digest),
      durable: this.durable,
    };
    if (this.#workerThreshold !== undefined) {
      paths.workerThreshold = this.#workerThreshold;
    }
    return await PartialBlob.open(paths, descriptor);
  }
  /**
   * Marks a blob as just used (its access time), so a concurrent prune,
   * which spares recently used blobs, does not remove a blob that a build or
   * pull is about to tag.
   *
   * @param digest The blob's digest.
   */
  async touchBlob(digest: Digest): Promise<void> {
    // The access time records use; the modification time stays the time
    // the blob was written.
    const path = this.blobPath(digest);
    const st = await Deno.stat(path).catch(() => null);
    if (st?.mtime) await Deno.utime(path, new Date(), st.mtime).catch(() => {});
  }
  /**
   * Every blob file in the store.
   *
   * @returns Digest, size and time of last write or use of each blob.
   */
  async blobs(): Promise<BlobInfo[]> {
    const dir = join(this.path, "blobs", "sha256");
    const out: BlobInfo[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        const digest = `sha256:${e.name}`;
        if (!isDigest(digest) || !e.isFile) continue;
        const st = await Deno.stat(join(dir, e.name)).catch(() => null);
        if (st) {
          const times = [st.mtime, st.atime].map((t) => t?.getTime() ?? 0);
          out.push({
            digest,
            size: st.size,
            lastUsed: new Date(Math.max(...times)),
          });
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out;
  }
  /**
   * Temporary files: partial downloads and interrupted writes (not the
   * corrupt markers, which stay until their blob is replaced or removed).
   *
   * @returns Path, size and modification time of each.
   */
  async tempFiles(): Promise<TempFile[]> {
    const dir = join(this.path, TMP_DIR);
    const out: TempFile[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.name.startsWith(CORRUPT_PREFIX)) continue;
        const path = join(dir, e.name);
        const st = await Deno.stat(path).catch(() => null);
        if (st) out.push({ path, size: st.size, mtime: st.mtime });
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out;
  }
  /**
   * Removes what interrupted runs left in the temporary directory: files
   * untouched for an hour (a live writer keeps its file's time fresh), and
   * partial downloads untouched for a week (kept that long for resuming).
   */
  async removeStaleTemp(): Promise<void> {
    const now = Date.now();
    for (const t of await this.tempFiles()) {
      const age = now - (t.mtime?.getTime() ?? now);
      const partial = t.path.split("/").pop()!.startsWith("partial-");
      if (age > (partial ? STALE_PARTIAL_MS : STALE_TEMP_MS)) {
        await Deno.remove(t.path).catch(() => {});
      }
    }
  }
  async #hasBlobOfSize(size: number): Promise<boolean> {
    const dir = join(this.path, "blobs", "sha256");
    let seen = 0;
    try {
      for await (const e of Deno.readDir(dir)) {
        // A huge store is not scanned: assume a match and hash first.
        if (++seen > 4096) return true;
        const st = await Deno.stat(join(dir, e.name)).catch(() => null);
        if (st?.size === size) return true;
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return false;
  }
  /**
   * Flushes a file to disk.
   *
   * @param path The file.
   */
  async fsync(path: string): Promise<void> {
    using f = await Deno.open(path, { read: true, write: true });
    await f.sync();
  }
}
