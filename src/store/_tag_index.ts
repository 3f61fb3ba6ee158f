/**
 * The tag half of the local store: `index.json`, whose entries name images
 * by the `org.opencontainers.image.ref.name` annotation holding the full
 * reference. It is replaced atomically under a file lock, so a reader never
 * sees a torn index and two processes tagging at once both land.
 *
 * @module
 */

import { ambiguousReference, storeUnusable } from "../_errors.ts";
import { exists, readAtMost, specialKind } from "../_files.ts";
import { NotFoundError } from "../errors.ts";
import { digestHex, isDigest } from "../oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
  isIndexMediaType,
  MAX_MANIFEST_BYTES,
  mediaTypeOf,
  OCI_INDEX_MEDIA_TYPE,
  type ParsedManifest,
  parseManifest,
  validateIndex,
} from "../oci/manifest.ts";
import {
  formatReference,
  parseReference,
  tagReference,
} from "../oci/reference.ts";
import { type BlobStore, join } from "./_blob_store.ts";
import type { ResolvedRef, TagEntry } from "./store.ts";

/** The layout version file of an OCI image layout. */
export const LAYOUT_FILE = "oci-layout";
/** The content of `oci-layout`. */
export const LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';
const INDEX_FILE = "index.json";
const LOCK_FILE = ".lock";
/**
 * Annotation on `index.json` entries caching the image's total size in bytes
 * (content-addressed, so it never goes stale).
 */
export const ANNOTATION_IMAGE_SIZE = "io.ironcore.image.size";
/** Largest `index.json` read, in bytes. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

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

/** The `index.json` of a store and its lock. */
export class TagIndex {
  /** The store directory. */
  readonly path: string;
  readonly #blobs: BlobStore;
  readonly #prepare: () => Promise<void>;
  #cache: { key: string; index: ImageIndex } | undefined;

  /**
   * Creates the tag side of a store.
   *
   * @param blobs The store's blobs, which tags point into.
   * @param prepare Creates the layout on the first write.
   */
  constructor(blobs: BlobStore, prepare: () => Promise<void>) {
    this.path = blobs.path;
    this.#blobs = blobs;
    this.#prepare = prepare;
  }

  /**
   * Writes an empty `index.json` and then `oci-layout` where they are
   * missing, so a directory with `oci-layout` always has an index. Call it
   * under {@linkcode TagIndex.exclusive}.
   */
  async create(): Promise<void> {
    if (!(await exists(join(this.path, INDEX_FILE)))) {
      await this.#writeIndex({ schemaVersion: 2, manifests: [] });
    }
    if (!(await exists(join(this.path, LAYOUT_FILE)))) {
      await this.#writeAtomic(join(this.path, LAYOUT_FILE), LAYOUT_JSON);
    }
  }

