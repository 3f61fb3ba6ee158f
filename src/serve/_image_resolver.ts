/**
 * Resolves a reference and a platform to an IronCore image, from the
 * registry or the local store, with the lookups a boot server repeats many
 * times kept in memory: a tag is asked again at most once per interval (a
 * HEAD, so an unchanged tag costs one small request), and a digest, being
 * immutable, never.
 */

import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
  RegistryError,
  SizeMismatchError,
  UnauthorizedError,
} from "../errors.ts";
import { type Digest, digestOf } from "../oci/digest.ts";
import {
  type Descriptor,
  isManifestMediaType,
  MAX_MANIFEST_BYTES,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  type ParsedManifest,
  parseManifest,
} from "../oci/manifest.ts";
import { formatPlatform, type Platform } from "../oci/platform.ts";
import { formatReference, type Reference } from "../oci/reference.ts";
import { readLimitedBytes } from "../registry/auth.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";
import { MAX_CONFIG_BYTES } from "../spec/config.ts";
import { type IronCoreImage, resolveImage } from "../spec/resolve_image.ts";
import type { Store } from "../store/store.ts";
import { selectPlatform } from "../transfer/pull.ts";

/** Where an image's manifests came from. */
export type ImageSource = "registry" | "store";

/** A manifest or index with its descriptor. */
interface Doc {
  descriptor: Descriptor;
  parsed: ParsedManifest;
  source: ImageSource;
}

/** An image resolved for one platform. */
export interface ResolvedImage {
  /** The reference asked for, in full form. */
  reference: string;
  /** Registry and repository. */
  repo: Repository;
  /** Descriptor of what the reference points at (index or manifest). */
  top: Descriptor;
  /** Descriptor of the platform's manifest. */
  manifest: Descriptor;
  /** Platform of the manifest, from the index. */
  platform?: Platform;
  /** Every platform of the index; empty for a single manifest. */
  platforms: string[];
  /** The IronCore image. */
  image: IronCoreImage;
  /** Where the manifests came from. */
  source: ImageSource;
}

/** Settings of the resolver. */
export interface ImageResolverOptions {
  client: RegistryClient;
  store?: Store;
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

function topMediaType(parsed: ParsedManifest): string {
  return parsed.kind === "index"
    ? parsed.index.mediaType ?? OCI_INDEX_MEDIA_TYPE
    : parsed.manifest.mediaType ?? OCI_MANIFEST_MEDIA_TYPE;
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
  async resolve(ref: Reference, platform?: Platform): Promise<ResolvedImage> {
    const repo = { registry: ref.registry, repository: ref.repository };
    const top = await this.#top(ref, repo);
    let doc = top;
    let entry: Descriptor | undefined;
    const platforms: string[] = [];
    if (top.parsed.kind === "index") {
      const entries = top.parsed.index.manifests;
      for (const m of entries) {
        platforms.push(m.platform ? formatPlatform(m.platform) : "unknown");
      }
      entry = platform === undefined && entries.length === 1
        ? entries[0]!
        : selectPlatform(entries, platform ?? this.#o.platform);
      if (!isManifestMediaType(entry.mediaType)) {
        throw new InvalidImageError(
          `Invalid index ${top.descriptor.digest}: entry ${entry.digest} has media type ${entry.mediaType}, expected an image manifest`,
        );
      }
      doc = await this.#byDigest(repo, entry.digest, top.source, entry);
      if (doc.parsed.kind !== "manifest") {
        throw new InvalidImageError(
          `Invalid index ${top.descriptor.digest}: entry ${entry.digest} is itself an index`,
        );
      }
    }
    if (doc.parsed.kind !== "manifest") throw new Error("unreachable");
    const manifest = doc.parsed.manifest;
    const config = await this.#config(repo, manifest.config);
    const resolved: ResolvedImage = {
      reference: formatReference(ref),
      repo,
      top: top.descriptor,
      manifest: doc.descriptor,
      platforms,
      image: resolveImage(manifest, config),
      source: doc.source,
    };
    if (entry?.platform) resolved.platform = entry.platform;
    return resolved;
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
        const d = await this.#o.client.headManifest(repo, tag);
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
    expected?: Descriptor,
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
    if (expected !== undefined && doc.descriptor.size !== expected.size) {
      throw new InvalidImageError(
        `Invalid index: entry ${digest} declares ${expected.size} bytes, the manifest has ${doc.descriptor.size}`,
      );
    }
    // A manifest reached through a local index is a local image.
    return prefer === "store" && doc.source !== "store"
      ? { ...doc, source: "store" }
      : doc;
  }

  async #storeDoc(
    digest: Digest,
    expected?: Descriptor,
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
    const bytes = await store.readBlob({ digest, size }, MAX_MANIFEST_BYTES);
    const parsed = parseManifest(
      bytes,
      expected ? { mediaType: expected.mediaType } : {},
    );
    return {
      descriptor: { mediaType: topMediaType(parsed), digest, size },
      parsed,
      source: "store",
    };
  }

  async #config(repo: Repository, d: Descriptor): Promise<Uint8Array> {
    const known = this.#configs.get(d.digest);
    if (known) return known;
    if (d.size > MAX_CONFIG_BYTES) {
      throw new InvalidImageError(
        `Invalid image: config ${d.digest} is ${d.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`,
      );
    }
    const store = this.#o.store;
    let bytes: Uint8Array | undefined;
    if (store && await store.hasBlob(d.digest, d.size)) {
      bytes = await store.readBlob(d);
    } else {
      const res = await this.#o.client.getBlob(repo, d.digest, {
        signal: this.#o.signal,
      });
      bytes = await readLimitedBytes(
        res,
        d.size,
        () => new SizeMismatchError(d.size, d.size + 1, `config ${d.digest}`),
      );
      if (bytes.byteLength !== d.size) {
        throw new SizeMismatchError(
          d.size,
          bytes.byteLength,
          `config ${d.digest}`,
        );
      }
      const actual = digestOf(bytes);
      if (actual !== d.digest) {
        throw new DigestMismatchError(d.digest, actual, `config ${d.digest}`);
      }
      if (store && this.#o.cache) await store.putBytes(bytes, d.mediaType);
    }
    remember(this.#configs, d.digest, bytes);
    return bytes;
  }
}
