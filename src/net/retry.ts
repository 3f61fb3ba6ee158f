/**
 * The one retry engine: what is worth another attempt, how long to wait
 * before it (capped exponential backoff with jitter, or the server's
 * `Retry-After`), and waits that end as soon as the caller aborts.
 *
 * Every retrying part of the library (the registry client's requests,
 * chunked uploads, blob downloads into the store, the boot server's cache
 * fills) runs its attempts through {@linkcode retry} and asks
 * {@linkcode isRetriable}, so one failure is judged the same everywhere.
 *
 * @module
 */

import { NetworkError, RegistryError } from "../errors.ts";

/** Options of {@linkcode retry}, shaped like `@std/async`'s `RetryOptions`. */
export interface RetryOptions {
  /** Attempts in all, the first one included. Default 5. */
  maxAttempts?: number | undefined;
  /** Milliseconds before the first retry. Default 250. */
  minTimeout?: number | undefined;
  /** Longest wait in milliseconds, also for a `Retry-After` hint. Default 10 s. */
  maxTimeout?: number | undefined;
  /** Growth of the wait from one retry to the next. Default 2. */
  multiplier?: number | undefined;
  /**
   * Share of each wait drawn at random, from 0 (none) to 1: a wait is
   * between `(1 - jitter)` times and the full exponential value, so that
   * many clients do not retry in lockstep. Default 0.5.
   */
  jitter?: number | undefined;
  /**
   * Whether a failure is worth another attempt, given the retries so far.
   * Default {@linkcode isRetriable}.
   */
  isRetriable?: ((error: unknown, retries: number) => boolean) | undefined;
  /** Ends the waits (and stops retrying) with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Called before each wait with the failure, the retries so far and the wait. */
  onRetry?:
    | ((error: unknown, retries: number, delay: number) => void)
    | undefined;
}

/**
 * Failures of the network that do not heal within a second when they come
 * first: a refused connection (a wrong port), a name that does not resolve,
 * a TLS handshake that fails. From a host that has answered before, they
 * are a restart or a blip, and heal.
 */
const LASTING = new Set<string>(["refused", "dns", "tls"]);

/** Hosts that have answered an HTTP request in this process. */
const answered = new Set<string>();

/**
 * Records that a host answered a request (with any status): from then on a
 * refused connection, an unknown name or a TLS failure of that host is
 * taken for a restart and retried like any network failure.
 *
 * @param host The host, as in the errors about it.
 *
 * @example Note a registry that answered
 * ```ts
 * import { noteAnswered } from "./retry.ts";
 * noteAnswered("registry.example");
 * ```
 */
export function noteAnswered(host: string): void {
  answered.add(host);
}

/**
 * Tells whether a failure is worth another attempt: a {@linkcode NetworkError}
 * (a stall or a timeout included), or a registry answer of 408, 429 or 5xx.
 * A refused connection, an unknown host or a TLS failure gets one retry, no
 * more, from a host that has not answered in this process yet (a wrong
 * address fails fast); from one that has (see {@linkcode noteAnswered}),
 * it is retried like any network failure (a registry restarting).
 * Missing or wrong content, refused credentials, a missing permission and
 * an abort are never retried. Failures are told apart by class, kind and
 * status, never by message.
 *
 * @param error What an attempt threw.
 * @param retries How many retries came before. Default 0.
 * @returns `true` when another attempt may succeed.
 *
 * @example Tell a busy registry from a missing image
 * ```ts
 * import { isRetriable } from "./retry.ts";
 * import { NotFoundError, RegistryError } from "../errors.ts";
 * isRetriable(new RegistryError("busy", { host: "r.example", status: 503 })); // true
 * isRetriable(new NotFoundError("no such image")); // false
 * ```
 */
export function isRetriable(error: unknown, retries = 0): boolean {
  if (error instanceof NetworkError) {
    return !LASTING.has(error.kind) || retries < 1 || answered.has(error.host);
  }
  if (error instanceof RegistryError) {
    const s = error.status;
    return s === 408 || s === 429 || (s >= 500 && s <= 599);
  }
  return false;
}

/**
 * The wait before retry number `retries + 1`: the error's own `retryAfter`
 * (milliseconds, from a server's `Retry-After`) when it has one, else
 * `minTimeout · multiplier^retries` with jitter; capped at `maxTimeout`.
 */
function delayOf(
  error: unknown,
  retries: number,
  options: RetryOptions,
): number {
  const max = options.maxTimeout ?? 10_000;
  const hint = (error as { retryAfter?: unknown } | null)?.retryAfter;
  if (typeof hint === "number" && Number.isFinite(hint) && hint >= 0) {
    return Math.min(hint, max);
  }
  const exp = Math.min(
    max,
    (options.minTimeout ?? 250) * (options.multiplier ?? 2) ** retries,
  );
  return exp * (1 - (options.jitter ?? 0.5) * Math.random());
}

/**
 * Calls `fn` until it succeeds, a failure is not worth another attempt, or
 * `maxAttempts` attempts have failed; then throws the last failure as it
 * is. An abort (of `signal`) is never retried: it ends a wait at once and
 * the call rejects with the signal's reason.
 *
 * @param fn One attempt; gets the number of retries before it (0 first).
 * @param options Attempts, backoff, what to retry, abort signal.
 * @returns What the first successful attempt returned.
 *
 * @example Retry a flaky request
 * ```ts
 * import { retry } from "./retry.ts";
 * import { NetworkError } from "../errors.ts";
 * let calls = 0;
 * const answer = await retry(() => {
 *   if (++calls < 3) {
 *     throw new NetworkError("reset", { host: "r.example", kind: "reset" });
 *   }
 *   return Promise.resolve("ok");
 * }, { minTimeout: 1 });
 * console.log(answer, calls); // "ok" 3
 * ```
 */
export async function retry<T>(
  fn: (retries: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 5;
  const retriable = options.isRetriable ?? isRetriable;
  const signal = options.signal;
  for (let retries = 0;; retries++) {
    signal?.throwIfAborted();
    try {
      return await fn(retries);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (retries + 1 >= maxAttempts || !retriable(error, retries)) {
        throw error;
      }
      const delay = delayOf(error, retries, options);
      options.onRetry?.(error, retries, delay);
      await sleep(delay, signal);
    }
  }
}

/**
 * Waits, unless the signal aborts first.
 *
 * @param ms Milliseconds to wait.
 * @param signal Ends the wait early with the signal's reason.
 * @returns A promise that settles after the wait.
 *
 * @example Wait a millisecond
 * ```ts
 * import { sleep } from "./retry.ts";
 * await sleep(1);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
