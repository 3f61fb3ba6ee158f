/**
 * An HTTP boot endpoint: serves the kernel, initramfs, root file system,
 * UKI or ISO of an IronCore image under plain URLs that iPXE and UEFI HTTP
 * boot can fetch, streamed straight from the registry (or the local store),
 * digest-verified on the way.
 *
 * @module
 */

import type { Platform } from "../oci/platform.ts";
import { hostPlatform } from "../oci/platform.ts";
import { RegistryClient } from "../registry/client.ts";
import type { Store } from "../store/store.ts";
import { AllowList } from "./_allow_list.ts";
import { BlobCache } from "./_blob_cache.ts";
import { blobResponse, type BlobSources } from "./_blob_response.ts";
import { imageJsonReply } from "./_image_json.ts";
import { ImageResolver } from "./_image_resolver.ts";
import { ClientGoneError } from "./_relay.ts";
import {
  type AccessLog,
  type BootBodySource,
  HttpError,
  messageOf,
  type Reply,
  statusOf,
  textResponse,
} from "./_reply.ts";
import { IMAGES_PREFIX, routeOf } from "./_routes.ts";

export { BOOT_LAYERS, type BootLayer } from "./_routes.ts";
export type { BootBodySource } from "./_reply.ts";
export type {
  BootBlobJson,
  BootImageJson,
  BootLayerJson,
} from "./_image_json.ts";

/** One answered request, for an access log. */
export interface AccessLogEntry {
  /** Request method. */
  method: string;
  /** Request path with its query string, as sent. */
  path: string;
  /** Response status. */
  status: number;
  /**
   * Body bytes sent. A stored blob that the runtime streams by itself (under
   * `Deno.serve`) counts whole when it was sent, and 0 when the client left
   * early: the runtime does not say how far it got.
   */
  bytes: number;
  /** Milliseconds from request to the end of the body. */
  durationMs: number;
  /** Client address, when the server passed it. */
  remoteAddr?: string | undefined;
  /** Why the request failed, or why its body broke off. */
  error?: string | undefined;
  /** Where a blob's body came from; absent for other answers. */
  source?: BootBodySource | undefined;
}

/** Options for {@linkcode createBootHandler}. */
export interface BootHandlerOptions {
  /**
   * Registry client; its credentials and token cache serve every request.
   * Default: a new {@linkcode RegistryClient}.
   */
  client?: RegistryClient | undefined;
  /**
   * Local store: images that exist only there are served from it, and blobs
   * it holds are read from it instead of the registry.
   */
  store?: Store | undefined;
  /**
   * Keep every blob served in {@linkcode BootHandlerOptions.store}
   * (digest-verified), so later downloads do not touch the registry.
   * Concurrent requests for a blob not yet cached share one registry
   * download. Needs {@linkcode BootHandlerOptions.store}. Default `false`.
   */
  cache?: boolean | undefined;
  /**
   * The images served: registries (`ghcr.io`, `localhost:5000`) or
   * repository prefixes in them (`ghcr.io/org`, `docker.io/library/ubuntu`),
   * matched on whole path segments against the normalised reference (`ubuntu`
   * is `docker.io/library/ubuntu`). A request for any other image is
   * answered 403, naming these, without contacting its registry. Default:
   * every image, which turns a handler reachable from other machines into a
   * proxy to any host they name; set it whenever that is the case.
   */
  allow?: readonly string[] | undefined;
  /** Platform of an index when a request names none. Default this machine's. */
  platform?: Platform | undefined;
  /** Milliseconds a tag's resolution is reused before asking again. Default 60 s. */
  resolveInterval?: number | undefined;
  /** Path prefix the handler is mounted under, e.g. `/boot`. Default none. */
  basePath?: string | undefined;
  /**
   * Start of the layer URLs in the image JSON, e.g. `https://boot.example`.
   * Default: the request's origin and {@linkcode BootHandlerOptions.basePath}.
   */
  baseUrl?: string | undefined;
  /** Called once per request when its response has ended. */
  onLog?: ((entry: AccessLogEntry) => void) | undefined;
  /** Stops the handler: new requests get 503, cache fills stop. */
  signal?: AbortSignal | undefined;
  /** Resumes of a cache fill after a drop or stall. Default 5. */
  retries?: number | undefined;
  /** Milliseconds without data before a cache fill attempt is abandoned. Default 30 s. */
  stallTimeout?: number | undefined;
}

