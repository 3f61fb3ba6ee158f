/**
 * How the registry code reaches a registry: the choice between HTTP and
 * HTTPS, and what a connection that failed becomes.
 *
 * @module
 */

import { NetworkError, type NetworkErrorKind, StallError } from "../errors.ts";
import { registryApiHost } from "../oci/reference.ts";

/**
 * The `plainHttp` option: `true` for every registry, `false` for none, a
 * function to decide per registry, or absent for the default (plain HTTP
 * for loopback hosts only). A function that returns `undefined` leaves that
 * registry to the default.
 */
export type PlainHttpOption =
  | boolean
  | ((registry: string) => boolean | undefined)
  | undefined;

const MAX_REASON = 120;

/**
 * Tells whether a registry host (with or without port) is this machine:
 * `localhost`, `127.0.0.0/8` or `::1`, as containerd and oras decide it.
 */
export function isLoopbackRegistry(registry: string): boolean {
  let hostname: string;
  try {
    // The URL parser strips the port and normalises IPv6 (`[0:0::1]` is
    // `[::1]`) and IPv4 (`127.1` is `127.0.0.1`).
    hostname = new URL(`http://${registry}`).hostname;
  } catch {
    // A bare IPv6 address has no brackets to tell it from a port.
    if (!registry.includes(":") || !/^[0-9a-f:]+$/i.test(registry)) {
      return false;
    }
    return isLoopbackRegistry(`[${registry}]`);
  }
  hostname = hostname.toLowerCase().replace(/\.$/, "");
  return hostname === "localhost" || hostname === "[::1]" ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Whether to talk plain HTTP to a registry under the given option.
 *
 * @param registry The registry host, as in a reference.
 * @param option The `plainHttp` option.
 * @returns `true` for `http://`.
 */
export function usesPlainHttp(
  registry: string,
  option: PlainHttpOption,
): boolean {
  const answer = typeof option === "function" ? option(registry) : option;
  return answer ?? isLoopbackRegistry(registry);
}

/**
 * The base URL of a registry's API, e.g. `https://ghcr.io/v2/`.
 *
 * @param registry The registry host, as in a reference.
 * @param plain Whether to use `http://`.
 * @returns The URL.
 */
export function apiBaseUrl(registry: string, plain: boolean): string {
  return `${plain ? "http" : "https"}://${registryApiHost(registry)}/v2/`;
}

/**
 * The message of an error and of its causes: Deno's fetch throws a bare
 * "fetch failed" and keeps what went wrong (refused, DNS, TLS) in `cause`.
 */
export function errorText(e: unknown): string {
  const parts: string[] = [];
  for (let c = e, i = 0; c !== undefined && c !== null && i < 5; i++) {
    parts.push(c instanceof Error ? c.message : String(c));
    c = c instanceof Error ? c.cause : undefined;
  }
  return parts.join(": ");
}

/**
 * Shortens text to at most `max` characters on one line, cutting between
 * words and marking the cut with an ellipsis.
 */
export function clip(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  if (line.length <= max) return line;
  const cut = line.slice(0, max);
  const space = cut.lastIndexOf(" ");
  return `${
    (space > max / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:]+$/, "")
  }…`;
}

/**
 * What went wrong, without the wrappers around it: fetch's "fetch failed",
 * "error sending request for url (…)" and "client error (Connect)" say
 * nothing the host name does not.
 */
function reason(e: unknown): string {
  const text = errorText(e);
  const inner = /client error \([^)]*\):\s*(.+)$/.exec(text)?.[1] ??
    text.replace(/^fetch failed:\s*/, "").replace(
      /^error sending request[^(]*\([^)]*\):\s*/,
      "",
    );
  return clip(inner, MAX_REASON);
}

/**
 * Turns a failed `fetch`, or a response body that broke off, into a
 * {@linkcode NetworkError} with one line of message: refused, unknown host,
 * TLS failure (with the fix: `plainHttp` or `DENO_CERT`), or else the cause.
 * The runtime describes network failures only in text; this is the one
 * place that reads it. Everything after classifies by the error's `kind`.
 *
 * @param host The registry host.
 * @param e What fetch, or the read of a body, threw.
 * @param plain Whether the request was plain HTTP; absent for a body that
 * broke off, when the connection had been made.
 * @returns The error to throw.
 */
