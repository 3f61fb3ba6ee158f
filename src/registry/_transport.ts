/**
 * What the registry client's request machinery offers the code that builds
 * on it (uploads): sending a request with auth, retries and redirects,
 * turning an unexpected answer into an error, and the API's base URL.
 *
 * @module
 */

import { digestMismatch } from "../_errors.ts";
import { RegistryError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import { readLimited } from "../net/_limited.ts";
import type { Repository } from "./client.ts";
import { clip } from "./_network.ts";

/** One request to a registry, as the client sends it. */
export interface RegistryRequest {
  /** HTTP method. */
  method: string;
  /** Headers besides User-Agent and Authorization. */
  headers?: Record<string, string> | undefined;
  /** Makes the body, afresh for each attempt. */
  body?: (() => BodyInit | null | Promise<BodyInit | null>) | undefined;
  /** Follow redirects by hand, dropping Authorization across hosts. */
  follow?: boolean | undefined;
  /** Scope actions: `pull` or `pull,push`. */
  actions: string;
  /** Extra scopes (e.g. pull on a mount source). */
  extraScopes?: string[] | undefined;
  /** Whether the request may be sent again after a failure. */
  idempotent: boolean;
  /** Aborts the request. */
  signal?: AbortSignal | undefined;
}

/** Sends requests to registries. */
export interface Transport {
  /** Sends a request with authentication, retries and redirects. */
  request(
    repo: Repository,
    url: string,
    init: RegistryRequest,
  ): Promise<Response>;
  /** Throws the error an unexpected answer means. */
  fail(repo: Repository, res: Response, what: string): Promise<never>;
  /** The base URL of a registry's API. */
  baseUrl(registry: string): string;
}

/**
 * A URL with query parameters set.
 *
 * @param url The URL.
 * @param params The parameters.
 * @returns The new URL.
 */
export function appendQuery(
  url: string,
  params: Record<string, string>,
): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * Throws when a registry announces that it stored content under another
 * digest than the one sent.
 *
 * @param repo The repository.
 * @param res The answer.
 * @param digest The digest of what was sent.
 * @param what `blob` or `manifest`, for the message.
 */
export function checkStored(
  repo: Repository,
  res: Response,
  digest: Digest,
  what: string,
): void {
  const announced = res.headers.get("docker-content-digest");
  if (announced && announced.startsWith("sha256:") && announced !== digest) {
    throw digestMismatch(
      digest,
      announced,
      `${what} stored by ${repo.registry}`,
    );
  }
}

/**
 * How long an answer asks to wait before the next request, from its
 * `Retry-After` header (seconds or an HTTP date).
 *
 * @param res The answer.
 * @returns Milliseconds, or `undefined` without a usable header.
 */
export function retryAfterOf(res: Response): number | undefined {
  const value = res.headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * An answer the request loop may ask again for (408, 429, 5xx), carrying the
 * response so the last one reaches the caller as it came.
 */
export class RetriableAnswer extends RegistryError {
  /** The answer. */
  readonly response: Response;
  /**
   * Wraps an answer.
   *
   * @param host The registry host.
   * @param response The answer.
   */
  constructor(host: string, response: Response) {
    super(`Registry ${host} answered HTTP ${response.status}`, {
      host,
      status: response.status,
      retryAfter: retryAfterOf(response),
    });
    this.response = response;
  }
}

/**
 * What a registry's error answer says: the codes and messages of its JSON
 * error body, or the start of its text.
 *
 * @param res The answer; its body is read (up to 64 KiB).
 * @returns One line of text and the error codes.
 */
export async function errorDetails(
  res: Response,
): Promise<{ text: string; codes: string[] }> {
  const raw = await readLimited(res, 64 * 1024).catch(() => "");
  try {
    const body = JSON.parse(raw);
    if (Array.isArray(body?.errors)) {
      const codes: string[] = [];
      const parts: string[] = [];
      for (const e of body.errors.slice(0, 5)) {
        const code = typeof e?.code === "string" ? e.code : "";
        const message = typeof e?.message === "string" ? e.message : "";
        if (code) codes.push(code);
        parts.push([code, message].filter(Boolean).join(": "));
      }
      return { text: parts.join("; "), codes };
    }
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return { text: clip(raw, 200), codes: [] };
}
