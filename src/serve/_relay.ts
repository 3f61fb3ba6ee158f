/**
 * Passes a byte stream on to an HTTP response: counts what was sent, cuts a
 * window out of it, and, when asked, checks size and digest while holding
 * back the last block until the check passed, so a client never receives a
 * complete but wrong body.
 */

import type { Digest } from "../oci/digest.ts";
import { DigestVerifier } from "../oci/digest_verifier.ts";

/** How a relay ended: bytes passed on, and the failure if any. */
export type RelayEnd = (bytes: number, error?: unknown) => void;

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Check size and digest of the whole stream before its last block goes out. */
  verify?: { digest: Digest; size: number; what: string } | undefined;
  /** Bytes to drop from the start (a server that ignored a range). */
  skip?: number | undefined;
  /** Bytes to pass on at most; the source is cancelled after them. */
  take?: number | undefined;
  /** Called once when the stream ends, fails or is cancelled. */
  onEnd?: RelayEnd | undefined;
}

/** The error a relay ends with when the client goes away. */
export class ClientGoneError extends Error {
  constructor() {
    super("Client disconnected");
    this.name = "ClientGoneError";
  }
}

/**
 * Blocks handed to the response: one hop through JavaScript per mebibyte
 * instead of one per network packet roughly halves the cost of a relay.
 */
const BLOCK_SIZE = 1024 * 1024;

/** Reads a stream in blocks of a chosen size, straight into them when it can. */
class BlockReader {
  readonly #byob: ReadableStreamBYOBReader | undefined;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #rest: Uint8Array | undefined;
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      byob = undefined;
    }
    this.#byob = byob;
    this.#reader = byob ? undefined : stream.getReader();
  }

  /** Up to `max` bytes (fewer only at the end), or `null` at the end. */
  async read(max: number): Promise<Uint8Array | null> {
    if (this.#byob) {
      let buf = new Uint8Array(max);
      let fill = 0;
      while (fill < max && !this.#done) {
        const { done, value } = await this.#byob.read(
          new Uint8Array(buf.buffer, fill, max - fill),
        );
        if (value) {
          buf = new Uint8Array(value.buffer);
          fill += value.byteLength;
        }
        if (done) this.#done = true;
      }
      return fill === 0 ? null : buf.subarray(0, fill);
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    if (this.#rest) {
      parts.push(this.#rest);
      size = this.#rest.byteLength;
      this.#rest = undefined;
    }
    while (size < max && !this.#done) {
      const { done, value } = await this.#reader!.read();
      if (done) this.#done = true;
      else if (value.byteLength > 0) {
        parts.push(value);
        size += value.byteLength;
      }
    }
    if (size === 0) return null;
    if (parts.length === 1 && size <= max) return parts[0]!;
    const out = new Uint8Array(Math.min(size, max));
    let off = 0;
    for (const part of parts) {
      const n = Math.min(part.byteLength, out.byteLength - off);
      out.set(part.subarray(0, n), off);
      off += n;
      if (n < part.byteLength) this.#rest = part.subarray(n);
    }
    return out;
  }

  async cancel(reason?: unknown): Promise<void> {
    await (this.#byob ?? this.#reader)!.cancel(reason).catch(() => {});
  }
}

/**
 * The window `[skip, skip + take)` of a stream, in blocks of
 * {@linkcode BLOCK_SIZE}; the source is cancelled after the window.
 */
function blocks(
  source: ReadableStream<Uint8Array>,
  skip: number,
  take: number,
): ReadableStream<Uint8Array> {
  const reader = new BlockReader(source);
  let left = take;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const want = skip > 0 ? Math.min(BLOCK_SIZE, skip) : BLOCK_SIZE;
          const block = await reader.read(Math.min(want, left));
          if (block === null) {
            if (left !== Infinity && left > 0) {
              throw new TypeError(
                `The registry ended the body ${left} bytes short of the range`,
              );
            }
            controller.close();
            return;
          }
          if (skip > 0) {
            skip -= block.byteLength;
            continue;
          }
          left -= block.byteLength;
          controller.enqueue(block);
          if (left === 0) {
            await reader.cancel();
            controller.close();
          }
          return;
        }
      } catch (e) {
        await reader.cancel(e);
        throw e;
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/**
 * Wraps a source stream for a response body.
 *
 * @param source The bytes.
 * @param options Verification, window and end callback.
 * @returns The stream to answer with.
 */
export function relay(
  source: ReadableStream<Uint8Array>,
  options: RelayOptions = {},
): ReadableStream<Uint8Array> {
  let body = blocks(source, options.skip ?? 0, options.take ?? Infinity);
  const verify = options.verify;
  if (verify) {
    // The last block goes out only once size and digest checked out.
    body = body.pipeThrough(
      new DigestVerifier(verify, { what: verify.what, holdBack: true }),
    );
  }
  const reader = body.getReader();
  let sent = 0;
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    options.onEnd?.(sent, error);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          end();
          return;
        }
        controller.enqueue(value);
        sent += value.byteLength;
      } catch (e) {
        controller.error(e);
        end(e);
      }
    },
    async cancel(reason) {
      end(new ClientGoneError());
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
