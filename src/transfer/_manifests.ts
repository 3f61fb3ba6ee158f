/**
 * Writing an image's manifests to a registry once its blobs are there, the
 * same way for push and copy: the per-architecture manifests by digest, then
 * the index (or manifest) under its tag, then the `<tag>-<arch>` tags.
 *
 * @module
 */

import type { Descriptor } from "../oci/manifest.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";

/** A manifest or index with its exact bytes. */
export interface ManifestBytes {
  /** Its descriptor. */
  descriptor: Descriptor;
  /** Its bytes. */
  bytes: Uint8Array;
}

/**
 * Uploads the manifests of an index by digest, then the top document under
 * its tag (or digest); a registry accepts a manifest only after what it
 * references.
 *
 * @param client The registry client.
 * @param repo The destination repository.
 * @param image The children and the top document with the tag to set.
 * @param signal Aborts the uploads.
 */
export async function putManifests(
  client: RegistryClient,
  repo: Repository,
  image: {
    children: readonly ManifestBytes[];
    top: ManifestBytes;
    tagOrDigest: string;
  },
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const child of image.children) {
    await client.putManifest(repo, {
      tagOrDigest: child.descriptor.digest,
      bytes: child.bytes,
      mediaType: child.descriptor.mediaType,
    }, { signal });
  }
  await client.putManifest(repo, {
    tagOrDigest: image.tagOrDigest,
    bytes: image.top.bytes,
    mediaType: image.top.descriptor.mediaType,
  }, { signal });
}

/**
 * Tags a manifest, unless the tag already points at it. When the image was
 * already complete in the registry the tag is looked up first; otherwise it
 * is written right away.
 *
 * @param client The registry client.
 * @param repo The repository.
 * @param tag The tag.
 * @param manifest The manifest and its bytes.
 * @param options Whether to look first, and the abort signal.
 */
export async function tagManifest(
  client: RegistryClient,
  repo: Repository,
  tag: string,
  manifest: ManifestBytes,
  options: { lookFirst: boolean; signal: AbortSignal | undefined },
): Promise<void> {
  const signal = options.signal;
  const have = options.lookFirst
    ? await client.headManifest(repo, tag, { signal })
    : undefined;
  if (have?.digest === manifest.descriptor.digest) return;
  await client.putManifest(repo, {
    tagOrDigest: tag,
    bytes: manifest.bytes,
    mediaType: manifest.descriptor.mediaType,
  }, { signal });
}
