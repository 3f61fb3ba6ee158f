/**
 * The local image store: an OCI Image Layout v1.0.0 directory (`oci-layout`,
 * `index.json`, `blobs/sha256/…`) that skopeo, oras and other OCI tools read
 * as `oci:`. Tags are `org.opencontainers.image.ref.name` annotations in
 * `index.json` holding the full reference.
 *
 * Blobs are written to a temporary file under `.tmp/`, verified against
 * their digest, then renamed into place; `index.json` is replaced atomically
 * under a file lock. A reader therefore never sees a partial blob or a torn
 * index, and two processes tagging at once both land.
 *
 * @module
 */

import {
  AmbiguousReferenceError,
  NotFoundError,
  SizeMismatchError,
  StoreError,
} from "../errors.ts";
import {
  assertDigest,
  type Digest,
  digestHex,
  digestOf,
  isDigest,
  type Sha256,
} from "../oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
  isIndexMediaType,
  MAX_MANIFEST_BYTES,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  type ParsedManifest,
  parseManifest,
  validateIndex,
} from "../oci/manifest.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import { BlobWriter, copyFileInto } from "./_blob_writer.ts";
import { hashOpenFile } from "./hash_file.ts";
import {
  PartialBlob,
  type PartialBlobPaths,
  partialName,
} from "./partial_blob.ts";

const LAYOUT_FILE = "oci-layout";
const INDEX_FILE = "index.json";
const TMP_DIR = ".tmp";
const LOCK_FILE = ".lock";
const OWN_NAMES = new Set(["blobs", TMP_DIR, LOCK_FILE, INDEX_FILE]);
const LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';
/**
 * Annotation on `index.json` entries caching the image's total size in bytes
 * (content-addressed, so it never goes stale).
 */
export const ANNOTATION_IMAGE_SIZE = "io.ironcore.image.size";
/** Age after which an interrupted write's temporary file is removed. */
export const STALE_TEMP_MS: number = 60 * 60 * 1000;
/** Age after which a partial download is removed instead of resumed. */
export const STALE_PARTIAL_MS: number = 7 * 24 * 60 * 60 * 1000;
/** Largest `index.json` read, in bytes. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/** A tag in the store: a full reference and the descriptor it points to. */
export interface TagEntry {
  /** Full reference, e.g. `docker.io/library/demo:v1`. */
  reference: string;
  /** The manifest or index tagged. */
  descriptor: Descriptor;
}

/** A blob file in the store. */
export interface BlobInfo {
  /** Its digest (from the file name). */
  digest: Digest;
  /** Its size in bytes. */
  size: number;
  /** When it was last written or used by a build or pull. */
  lastUsed: Date;
}

/** What a reference resolved to in the store. */
export interface ResolvedRef {
  /** The manifest or index. */
  descriptor: Descriptor;
  /** The full reference, when resolved through a tag. */
  reference?: string;
}

/** Options for {@linkcode Store.open}. */
export interface StoreOptions {
  /**
   * Flush every blob to disk before it becomes visible, so that even a power
   * loss cannot leave a named blob with missing bytes. `index.json` is always
   * flushed. Default `false`: a killed process never leaves a partial blob
   * either way, and a blob cut short by a power loss has the wrong size, so
   * the next build or pull writes it again and `verify` reports it.
   */
  durable?: boolean;
  /**
   * Downloads of blobs at least this large (bytes) are hashed and written on
   * a worker thread, so receiving and hashing use two cores. Default 512 MiB.
   */
  hashWorkerThreshold?: number;
}

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.size === b.size && a.ino === b.ino && a.dev === b.dev &&
    a.mtime?.getTime() === b.mtime?.getTime() &&
    a.ctime?.getTime() === b.ctime?.getTime();
}

function randomName(): string {
  return crypto.randomUUID();
}

/**
 * The canonical form of a tag as typed or stored (`my-os` is
 * `docker.io/library/my-os:latest`), or `undefined` when it is not a
 * reference.
 */
function canonicalTag(name: string): string | undefined {
  try {
    return formatReference(parseReference(name));
  } catch {
    return undefined;
  }
}

/**
 * Tells whether a stored tag names the canonical reference `full`. Checks
 * the last path segment first, so that scanning thousands of tags parses
 * only the few that may match.
 */