  /**
   * Runs a function while holding the store's exclusive lock, the one every
   * change of `index.json` takes.
   *
   * @param fn The function.
   * @returns Its result.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
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
  async read(): Promise<ImageIndex> {
    let bytes: Uint8Array;
    let key: string;
    try {
      const path = join(this.path, INDEX_FILE);
      const st = await Deno.stat(path);
      // index.json is only ever replaced by rename: same inode, size and
      // time means the same content, already parsed.
      key =
        `${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
      if (this.#cache?.key === key) {
        return structuredClone(this.#cache.index);
      }
      const kind = specialKind(st);
      if (kind !== undefined) {
        throw storeUnusable(
          this.path,
          `index.json must be a regular file, but it is ${kind}: move it away and build or pull again`,
        );
      }
      const tooLarge = () =>
        storeUnusable(
          this.path,
          `index.json is larger than ${MAX_INDEX_BYTES} bytes`,
        );
      if (st.size > MAX_INDEX_BYTES) throw tooLarge();
      using file = await Deno.open(path, { read: true });
      const read = await readAtMost(file, MAX_INDEX_BYTES);
      if (read.more) throw tooLarge();
      bytes = read.bytes;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        if (await exists(join(this.path, LAYOUT_FILE))) {
          throw storeUnusable(
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
      this.#cache = { key, index };
      return index;
    } catch (e) {
      throw storeUnusable(
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
  async #writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const tmp = this.#blobs.tempPath();
    try {
      if (typeof data === "string") await Deno.writeTextFile(tmp, data);
      else await Deno.writeFile(tmp, data);
      await this.#blobs.fsync(tmp);
      await Deno.rename(tmp, path);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }
  /**
   * Changes `index.json` under the store lock. The function gets the current
   * index and returns the new one; it runs while other writers wait.
   *
   * @param fn Computes the new index.
   */
  async update(fn: (index: ImageIndex) => ImageIndex): Promise<void> {
    await this.#prepare();
    await this.exclusive(async () => {
      const next = fn(await this.read());
      await this.#writeIndex(next);
    });
  }
  /**
   * Every entry of `index.json`, tagged or not.
   *
   * @returns The descriptors, in `index.json` order.
   */
  async entries(): Promise<Descriptor[]> {
    return (await this.read()).manifests;
  }
  /**
   * Every tag in the store.
   *
   * @returns The tags, in `index.json` order.
   */
  async tags(): Promise<TagEntry[]> {
    const index = await this.read();
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
        const parsed = await this.#blobs.readManifest(d);
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
    await this.update((index) => ({
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
   * @param reference The tag, found as {@linkcode TagIndex.findTag} finds it.
   * @returns The full reference of the tag removed, as stored.
   * @throws {NotFoundError} When there is no such tag.
   */
  async untag(reference: string): Promise<string> {
    const hit = await this.findTag(reference);
    let found = false;
    if (hit) {
      await this.update((index) => {
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
   * Resolves what a user typed: a tag (see {@linkcode TagIndex.findTag}),
   * a full digest, or a unique prefix of a digest.
   *
   * @param input The reference, digest or digest prefix.
   * @returns The descriptor and, for a tag, the full reference.
   * @throws {NotFoundError} When nothing matches.
   * @throws {AmbiguousReferenceError} When a prefix matches several digests.
   * @throws {InvalidReferenceError} When the input matches no tag and is
   * neither a digest nor a valid reference.
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
            const parsed = await this.#blobs.readManifest(d);
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
        throw ambiguousReference(input, [...seen.keys()]);
      }
      const [only] = seen.values();
      if (only) {
        const { annotations: _a, ...descriptor } = only;
        return { descriptor };
      }
      const asDigest = `sha256:${prefix}`;
      if (isDigest(asDigest) && await this.#blobs.hasBlob(asDigest)) {
        // A manifest named only by its digest (e.g. one arch of an index).
        // Layers and configs are not images: read nothing large.
        const st = await Deno.stat(this.#blobs.blobPath(asDigest));
        let parsed: ParsedManifest | undefined;
        if (st.size <= MAX_MANIFEST_BYTES) {
          try {
            parsed = parseManifest(
              await Deno.readFile(this.#blobs.blobPath(asDigest)),
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
            mediaType: mediaTypeOf(parsed),
            digest: asDigest,
            size: st.size,
          },
        };
      }
    }
    // Neither a tag, nor a digest, nor a name that could be one: say what
    // is wrong with it (an empty name, capitals) rather than "not found".
    if (prefix === undefined && !input.startsWith("sha256:")) {
      parseReference(input);
    }
    throw new NotFoundError(
      `Image ${input} not found in store ${this.path}: run list to see the images, or pull it`,
      { reference: input },
    );
  }
  /**
   * Points a new tag at what an existing reference names.
   *
   * @param source A tag, digest or unique digest prefix.
   * @param target The new tag.
   * @returns The full reference of the new tag.
   */
  async tag(source: string, target: string): Promise<string> {
    const reference = tagReference(target);
    const { descriptor } = await this.resolve(source);
    const { annotations: _a, platform: _p, ...plain } = descriptor;
    await this.setTags([{ reference, descriptor: plain }]);
    return reference;
  }
}