/** Connection details a server passes along with a request. */
export interface BootRequestInfo {
  /** The client's address. */
  remoteAddr?: Deno.Addr | undefined;
  /**
   * Settles when the response has been sent (or rejects when the client
   * went away), as `Deno.serve` passes it: a response counts as in flight
   * until then (without it, until its body has ended), and a stored blob
   * known to match its digest is streamed by the runtime itself, with no
   * JavaScript per chunk.
   */
  completed?: Promise<void> | undefined;
}

/** A request handler for `Deno.serve`, with a way to stop its background work. */
export interface BootHandler {
  /**
   * Answers one request.
   *
   * @param request The request.
   * @param info The client's address, for the access log.
   * @returns The response.
   */
  (request: Request, info?: BootRequestInfo): Promise<Response>;
  /**
   * Responses begun and not yet sent (see
   * {@linkcode BootRequestInfo.completed}).
   */
  readonly inFlight: number;
  /**
   * Starts a graceful stop: requests from now on get 503, and the promise
   * settles once every response in flight has ended (the caller bounds the
   * wait, then calls {@linkcode BootHandler.close}).
   *
   * @returns A promise that settles when no response is in flight.
   */
  drain(): Promise<void>;
  /**
   * Stops cache fills that outlived their clients (their partial downloads
   * stay in the store to be resumed) and every registry request, and waits
   * for them to release the store. Requests after this get 503.
   */
  close(): Promise<void>;
}

function formatAddr(addr: Deno.Addr | undefined): string | undefined {
  if (!addr) return undefined;
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  return "path" in addr ? addr.path : undefined;
}

/**
 * Creates the request handler of a boot server. Mount it with
 * `Deno.serve(handler)` or call it from your own router.
 *
 * Routes (under {@linkcode BootHandlerOptions.basePath}):
 * - `GET|HEAD /v1/images/{reference}/{layer}` streams a layer (`kernel`,
 *   `initramfs`, `rootfs`, `disk`, `squashfs`, `uki`, `iso`) or the
 *   `config` blob, with `Content-Length`, `ETag` (the quoted digest) and
 *   single-range support. `{reference}` is URL-encoded
 *   (`ghcr.io%2Forg%2Fos%3A1.0`) or written with its slashes, in which case
 *   the last segment is the layer. `?platform=linux/arm64` picks the
 *   manifest of an index; without it an index with one entry needs none,
 *   otherwise {@linkcode BootHandlerOptions.platform} is used.
 * - `GET|HEAD /v1/images/{reference}` (URL-encoded, or with a trailing
 *   slash) answers JSON: digests, sizes and media types of the resolved
 *   image, its command line, variant and platform, and the URL of each layer
 *   on this server, pinned to the manifest's digest so every file of one
 *   boot comes from the same image even when the tag moves.
 * - `GET /healthz` answers `ok`.
 *
 * A full download streamed from the registry is checked against its digest
 * as it flows; the last bytes are held back until the check passed, so a
 * wrong blob reaches the client as a broken transfer, never as a complete
 * wrong file. A range streamed from the registry is fetched with a range
 * request and not checked (it cannot be without the whole blob). With
 * {@linkcode BootHandlerOptions.cache}, every response is served from the
 * store, which only ever receives verified blobs, and each uncached blob is
 * downloaded once however many clients ask for it at the same time.
 *
 * Failures answer with a one-line `text/plain` message: 400 for a malformed
 * reference, platform or layer name, 403 for an image outside
 * {@linkcode BootHandlerOptions.allow} (before any registry is contacted),
 * 404 for a missing image, platform or layer (naming what exists), 502 when
 * the registry cannot be reached or sends something wrong.
 *
 * @param options Registry client, store, cache, allow-list, defaults and log
 * callback.
 * @returns The handler.
 * @throws {TypeError} When `cache` is set without a `store`, or `allow` is
 * empty or has a malformed entry.
 *
 * @example Serve the boot files of one organisation
 * ```ts
 * import { createBootHandler } from "@ironcore/image/serve";
 * const handler = createBootHandler({ allow: ["ghcr.io/org"] });
 * // A boot server listens on a fixed port (e.g. 8080); port 0 picks a free one.
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
 * const base = `http://127.0.0.1:${server.addr.port}/v1/images`;
 * // A machine would fetch `${base}/ghcr.io%2Forg%2Fos%3A1.0/kernel`; an image
 * // outside the allow list is refused before any registry is asked.
 * const res = await fetch(`${base}/${encodeURIComponent("docker.io/library/ubuntu:24.04")}/kernel`);
 * console.log(res.status); // 403
 * await res.body?.cancel();
 * await handler.close();
 * await server.shutdown();
 * ```
 *
 * @example Answer a request without a server
 * ```ts
 * import { RegistryClient } from "@ironcore/image";
 * import { createBootHandler } from "@ironcore/image/serve";
 * const handler = createBootHandler({ client: new RegistryClient() });
 * const res = await handler(new Request("http://localhost/healthz"));
 * console.log(res.status, await res.text()); // 200 "ok\n"
 * await handler.close();
 * ```
 */
