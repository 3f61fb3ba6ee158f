/**
 * The JSON body of `GET /v1/images/{reference}`: what a boot server knows
 * about an image, with the URL of every layer pinned to the manifest's
 * digest.
 *
 * @module
 */

import { formatPlatform } from "../oci/platform.ts";
import type { Descriptor } from "../oci/manifest.ts";
import type { LayerKind, Variant } from "../spec/media_types.ts";
import { layerKinds } from "../spec/image_from_manifest.ts";
import type { ServedImage } from "./_image_resolver.ts";
import { type Reply, reply } from "./_reply.ts";

/** A blob in {@linkcode BootImageJson}: its descriptor and boot URL. */
export interface BootBlobJson {
  /** Media type. */
  mediaType: string;
  /** Digest. */
  digest: string;
  /** Size in bytes. */
  size: number;
  /** The URL that serves it, pinned to the manifest's digest. */
  url: string;
}

/** A layer in {@linkcode BootImageJson}. */
export interface BootLayerJson extends BootBlobJson {
  /** Whether it was found under a legacy media type. */
  legacy: boolean;
}

/** The body of `GET /v1/images/{reference}`. */
export interface BootImageJson {
  /** The full reference asked for. */
  reference: string;
  /** Media type of what the reference names (index or manifest). */
  mediaType: string;
  /** Digest of what the reference names. */
  digest: string;
  /** Size of what the reference names. */
  size: number;
  /** The platform's manifest. */
  manifest: { mediaType: string; digest: string; size: number };
  /** The manifest's platform (`os/arch[/variant]`), `null` without index. */
  platform: string | null;
  /** Every platform of the index; empty for a single manifest. */
  platforms: string[];
  /** Boot variant, from the manifest's annotation. */
  variant: Variant | null;
  /** Title, from the manifest's annotation. */
  title: string | null;
  /** The kernel command line from the config. */
  commandLine: string | null;
  /** Where the manifests came from. */
  source: "registry" | "store";
  /** The config blob. */
  config: BootBlobJson;
  /** Every layer the image has, by kind. */
  layers: Partial<Record<LayerKind, BootLayerJson>>;
}

/**
 * The JSON of an image.
 *
 * @param image The resolved image.
 * @param prefix The start of every image URL, up to `/v1/images/`.
 * @returns The body.
 */
export function imageJson(image: ServedImage, prefix: string): BootImageJson {
  const pinned = encodeURIComponent(
    `${image.repo.registry}/${image.repo.repository}@${image.manifest.digest}`,
  );
  const describe = (d: Descriptor, layer: string): BootBlobJson => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    url: `${prefix}${pinned}/${layer}`,
  });
  const layers: Partial<Record<LayerKind, BootLayerJson>> = {};
  for (const kind of layerKinds(image.image)) {
    layers[kind] = {
      ...describe(image.image[kind]!, kind),
      legacy: image.image.legacy.includes(kind),
    };
  }
  return {
    reference: image.reference,
    mediaType: image.descriptor.mediaType,
    digest: image.descriptor.digest,
    size: image.descriptor.size,
    manifest: {
      mediaType: image.manifest.mediaType,
      digest: image.manifest.digest,
      size: image.manifest.size,
    },
    platform: image.platform ? formatPlatform(image.platform) : null,
    platforms: image.platforms.map(formatPlatform),
    variant: image.image.variant ?? null,
    title: image.image.title ?? null,
    commandLine: image.image.config.commandLine ?? null,
    source: image.source,
    config: describe(image.image.configDescriptor, "config"),
    layers,
  };
}

/**
 * The answer to a request for the JSON of an image: pretty-printed, never
 * cached (a tag may move), without a body for `HEAD`.
 *
 * @param image The resolved image.
 * @param prefix The start of every image URL, up to `/v1/images/`.
 * @param method The request's method.
 * @returns The reply.
 */
export function imageJsonReply(
  image: ServedImage,
  prefix: string,
  method: string,
): Reply {
  const json = JSON.stringify(imageJson(image, prefix), null, 2) + "\n";
  const body = method === "HEAD" ? null : json;
  return reply(
    new Response(body, {
      headers: {
        "content-type": "application/json",
        "content-length": String(new TextEncoder().encode(json).length),
        "cache-control": "no-cache",
      },
    }),
    body,
  );
}