export function fetchFailure(
  host: string,
  e: unknown,
  plain?: boolean,
): NetworkError {
  const msg = errorText(e);
  const detail = reason(e);
  const fail = (kind: NetworkErrorKind, message: string) =>
    new NetworkError(message, { host, kind, detail, cause: e });
  if (plain === undefined) {
    return fail("reset", `Connection to registry ${host} broke off: ${detail}`);
  }
  // Fetch never connects to ports other protocols use (6000, 10080, …):
  // as lasting as a refused connection, and the fix is another port.
  const blocked = /requests to port (\d+) are blocked/i.exec(msg);
  if (blocked) {
    return fail(
      "refused",
      `Cannot connect to registry ${host}: port ${
        blocked[1]
      } is blocked by fetch (it belongs to another protocol), run the registry on another port`,
    );
  }
  if (/connection refused/i.test(msg)) {
    return fail(
      "refused",
      `Cannot connect to registry ${host}: connection refused, check that it is running and the address is right`,
    );
  }
  if (/dns error|failed to lookup|name or service not known/i.test(msg)) {
    return fail(
      "dns",
      `Cannot connect to registry ${host}: the host name does not resolve`,
    );
  }
  if (
    !plain &&
    /(tls|ssl|certificate|InvalidContentType|corrupt message)/i.test(msg)
  ) {
    const why = /InvalidContentType|corrupt message/i.test(msg)
      ? "it does not answer TLS"
      : detail;
    return fail(
      "tls",
      `Cannot connect to registry ${host} over HTTPS (${why}): set plainHttp for a registry without TLS, or DENO_CERT for a private CA`,
    );
  }
  if (plain && /invalid HTTP version/i.test(msg)) {
    return fail(
      "tls",
      `Cannot connect to registry ${host} over plain HTTP (it does not answer HTTP, it may expect TLS): set plainHttp: false to use HTTPS`,
    );
  }
  const kind: NetworkErrorKind =
    /reset|broken pipe|unexpected eof|connection closed/i.test(msg)
      ? "reset"
      : /timed? ?out/i.test(msg)
      ? "timeout"
      : "other";
  return fail(kind, `Cannot connect to registry ${host}: ${detail}`);
}

/**
 * Tells whether an HTTP error answer is a TLS server's reply to a plain
 * HTTP request (Go's servers answer 400 with this text).
 *
 * @param status The HTTP status.
 * @param body The start of the answer's body.
 */
export function isPlainToTlsAnswer(status: number, body: string): boolean {
  return status === 400 && /HTTP request to an HTTPS server/i.test(body);
}

/**
 * The message for a registry that wants HTTPS but got plain HTTP.
 *
 * @param host The registry host.
 */
export function plainToTlsMessage(host: string): string {
  return `Registry ${host} expects HTTPS, but the request was plain HTTP: set plainHttp: false to use HTTPS`;
}

/**
 * The last timeout of a request, worded for the user: how many attempts
 * were made, and what to do. Other failures are returned as they are.
 *
 * @param e What the last attempt threw.
 * @param attempts Attempts made.
 * @returns The error to throw.
 */
export function withAttempts(e: unknown, attempts: number): unknown {
  if (!(e instanceof NetworkError) || e.kind !== "timeout") return e;
  const message = `${e.message}${
    attempts > 1 ? ` (${attempts} attempts)` : ""
  }: check that the registry is up and reachable, or set timeouts to wait longer`;
  if (e instanceof StallError) {
    return new StallError(message, {
      host: e.host,
      timeout: e.timeout,
      cause: e,
    });
  }
  return new NetworkError(message, {
    host: e.host,
    kind: e.kind,
    detail: e.detail,
    cause: e,
  });
}

/**
 * Tells whether an answer to `GET /v2/` comes from an OCI registry. A
 * registry answers 200 or 401; with 200 it sends the
 * `Docker-Distribution-API-Version` header or a JSON body, with 401 that
 * header, a JSON body or an authentication challenge. A web server that
 * answers every path with a page does neither.
 *
 * @param res The answer to `GET /v2/` (its headers are read).
 * @returns Why it is not a registry's answer, or `undefined` when it is.
 */
export function registryEvidence(res: Response): string | undefined {
  const type = res.headers.get("content-type")?.split(";")[0]?.trim() ?? "";
  const api = res.headers.has("docker-distribution-api-version");
  const json = /[/+]json$/i.test(type);
  const said = `GET /v2/ answered HTTP ${res.status}${
    type ? ` with ${type}` : ""
  }`;
  if (res.status === 200) {
    return api || json
      ? undefined
      : `${said} and no Docker-Distribution-API-Version header`;
  }
  if (res.status === 401) {
    return api || json || res.headers.has("www-authenticate")
      ? undefined
      : `${said} and no authentication challenge`;
  }
  return said;
}

/**
 * The message for a host that is not an OCI registry.
 *
 * @param host The host.
 * @param why What its API root answered.
 * @returns One line.
 */
export function notRegistryMessage(host: string, why: string): string {
  return `${host} is not an OCI registry (${why}): check the registry address`;
}
