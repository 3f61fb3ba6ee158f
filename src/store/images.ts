/**
 * Image-level operations on the local store: list, inspect, delete.
 *
 * @module
 */

import { severalTags } from "../_errors.ts";
import { NotFoundError } from "../errors.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageManifest,
} from "../oci/manifest.ts";
import type { Platform } from "../oci/platform.ts";
import type { ImageConfig } from "../spec/config.ts";
import { MAX_CONFIG_BYTES, parseConfig } from "../spec/config.ts";
import { ANNOTATION_IMAGE_SIZE } from "./_tag_index.ts";
import type { Store } from "./store.ts";
import { tagIndexOf } from "./_internal.ts";

/** One row of {@linkcode listImages}. */
export interface ImageSummary {
  /** Full reference of the tag, or `undefined` for an untagged entry. */
  reference?: string | undefined;
  /** Descriptor of the manifest or index. */
  descriptor: Descriptor;
  /** Total bytes of the image: manifests, configs and layers, each counted once. */
  size: number;
}

/**
 * Output of {@linkcode inspectImage} for one manifest of an index: the index
 * entry's own fields (`mediaType`, `digest`, `size`, `platform`,
 * `annotations`, as the index holds them, so a filter written for the index,
 * such as `.manifests[].digest`, reads the same values), then the entry as
 * `descriptor`, the manifest and its config.
 */
export interface ManifestDetails {
  /** The media type of the index entry. */
  mediaType: string;
  /** The digest of the index entry. */
  digest: string;
  /** The size of the index entry. */
  size: number;
  /** The platform of the index entry. */
  platform?: Platform | undefined;
  /** The annotations of the index entry. */
  annotations?: Record<string, string> | undefined;
  /** The manifest's descriptor (the index entry). */
  descriptor: Descriptor;
  /** The manifest. */
  manifest: unknown;
  /** The decoded config, when it is IronCore JSON. */
  config?: ImageConfig | undefined;
}

/**
 * Output of {@linkcode inspectImage}. For an index, it also carries the
 * index's own fields (`schemaVersion`, `mediaType`, `annotations`, and in
 * `manifests` each entry's), so that what reads the index itself reads this
 * too.
 */
export interface ImageDetails {
  /** The index's `schemaVersion`, for an index. */
  schemaVersion?: number | undefined;
  /** The index's `mediaType`, for an index that gives one. */
  mediaType?: string | undefined;
  /** The full reference, when resolved through a tag. */
  reference?: string | undefined;
  /** The descriptor of what the reference names. */
  descriptor: Descriptor;
  /** The index, when the reference names one. */
  index?: unknown;
  /** The index's annotations, for an index that has some. */
  annotations?: Record<string, string> | undefined;
  /** The manifest, when the reference names a single manifest. */
  manifest?: unknown;
  /** The decoded config of a single manifest. */
  config?: ImageConfig | undefined;
  /** The manifests of an index, each with its config. */
  manifests?: ManifestDetails[] | undefined;
}

/** Options for {@linkcode deleteImage}. */
export interface DeleteImageOptions {
  /**
   * Delete every tag of the image an image ID (a digest or digest prefix)
   * names. Without it, an ID that names an image with several tags is
   * refused, since one typed character can match them all. Default `false`.
   */
  force?: boolean | undefined;
}

/**
 * Removes a tag, or, for an image ID (a digest or a digest prefix, with or
 * without `sha256:`), the image's tag; an image with several tags is removed
 * by ID only with `force`, as `docker rmi` does. Blobs stay until pruned.
 *
 * @param store The store.
 * @param reference A tag, digest or unique digest prefix.
 * @param options Whether an ID may remove several tags.
 * @returns The full references removed (none for an untagged image).
 * @throws {NotFoundError} When nothing matches, or a digest names content
 * that no `index.json` entry points at (a manifest inside an index).
 * @throws {AmbiguousReferenceError} When an ID names an image with several
 * tags and `force` is not set; `candidates` are the tags.
 *
 * @example Remove a tag and keep the blobs
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { deleteImage } from "@ironcore/image/store";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * const built = await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "my-os:1.0",
 * });
 * console.log(await deleteImage(store, "my-os:1.0")); // ["docker.io/library/my-os:1.0"]
 * console.log(await store.hasBlob(built.index.digest)); // true, until pruneStore
 * ```
 *
 * @example Remove every tag of an image by its ID
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { deleteImage } from "@ironcore/image/store";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * const built = await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "my-os:1.0",
 * });
 * await store.tag("my-os:1.0", "my-os:latest");
 * const id = built.index.digest.slice(0, 19); // sha256: and 12 hex digits
 * console.log(await deleteImage(store, id, { force: true })); // both tags
 * ```
 */
