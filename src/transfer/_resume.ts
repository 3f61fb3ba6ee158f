/**
 * The one resume loop: fills a partial blob in the store from a source that
 * can start at any offset (an HTTP range request), abandoning an attempt
 * that stalls, resuming one that broke off from the bytes already on disk
 * with backoff, and starting over when the server ignores the range. Pull
 * (and copy into a store) and the boot server's cache both fill blobs with
 * it; they add only their progress hooks and the wording of a failure.
 *
 * @module
 */

import { stalled } from "../_errors.ts";
import {
  DigestMismatchError,
  NetworkError,
  SizeMismatchError,
  StallError,
} from "../errors.ts";
import { isRetriable, retry } from "../net/retry.ts";
import { fetchFailure } from "../registry/_network.ts";
import type { PartialBlob } from "../store/_partial_blob.ts";

/** Where the bytes of a blob come from. */
export interface ResumeSource {
  /** The registry host, for errors. */
  host: string;
  /**
   * Opens the blob's bytes from an offset: a range request past 0. An
   * answer without the range (200) or with another one is taken care of.
   * The signal aborts the request and its body, as it does a `fetch`.
   * Failures to answer are the source's to retry; the loop does not again.
   */
  open: (offset: number, signal: AbortSignal) => Promise<Response>;
}

/** Why a fill gave up after its retries, for the caller's wording. */
export interface ResumeFailure {
  /** Retries made. */
  retries: number;
  /** The stall timeout in milliseconds when the last attempt stalled. */
  stalled?: number | undefined;
  /** The last failure. */
  cause: NetworkError;
}

/** Options for {@linkcode fillPartial}. */
export interface ResumeOptions {
  /** Resumes after a transfer that broke off or stalled. Default 5. */
  retries?: number | undefined;
  /** Milliseconds without data before an attempt is abandoned. Default 30 s. */
  stallTimeout?: number | undefined;
  /** First backoff delay in milliseconds; doubles up to 10 s. Default 250. */
  retryDelay?: number | undefined;
  /** Stops the fill; the bytes on disk stay for a later one. */
  signal?: AbortSignal | undefined;
  /** Bytes are about to flow (or none were missing). */
  onStart?: (() => void) | undefined;
  /** The blob's bytes on disk so far, after each chunk. */
  onBytes?: ((offset: number) => void) | undefined;
  /** The partial blob was cut back to `offset`: later bytes are written anew. */
  onReset?: ((offset: number) => void) | undefined;
  /** The message of the error the fill ends with when its retries ran out. */
  failure: (failure: ResumeFailure) => string;
}

/**
 * Where a `206 Partial Content` response starts, from its `Content-Range`.
 *
 * @param res The response.
 * @returns The first byte's offset, or `undefined` without a byte range.
 *
 * @example Where a partial answer starts
 * ```ts
 * import { contentRangeStart } from "./_resume.ts";
 * const res = new Response(null, { headers: { "content-range": "bytes 100-199/200" } });
 * console.log(contentRangeStart(res)); // 100
 * ```
 */
export function contentRangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * Calls `onStall` once `touch()` has not been called for `ms`. One timer at
 * a time, checked when it fires, so touching on every chunk starts none;
 * and a web timer (`AbortSignal.timeout`), which starts quicker than the
 * global `setTimeout`, whose first use loads the runtime's Node timers.
 */
class StallWatch {
  readonly #ms: number;
  readonly #onStall: () => void;
  #last = 0;
  #timer: AbortSignal | undefined;
  #stopped = false;

  constructor(ms: number, onStall: () => void) {
    this.#ms = ms;
    this.#onStall = onStall;
  }

