/**
 * Waiting between retries: capped exponential backoff with jitter, and an
 * abortable sleep.
 *
 * @module
 */

/**
 * The delay before retry number `attempt` (0-based): `base · 2^attempt`,
 * capped, then drawn at random from its upper half so that many clients do
 * not retry in lockstep.
 *
 * @param base First delay in milliseconds.
 * @param attempt How many retries came before.
 * @param cap Longest delay in milliseconds. Default 10 s.
 * @returns The delay in milliseconds.
 *
 * @example Wait before the fourth attempt
 * ```ts
 * import { backoffDelay } from "./retry.ts";
 * const ms = backoffDelay(250, 3); // between 1000 and 2000
 * ```
 */
export function backoffDelay(
  base: number,
  attempt: number,
  cap = 10_000,
): number {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return ceiling / 2 + Math.random() * ceiling / 2;
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
