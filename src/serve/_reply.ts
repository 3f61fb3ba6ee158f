/**
 * Answers of the boot handler: a response with its body size for the
 * access log, one-line text answers, and the status an error answers with.
 *
 * @module
 */

import {
  DigestMismatchError,
  InvalidImageError,
  InvalidReferenceError,
  NotFoundError,
  RegistryError,
  SizeMismatchError,
  UnauthorizedError,
} from "../errors.ts";

/** A response, with its body size when that is known now. */
export interface Reply {
  /** The response. */
  response: Response;
  /** Bytes of a body that is already complete; absent for a stream that logs itself. */
  bytes?: number | undefined;
}

/** A failure that answers with a given status and its message. */
export class HttpError extends Error {
  /** The status to answer with. */
  readonly status: number;
  /**
   * Creates the error.
   *
   * @param status The status to answer with.
   * @param message The one line of the answer.
   */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/**
 * A reply whose body is complete.
 *
 * @param response The response.
 * @param body Its body, or `null` for none.
 * @returns The reply.
 */
export function reply(response: Response, body: string | null): Reply {
  return {
    response,
    bytes: body === null ? 0 : new TextEncoder().encode(body).length,
  };
}

/**
 * A one-line `text/plain` answer; without a body for `HEAD`.
 *
 * @param status The status.
 * @param text The line.
 * @param method The request's method.
 * @param headers More headers.
 * @returns The response.
 */
export function textResponse(
  status: number,
  text: string,
  method: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(method === "HEAD" ? null : `${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

/**
 * {@linkcode textResponse} as a {@linkcode Reply}.
 *
 * @param status The status.
 * @param text The line.
 * @param method The request's method.
 * @param headers More headers.
 * @returns The reply.
 */
export function textReply(
  status: number,
  text: string,
  method: string,
  headers: Record<string, string> = {},
): Reply {
  const response = textResponse(status, text, method, headers);
  return reply(response, method === "HEAD" ? null : `${text}\n`);
}

/**
 * The status a failure answers with: 400 for a malformed request, 403 for a
 * registry outside the server's net permission, 404 for something missing,
 * 502 when the registry cannot be reached or sends something wrong, 503
 * while shutting down, 500 for anything else.
 *
 * @param e The failure.
 * @returns The status.
 */
export function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (netTargetOf(e) !== undefined) return 403;
  if (e instanceof InvalidReferenceError) return 400;
  if (e instanceof NotFoundError) return 404;
  if (
    e instanceof RegistryError || e instanceof UnauthorizedError ||
    e instanceof DigestMismatchError || e instanceof SizeMismatchError ||
    e instanceof InvalidImageError
  ) {
    return 502;
  }
  if (e instanceof DOMException && e.name === "AbortError") return 503;
  return 500;
}

/**
 * The message of a failure.
 *
 * @param e The failure.
 * @returns Its message.
 */
export function messageOf(e: unknown): string {
  const target = netTargetOf(e);
  if (target !== undefined) {
    return `This server may not connect to ${target}: add that host to the --allow-net flag it runs with`;
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * The host a missing net permission was for, when that is what failed: the
 * runtime says so only in the text of its error.
 */
function netTargetOf(e: unknown): string | undefined {
  if (!(e instanceof Deno.errors.NotCapable)) return undefined;
  return /Requires net access to "?([^",]+)"?/.exec(e.message)?.[1];
}

/**
 * Where the body of a blob came from: `store`, a blob file of the store
 * known to match its digest, sent without hashing (the fast path);
 * `store-verify`, a blob file hashed while it was sent, the first time
 * after start-up or after the file changed (its last bytes wait for the
 * check); `fill`, the download that brings the blob into the store;
 * `registry`, straight from the registry.
 */
export type BootBodySource = "store" | "store-verify" | "fill" | "registry";

/**
 * Writes the access log entry of a request once: status, body bytes,
 * failure, and where a blob's body came from.
 */
export type AccessLog = (
  status: number,
  bytes: number,
  error?: unknown,
  source?: BootBodySource,
) => void;