export async function deleteImage(
  store: Store,
  reference: string,
  options: DeleteImageOptions = {},
): Promise<string[]> {
  const index = tagIndexOf(store);
  const resolved = await store.resolve(reference);
  if (resolved.reference !== undefined) {
    await store.untag(resolved.reference);
    return [resolved.reference];
  }
  const digest = resolved.descriptor.digest;
  const entries = (await index.entries()).filter((d) => d.digest === digest);
  if (entries.length === 0) {
    // A manifest inside an index, or a bare blob: nothing names it.
    throw new NotFoundError(
      `No tag or store entry points at ${digest}: it is part of another image, delete that image instead`,
      { reference },
    );
  }
  const tags = entries.flatMap((d) => {
    const ref = d.annotations?.[ANNOTATION_REF_NAME];
    return ref === undefined ? [] : [ref];
  });
  if (tags.length > 1 && !options.force) {
    throw severalTags(
      reference,
      tags,
      "delete one by its tag, or set force to delete them all",
    );
  }
  const removed: string[] = [];
  await index.update((current) => ({
    ...current,
    manifests: current.manifests.filter((d) => {
      if (d.digest !== digest) return true;
      const ref = d.annotations?.[ANNOTATION_REF_NAME];
      if (ref !== undefined) removed.push(ref);
      return false;
    }),
  }));
  return removed;
}

/**
 * Lists the images in the store.
 *
 * @param store The store.
 * @returns One row per `index.json` entry.
 *
 * @example List an empty store
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { listImages } from "@ironcore/image/store";
 * const rows = await listImages(await Store.open(await Deno.makeTempDir()));
 * console.log(rows.length); // 0
 * ```
 */
export async function listImages(store: Store): Promise<ImageSummary[]> {
  const sizes = new Map<string, number>();
  const rows: ImageSummary[] = [];
  for (const d of await tagIndexOf(store).entries()) {
    const annotations = d.annotations;
    // Built field by field: cheaper than a rest spread over 10,000 entries.
    const descriptor: Descriptor = {
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
    };
    if (d.platform) descriptor.platform = d.platform;
    if (d.artifactType) descriptor.artifactType = d.artifactType;
    let size = sizes.get(d.digest);
    if (size === undefined) {
      const cached = Number(annotations?.[ANNOTATION_IMAGE_SIZE]);
      size = Number.isSafeInteger(cached) && cached >= 0
        ? cached
        : await tagIndexOf(store).imageSize(descriptor);
      sizes.set(d.digest, size);
    }
    const row: ImageSummary = { descriptor, size };
    const ref = annotations?.["org.opencontainers.image.ref.name"];
    if (ref !== undefined) row.reference = ref;
    rows.push(row);
  }
  return rows;
}

/** The decoded config of a manifest, when it is IronCore JSON. */
async function configOf(
  store: Store,
  manifest: ImageManifest,
): Promise<ImageConfig | undefined> {
  const d = manifest.config;
  if (d.size > MAX_CONFIG_BYTES) return undefined;
  // A corrupt or missing blob is an error, not a config to leave out.
  const bytes = await store.readBlob(d, { maxBytes: MAX_CONFIG_BYTES });
  try {
    return parseConfig(bytes);
  } catch {
    // Not an IronCore config: the manifest is still shown.
    return undefined;
  }
}

/**
 * Describes an image: its descriptor, manifest or index, and decoded configs.
 *
 * @param store The store.
 * @param input A tag, digest or unique digest prefix.
 * @returns The details.
 *
 * @example Read an image's manifest and config
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { inspectImage } from "@ironcore/image/store";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * await Deno.writeTextFile(`${dir}/cmdline`, "console=ttyS0");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` }, cmdline: `${dir}/cmdline` },
 * ], { tag: "my-os:1.0" });
 * const details = await inspectImage(store, "my-os:1.0");
 * console.log(details.manifests?.[0]?.config); // { commandLine: "console=ttyS0" }
 * ```
 */
export async function inspectImage(
  store: Store,
  input: string,
): Promise<ImageDetails> {
  const resolved = await store.resolve(input);
  const descriptor = resolved.descriptor;
  const parsed = await store.readManifest(descriptor);
  const out: ImageDetails = { descriptor };
  if (resolved.reference !== undefined) {
    out.reference = resolved.reference;
  }
  if (parsed.kind === "manifest") {
    out.manifest = parsed.manifest;
    const config = await configOf(store, parsed.manifest);
    if (config) out.config = config;
    return out;
  }
  const index = parsed.index;
  const manifests: ManifestDetails[] = [];
  // The index's own fields first, as the index itself has them.
  const details: ImageDetails = {
    schemaVersion: index.schemaVersion,
    ...(index.mediaType !== undefined ? { mediaType: index.mediaType } : {}),
    ...out,
    index,
    ...(index.annotations !== undefined
      ? { annotations: index.annotations }
      : {}),
    manifests,
  };
  for (const m of index.manifests) {
    // A missing or corrupt manifest fails the whole inspect: shown as null,
    // it would pass for an image that is fine.
    const child = await store.readManifest(m);
    if (child.kind !== "manifest") continue;
    // The entry's own fields first, as in the index.
    const entry: ManifestDetails = {
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(m.platform !== undefined ? { platform: m.platform } : {}),
      ...(m.annotations !== undefined ? { annotations: m.annotations } : {}),
      descriptor: m,
      manifest: child.manifest,
    };
    const config = await configOf(store, child.manifest);
    if (config) entry.config = config;
    manifests.push(entry);
  }
  return details;
}
