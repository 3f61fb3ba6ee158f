/**
 * The IronCore image format (see `OCI-SPEC.md`): media types and layer
 * kinds, the config, reading a manifest as a typed {@linkcode IronCoreImage},
 * and a validator that lists every problem of an image's documents. Pure:
 * the caller loads the documents.
 *
 * @example Read a manifest as an IronCore image
 * ```ts
 * import { CONFIG_MEDIA_TYPE, imageFromManifest, LAYER_MEDIA_TYPES } from "@ironcore/image/spec";
 * const config = new TextEncoder().encode('{"commandLine":"console=ttyS0"}');
 * const digest = `sha256:${"a".repeat(64)}` as const;
 * const image = imageFromManifest({
 *   schemaVersion: 2,
 *   config: { mediaType: CONFIG_MEDIA_TYPE, digest, size: config.byteLength },
 *   layers: [{ mediaType: LAYER_MEDIA_TYPES.kernel, digest, size: 6 }],
 * }, config);
 * console.log(image.config.commandLine); // "console=ttyS0"
 * ```
 *
 * @module
 */

export {
  ANNOTATION_VARIANT,
  CONFIG_MEDIA_TYPE,
  isLayerKind,
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  layerKindOf,
  LEGACY_CONFIG_MEDIA_TYPE,
  LEGACY_LAYER_MEDIA_TYPES,
  type Variant,
  VARIANTS,
} from "./media_types.ts";
export { type ImageConfig, MAX_CONFIG_BYTES, parseConfig } from "./config.ts";
export {
  imageFromManifest,
  type IronCoreImage,
  layerKinds,
} from "./image_from_manifest.ts";
export {
  type Finding,
  type ImageInput,
  type IndexInput,
  type ManifestInput,
  type UnloadedManifest,
  validateDocuments,
  type ValidationResult,
} from "./validate_documents.ts";
