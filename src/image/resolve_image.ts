/**
 * Resolves an image reference, in the local store or in a registry, to a
 * typed IronCore image in one call: the index or manifest it names, the
 * manifest for a platform, and the parsed config, every document checked
 * against its digest on the way.
 *
 * The same selection path serves {@linkcode openLayer}, `layerUrl`,
 * `validateImage` and the boot server, so an index entry is chosen, and a
 * document verified, the same way everywhere.
 *
 * @module
 */

import type { Platform } from "../oci/platform.ts";
import type { Descriptor } from "../oci/manifest.ts";
import type { RegistryClient } from "../registry/client.ts";
import {
  imageFromManifest,
  type IronCoreImage,
} from "../spec/image_from_manifest.ts";
import type { Store } from "../store/store.ts";
import {
  type ImageDocuments,
  openDocuments,
  selectManifest,
  type SelectOptions,
} from "./_documents.ts";

/** Options for {@linkcode resolveImage}. */
export interface ResolveImageOptions {
  /**
   * The platform to pick from an index. Default: the only entry of a
   * one-entry index, else this machine's platform.
   */
  platform?: Platform | undefined;
  /** Aborts the lookups. */
  signal?: AbortSignal | undefined;
}

/** An image resolved for one platform by {@linkcode resolveImage}. */
export interface ResolvedImage {
  /**
   * The full reference; for an image in the store named by digest, the
   * digest as given.
   */
  reference: string;
  /** What the reference names: an index or a manifest. */
  descriptor: Descriptor;
  /** The platform's manifest (the same as `descriptor` without an index). */
  manifest: Descriptor;
  /** The platform of the manifest, from its index entry. */
  platform?: Platform | undefined;
  /** Every platform of the index; empty for a single manifest. */
  platforms: Platform[];
  /** The IronCore image: config and layers. */
  image: IronCoreImage;
}

/**
 * Resolves an image from its documents: picks the manifest, loads the config
 * and reads the IronCore image.
 *
 * @param docs The image's documents.
 * @param options How to pick the manifest.
 * @returns The resolved image.
 */
export async function resolveDocuments(
  docs: ImageDocuments,
  options: SelectOptions = {},
): Promise<ResolvedImage> {
  const chosen = await selectManifest(docs, options);
  const config = await docs.config(chosen.manifest.config);
  const resolved: ResolvedImage = {
    reference: docs.name,
    descriptor: docs.descriptor,
    manifest: chosen.descriptor,
    platforms: chosen.platforms,
    image: imageFromManifest(chosen.manifest, config),
  };
  if (chosen.platform) resolved.platform = chosen.platform;
  return resolved;
}

/**
 * Resolves an image to a typed IronCore image in one call. From an index the
 * manifest for the platform is picked (by default the only one, else this
 * machine's); the manifest and its config are loaded and every document is
 * checked against its digest.
 *
 * @param source The local store or a registry client.
 * @param reference In a store a tag, digest or unique digest prefix; for a
 * registry a full reference such as `registry.example.com/os/demo:1.0`.
 * @param options Platform and abort signal.
 * @returns The image, the descriptors on the way and the index's platforms.
 * @throws {NotFoundError} When the image or the platform is missing (the
 * message lists the platforms there are).
 * @throws {InvalidImageError} When the documents are not an IronCore image.
 * @throws {DigestMismatchError} When a document does not match its digest.
 *
 * @example Resolve an image in the store
 * ```ts
 * import { buildImage, resolveImage, Store } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } },
 * ], { tag: "example.com/os:1.0" });
 * const resolved = await resolveImage(store, "example.com/os:1.0");
 * console.log(resolved.image.kernel?.size); // 12
 * ```
 */
export async function resolveImage(
  source: Store | RegistryClient,
  reference: string,
  options: ResolveImageOptions = {},
): Promise<ResolvedImage> {
  const docs = await openDocuments(source, reference, options.signal);
  return await resolveDocuments(docs, { platform: options.platform });
}
