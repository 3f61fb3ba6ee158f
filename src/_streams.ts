/**
 * What the stream code shares.
 *
 * @module
 */

/**
 * A reader that fills the caller's buffers, when the stream is a byte
 * stream; otherwise nothing, and the stream stays unlocked for a default
 * reader.
 *
 * @param stream The stream.
 * @returns Its BYOB reader, or `undefined`.
 *
 * @example Read into your own buffer where the stream allows it
 * ```ts
 * import { byobReaderOf } from "./_streams.ts";
 * const stream = new Blob(["hello"]).stream();
 * const reader = byobReaderOf(stream) ?? stream.getReader();
 * console.log(reader instanceof ReadableStreamBYOBReader);
 * ```
 */
export function byobReaderOf(
  stream: ReadableStream<Uint8Array>,
): ReadableStreamBYOBReader | undefined {
  try {
    return stream.getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}
