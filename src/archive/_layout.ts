/**
 * What export and import of OCI archives share: the layout file, the names
 * they read and write, and the walk over everything an image reaches.
 *
 * @module
 */

import { InvalidImageError } from "../errors.ts";
import { type Digest, digestHex } from "../oci/digest.ts";
import {
  type Descriptor,
  isIndexMediaType,
  isManifestMediaType,
} from "../oci/manifest.ts";
import type { Store } from "../store/store.ts";

/** Annotation containerd (`ctr import`, `docker load`) reads a full name from. */
export const ANNOTATION_CONTAINERD_NAME: string = "io.containerd.image.name";

/** The content of `oci-layout`. */
export const LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';
/** Deepest nesting of indexes followed. */
const MAX_DEPTH = 8;

/** A short name of a blob for progress, `sha256:` and 12 hex digits. */
export function shortName(digest: Digest): string {
  return `sha256:${digestHex(digest).slice(0, 12)}`;
}

/** A descriptor without annotations or platform, as a layout lists it. */
export function plainDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
  };
  if (d.artifactType !== undefined) out.artifactType = d.artifactType;
  return out;
}

/**
 * Every blob an image reaches, manifests and indexes first, each once. Every
 * blob must be in the store with its declared size; manifests and indexes
 * are read and checked against their digests.
 */
export async function closure(
  store: Store,
  top: Descriptor,
  missing: (d: Descriptor, role: string) => Error,
): Promise<Descriptor[]> {
  const manifests: Descriptor[] = [];
  const blobs: Descriptor[] = [];
  const seen = new Set<string>();
  async function need(d: Descriptor, role: string): Promise<void> {
    if (!(await store.hasBlob(d.digest, d.size))) throw missing(d, role);
  }
  async function visit(d: Descriptor, depth: number, role: string) {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (!isIndexMediaType(d.mediaType) && !isManifestMediaType(d.mediaType)) {
      throw new InvalidImageError(
        `Invalid ${role} ${d.digest}: media type ${d.mediaType} is not an image manifest or index`,
      );
    }
    await need(d, role);
    const parsed = await store.readManifest(d);
    manifests.push(plainDescriptor(d));
    if (parsed.kind === "index") {
      if (depth >= MAX_DEPTH) {
        throw new InvalidImageError(
          `Invalid index ${d.digest}: indexes are nested more than ${MAX_DEPTH} deep`,
        );
      }
      for (const m of parsed.index.manifests) {
        await visit(m, depth + 1, `manifest of index ${d.digest}`);
      }
      return;
    }
    const m = parsed.manifest;
    for (
      const [b, r] of [
        [m.config, "config"],
        ...m.layers.map((l) => [l, "layer"] as const),
      ] as const
    ) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      await need(b, `${r} of manifest ${d.digest}`);
      blobs.push(plainDescriptor(b));
    }
  }
  await visit(top, 0, "image");
  return [...manifests, ...blobs];
}