  /** Data arrived (or is about to be asked for): the wait starts again. */
  touch(): void {
    this.#last = performance.now();
    if (this.#timer === undefined) this.#wait(this.#ms);
  }

  /** No more calls to `onStall`. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.removeEventListener("abort", this.#check);
  }

  #wait(ms: number): void {
    this.#timer = AbortSignal.timeout(Math.max(1, Math.ceil(ms)));
    this.#timer.addEventListener("abort", this.#check, { once: true });
  }

  #check = (): void => {
    this.#timer = undefined;
    if (this.#stopped) return;
    const idle = performance.now() - this.#last;
    if (idle >= this.#ms) this.#onStall();
    else this.#wait(this.#ms - idle);
  };
}

/**
 * Fills a partial blob to its size and commits it: verified, in place in
 * the store. Wrong content (too long, too short without progress, another
 * digest) deletes the partial bytes and throws at once, except that a blob
 * resumed from bytes of an earlier run (which may have been damaged on
 * disk) is fetched once more from its start first; a transfer that
 * broke off or stalled is resumed; when the retries run out the error is a
 * {@linkcode NetworkError} (a {@linkcode StallError} after a stall) with the
 * caller's message and the last failure as its cause, and the bytes stay
 * for the next run.
 *
 * @param partial The partial blob; the caller closes it.
 * @param source Where the bytes come from.
 * @param options Retries, stall timeout, abort signal, hooks and wording.
 */
export async function fillPartial(
  partial: PartialBlob,
  source: ResumeSource,
  options: ResumeOptions,
): Promise<void> {
  const size = partial.size;
  const host = source.host;
  const stallMs = options.stallTimeout ?? 30_000;
  const outer = options.signal;
  let highest = partial.offset;
  /**
   * The fill goes on from bytes that were on disk before it started (an
   * earlier run): they may be damaged, unlike what this fill wrote.
   */
  let inherited = partial.offset > 0;
  /** The last attempt failed before the source answered. */
  let unanswered = false;
  let retries = 0;
  // The source retried its own requests; a stall is this loop's to retry.
  const retriable = (e: unknown, n: number) =>
    (!unanswered || e instanceof StallError) && isRetriable(e, n);

  const transfer = async (signal: AbortSignal, arm: () => void) => {
    const start = partial.offset;
    if (start >= size) {
      options.onStart?.();
      return;
    }
    arm();
    unanswered = true;
    let res = await source.open(start, signal);
    if (start > 0 && (res.status !== 206 || contentRangeStart(res) !== start)) {
      // The server ignored the range (or sent another one): start over.
      await partial.restart();
      inherited = false;
      highest = 0;
      options.onReset?.(0);
      if (res.status !== 200) {
        await res.body?.cancel();
        res = await source.open(0, signal);
      }
    }
    unanswered = false;
    options.onStart?.();
    await partial.append(res.body ?? new ReadableStream(), {
      onBytes: (n) => {
        arm();
        if (n > highest) highest = n;
        options.onBytes?.(n);
      },
      signal,
    });
    // A body that ended cleanly but short: the connection was closed early
    // if it brought bytes, else the blob is shorter than its descriptor
    // (the commit says so).
    if (partial.offset < size && partial.offset > start) {
      throw new NetworkError(
        `Registry ${host} ended the body ${
          size - partial.offset
        } bytes short of the blob`,
        { host, kind: "reset" },
      );
    }
  };

  const attempt = async (n: number) => {
    retries = n;
    // A failed append may have dropped bytes it had not written yet.
    if (partial.offset < highest) options.onReset?.(partial.offset);
    highest = partial.offset;
    const controller = new AbortController();
    const onAbort = () => controller.abort(outer!.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    const watch = new StallWatch(
      stallMs,
      () => controller.abort(stalled(stallMs, host)),
    );
    const arm = () => watch.touch();
    try {
      await transfer(controller.signal, arm);
    } catch (e) {
      // An abort surfaces as whatever the reader threw: report its reason.
      if (controller.signal.aborted) throw controller.signal.reason;
      // Deno's fetch throws a TypeError when a body breaks off.
      if (e instanceof TypeError) throw fetchFailure(host, e);
      throw e;
    } finally {
      watch.stop();
      outer?.removeEventListener("abort", onAbort);
    }
    await partial.commit();
  };

  for (;;) {
    try {
      await retry(attempt, {
        maxAttempts: (options.retries ?? 5) + 1,
        minTimeout: options.retryDelay ?? 250,
        isRetriable: retriable,
        signal: outer,
      });
      return;
    } catch (e) {
      if (e instanceof DigestMismatchError && inherited) {
        // The bytes of an earlier run were damaged on disk: the commit
        // emptied the partial blob; fetch the whole blob, once.
        inherited = false;
        highest = 0;
        options.onReset?.(0);
        continue;
      }
      await failed(e);
    }
  }

  async function failed(e: unknown): Promise<never> {
    if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) {
      await partial.discard();
      throw e;
    }
    if (!(e instanceof NetworkError) || !retriable(e, retries)) throw e;
    const failure: ResumeFailure = { retries, cause: e };
    if (e instanceof StallError) {
      failure.stalled = e.timeout;
      throw new StallError(options.failure(failure), {
        host,
        timeout: e.timeout,
        cause: e,
      });
    }
    throw new NetworkError(options.failure(failure), {
      host,
      kind: e.kind,
      detail: e.detail,
      cause: e,
    });
  }
}
