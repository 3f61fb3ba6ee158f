/**
 * Computes the URL (and headers) to fetch an image's manifest or one of its
 * layers with a plain HTTP client.
 *
 * @module
 */

import type { Platform } from "../oci/platform.ts";
import type { RegistryClient } from "../registry/client.ts";
import type { LayerKind } from "../spec/media_types.ts";
import { findLayer, registryDocuments, selectManifest } from "./_documents.ts";

/** What {@linkcode layerUrl} points at. */
export interface LayerUrlRequest {
  /** The remote image, e.g. `registry.example.com/os/demo:1.0`. */
  reference: string;
  /** The layer to point at; without it, the manifest. */
  layer?: LayerKind | undefined;
  /**
   * Platform of an index to use; default this machine's (or the only one).
   * Without it and without `layer`, the URL is the index's own.
   */
  platform?: Platform | undefined;
}

/** Options for {@linkcode layerUrl}. */
export interface LayerUrlOptions {
  /** Aborts the lookups. */
  signal?: AbortSignal | undefined;
}

/** A URL and the headers to send with it, as `url` prints them. */
export interface LayerUrl {
  /** The URL. */
  url: string;
  /**
   * Headers, each with a list of values: `Authorization` when the registry
   * asks for credentials, and for a manifest `Accept` with its media type
   * (registries answer 404 to a manifest request that does not accept it).
   */
  headers: Record<string, string[]>;
}

/**
 * Resolves a remote image and returns the URL of its manifest or of one
 * layer, with the headers a plain HTTP client must send: an `Authorization`
 * header obtained through the registry's auth flow, and for a manifest an
 * `Accept` header with its media type. Sending exactly these headers
 * (`curl -H "Accept: …" -H "Authorization: …" URL`) fetches the bytes.
 * Legacy media types are found too.
 *
 * @param client The registry client.
 * @param request The image, and the layer and platform to point at.
 * @param options Abort signal.
 * @returns URL and headers.
 * @throws {NotFoundError} When the image, the platform or the layer is
 * missing.
 *
 * @example Give a boot loader the URL of a kernel
 * ```ts
 * import { buildImage, layerUrl, RegistryClient, Store } from "@ironcore/image";
 * import { isDigest } from "@ironcore/image/oci";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const origin = await Store.open(`${dir}/store`);
 * await buildImage(origin, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "registry.example.com/os:1.0",
 * });
 * // For this example, the registry answers from the store `origin` (a tag or
 * // a digest names one of its blobs), through the client's fetch option.
 * const client = new RegistryClient({
 *   fetch: async (input) => {
 *     const name = new URL(new Request(input).url).pathname.split("/").pop()!;
 *     const digest = isDigest(name)
 *       ? name
 *       : (await origin.resolve(`registry.example.com/os:${name}`)).descriptor.digest;
 *     return new Response(await Deno.readFile(origin.blobPath(digest)));
 *   },
 * });
 * const { url, headers } = await layerUrl(client, {
 *   reference: "registry.example.com/os:1.0",
 *   layer: "kernel",
 *   platform: { os: "linux", architecture: "amd64" },
 * });
 * console.log(url); // "https://registry.example.com/v2/os/blobs/sha256:…"
 * console.log(headers); // {}: this registry asks for no credentials
 * ```
 */
export async function layerUrl(
  client: RegistryClient,
  request: LayerUrlRequest,
  options: LayerUrlOptions = {},
): Promise<LayerUrl> {
  const signal = options.signal;
  const docs = await registryDocuments(client, request.reference, signal);
  const repo = docs.repo;
  let url = client.manifestUrl(repo, docs.descriptor.digest);
  let probe = docs.descriptor.digest;
  let mediaType: string | undefined = docs.descriptor.mediaType;
  if (request.layer !== undefined || request.platform !== undefined) {
    const chosen = await selectManifest(docs, {
      platform: request.platform,
      anonymous: true,
    });
    url = client.manifestUrl(repo, chosen.descriptor.digest);
    probe = chosen.descriptor.digest;
    mediaType = chosen.descriptor.mediaType;
    if (request.layer !== undefined) {
      const layer = findLayer(chosen.manifest, request.layer, docs.name, {
        reference: docs.name,
        platform: chosen.platform,
      });
      url = client.blobUrl(repo, layer.digest);
      mediaType = undefined;
    }
  }
  const headers: Record<string, string[]> = {};
  if (mediaType !== undefined) headers.Accept = [mediaType];
  for (
    const [k, v] of Object.entries(
      await client.authHeaders(repo, probe, { signal }),
    )
  ) {
    headers[k] = [v];
  }
  return { url, headers };
}
