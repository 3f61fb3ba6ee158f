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

import { storeUnusable } from "../_errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor, ParsedManifest } from "../oci/manifest.ts";
import {
  BlobStore,
  join,
  type ReadBlobOptions,
  TMP_DIR,
} from "./_blob_store.ts";
import { BlobSources, SOURCES_FILE } from "./_blob_sources.ts";
import { register } from "./_internal.ts";
import { LAYOUT_FILE, TagIndex } from "./_tag_index.ts";

export type { ReadBlobOptions } from "./_blob_store.ts";

/** What an existing store directory may hold before its `oci-layout` exists. */
const OWN_NAMES = new Set([
  "blobs",
  TMP_DIR,
  ".lock",
  "index.json",
  SOURCES_FILE,
]);

/** A tag in the store: a full reference and the descriptor it points to. */
export interface TagEntry {
  /** Full reference, e.g. `docker.io/library/demo:v1`. */
  reference: string;
  /** The manifest or index tagged. */
  descriptor: Descriptor;
}

/** What a reference resolved to in the store. */
export interface ResolvedRef {
  /** The manifest or index. */
  descriptor: Descriptor;
  /** The full reference, when resolved through a tag. */
  reference?: string | undefined;
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
  durable?: boolean | undefined;
  /**
   * Downloads of blobs at least this large (bytes) are hashed and written on
   * a worker thread, so receiving and hashing use two cores; while other
   * downloads run, so are blobs of an eighth of this size, so concurrent
   * downloads hash on every core. Default 512 MiB.
   */
  hashWorkerThreshold?: number | undefined;
}

/**
 * The default store directory: `$IRONCORE_IMAGE_STORE`, else `~/.ironcore`.
 * A variable set to the empty string is refused, not taken for unset.
 *
 * @param env Reads environment variables; defaults to `Deno.env.get`.
 * @returns The directory path.
 *
 * @example Find the default store of a user
 * ```ts
 * import { defaultStorePath } from "@ironcore/image/store";
 * const path = defaultStorePath((name) => ({ HOME: "/home/me" })[name]);
 * console.log(path); // "/home/me/.ironcore"
 * ```
 */
export function defaultStorePath(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  const explicit = env("IRONCORE_IMAGE_STORE");
  if (explicit === "") {
    throw storeUnusable(
      "$IRONCORE_IMAGE_STORE",
      "the variable is set but empty: set it to the store's directory, or unset it",
    );
  }
  if (explicit !== undefined) return explicit;
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) {
    throw storeUnusable(
      "~/.ironcore",
      "no home directory: set HOME or IRONCORE_IMAGE_STORE, or give the store's path",
    );
  }
  return join(home, ".ironcore");
}

/**
 * A local OCI image layout store.
 *
 * @example Open a store and list its tags
 * ```ts
 * import { Store } from "@ironcore/image";
 * const store = await Store.open(await Deno.makeTempDir());
 * console.log(await store.tags()); // []
 * ```
 */
export class Store {
  /** The store directory. */
  readonly path: string;
  readonly #blobs: BlobStore;
  readonly #index: TagIndex;
  /** The layout's creation, once per store object (concurrent writers share it). */
  #prepared: Promise<void> | undefined;