function namesTag(stored: string, full: string): boolean {
  if (stored === full) return true;
  const last = full.slice(full.lastIndexOf("/") + 1);
  const bare = last.endsWith(":latest") ? last.slice(0, -7) : undefined;
  if (
    !stored.endsWith(last) && (bare === undefined || !stored.endsWith(bare))
  ) {
    return false;
  }
  return canonicalTag(stored) === full;
}

/**
 * The default store directory: `$IRONCORE_IMAGE_STORE`, else `~/.ironcore`.
 *
 * @param env Reads environment variables; defaults to `Deno.env.get`.
 * @returns The directory path.
 *
 * @example
 * ```ts
 * import { defaultStorePath } from "./store.ts";
 * const path = defaultStorePath((name) => ({ HOME: "/home/me" })[name]);
 * console.log(path); // "/home/me/.ironcore"
 * ```
 */
export function defaultStorePath(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  const explicit = env("IRONCORE_IMAGE_STORE");
  if (explicit) return explicit;
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) {
    throw new StoreError(
      "~/.ironcore",
      "no home directory: set HOME, IRONCORE_IMAGE_STORE or --store-path",
    );
  }
  return join(home, ".ironcore");
}

/**
 * A local OCI image layout store.
 *
 * @example Open a store and list its tags
 * ```ts
 * import { Store } from "./store.ts";
 * const store = await Store.open(await Deno.makeTempDir());
 * console.log(await store.tags()); // []
 * ```
 */
export class Store {
  /** The store directory. */
  readonly path: string;
  readonly #durable: boolean;
  readonly #workerThreshold: number | undefined;
  #indexCache: { key: string; index: ImageIndex } | undefined;
  #prepared = false;

  private constructor(
    path: string,
    durable: boolean,
    workerThreshold?: number,
  ) {
    this.path = path;
    this.#durable = durable;
    this.#workerThreshold = workerThreshold;
  }

  /**
   * Opens a store. A missing directory is an empty store, created on the
   * first write; an existing one must be an OCI layout.
   *
   * @param path The store directory.
   * @param options Durability.
   * @returns The store.
   * @throws {StoreError} When the directory is not an OCI layout or its
   * `index.json` is corrupt.
   */
  static async open(path: string, options: StoreOptions = {}): Promise<Store> {
    const store = new Store(
      path.replace(/\/+$/, "") || "/",
      options.durable ?? false,
      options.hashWorkerThreshold,
    );
    await store.#check();
    return store;
  }

