/**
 * Resolves a reference and a platform to an IronCore image, from the
 * registry or the local store, with the lookups a boot server repeats many
 * times kept in memory: a tag is asked again at most once per interval (a
 * HEAD, so an unchanged tag costs one small request), and a digest, being
 * immutable, never.
 */

import { NotFoundError, RegistryError, UnauthorizedError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import {
  type Descriptor,
  MAX_MANIFEST_BYTES,
  mediaTypeOf,
  type ParsedManifest,
  parseManifest,
} from "../oci/manifest.ts";
import type { Platform } from "../oci/platform.ts";
import { formatReference, type Reference } from "../oci/reference.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";
import { MAX_CONFIG_BYTES } from "../spec/config.ts";
import { blobStoreOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";
import { fetchConfig, type ImageDocuments } from "../image/_documents.ts";
import {
  type ResolvedImage,
  resolveDocuments,
} from "../image/resolve_image.ts";

/** Where an image's manifests came from. */
export type ImageSource = "registry" | "store";

/** A manifest or index with its descriptor. */
interface Doc {
  descriptor: Descriptor;
  parsed: ParsedManifest;
  source: ImageSource;
}

/** An image resolved for one platform, and where it came from. */
export interface ServedImage extends ResolvedImage {
  /** Registry and repository. */
  repo: Repository;
  /** Where the manifests came from. */
  source: ImageSource;
}

/** Settings of the resolver. */
export interface ImageResolverOptions {
  client: RegistryClient;
  store?: Store | undefined;
  /** Keep configs in the store. */
  cache: boolean;
  /** Milliseconds between re-resolutions of a tag. */
  resolveInterval: number;
  /** Platform of an index when the request names none. */
  platform: Platform;
  signal: AbortSignal;
}

interface TagEntry {
  doc: Promise<Doc>;
  checkedAt: number;
}

/** How many manifests and configs are remembered. */
const MEMORY_ENTRIES = 512;

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MEMORY_ENTRIES) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}

/** Errors that say the registry could not answer, as opposed to "no". */
function isTransient(e: unknown): boolean {
  return e instanceof RegistryError && (e.status === 0 || e.status >= 500);
}

/** Errors after which an image is looked for in the local store. */
function mayBeLocal(e: unknown): boolean {
  return e instanceof NotFoundError || e instanceof UnauthorizedError ||
    (e instanceof RegistryError && e.status === 0);
}

/** Resolves references to IronCore images. */
export class ImageResolver {
  readonly #o: ImageResolverOptions;
  readonly #tags = new Map<string, TagEntry>();
  readonly #docs = new Map<Digest, Doc>();
  readonly #configs = new Map<Digest, Uint8Array>();

  constructor(options: ImageResolverOptions) {
    this.#o = options;
  }

