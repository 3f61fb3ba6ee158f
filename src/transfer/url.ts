/**
 * Computes the URL (and headers) to fetch an image's manifest or one of its
 * layers with a plain HTTP client.
 *
 * @module
 */

import { NotFoundError } from "../errors.ts";
import type { Platform } from "../oci/platform.ts";
import { parseReference } from "../oci/reference.ts";
import type { RegistryClient } from "../registry/client.ts";
import { type LayerKind, layerKindOf } from "../spec/media_types.ts";
import { hostPlatform, selectPlatform } from "./pull.ts";

/** Options for {@linkcode layerUrl}. */
export interface UrlOptions {
  /** The layer to point at; without it, the manifest. */
  layer?: LayerKind;
  /** Platform of an index to use; default this machine's (or the only one). */
  platform?: Platform;
}

/** A URL and the headers to send with it, as `url` prints them. */
export interface BlobRequest {
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
 * @param reference The remote image.
 * @param options Layer and platform.
 * @returns URL and headers.
 *
 * @example
 * ```ts ignore
 * import { layerUrl, RegistryClient } from "../../mod.ts";
 * const req = await layerUrl(new RegistryClient(), "ghcr.io/org/os:1.0", { layer: "kernel" });
 * console.log(req.url);
 * ```
 */
export async function layerUrl(
  client: RegistryClient,
  reference: string,
  options: UrlOptions = {},
): Promise<BlobRequest> {
  const ref = parseReference(reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  let m = await client.getManifest(repo, ref.digest ?? ref.tag!);
  if (
    m.kind === "index" &&
    (options.layer !== undefined || options.platform !== undefined)
  ) {
    const entries = m.index.manifests;
    const d = options.platform === undefined && entries.length === 1
      ? entries[0]!
      : selectPlatform(entries, options.platform ?? hostPlatform());
    m = await client.getManifest(repo, d.digest);
  }
  let url = client.manifestUrl(repo, m.descriptor.digest);
  if (options.layer !== undefined) {
    if (m.kind !== "manifest") {
      throw new NotFoundError(`Image ${reference} has no single manifest`, {
        reference,
      });
    }
    const layers = m.manifest.layers;
    const current = layers.find((l) => {
      const k = layerKindOf(l.mediaType);
      return k !== undefined && k.kind === options.layer && !k.legacy;
    });
    const legacy = layers.find((l) =>
      layerKindOf(l.mediaType)?.kind === options.layer
    );
    const layer = current ?? legacy;
    if (!layer) {
      const have = layers.map((l) =>
        layerKindOf(l.mediaType)?.kind ?? l.mediaType
      );
      throw new NotFoundError(
        `Image ${reference} has no ${options.layer} layer: it has ${
          have.join(", ") || "no layers"
        }`,
        { reference },
      );
    }
    url = client.blobUrl(repo, layer.digest);
  }
  const headers: Record<string, string[]> = {};
  if (options.layer === undefined) headers.Accept = [m.descriptor.mediaType];
  for (
    const [k, v] of Object.entries(
      await client.authHeaders(repo, m.descriptor.digest),
    )
  ) {
    headers[k] = [v];
  }
  return { url, headers };
}
