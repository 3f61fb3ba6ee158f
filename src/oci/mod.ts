/**
 * The OCI layer: content digests and a verifying stream, descriptors,
 * manifests and indexes, references and platforms. Pure: no `Deno.*`, so it
 * runs in any runtime.
 *
 * @example Parse a reference and check content against a digest
 * ```ts
 * import {
 *   DigestVerifier,
 *   digestOf,
 *   formatReference,
 *   parseReference,
 * } from "@ironcore/image/oci";
 * console.log(formatReference(parseReference("demo"))); // "docker.io/library/demo:latest"
 * const bytes = new TextEncoder().encode("kernel");
 * const checked = new Blob([bytes]).stream().pipeThrough(
 *   new DigestVerifier({ digest: digestOf(bytes), size: bytes.byteLength }),
 * );
 * console.log(await new Response(checked).text()); // "kernel"
 * ```
 *
 * @module
 */

export { type Digest, digestOf, isDigest, parseDigest } from "./digest.ts";
export {
  BlobHash,
  DigestVerifier,
  type DigestVerifierOptions,
} from "./digest_verifier.ts";
export {
  ANNOTATION_REF_NAME,
  ANNOTATION_TITLE,
  type Descriptor,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  type ImageIndex,
  type ImageManifest,
  MAX_MANIFEST_BYTES,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  type ParsedManifest,
  parseManifest,
  validateIndex,
  type ValidateIndexOptions,
  validateManifest,
} from "./manifest.ts";
export {
  formatPlatform,
  hostPlatform,
  parsePlatform,
  type Platform,
  platformMatches,
  selectPlatform,
  type SelectPlatformOptions,
} from "./platform.ts";
export {
  familiarReference,
  formatReference,
  parseReference,
  type ParseReferenceOptions,
  type Reference,
} from "./reference.ts";
