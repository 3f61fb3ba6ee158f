/**
 * Blob files of the store, checked against their digests once per change.
 *
 * The boot server hands a blob file it trusts to the fastest path the
 * server has, with nothing hashed on the way. It trusts a file once it has
 * hashed it (or the cache fill wrote and verified it), for as long as the
 * file system reports the same file unchanged: device, inode, size,
 * modification and change time. The first response after start-up or
 * after a change is sent while the file is hashed, and its last bytes wait
 * for the result. A file that fails is marked corrupt in the store (so the
 * next fill, pull or build writes it again) and its responses break off.
 *
 * @module
 */

import { corruptBlob } from "../_errors.ts";
import { ImageError, NotFoundError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { hashOpenFile } from "../store/_hash_file.ts";
import { blobStoreOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";

/** A blob file opened for a response. */
export interface OpenBlob {
  /** The file, at its start; the caller closes it. */
  file: Deno.FsFile;
  /**
   * Settles when the file's bytes proved to match the digest (rejects when
   * they do not); `undefined` when that was known before.
   */
  check: Promise<void> | undefined;
}

/** How often the access time of a served blob is renewed (for prune). */
const TOUCH_INTERVAL_MS = 60_000;

/** What the file system says about a file's bytes, as one string. */
function identityOf(info: Deno.FileInfo): string {
  return [
    info.dev,
    info.ino,
    info.size,
    info.mtime?.getTime(),
    info.ctime?.getTime(),
  ].join(":");
}

/** The identity without the change time, which a touch renews. */
function contentOf(info: Deno.FileInfo): string {
  return [info.dev, info.ino, info.size, info.mtime?.getTime()].join(":");
}

/** The store's blob files and what is known about their bytes. */
export class CheckedBlobs {
  readonly #store: Store;
  readonly #signal: AbortSignal;
  /** Digest → identity of the file known to match it. */
  readonly #good = new Map<Digest, string>();
  /** Digest → identity of a file known not to match (and still there). */
  readonly #bad = new Map<Digest, string>();
  /** Running checks by digest and identity. */
  readonly #checks = new Map<string, Promise<void>>();
  readonly #touched = new Map<Digest, number>();

  /**
   * Creates the record for a store.
   *
   * @param store The store.
   * @param signal Stops running checks.
   */
  constructor(store: Store, signal: AbortSignal) {
    this.#store = store;
    this.#signal = signal;
  }

  /** Running checks, for the owner to wait for. */
  running(): Promise<void>[] {
    return [...this.#checks.values()];
  }

  /**
   * Opens a blob for a response.
   *
   * @param d The blob.
   * @returns The file and its check; `undefined` when the store lacks the
   * blob, holds it at another size, or holds a copy marked or known to be
   * corrupt.
   */
  async open(d: Pick<Descriptor, "digest" | "size">): Promise<
    OpenBlob | undefined
  > {
    const blobs = blobStoreOf(this.#store);
    // A blob marked corrupt is fetched again: the fill replaces it.
    if (await blobs.isSuspect(d.digest)) return undefined;
    let file: Deno.FsFile;
    try {
      file = await blobs.openBlob(d.digest);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
    try {
      let info = await file.stat();
      if (!info.isFile || info.size !== d.size) {
        file.close();
        return undefined;
      }
      info = await this.#touch(d.digest, file, info);
      const id = identityOf(info);
      if (this.#bad.get(d.digest) === id) {
        file.close();
        return undefined;
      }
      const check = this.#good.get(d.digest) === id
        ? undefined
        : this.#check(d, id);
      return { file, check };
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Records that the blob file now in the store matches its digest (the
   * fill that wrote it verified it).
   *
   * @param digest The blob's digest.
   */
  async trust(digest: Digest): Promise<void> {
    const info = await Deno.stat(blobStoreOf(this.#store).blobPath(digest))
      .catch(() => null);
    if (info) this.#good.set(digest, identityOf(info));
  }

  /**
   * Whether the store holds a copy of the blob known to be corrupt that
   * could not be marked (no write access).
   *
   * @param digest The blob's digest.
   * @returns `true` when it does.
   */
  stuck(digest: Digest): boolean {
    return this.#bad.has(digest);
  }

  /**
   * Renews the blob's access time now and then, so that a prune spares a
   * blob in use. A touch changes the file's change time: a file known good
   * stays known good when nothing else about it changed.
   */
  async #touch(
    digest: Digest,
    file: Deno.FsFile,
    info: Deno.FileInfo,
  ): Promise<Deno.FileInfo> {
    const now = Date.now();
    if (now - (this.#touched.get(digest) ?? 0) < TOUCH_INTERVAL_MS) {
      return info;
    }
    this.#touched.set(digest, now);
    await blobStoreOf(this.#store).touchBlob(digest);
    const after = await file.stat();
    if (
      this.#good.get(digest) === identityOf(info) &&
      contentOf(after) === contentOf(info)
    ) {
      this.#good.set(digest, identityOf(after));
    }
    return after;
  }

  /** Hashes the file of a given identity, once however many ask. */
  #check(d: Pick<Descriptor, "digest" | "size">, id: string): Promise<void> {
    const key = `${d.digest} ${id}`;
    const running = this.#checks.get(key);
    if (running) return running;
    const blobs = blobStoreOf(this.#store);
    const path = blobs.blobPath(d.digest);
    const check = (async () => {
      using file = await Deno.open(path, { read: true });
      const info = await file.stat();
      // A touch in the meantime changed only the change time.
      if (contentOf(info) !== id.slice(0, id.lastIndexOf(":"))) {
        throw new ImageError(
          `Cached blob ${d.digest} changed while it was served: request it again`,
        );
      }
      const { digest } = await hashOpenFile(file, undefined, this.#signal);
      if (digest === d.digest) {
        this.#good.set(d.digest, identityOf(info));
        return;
      }
      this.#good.delete(d.digest);
      // Then the fill, or the next pull or build, replaces it.
      if (!(await blobs.markCorrupt(d.digest))) {
        this.#bad.set(d.digest, identityOf(info));
      }
      throw corruptBlob(this.#store.path, d.digest, digest);
    })().finally(() => this.#checks.delete(key));
    // Nobody may be waiting when a check fails after its clients left.
    check.catch(() => {});
    this.#checks.set(key, check);
    return check;
  }
}
