/**
 * Reading response bodies of bounded size: registry error bodies, token
 * answers, manifests and configs, none of which may grow memory without
 * limit.
 *
 * @module
 */

/**
 * Reads at most `limit` bytes of a response body as text; larger bodies are
 * cut off and cancelled.
 *
 * @param res The response.
 * @param limit Most bytes to read.
 * @returns The text.
 */
export async function readLimited(
  res: Response,
  limit: number,
): Promise<string> {
  return new TextDecoder().decode(await readLimitedBytes(res, limit));
}

/**
 * Reads a response body fully, refusing more than `limit` bytes.
 *
 * @param res The response.
 * @param limit Most bytes accepted.
 * @param onOverflow Called when the body is larger; its error is thrown.
 * @returns The bytes (cut at `limit` when no `onOverflow` is given).
 */
export async function readLimitedBytes(
  res: Response,
  limit: number,
  onOverflow?: () => Error,
): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        if (onOverflow) throw onOverflow();
        chunks.push(value.subarray(0, value.byteLength - (size - limit)));
        size = limit;
        break;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
