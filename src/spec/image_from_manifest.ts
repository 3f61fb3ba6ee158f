/**
 * Turns an OCI image manifest into a typed IronCore image.
 *
 * @module
 */

import { InvalidImageError } from "../errors.ts";
import type { Descriptor, ImageManifest } from "../oci/manifest.ts";
import { ANNOTATION_TITLE } from "../oci/manifest.ts";
import { type ImageConfig, parseConfig } from "./config.ts";
import {
  ANNOTATION_VARIANT,
  CONFIG_MEDIA_TYPE,
  LAYER_KINDS,
  type LayerKind,
  layerKindOf,
  LEGACY_CONFIG_MEDIA_TYPE,
  type Variant,
  VARIANTS,
} from "./media_types.ts";

/** An IronCore image: its config and one descriptor per layer kind present. */
export interface IronCoreImage {
  /** The decoded config blob. */
  config: ImageConfig;
  /** Descriptor of the config blob. */
  configDescriptor: Descriptor;
  /** Boot variant from the manifest's `variant` annotation. */
  variant?: Variant | undefined;
  /** Title from the manifest's `org.opencontainers.image.title` annotation. */
  title?: string | undefined;
  /** Kernel layer. */
  kernel?: Descriptor | undefined;
  /** Initramfs layer. */
  initramfs?: Descriptor | undefined;
  /** Root file system layer. */
  rootfs?: Descriptor | undefined;
  /** Raw disk image layer. */
  disk?: Descriptor | undefined;
  /** Squashfs root file system layer. */
  squashfs?: Descriptor | undefined;
  /** Unified kernel image layer. */
  uki?: Descriptor | undefined;
  /** Bootable ISO layer. */
  iso?: Descriptor | undefined;
  /** Layer kinds that were found only under a legacy media type. */
  legacy: LayerKind[];
}

/**
 * Reads a manifest and its config blob as an IronCore image. Current
 * media types win over legacy ones; an unknown layer media type, or two layers
 * of the same kind and generation, is an error.
 *
 * @param manifest The validated manifest.
 * @param configBytes The bytes of the blob `manifest.config` points to.
 * @returns The IronCore image.
 * @throws {InvalidImageError} When the manifest is not an IronCore image.
 *
 * @example Resolve a kernel-only image
 * ```ts
 * import { digestOf } from "@ironcore/image/oci";
 * import { imageFromManifest } from "@ironcore/image/spec";
 * const config = new TextEncoder().encode('{"commandLine":"console=ttyS0"}');
 * const kernel = new TextEncoder().encode("kernel bytes");
 * const image = imageFromManifest({
 *   schemaVersion: 2,
 *   config: {
 *     mediaType: "application/vnd.ironcore.image.config.v1+json",
 *     digest: digestOf(config),
 *     size: config.byteLength,
 *   },
 *   layers: [{
 *     mediaType: "application/vnd.ironcore.image.kernel",
 *     digest: digestOf(kernel),
 *     size: kernel.byteLength,
 *   }],
 * }, config);
 * console.log(image.kernel?.size, image.config.commandLine); // 12 "console=ttyS0"
 * ```
 */
export function imageFromManifest(
  manifest: ImageManifest,
  configBytes: Uint8Array,
): IronCoreImage {
  const cfgType = manifest.config.mediaType;
  if (cfgType !== CONFIG_MEDIA_TYPE && cfgType !== LEGACY_CONFIG_MEDIA_TYPE) {
    throw new InvalidImageError(
      `Not an IronCore image: config media type is ${cfgType}, expected ${CONFIG_MEDIA_TYPE}`,
    );
  }
  const image: IronCoreImage = {
    config: parseConfig(configBytes),
    configDescriptor: manifest.config,
    legacy: [],
  };
  const current = new Map<LayerKind, Descriptor>();
  const legacy = new Map<LayerKind, Descriptor>();
  manifest.layers.forEach((layer, i) => {
    const found = layerKindOf(layer.mediaType);
    if (!found) {
      throw new InvalidImageError(
        `Not an IronCore image: layers[${i}] has unknown media type ${layer.mediaType}`,
      );
    }
    const into = found.legacy ? legacy : current;
    if (into.has(found.kind)) {
      throw new InvalidImageError(
        `Invalid IronCore image: more than one ${found.kind} layer (${layer.mediaType})`,
      );
    }
    into.set(found.kind, layer);
  });
  for (const kind of LAYER_KINDS) {
    const layer = current.get(kind) ?? legacy.get(kind);
    if (!layer) continue;
    image[kind] = layer;
    if (!current.has(kind)) image.legacy.push(kind);
  }
  const variant = manifest.annotations?.[ANNOTATION_VARIANT];
  if (
    variant !== undefined && (VARIANTS as readonly string[]).includes(variant)
  ) {
    image.variant = variant as Variant;
  }
  const title = manifest.annotations?.[ANNOTATION_TITLE];
  if (title !== undefined) image.title = title;
  return image;
}

/**
 * The layers an image has, by kind.
 *
 * @param image The resolved image.
 * @returns The kinds present, in manifest order of {@linkcode LAYER_KINDS}.
 *
 * @example List the layers of an image without any
 * ```ts
 * import { layerKinds } from "@ironcore/image/spec";
 * layerKinds({ config: {}, configDescriptor: { mediaType: "a/b", digest: `sha256:${"0".repeat(64)}`, size: 2 }, legacy: [] }); // []
 * ```
 */
export function layerKinds(image: IronCoreImage): LayerKind[] {
  return LAYER_KINDS.filter((k) => image[k] !== undefined);
}