  /**
   * Resolves a reference for a platform.
   *
   * @param ref The parsed reference (with a tag or a digest).
   * @param platform Platform asked for, if any.
   * @returns The image.
   */
  async resolve(
    ref: Reference,
    platform?: Platform | undefined,
  ): Promise<ServedImage> {
    const repo = { registry: ref.registry, repository: ref.repository };
    const top = await this.#top(ref, repo);
    let source = top.source;
    const docs: ImageDocuments = {
      name: formatReference(ref),
      descriptor: top.descriptor,
      top: () => Promise.resolve(top),
      manifest: async (entry) => {
        const doc = await this.#byDigest(
          repo,
          entry.digest,
          top.source,
          entry,
        );
        source = doc.source;
        return {
          ...doc,
          descriptor: { ...doc.descriptor, mediaType: entry.mediaType },
        };
      },
      config: (d) => this.#config(repo, d),
      blob: () => Promise.reject(new TypeError("Not used")),
    };
    const resolved = await resolveDocuments(docs, {
      platform,
      fallback: this.#o.platform,
      anonymous: true,
    });
    return { ...resolved, repo, source };
  }

  async #top(ref: Reference, repo: Repository): Promise<Doc> {
    if (ref.digest !== undefined) {
      return await this.#byDigest(repo, ref.digest as Digest, "registry");
    }
    const key = formatReference(ref);
    const now = Date.now();
    const hit = this.#tags.get(key);
    if (hit && now - hit.checkedAt < this.#o.resolveInterval) return hit.doc;
    const previous = hit?.doc;
    const entry: TagEntry = {
      checkedAt: now,
      doc: this.#resolveTag(ref, repo, previous),
    };
    this.#tags.set(key, entry);
    entry.doc.catch(() => {
      if (this.#tags.get(key) === entry) this.#tags.delete(key);
    });
    if (this.#tags.size > MEMORY_ENTRIES) {
      const oldest = this.#tags.keys().next();
      if (!oldest.done && oldest.value !== key) this.#tags.delete(oldest.value);
    }
    return await entry.doc;
  }

  async #resolveTag(
    ref: Reference,
    repo: Repository,
    previous: Promise<Doc> | undefined,
  ): Promise<Doc> {
    const tag = ref.tag ?? "latest";
    const before = await previous?.catch(() => undefined);
    try {
      if (before?.source === "registry") {
        // An unchanged tag costs one HEAD, no body.
        const d = await this.#o.client.headManifest(repo, tag, {
          signal: this.#o.signal,
        });
        if (d?.digest === before.descriptor.digest) return before;
      }
      const m = await this.#o.client.getManifest(repo, tag, {
        signal: this.#o.signal,
      });
      const doc: Doc = {
        descriptor: m.descriptor,
        parsed: m,
        source: "registry",
      };
      remember(this.#docs, m.descriptor.digest, doc);
      return doc;
    } catch (e) {
      // A registry that is down for a moment does not stop boots of an image
      // it served before.
      if (before && isTransient(e)) return before;
      if (this.#o.store && mayBeLocal(e)) {
        const local = await this.#storeTag(formatReference(ref));
        if (local) return local;
      }
      throw e;
    }
  }

  async #storeTag(reference: string): Promise<Doc | undefined> {
    const store = this.#o.store!;
    const hit = await store.findTag(reference);
    if (!hit) return undefined;
    const { annotations: _a, ...descriptor } = hit.descriptor;
    const parsed = await store.readManifest(descriptor);
    return { descriptor, parsed, source: "store" };
  }

  /**
   * A manifest or index by digest: from memory, the store, or the registry.
   */
  async #byDigest(
    repo: Repository,
    digest: Digest,
    prefer: ImageSource,
    expected?: Descriptor | undefined,
  ): Promise<Doc> {
    let doc = this.#docs.get(digest);
    if (!doc) {
      doc = await this.#storeDoc(digest, expected);
      if (!doc) {
        const m = await this.#o.client.getManifest(repo, digest, {
          signal: this.#o.signal,
        });
        doc = { descriptor: m.descriptor, parsed: m, source: "registry" };
      }
      remember(this.#docs, digest, doc);
    }
    // A manifest reached through a local index is a local image.
    return prefer === "store" && doc.source !== "store"
      ? { ...doc, source: "store" }
      : doc;
  }

  async #storeDoc(
    digest: Digest,
    expected?: Descriptor | undefined,
  ): Promise<Doc | undefined> {
    const store = this.#o.store;
    if (!store) return undefined;
    let size: number;
    try {
      const st = await Deno.stat(store.blobPath(digest));
      if (!st.isFile) return undefined;
      size = st.size;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    if (size > MAX_MANIFEST_BYTES) return undefined;
    const bytes = await store.readBlob({ digest, size }, {
      maxBytes: MAX_MANIFEST_BYTES,
    });
    const parsed = parseManifest(
      bytes,
      expected ? { mediaType: expected.mediaType } : {},
    );
    return {
      descriptor: { mediaType: mediaTypeOf(parsed), digest, size },
      parsed,
      source: "store",
    };
  }

  async #config(repo: Repository, d: Descriptor): Promise<Uint8Array> {
    const known = this.#configs.get(d.digest);
    if (known) return known;
    const store = this.#o.store;
    let bytes: Uint8Array | undefined;
    if (store && await blobStoreOf(store).holds(d.digest, d.size)) {
      bytes = await store.readBlob(d, { maxBytes: MAX_CONFIG_BYTES });
    } else {
      bytes = await fetchConfig(this.#o.client, repo, d, this.#o.signal);
      if (store && this.#o.cache) {
        await blobStoreOf(store).putBytes(bytes, d.mediaType);
      }
    }
    remember(this.#configs, d.digest, bytes);
    return bytes;
  }
}