  async #check(): Promise<void> {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    if (!stat.isDirectory) {
      throw new StoreError(this.path, "it is not a directory");
    }
    let layout: string;
    try {
      layout = await Deno.readTextFile(join(this.path, LAYOUT_FILE));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      // An empty directory, or one whose creation was interrupted, is a
      // store that does not exist yet.
      let ours = true;
      for await (const entry of Deno.readDir(this.path)) {
        if (!OWN_NAMES.has(entry.name)) {
          ours = false;
          break;
        }
      }
      if (ours) return;
      throw new StoreError(
        this.path,
        "the directory is not an OCI image layout (no oci-layout file): choose an empty or new directory with --store-path",
      );
    }
    try {
      const v = JSON.parse(layout);
      if (v?.imageLayoutVersion !== "1.0.0") throw new Error();
    } catch {
      throw new StoreError(
        this.path,
        'oci-layout is not {"imageLayoutVersion":"1.0.0"}',
      );
    }
    await this.#readIndex();
    // #prepared stays false: #ensureLayout must still create blobs/sha256 and
    // .tmp, which a layout written by another tool does not have.
  }

  async #ensureLayout(): Promise<void> {
    if (this.#prepared) return;
    await Deno.mkdir(join(this.path, "blobs", "sha256"), { recursive: true });
    await Deno.mkdir(join(this.path, TMP_DIR), { recursive: true });
    // index.json before oci-layout: a directory with oci-layout always has
    // an index.
    await this.#withLock(async () => {
      if (!(await exists(join(this.path, INDEX_FILE)))) {
        await this.#writeIndex({ schemaVersion: 2, manifests: [] });
      }
      if (!(await exists(join(this.path, LAYOUT_FILE)))) {
        await this.#writeAtomic(join(this.path, LAYOUT_FILE), LAYOUT_JSON);
      }
      await this.#removeStaleTemp();
    });
    this.#prepared = true;
  }

  /**
   * Removes what interrupted runs left in the temporary directory: files
   * untouched for an hour (a live writer keeps its file's time fresh), and
   * partial downloads untouched for a week (kept that long for resuming).
   */
  async #removeStaleTemp(): Promise<void> {
    const now = Date.now();
    for (const t of await this.tempFiles()) {
      const age = now - (t.mtime?.getTime() ?? now);
      const partial = t.path.split("/").pop()!.startsWith("partial-");
      if (age > (partial ? STALE_PARTIAL_MS : STALE_TEMP_MS)) {
        await Deno.remove(t.path).catch(() => {});
      }
    }
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
   * Reads a small blob (manifest, index, config) and checks its digest.
   *
   * @param descriptor The blob's descriptor.
   * @param maxBytes Refuse blobs larger than this.
   * @returns The bytes.
   * @throws {NotFoundError} When the blob is missing.
   */
  async readBlob(
    descriptor: Pick<Descriptor, "digest" | "size">,
    maxBytes: number = 16 * 1024 * 1024,
  ): Promise<Uint8Array> {
    if (descriptor.size > maxBytes) {
      throw new SizeMismatchError(
        maxBytes,
        descriptor.size,
        `blob ${descriptor.digest}`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.blobPath(descriptor.digest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(
          `Blob ${descriptor.digest} is missing from store ${this.path}: pull or build the image again`,
          { reference: descriptor.digest },
        );
      }
      throw e;
    }
    assertDigest(
      descriptor.digest,
      digestOf(bytes),
      `blob in store ${this.path}`,
    );
    if (bytes.byteLength !== descriptor.size) {
      throw new SizeMismatchError(
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
    const bytes = await this.readBlob(descriptor, 4 * 1024 * 1024);
    return {
      ...parseManifest(bytes, { mediaType: descriptor.mediaType }),
      bytes,
    };
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
    if (await this.hasBlob(digest, bytes.byteLength)) {
      await this.touchBlob(digest);
      return descriptor;
    }
    await this.#ensureLayout();
    const tmp = join(this.path, TMP_DIR, randomName());
    try {
      await Deno.writeFile(tmp, bytes);
      if (this.#durable) await this.#fsync(tmp);
      await Deno.rename(tmp, this.blobPath(digest));
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
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
    options: OperationOptions & { name?: string } = {},
  ): Promise<Descriptor> {
    await this.#ensureLayout();
    const name = options.name ?? path;
    const progress = options.onProgress;
    using src = await Deno.open(path, { read: true });
    const before = await src.stat();
    progress?.({ name, done: 0, total: before.size, phase: "start" });
    const onBytes = progress
      ? (done: number) =>
        progress({ name, done, total: before.size, phase: "progress" })
      : undefined;
    // A file that changed in the last seconds may change again within the
    // timestamp granularity; stream it through the hashing writer instead.
    const settled = before.ctime !== null &&
      Date.now() - before.ctime.getTime() > 2000;
    if (!settled) {
      return await this.#putFileStreaming(
        src,
        name,
        mediaType,
        options,
        before.size,
      );
    }
    // When the store may already hold this file (a blob of the same size
    // exists), hash first and copy only if needed, so a rebuild writes
    // nothing. Otherwise copy in the kernel (copy_file_range or reflink)
    // while hashing, and prove afterwards that the source did not change.
    const tmp = join(this.path, TMP_DIR, randomName());
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
      if (!(await this.hasBlob(digest, size))) {
        await (copying ?? Deno.copyFile(path, tmp));
        const after = await Deno.stat(path);
        const copied = await Deno.stat(tmp);
        if (!sameFile(before, after) || copied.size !== size) {
          await src.seek(0, Deno.SeekMode.Start);
          return await this.#putFileStreaming(
            src,
            name,
            mediaType,
            options,
            before.size,
          );
        }
        if (this.#durable) await this.#fsync(tmp);
        await Deno.rename(tmp, this.blobPath(digest));
        keep = true;
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

  async #putFileStreaming(
    src: Deno.FsFile,
    name: string,
    mediaType: string,
    options: OperationOptions,
    total: number,
  ): Promise<Descriptor> {
    const tmp = join(this.path, TMP_DIR, randomName());
    let keep = false;
    try {
      let hash: Sha256;
      {
        using dst = await Deno.open(tmp, { write: true, createNew: true });
        const writer = new BlobWriter(dst);
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
        if (this.#durable) await dst.sync();
      }
      const digest = hash.digest();
      const descriptor = { mediaType, digest, size: hash.bytes };
      if (!(await this.hasBlob(digest, hash.bytes))) {
        await Deno.rename(tmp, this.blobPath(digest));
        keep = true;
      }
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
  async ingest(
    descriptor: Pick<Descriptor, "digest" | "size"> & { name?: string },
    body: ReadableStream<Uint8Array>,
    options: OperationOptions = {},
  ): Promise<void> {
    await this.#ensureLayout();
    const { digest, size } = descriptor;
    const name = descriptor.name ?? digest;
    const tmp = join(this.path, TMP_DIR, randomName());
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
        const writer = new BlobWriter(dst);
        const progress = options.onProgress;
        await writer.readFrom(
          body,
          size,
          (seen) => new SizeMismatchError(size, seen, `blob ${digest}`),
          progress
            ? (done) =>
              progress({ name, digest, done, total: size, phase: "progress" })
            : undefined,
          options.signal,
        );
        const hash = await writer.finish();
        writer.release();
        if (hash.bytes !== size) {
          throw new SizeMismatchError(size, hash.bytes, `blob ${digest}`);
        }
        assertDigest(digest, hash.digest(), `blob ${digest}`);
        if (this.#durable) await dst.sync();
      }
      if (!(await this.hasBlob(digest, size))) {
        await Deno.rename(tmp, this.blobPath(digest));
        keep = true;
      }
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
    await this.#ensureLayout();
    const paths: PartialBlobPaths = {
      partial: join(this.path, TMP_DIR, partialName(descriptor.digest)),
      blob: this.blobPath(descriptor.digest),
      durable: this.#durable,
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
   * Temporary files: partial downloads and interrupted writes.
   *
   * @returns Path, size and modification time of each.
   */
  async tempFiles(): Promise<
    { path: string; size: number; mtime: Date | null }[]
  > {
    const dir = join(this.path, TMP_DIR);
    const out: { path: string; size: number; mtime: Date | null }[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
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
   * Runs a function while holding the store's exclusive lock, the one every
   * change of `index.json` takes.
   *
   * @param fn The function.
   * @returns Its result.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#withLock(fn);
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
          { reference: digest },
        );
      }
      throw e;
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

  async #fsync(path: string): Promise<void> {
    using f = await Deno.open(path, { read: true, write: true });
    await f.sync();
  }

  async #writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const tmp = join(this.path, TMP_DIR, randomName());
    try {
      if (typeof data === "string") await Deno.writeTextFile(tmp, data);
      else await Deno.writeFile(tmp, data);
      await this.#fsync(tmp);
      await Deno.rename(tmp, path);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }

  async #withLock<T>(fn: () => Promise<T>): Promise<T> {
    using lock = await Deno.open(join(this.path, LOCK_FILE), {
      read: true,
      write: true,
      create: true,
    });
    await lock.lock(true);
    try {
      return await fn();
    } finally {
      await lock.unlock();
    }
  }

  async #readIndex(): Promise<ImageIndex> {
    let bytes: Uint8Array;
    let key: string;
    try {
      const path = join(this.path, INDEX_FILE);
      const st = await Deno.stat(path);
      // index.json is only ever replaced by rename: same inode, size and
      // time means the same content, already parsed.
      key =
        `${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
      if (this.#indexCache?.key === key) {
        return structuredClone(this.#indexCache.index);
      }
      if (st.size > MAX_INDEX_BYTES) {
        throw new StoreError(
          this.path,
          `index.json is larger than ${MAX_INDEX_BYTES} bytes`,
        );
      }
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        if (await exists(join(this.path, LAYOUT_FILE))) {
          throw new StoreError(
            this.path,
            "index.json is missing: restore it, or move the directory away and build or pull again",
          );
        }
        return { schemaVersion: 2, manifests: [] };
      }
      throw e;
    }
    try {
      const json = JSON.parse(new TextDecoder().decode(bytes));
      // Go's encoder writes a store whose last image was deleted as
      // `"manifests": null`: an empty store. The next write puts `[]`.
      if (json?.manifests === null) json.manifests = [];
      // A store's own index lists every tag: far more entries than an
      // image index from a registry may have.
      const index = validateIndex(json, { maxDescriptors: 10_000_000 });
      this.#indexCache = { key, index };
      return index;
    } catch (e) {
      throw new StoreError(
        this.path,
        `index.json is corrupt (${
          (e as Error).message
        }): restore it, or move the directory away and build or pull again`,
      );
    }
  }

  async #writeIndex(index: ImageIndex): Promise<void> {
    await this.#writeAtomic(
      join(this.path, INDEX_FILE),
      JSON.stringify(index),
    );
  }

  /**
   * Changes `index.json` under the store lock. The function gets the current
   * index and returns the new one; it runs while other writers wait.
   *
   * @param fn Computes the new index.
   */
  async updateIndex(fn: (index: ImageIndex) => ImageIndex): Promise<void> {
    await this.#ensureLayout();
    await this.#withLock(async () => {
      const next = fn(await this.#readIndex());
      await this.#writeIndex(next);
    });
  }

  /**
   * Every entry of `index.json`, tagged or not.
   *
   * @returns The descriptors, in `index.json` order.
   */
  async entries(): Promise<Descriptor[]> {
    return (await this.#readIndex()).manifests;
  }

  /**
   * Every tag in the store.
   *
   * @returns The tags, in `index.json` order.
   */
  async tags(): Promise<TagEntry[]> {
    const index = await this.#readIndex();
    const out: TagEntry[] = [];
    for (const d of index.manifests) {
      const ref = d.annotations?.[ANNOTATION_REF_NAME];
      if (ref !== undefined) out.push({ reference: ref, descriptor: d });
    }
    return out;
  }

  /**
   * Total bytes of an image: its manifests, configs and layers, each counted
   * once. Missing content counts as nothing (verify reports it).
   *
   * @param descriptor The manifest or index.
   * @returns The size in bytes.
   */
  async imageSize(descriptor: Descriptor): Promise<number> {
    const seen = new Set<string>();
    const walk = async (d: Descriptor): Promise<number> => {
      if (seen.has(d.digest)) return 0;
      seen.add(d.digest);
      let total = d.size;
      if (!/manifest|index/.test(d.mediaType)) return total;
      try {
        const parsed = await this.readManifest(d);
        const children = parsed.kind === "index"
          ? parsed.index.manifests
          : [parsed.manifest.config, ...parsed.manifest.layers];
        for (const c of children) total += await walk(c);
      } catch {
        // Missing or broken content: verify reports it.
      }
      return total;
    };
    return await walk(descriptor);
  }

  /**
   * Points tags at descriptors, replacing any previous target, in one atomic
   * change of `index.json`. Call it only after every blob the descriptors
   * reach is in the store.
   *
   * @param entries Full references and their descriptors.
   */
  async setTags(entries: readonly TagEntry[]): Promise<void> {
    const refs = new Set(entries.map((e) => e.reference));
    const canonical = entries.map((e) => canonicalTag(e.reference)).filter((
      r,
    ): r is string => r !== undefined);
    // A tag replaces the one stored under the same name in another spelling.
    const replaced = (ref: string | undefined) =>
      ref !== undefined &&
      (refs.has(ref) || canonical.some((full) => namesTag(ref, full)));
    // Remember each image's total size with its tag, so list stays fast
    // with thousands of tags (a digest's closure never changes).
    const sizes = new Map<string, string>();
    for (const e of entries) {
      const cached = e.descriptor.annotations?.[ANNOTATION_IMAGE_SIZE];
      if (!sizes.has(e.descriptor.digest)) {
        sizes.set(
          e.descriptor.digest,
          cached ?? String(await this.imageSize(e.descriptor)),
        );
      }
    }
    await this.updateIndex((index) => ({
      schemaVersion: 2,
      mediaType: OCI_INDEX_MEDIA_TYPE,
      manifests: [
        ...index.manifests.filter((d) =>
          !replaced(d.annotations?.[ANNOTATION_REF_NAME])
        ),
        ...entries.map((e) => {
          const { annotations, platform: _p, ...rest } = e.descriptor;
          return {
            ...rest,
            annotations: {
              ...annotations,
              [ANNOTATION_IMAGE_SIZE]: sizes.get(e.descriptor.digest)!,
              [ANNOTATION_REF_NAME]: e.reference,
            },
          };
        }),
      ],
      ...(index.annotations ? { annotations: index.annotations } : {}),
    }));
  }

  /**
   * Removes a tag. Blobs stay until pruned.
   *
   * @param reference The tag, found as {@linkcode Store.findTag} finds it.
   * @returns The full reference of the tag removed, as stored.
   * @throws {NotFoundError} When there is no such tag.
   */
  async untag(reference: string): Promise<string> {
    const hit = await this.findTag(reference);
    let found = false;
    if (hit) {
      await this.updateIndex((index) => {
        const manifests = index.manifests.filter((d) =>
          d.annotations?.[ANNOTATION_REF_NAME] !== hit.reference
        );
        found = manifests.length !== index.manifests.length;
        return { ...index, manifests };
      });
    }
    if (!hit || !found) {
      throw new NotFoundError(
        `Tag ${reference} not found in store ${this.path}: run list to see the tags`,
        { reference },
      );
    }
    return hit.reference;
  }

  /**
   * Finds the tag a user means: a tag stored exactly as typed, else the one
   * stored under the reference normalised like Docker (`my-os` is
   * `docker.io/library/my-os:latest`), else one that names the same image
   * in another spelling, as other tools may store it
   * (`docker.io/library/my-os` without a tag, or `my-os:1.0` as typed).
   *
   * @param input The reference as typed.
   * @returns The tag, or `undefined` when none matches.
   *
   * @example Find a tag by its short name
   * ```ts
   * import { Store } from "./store.ts";
   * const store = await Store.open(await Deno.makeTempDir());
   * console.log(await store.findTag("my-os:1.0")); // undefined
   * ```
   */
  async findTag(input: string): Promise<TagEntry | undefined> {
    const tags = await this.tags();
    const exact = tags.find((t) => t.reference === input);
    if (exact) return exact;
    const full = canonicalTag(input);
    if (full === undefined) return undefined;
    return tags.find((t) => t.reference === full) ??
      tags.find((t) => namesTag(t.reference, full));
  }

  /**
   * Resolves what a user typed: a tag (see {@linkcode Store.findTag}), a
   * full digest, or a unique prefix of a digest.
   *
   * @param input The reference, digest or digest prefix.
   * @returns The descriptor and, for a tag, the full reference.
   * @throws {NotFoundError} When nothing matches.
   * @throws {AmbiguousReferenceError} When a prefix matches several digests.
   */
  async resolve(input: string): Promise<ResolvedRef> {
    const hit = await this.findTag(input);
    if (hit) return { descriptor: hit.descriptor, reference: hit.reference };
    const prefix = /^(sha256:)?[a-f0-9]{1,64}$/.test(input)
      ? input.replace(/^sha256:/, "")
      : undefined;
    if (prefix !== undefined) {
      const seen = new Map<string, Descriptor>();
      // Untagged entries count too: list shows their image IDs.
      for (const d of await this.entries()) {
        if (digestHex(d.digest).startsWith(prefix)) seen.set(d.digest, d);
        if (isIndexMediaType(d.mediaType) && prefix.length >= 4) {
          // Children of indexes can be addressed by digest too.
          try {
            const parsed = await this.readManifest(d);
            if (parsed.kind === "index") {
              for (const m of parsed.index.manifests) {
                if (digestHex(m.digest).startsWith(prefix)) {
                  seen.set(m.digest, m);
                }
              }
            }
          } catch {
            // A broken index is reported by verify, not here.
          }
        }
      }
      if (seen.size > 1) {
        throw new AmbiguousReferenceError(input, [...seen.keys()]);
      }
      const [only] = seen.values();
      if (only) {
        const { annotations: _a, ...descriptor } = only;
        return { descriptor };
      }
      const asDigest = `sha256:${prefix}`;
      if (isDigest(asDigest) && await this.hasBlob(asDigest)) {
        // A manifest named only by its digest (e.g. one arch of an index).
        // Layers and configs are not images: read nothing large.
        const st = await Deno.stat(this.blobPath(asDigest));
        let parsed: ParsedManifest | undefined;
        if (st.size <= MAX_MANIFEST_BYTES) {
          try {
            parsed = parseManifest(
              await Deno.readFile(this.blobPath(asDigest)),
            );
          } catch {
            parsed = undefined;
          }
        }
        if (!parsed) {
          throw new NotFoundError(
            `Blob ${asDigest} is in store ${this.path} but is not an image manifest or index: give the digest of an image`,
            { reference: input },
          );
        }
        return {
          descriptor: {
            mediaType: parsed.kind === "index"
              ? parsed.index.mediaType ?? OCI_INDEX_MEDIA_TYPE
              : parsed.manifest.mediaType ?? OCI_MANIFEST_MEDIA_TYPE,
            digest: asDigest,
            size: st.size,
          },
        };
      }
    }
    throw new NotFoundError(
      `Image ${input} not found in store ${this.path}: run list to see the images, or pull it`,
      { reference: input },
    );
  }
}
