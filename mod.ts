/**
 * IronCore OS images as OCI artifacts: build them from files into a local
 * OCI image layout, resolve them into typed IronCore images, and move them
 * between the store and OCI registries.
 *
 * An IronCore image is an OCI index with one image manifest per
 * architecture. Each manifest carries a small JSON config
 * (`{"commandLine": "…"}`) and one layer per artifact the operating system
 * provides: kernel, initramfs, root file system (raw `rootfs`, `disk` image or
 * `squashfs`), a unified kernel image (`uki`) or an `iso`. The media types are
 * listed in {@linkcode LAYER_MEDIA_TYPES}; `OCI-SPEC.md` describes the format.
 *
 * The local store ({@linkcode Store}) is a plain OCI image layout that other
 * OCI tools read. Blobs are streamed and hashed in one pass, verified before
 * they become visible, and `index.json` changes atomically under a file lock.
 *
 * The everyday calls are here; `@ironcore/image/oci`, `/spec`, `/store`,
 * `/registry`, `/archive` and `/serve` hold the rest of each area.
 *
 * @example Build an image and resolve it
 * ```ts
 * import { buildImage, resolveImage, Store } from "@ironcore/image";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } },
 * ], { tag: "example.com/os:1.0" });
 * const resolved = await resolveImage(store, "example.com/os:1.0");
 * console.log(resolved.image.kernel?.size); // 12
 * ```
 *
 * @module
 */

export {
  AmbiguousReferenceError,
  type AmbiguousReferenceErrorOptions,
  DigestMismatchError,
  type DigestMismatchErrorOptions,
  ImageError,
  type ImageErrorOptions,
  InvalidImageError,
  InvalidReferenceError,
  type InvalidReferenceErrorOptions,
  NetworkError,
  type NetworkErrorKind,
  type NetworkErrorOptions,
  NotFoundError,
  type NotFoundErrorOptions,
  RegistryError,
  type RegistryErrorOptions,
  SizeMismatchError,
  type SizeMismatchErrorOptions,
  StallError,
  type StallErrorOptions,
  StoreError,
  type StoreErrorOptions,
  UnauthorizedError,
  type UnauthorizedErrorOptions,
} from "./src/errors.ts";
export type {
  OperationOptions,
  ProgressCallback,
  ProgressEvent,
} from "./src/progress.ts";
export type { Digest } from "./src/oci/digest.ts";
export type {
  Descriptor,
  ImageIndex,
  ImageManifest,
  ParsedManifest,
} from "./src/oci/manifest.ts";
export { parsePlatform, type Platform } from "./src/oci/platform.ts";
export {
  LAYER_KINDS,
  type LayerKind,
  type Variant,
} from "./src/spec/media_types.ts";
export type { ImageConfig } from "./src/spec/config.ts";
export type { IronCoreImage } from "./src/spec/image_from_manifest.ts";
export type {
  Finding,
  ValidationResult,
} from "./src/spec/validate_documents.ts";
export {
  type ReadBlobOptions,
  type ResolvedRef,
  Store,
  type StoreOptions,
  type TagEntry,
} from "./src/store/store.ts";
export {
  type BlobMount,
  type BlobUpload,
  type FetchedManifest,
  type GetBlobOptions,
  type ManifestUpload,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryTimeouts,
  type Repository,
  type RequestOptions,
  type UploadBlobOptions,
} from "./src/registry/client.ts";
export {
  type Credential,
  type CredentialLookup,
  DockerConfig,
  type DockerConfigOptions,
} from "./src/registry/credentials.ts";
export {
  type ArchConfig,
  parseArchConfig,
  type ParseArchConfigOptions,
} from "./src/build/arch_config.ts";
export {
  buildImage,
  type BuildImageOptions,
  type BuildImageResult,
} from "./src/build/build_image.ts";
export {
  pushImage,
  type PushImageOptions,
  type PushImageResult,
} from "./src/transfer/push_image.ts";
export {
  pullImage,
  type PullImageOptions,
  type PullImageResult,
} from "./src/transfer/pull_image.ts";
export {
  type CopyEndpoint,
  copyImage,
  type CopyImageOptions,
  type CopyImageResult,
} from "./src/transfer/copy_image.ts";
export {
  PullCache,
  type PullCacheOptions,
  type PullCachePullOptions,
  type PullEvent,
  type PullState,
} from "./src/transfer/pull_cache.ts";
export {
  type ResolvedImage,
  resolveImage,
  type ResolveImageOptions,
} from "./src/image/resolve_image.ts";
export {
  type LayerRequest,
  type OpenedLayer,
  openLayer,
  writeLayer,
  writeLayerFile,
  type WriteLayerFileOptions,
  type WriteLayerOptions,
} from "./src/image/open_layer.ts";
export type { ByteWriter } from "./src/store/_verified_copy.ts";
export {
  type LayerUrl,
  layerUrl,
  type LayerUrlOptions,
  type LayerUrlRequest,
} from "./src/image/layer_url.ts";
export {
  validateImage,
  type ValidateImageOptions,
  type ValidationReport,
} from "./src/image/validate_image.ts";
