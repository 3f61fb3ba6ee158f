/**
 * A tiny programmable registry for fault tests: `Deno.serve` on 127.0.0.1
 * with an ephemeral port, answering every request with whatever the test's
 * handler returns, and recording every request it received.
 *
 * @module
 */

/** One request the fake registry received, with its body read. */
export interface FakeRequest {
  /** HTTP method. */
  method: string;
  /** The full URL. */
  url: URL;
  /** The path, e.g. `/v2/os/demo/manifests/1.0`. */
  path: string;
  /** Request headers. */
  headers: Headers;
  /** The request body (empty when there was none). */
  body: Uint8Array;
}

/** Answers one request; `n` counts earlier requests with the same method and path. */
export type FakeHandler = (
  req: FakeRequest,
  n: number,
) => Response | Promise<Response>;

/** A running fake registry; stop it with `stop()` or `await using`. */
export interface FakeRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, for image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`, without a trailing slash. */
  readonly url: string;
  /** Every request received so far, in order. */
  readonly requests: FakeRequest[];
  /** Replaces the handler (and keeps the request log). */
  handle(handler: FakeHandler): void;
  /** Requests whose method and path match. */
  count(method: string, path: string | RegExp): number;
  /** Stops serving. */
  stop(): Promise<void>;
}

/**
 * Starts a fake registry. Without a handler it answers `GET /v2/` with 200
 * and everything else with a registry-style 404.
 *
 * @param handler Answers requests; `GET /v2/` is answered with 200 when the
 * handler returns `undefined` for it.
 * @returns The running registry.
 *
 * @example Serve one manifest
 * ```ts ignore
 * await using fake = startFakeRegistry((req) =>
 *   req.path.endsWith("/manifests/1.0") ? manifestResponse(bytes) : notFound()
 * );
 * ```
 */
export function startFakeRegistry(
  handler: FakeHandler = () => notFound(),
): FakeRegistry {
  const requests: FakeRequest[] = [];
  const seen = new Map<string, number>();
  let current = handler;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      const body = new Uint8Array(await req.arrayBuffer());
      const record: FakeRequest = {
        method: req.method,
        url,
        path: url.pathname,
        headers: req.headers,
        body,
      };
      requests.push(record);
      const key = `${req.method} ${url.pathname}`;
      const n = seen.get(key) ?? 0;
      seen.set(key, n + 1);
      if (req.method === "GET" && url.pathname === "/v2/") {
        return Response.json({});
      }
      return await current(record, n);
    },
  );
  const host = `127.0.0.1:${server.addr.port}`;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= server.shutdown();
    return stopped;
  };
  return {
    host,
    url: `http://${host}`,
    requests,
    handle(h) {
      current = h;
    },
    count(method, path) {
      return requests.filter((r) =>
        r.method === method &&
        (typeof path === "string" ? r.path === path : path.test(r.path))
      ).length;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * A registry JSON error response.
 *
 * @param status HTTP status.
 * @param code Error code, e.g. `MANIFEST_UNKNOWN`.
 * @param message Human-readable message.
 * @param headers Extra headers.
 * @returns The response.
 */
export function registryError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ errors: [{ code, message }] }, { status, headers });
}

/**
 * A 404 with a `NAME_UNKNOWN` error body.
 *
 * @returns The response.
 */
export function notFound(): Response {
  return registryError(404, "NAME_UNKNOWN", "repository name not known");
}

/**
 * A manifest response with the right headers. `digest` overrides the
 * announced `Docker-Content-Digest` (to announce a wrong one); `null` leaves
 * it out.
 *
 * @param bytes The manifest bytes.
 * @param options Media type, announced digest, other headers, HEAD.
 * @returns The response.
 */
export async function manifestResponse(
  bytes: Uint8Array<ArrayBuffer>,
  options: {
    mediaType?: string;
    digest?: string | null;
    headers?: Record<string, string>;
    head?: boolean;
  } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "content-type": options.mediaType ??
      "application/vnd.oci.image.manifest.v1+json",
    "content-length": String(bytes.byteLength),
    ...options.headers,
  };
  const digest = options.digest === undefined
    ? await sha256(bytes)
    : options.digest;
  if (digest !== null) headers["docker-content-digest"] = digest;
  return new Response(options.head ? null : bytes, { headers });
}

/**
 * The `sha256:…` digest of bytes.
 *
 * @param bytes The content.
 * @returns The digest.
 */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${
    Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}