  private constructor(path: string, options: StoreOptions) {
    this.path = path;
    const prepare = () => this.#prepare();
    this.#blobs = new BlobStore(path, {
      durable: options.durable ?? false,
      workerThreshold: options.hashWorkerThreshold,
      prepare,
    });
    this.#index = new TagIndex(this.#blobs, prepare);
    const sources = new BlobSources(path, {
      prepare,
      tempPath: () => this.#blobs.tempPath(),
      exclusive: (fn) => this.#index.exclusive(fn),
    });
    register(this, { blobs: this.#blobs, index: this.#index, sources });
  }

  /**
   * Opens a store. A missing directory is an empty store, created on the
   * first write; an existing one must be an OCI layout.
   *
   * @param path The store directory.
   * @param options Durability and hashing.
   * @returns The store.
   * @throws {StoreError} When the directory is not an OCI layout or its
   * `index.json` is corrupt.
   * @throws {TypeError} When the path is empty.
   */
  static async open(path: string, options: StoreOptions = {}): Promise<Store> {
    // "" is no directory: as a path it would be the working directory.
    if (path === "") {
      throw new TypeError("Store path is empty: give the store's directory");
    }
    const store = new Store(path.replace(/\/+$/, "") || "/", options);
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
      throw storeUnusable(this.path, "it is not a directory");
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
      throw storeUnusable(
        this.path,
        "the directory is not an OCI image layout (no oci-layout file): choose an empty or new directory",
      );
    }
    try {
      const v = JSON.parse(layout);
      if (v?.imageLayoutVersion !== "1.0.0") throw new Error();
    } catch {
      throw storeUnusable(
        this.path,
        'oci-layout is not {"imageLayoutVersion":"1.0.0"}',
      );
    }
    await this.#index.read();
    // #prepare must still create blobs/sha256 and .tmp, which a layout
    // written by another tool does not have.
  }
  /**
   * Creates the layout on the first write. Blobs written at once (a pull
   * starts four) wait for one creation instead of each taking the lock.
   */
  #prepare(): Promise<void> {
    this.#prepared ??= this.#create().catch((e) => {
      this.#prepared = undefined;
      throw e;
    });
    return this.#prepared;
  }
  async #create(): Promise<void> {
    await Deno.mkdir(join(this.path, "blobs", "sha256"), { recursive: true });
    await Deno.mkdir(join(this.path, TMP_DIR), { recursive: true });
    await this.#index.exclusive(async () => {
      await this.#index.create();
      await this.#blobs.removeStaleTemp();
    });
  }

  /**
   * Resolves what a user typed: a tag (see {@linkcode Store.findTag}), a
   * full digest, or a unique prefix of a digest.
   *
   * @param input The reference, digest or digest prefix.
   * @returns The descriptor and, for a tag, the full reference.
   * @throws {NotFoundError} When nothing matches.
   * @throws {AmbiguousReferenceError} When a prefix matches several digests.
   * @throws {InvalidReferenceError} When the input matches no tag and is
   * neither a digest nor a valid reference.
   */
  resolve(input: string): Promise<ResolvedRef> {
    return this.#index.resolve(input);
  }

  /**
   * Every tag in the store.
   *
   * @returns The tags, in `index.json` order.
   */
  tags(): Promise<TagEntry[]> {
    return this.#index.tags();
  }

  /**
   * Points a new tag at what an existing reference names.
   *
   * @param source A tag, digest or unique digest prefix.
   * @param target The new tag.
   * @returns The full reference of the new tag.
   * @throws {NotFoundError} When the source is not in the store.
   * @throws {InvalidReferenceError} When the target is not a tag.
   */
  tag(source: string, target: string): Promise<string> {
    return this.#index.tag(source, target);
  }

  /**
   * Removes a tag. Blobs stay until pruned.
   *
   * @param reference The tag, found as {@linkcode Store.findTag} finds it.
   * @returns The full reference of the tag removed, as stored.
   * @throws {NotFoundError} When there is no such tag.
   */
  untag(reference: string): Promise<string> {
    return this.#index.untag(reference);
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
   * import { Store } from "@ironcore/image";
   * const store = await Store.open(await Deno.makeTempDir());
   * console.log(await store.findTag("my-os:1.0")); // undefined
   * ```
   */
  findTag(input: string): Promise<TagEntry | undefined> {
    return this.#index.findTag(input);
  }

  /**
   * Tells whether a blob is present (with the given size, when given).
   *
   * @param digest The blob's digest.
   * @param size The expected size.
   * @returns `true` when present.
   */
  hasBlob(digest: Digest, size?: number): Promise<boolean> {
    return this.#blobs.hasBlob(digest, size);
  }

  /**
   * The path of a blob's file. The file may not exist.
   *
   * @param digest The blob's digest.
   * @returns The path under `blobs/sha256/`.
   */
  blobPath(digest: Digest): string {
    return this.#blobs.blobPath(digest);
  }

  /**
   * Reads a small blob (manifest, index, config) and checks its digest and
   * size.
   *
   * @param descriptor The blob's descriptor.
   * @param options The largest blob read (default 16 MiB).
   * @returns The bytes.
   * @throws {NotFoundError} When the blob is missing.
   * @throws {DigestMismatchError} When its bytes do not match the digest.
   */
  readBlob(
    descriptor: Pick<Descriptor, "digest" | "size">,
    options: ReadBlobOptions = {},
  ): Promise<Uint8Array> {
    return this.#blobs.readBlob(descriptor, options);
  }

  /**
   * Reads and validates a manifest or index from the store.
   *
   * @param descriptor Its descriptor.
   * @returns The parsed document and its raw bytes.
   * @throws {NotFoundError} When the blob is missing.
   * @throws {InvalidImageError} When it is not a valid manifest or index.
   */
  readManifest(
    descriptor: Descriptor,
  ): Promise<ParsedManifest & { bytes: Uint8Array }> {
    return this.#blobs.readManifest(descriptor);
  }
}
