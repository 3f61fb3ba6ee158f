/**
 * The documents of an image (index, manifests, configs, layers) from the
 * local store or a registry behind one interface, and the one path that
 * picks an index entry for a platform. resolveImage, openLayer,
 * layerUrl, validateImage and the boot server all go through it.
 *
 * @module
 */

import { digestMismatch, REPAIR_ADVICE, sizeMismatch } from "../_errors.ts";
import { InvalidImageError, NotFoundError } from "../errors.ts";
import { digestOf } from "../oci/digest.ts";
import {
  checkEntryManifest,
  checkIndexEntry,
  type Descriptor,
  type ImageManifest,
  type ParsedManifest,
} from "../oci/manifest.ts";
import {
  formatPlatform,
  type Platform,
  selectPlatform,
} from "../oci/platform.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import { readLimitedBytes } from "../net/_limited.ts";
import { RegistryClient, type Repository } from "../registry/client.ts";
import { MAX_CONFIG_BYTES } from "../spec/config.ts";
import {
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  layerKindOf,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../spec/media_types.ts";
import { fileChunks } from "../store/_file_stream.ts";
import { blobStoreOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";

/** A manifest or index as loaded, with its digest checked. */
export interface LoadedDocument {
  /** Its descriptor. */
  descriptor: Descriptor;
  /** The parsed document. */
  parsed: ParsedManifest;
  /** The exact bytes, when at hand. */
  bytes?: Uint8Array | undefined;
}

/** A blob ready to be read. */
export interface OpenedBlob {
  /** Opens its bytes, not yet verified. */
  open(): Promise<ReadableStream<Uint8Array>>;
  /** Its file in the store, for a local blob. */
  path?: string | undefined;
}

/**
 * The documents of one image, from wherever they are. Every method checks
 * what it loads against the digest it was asked for.
 */
export interface ImageDocuments {
  /** The full reference, or the digest given for a local image. */
  name: string;
  /** What the reference names. */
  descriptor: Descriptor;
  /** Loads what the reference names. */
  top(): Promise<LoadedDocument>;
  /** Loads the manifest an index entry names. */
  manifest(entry: Descriptor): Promise<LoadedDocument>;
  /** Loads a config blob, refusing one over {@linkcode MAX_CONFIG_BYTES}. */
  config(descriptor: Descriptor): Promise<Uint8Array>;
  /** Opens a blob for streaming. */
  blob(descriptor: Descriptor, what: string): Promise<OpenedBlob>;
}

/** The manifest chosen for a platform. */
export interface SelectedManifest {
  /** The manifest's descriptor. */
  descriptor: Descriptor;
  /** The manifest. */
  manifest: ImageManifest;
  /** The platform of its index entry. */
  platform?: Platform | undefined;
  /** Every platform of the index; empty for a single manifest. */
  platforms: Platform[];
}

/** How {@linkcode selectManifest} picks an index entry. */
export interface SelectOptions {
  /** The platform asked for. */
  platform?: Platform | undefined;
  /** The platform when none is asked for. Default: this machine's. */
  fallback?: Platform | undefined;
  /** Leave the image's name out of a missing platform's message. */
  anonymous?: boolean | undefined;
}

function plain(d: Descriptor): Descriptor {
  const { annotations: _a, platform: _p, ...rest } = d;
  return rest;
}

function storeDocuments(
  store: Store,
  name: string,
  descriptor: Descriptor,
): ImageDocuments {
  const load = async (d: Descriptor): Promise<LoadedDocument> => {
    const { bytes, ...parsed } = await store.readManifest(d);
    return { descriptor: plain(d), parsed, bytes };
  };
  return {
    name,
    descriptor,
    top: () => load(descriptor),
    manifest: load,
    config: (d) => {
      if (d.size > MAX_CONFIG_BYTES) throw configTooLarge(d);
      return store.readBlob(d, { maxBytes: MAX_CONFIG_BYTES });
    },
    async blob(d, what) {
      const path = store.blobPath(d.digest);
      let size: number;
      try {
        size = (await Deno.stat(path)).size;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        // Let the store word the error.
        (await blobStoreOf(store).openBlob(d.digest)).close();
        throw e;
      }
      if (size !== d.size) {
        throw sizeMismatch(
          d.size,
          size,
          `${what} ${d.digest} in store ${store.path} (${REPAIR_ADVICE})`,
        );
      }
      // Callers that only want the path (a hypervisor attaching a disk)
      // never read: the blob is opened on the first read.
      return {
        open: async () =>
          fileChunks(await blobStoreOf(store).openBlob(d.digest)),
        path,
      };
    },
  };
}

function configTooLarge(d: Descriptor): InvalidImageError {
  return new InvalidImageError(
    `Invalid image: config ${d.digest} is ${d.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`,
  );
}

/**
 * Fetches a config blob from a registry, checking its size and digest.
 *
 * @param client The registry client.
 * @param repo The repository.
 * @param d The config's descriptor.
 * @param signal Aborts the request.
 * @returns The bytes.
 */
export async function fetchConfig(
  client: RegistryClient,
  repo: Repository,
  d: Descriptor,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  if (d.size > MAX_CONFIG_BYTES) throw configTooLarge(d);
  const res = await client.getBlob(repo, d.digest, { signal });
  const bytes = await readLimitedBytes(
    res,
    d.size,
    () => sizeMismatch(d.size, d.size + 1, `config ${d.digest} (at least)`),
  );
  if (bytes.byteLength !== d.size) {
    throw sizeMismatch(d.size, bytes.byteLength, `config ${d.digest}`);
  }
  const actual = digestOf(bytes);
  if (actual !== d.digest) {
    throw digestMismatch(d.digest, actual, `config ${d.digest}`);
  }
  return bytes;
}

/**
 * The documents of an image in a registry. Fetches what the reference names
 * right away.
 *
 * @param client The registry client.
 * @param reference The image.
 * @param signal Aborts every request.
 * @returns The documents.
 */
export async function registryDocuments(
  client: RegistryClient,
  reference: string,
  signal: AbortSignal | undefined,
): Promise<ImageDocuments & { repo: Repository }> {
  const ref = parseReference(reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  const name = formatReference(ref);
  const fetched = await client.getManifest(repo, ref.digest ?? ref.tag!, {
    signal,
  });
  const top: LoadedDocument = {
    descriptor: fetched.descriptor,
    parsed: fetched,
    bytes: fetched.bytes,
  };
  return {
    name,
    repo,
    descriptor: fetched.descriptor,
    top: () => Promise.resolve(top),
    async manifest(entry) {
      const m = await client.getManifest(repo, entry.digest, { signal });
      return {
        descriptor: { ...m.descriptor, mediaType: entry.mediaType },
        parsed: m,
        bytes: m.bytes,
      };
    },
    config: (d) => fetchConfig(client, repo, d, signal),
    async blob(d, what) {
      const res = await client.getBlob(repo, d.digest, { signal });
      const length = res.headers.get("content-length");
      if (!res.body || (length !== null && Number(length) !== d.size)) {
        await res.body?.cancel();
        throw sizeMismatch(
          d.size,
          length === null ? 0 : Number(length),
          `${what} ${d.digest} from ${ref.registry}`,
        );
      }
      const body = res.body;
      return { open: () => Promise.resolve(body) };
    },
  };
}

/**
 * The documents of an image in a store or a registry.
 *
 * @param source The store or the registry client.
 * @param reference A tag, digest or digest prefix in the store, or a
 * registry reference.
 * @param signal Aborts the lookups.
 * @returns The documents.
 * @throws {NotFoundError} When there is no such image.
 */
export async function openDocuments(
  source: Store | RegistryClient,
  reference: string,
  signal: AbortSignal | undefined,
): Promise<ImageDocuments> {
  if (source instanceof RegistryClient) {
    return await registryDocuments(source, reference, signal);
  }
  const resolved = await source.resolve(reference);
  return storeDocuments(
    source,
    resolved.reference ?? reference,
    plain(resolved.descriptor),
  );
}

/**
 * Picks an image's manifest for a platform: the manifest itself, or the
 * index entry {@linkcode selectPlatform} chooses, checked to be an image
 * manifest of the declared size.
 *
 * @param docs The image's documents.
 * @param options The platform asked for and the fallback.
 * @returns The manifest and the platforms.
 */
export async function selectManifest(
  docs: ImageDocuments,
  options: SelectOptions = {},
): Promise<SelectedManifest> {
  const top = await docs.top();
  if (top.parsed.kind === "manifest") {
    return {
      descriptor: top.descriptor,
      manifest: top.parsed.manifest,
      platforms: [],
    };
  }
  const entries = top.parsed.index.manifests;
  if (entries.length === 0) {
    throw new InvalidImageError(
      `Invalid image ${docs.name}: the index lists no manifests`,
    );
  }
  const entry = selectPlatform(entries, options.platform, {
    fallback: options.fallback,
    name: options.anonymous ? undefined : docs.name,
  });
  checkIndexEntry(entry, docs.name);
  const child = await docs.manifest(entry);
  checkEntryManifest(
    entry,
    child.parsed,
    child.bytes?.byteLength ?? child.descriptor.size,
    docs.name,
  );
  const platforms: Platform[] = [];
  for (const e of entries) if (e.platform) platforms.push(e.platform);
  return {
    descriptor: child.descriptor,
    manifest: child.parsed.manifest,
    platform: entry.platform,
    platforms,
  };
}

function kindsIn(manifest: ImageManifest): string[] {
  const out = new Set<string>();
  for (const l of manifest.layers) {
    out.add(layerKindOf(l.mediaType)?.kind ?? l.mediaType);
  }
  return [...out].sort((a, b) => {
    const ia = LAYER_KINDS.indexOf(a as LayerKind);
    const ib = LAYER_KINDS.indexOf(b as LayerKind);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
}

/**
 * The layer of a kind in a manifest; the current media type wins over the
 * legacy one.
 *
 * @param manifest The manifest.
 * @param kind The layer kind.
 * @param where The image, for messages, such as `NAME (linux/amd64)`.
 * @param found The image's reference and platform, for a missing layer.
 * @returns The layer's descriptor.
 * @throws {NotFoundError} When there is none (listing the kinds there are).
 * @throws {InvalidImageError} When there are two.
 */
export function findLayer(
  manifest: ImageManifest,
  kind: LayerKind,
  where: string,
  found: { reference: string; platform?: Platform | undefined },
): Descriptor {
  const current = manifest.layers.filter((l) =>
    l.mediaType === LAYER_MEDIA_TYPES[kind]
  );
  const legacyType = LEGACY_LAYER_MEDIA_TYPES[kind];
  const legacy = legacyType === undefined
    ? []
    : manifest.layers.filter((l) => l.mediaType === legacyType);
  // Current over legacy, as imageFromManifest does; two of one kind is
  // ambiguous.
  const candidates = current.length > 0 ? current : legacy;
  if (candidates.length > 1) {
    throw new InvalidImageError(
      `Invalid IronCore image ${where}: it has ${candidates.length} ${kind} layers (${
        candidates[0]!.mediaType
      }): run validate to see the problems`,
    );
  }
  const layer = candidates[0];
  if (!layer) {
    const have = kindsIn(manifest);
    throw new NotFoundError(
      `Image ${where} has no ${kind} layer: it has ${
        have.length ? have.join(", ") : "no layers"
      }`,
      {
        reference: found.reference,
        platform: found.platform && formatPlatform(found.platform),
        layer: kind,
      },
    );
  }
  return layer;
}
