/**
 * Image-level operations on the local store: list, inspect, delete.
 *
 * @module
 */

import { severalTags } from "../_errors.ts";
import { NotFoundError } from "../errors.ts";
import { ANNOTATION_REF_NAME, type Descriptor } from "../oci/manifest.ts";
import type { ImageConfig } from "../spec/config.ts";
import { parseConfig } from "../spec/config.ts";
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

/** Output of {@linkcode inspectImage} for one manifest. */
export interface ManifestDetails {
  /** The manifest's descriptor (with platform when it came from an index). */
  descriptor: Descriptor;
  /** The manifest. */
  manifest: unknown;
  /** The decoded config, when it is JSON. */
  config?: ImageConfig | undefined;
}

/** Output of {@linkcode inspectImage}. */
export interface ImageDetails {
  /** The full reference, when resolved through a tag. */
  reference?: string | undefined;
  /** The descriptor of what the reference names. */
  descriptor: Descriptor;
  /** The index, when the reference names one. */
  index?: unknown;
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

async function manifestDetails(
  store: Store,
  descriptor: Descriptor,
  manifest: import("../oci/manifest.ts").ImageManifest,
): Promise<ManifestDetails> {
  const out: ManifestDetails = { descriptor, manifest };
  try {
    out.config = parseConfig(
      await store.readBlob(manifest.config, { maxBytes: 1024 * 1024 }),
    );
  } catch {
    // Non-IronCore or missing config: the manifest is still shown.
  }
  return out;
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
  if (parsed.kind === "index") {
    out.index = parsed.index;
    out.manifests = [];
    for (const m of parsed.index.manifests) {
      try {
        const child = await store.readManifest(m);
        if (child.kind === "manifest") {
          out.manifests.push(await manifestDetails(store, m, child.manifest));
        }
      } catch {
        out.manifests.push({ descriptor: m, manifest: null });
      }
    }
  } else {
    const d = await manifestDetails(store, descriptor, parsed.manifest);
    out.manifest = d.manifest;
    if (d.config) out.config = d.config;
  }
  return out;
}