export function createBootHandler(options: BootHandlerOptions): BootHandler {
  const client = options.client ?? new RegistryClient();
  const store = options.store;
  if (options.cache === true && store === undefined) {
    throw new TypeError(
      "Cannot cache served blobs without a store: pass store (a Store to keep them in) with cache: true",
    );
  }
  const allowList = options.allow === undefined
    ? undefined
    : new AllowList(options.allow);
  const controller = new AbortController();
  const signal = controller.signal;
  const onOuterAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onOuterAbort();
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const basePath = (options.basePath ?? "").replace(/\/+$/, "");
  const resolver = new ImageResolver({
    client,
    ...(store ? { store } : {}),
    cache: options.cache === true,
    resolveInterval: options.resolveInterval ?? 60_000,
    platform: options.platform ?? hostPlatform(),
    signal,
  });
  const blobs = store
    ? new BlobCache(store, signal, {
      ...(options.retries !== undefined ? { retries: options.retries } : {}),
      ...(options.stallTimeout !== undefined
        ? { stallTimeout: options.stallTimeout }
        : {}),
    })
    : undefined;
  const sources: BlobSources = {
    client,
    blobs,
    caching: options.cache === true,
    signal,
  };

  /** Where the image URLs of the JSON start. */
  function baseOf(req: URL): string {
    return options.baseUrl?.replace(/\/+$/, "") ?? `${req.origin}${basePath}`;
  }

  async function answer(
    req: Request,
    url: URL,
    log: AccessLog,
    completed: Promise<void> | undefined,
  ): Promise<Reply> {
    const route = routeOf(req, url, { basePath, allowList });
    if (route.kind === "reply") return route.reply;
    signal.throwIfAborted();
    const image = await resolver.resolve(route.ref, route.platform);
    if (route.layer === undefined) {
      return imageJsonReply(
        image,
        `${baseOf(url)}${IMAGES_PREFIX}`,
        req.method,
      );
    }
    return await blobResponse(
      req,
      { ref: route.ref, image, layer: route.layer, completed },
      sources,
      log,
    );
  }

  /** Responses whose bodies have not ended, and who waits for none to be. */
  let inFlight = 0;
  let draining = false;
  let drained: (() => void) | undefined;
  const idle = new Promise<void>((resolve) => drained = resolve);

  async function handle(
    req: Request,
    info?: BootRequestInfo | undefined,
  ): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(req.url);
    const remoteAddr = formatAddr(info?.remoteAddr);
    let logged = false;
    let sent = false;
    inFlight++;
    const done = () => {
      if (sent) return;
      sent = true;
      if (--inFlight === 0 && draining) drained?.();
    };
    const completed = info?.completed;
    completed?.then(done, done);
    const log: AccessLog = (status, bytes, error, source) => {
      if (logged) return;
      logged = true;
      if (!completed) done();
      const entry: AccessLogEntry = {
        method: req.method,
        path: url.pathname + url.search,
        status,
        bytes,
        durationMs: Math.round(performance.now() - t0),
      };
      if (remoteAddr !== undefined) entry.remoteAddr = remoteAddr;
      if (source !== undefined) entry.source = source;
      if (error !== undefined) {
        entry.error = error instanceof ClientGoneError
          ? "client disconnected"
          : messageOf(error);
      }
      options.onLog?.(entry);
    };
    try {
      if (signal.aborted || draining) {
        throw new HttpError(503, "The server is shutting down");
      }
      const reply = await answer(req, url, log, completed);
      if (reply.bytes !== undefined) log(reply.response.status, reply.bytes);
      return reply.response;
    } catch (e) {
      const status = statusOf(e);
      const message = messageOf(e);
      log(
        status,
        req.method === "HEAD"
          ? 0
          : new TextEncoder().encode(message).length + 1,
        e,
      );
      return textResponse(status, message, req.method);
    }
  }

  const handler = handle as BootHandler & { inFlight: number };
  Object.defineProperty(handler, "inFlight", { get: () => inFlight });
  handler.drain = () => {
    draining = true;
    if (inFlight === 0) drained?.();
    return idle;
  };
  handler.close = async () => {
    controller.abort(
      new DOMException("The boot handler was closed", "AbortError"),
    );
    options.signal?.removeEventListener("abort", onOuterAbort);
    await blobs?.idle();
  };
  return handler;
}
