/**
 * Pieces shared by every resumable download (pull, copy into the store, the
 * boot server's cache): checking that a range response starts where it was
 * asked to.
 *
 * @module
 */

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
