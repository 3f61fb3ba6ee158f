/**
 * Answering a request for one blob of an image (a layer or the config):
 * `ETag` and `If-None-Match`, single ranges with `If-Range`, `HEAD`, cache
 * headers, and the body from the store, through the cache that fills it,
 * or straight from the registry (verified when whole).
 *
 * @module
 */

import { RegistryError } from "../errors.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { formatPlatform } from "../oci/platform.ts";
import type { Reference } from "../oci/reference.ts";
import type { RegistryClient } from "../registry/client.ts";
import { layerKinds } from "../spec/image_from_manifest.ts";
import { contentRangeStart } from "../transfer/_resume.ts";
import type { BlobCache } from "./_blob_cache.ts";
import { parseRange } from "./_http_range.ts";
import type { ServedImage } from "./_image_resolver.ts";
import { relay, type RelayEnd } from "./_relay.ts";
import {
  type AccessLog,
  type BootBodySource,
  HttpError,
  type Reply,
  reply,
  textReply,
} from "./_reply.ts";
import type { BootLayer } from "./_routes.ts";

/** Where blobs come from. */
export interface BlobSources {
  /** The registry client. */
  client: RegistryClient;
  /** The store's blobs (and, with `caching`, the fills that bring them). */
  blobs: BlobCache | undefined;
  /** Whether every blob served is kept in the store. */
  caching: boolean;
  /** Stops registry downloads when the handler closes. */
  signal: AbortSignal;
}

/** One blob asked for. */
export interface BlobRequest {
  /** The reference as asked for (a digest reference is immutable). */
  ref: Reference;
  /** The resolved image. */
  image: ServedImage;
  /** Which blob of it. */
  layer: BootLayer;
  /**
   * Settles when the server has sent the response (`Deno.serve` tells its
   * handlers): lets the runtime stream a stored blob by itself.
   */
  completed?: Promise<void> | undefined;
}

function contentType(layer: BootLayer): string {
  switch (layer) {
    case "uki":
      return "application/efi";
    case "iso":
      return "application/x-iso9660-image";
    case "config":
      return "application/json";
    default:
      return "application/octet-stream";
  }
}

function etagMatches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  return header.split(",").some((t) => {
    const v = t.trim().replace(/^W\//, "");
    return v === "*" || v === etag;
  });
}

/**
 * The descriptor of a blob of an image.
 *
 * @param image The image.
 * @param layer The layer kind, or `config`.
 * @returns The descriptor.
 * @throws {HttpError} 404 naming the layers the image has.
 */
export function blobOf(image: ServedImage, layer: BootLayer): Descriptor {
  const d = layer === "config"
    ? image.image.configDescriptor
    : image.image[layer];
  if (d) return d;
  const have = layerKinds(image.image);
  const where = image.platform ? ` for ${formatPlatform(image.platform)}` : "";
  throw new HttpError(
    404,
    `Image ${image.reference}${where} has no ${layer} layer: it has ${
      have.length ? have.join(", ") : "no layers"
    }`,
  );
}

/** The body of bytes `[start, end)` of a blob from the registry itself. */
async function fromRegistry(
  sources: BlobSources,
  image: ServedImage,
  what: string,
  d: Descriptor,
  window: { start: number; end: number; onEnd: RelayEnd },
): Promise<ReadableStream<Uint8Array>> {
  const { start, end, onEnd } = window;
  const host = image.repo.registry;
  const whole = start === 0 && end === d.size;
  const res = await sources.client.getBlob(image.repo, d.digest, {
    ...(whole ? {} : { offset: start, length: end - start }),
    signal: sources.signal,
  });
  if (!res.body) {
    throw new RegistryError(
      `Registry ${host} sent blob ${d.digest} without a body`,
      { host, status: res.status },
    );
  }
  if (whole) {
    return relay(res.body, {
      verify: { digest: d.digest, size: d.size, what },
      onEnd,
    });
  }
  if (res.status === 206) {
    if (contentRangeStart(res) !== start) {
      await res.body.cancel();
      throw new RegistryError(
        `Registry ${host} answered a range request for blob ${d.digest} with another range`,
        { host, status: 206 },
      );
    }
    return relay(res.body, { take: end - start, onEnd });
  }
  // The registry ignored the range: cut it out of the whole blob.
  return relay(res.body, { skip: start, take: end - start, onEnd });
}

/**
 * Answers a request for a blob.
 *
 * @param req The request (method, conditional and range headers).
 * @param blob The reference, image and layer asked for.
 * @param sources Where the bytes come from.
 * @param log The request's access log, written when the body ends.
 * @returns The reply; a body stream logs itself when it ends.
 */
export async function blobResponse(
  req: Request,
  blob: BlobRequest,
  sources: BlobSources,
  log: AccessLog,
): Promise<Reply> {
  const { ref, image, layer } = blob;
  const d = blobOf(image, layer);
  const etag = `"${d.digest}"`;
  const headers: Record<string, string> = {
    "content-type": contentType(layer),
    "etag": etag,
    "accept-ranges": "bytes",
    // A digest reference names these bytes forever; a tag may move.
    "cache-control": ref.digest !== undefined
      ? "public, max-age=31536000, immutable"
      : "no-cache",
  };
  if (etagMatches(req.headers.get("if-none-match"), etag)) {
    return reply(new Response(null, { status: 304, headers }), null);
  }
  const ifRange = req.headers.get("if-range");
  const range = ifRange !== null && ifRange.trim() !== etag
    ? { kind: "full" as const }
    : parseRange(req.headers.get("range"), d.size);
  if (range.kind === "unsatisfiable") {
    return textReply(
      416,
      `Range ${
        req.headers.get("range")
      } is outside the ${d.size}-byte ${layer}`,
      req.method,
      { "content-range": `bytes */${d.size}`, etag },
    );
  }
  const start = range.kind === "partial" ? range.start : 0;
  const end = range.kind === "partial" ? range.end : d.size;
  headers["content-length"] = String(end - start);
  if (range.kind === "partial") {
    headers["content-range"] = `bytes ${start}-${end - 1}/${d.size}`;
  }
  const status = range.kind === "partial" ? 206 : 200;
  if (req.method === "HEAD") {
    return reply(new Response(null, { status, headers }), null);
  }
  let from: BootBodySource = "registry";
  const onEnd: RelayEnd = (bytes, error) => log(status, bytes, error, from);
  const { blobs, client } = sources;
  const completed = blob.completed;
  let cached = await blobs?.fromStore(d, start, end, onEnd, completed);
  if (!cached && sources.caching) {
    cached = await blobs!.stream(
      d,
      {
        host: image.repo.registry,
        open: (offset, signal) =>
          client.getBlob(image.repo, d.digest, { offset, signal }),
      },
      start,
      end,
      onEnd,
      completed,
    );
  }
  if (cached) from = cached.source;
  const body = cached?.body ?? await fromRegistry(
    sources,
    image,
    `${layer} blob ${d.digest}`,
    d,
    { start, end, onEnd },
  );
  return { response: new Response(body, { status, headers }) };
}
