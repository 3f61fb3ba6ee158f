/**
 * Pieces shared by every resumable download (pull, copy into the store, the
 * boot server's cache): telling a stall from a slow link, and checking that a
 * range response starts where it was asked to.
 *
 * @module
 */

/**
 * The reason an attempt is aborted when no byte arrived for too long.
 *
 * @example
 * ```ts
 * import { StallError } from "./resume.ts";
 * const controller = new AbortController();
 * controller.abort(new StallError(30_000));
 * console.log(controller.signal.reason instanceof StallError); // true
 * ```
 */
export class StallError extends Error {
  /**
   * Creates the error.
   *
   * @param ms How long no data arrived, in milliseconds.
   */
  constructor(ms: number) {
    super(`No data for ${ms} ms`);
    this.name = "StallError";
  }
}

/**
 * Where a `206 Partial Content` response starts, from its `Content-Range`.
 *
 * @param res The response.
 * @returns The first byte's offset, or `undefined` without a byte range.
 *
 * @example
 * ```ts
 * import { contentRangeStart } from "./resume.ts";
 * const res = new Response(null, { headers: { "content-range": "bytes 100-199/200" } });
 * console.log(contentRangeStart(res)); // 100
 * ```
 */
export function contentRangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : undefined;
}
