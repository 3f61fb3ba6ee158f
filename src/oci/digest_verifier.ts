/**
 * A pass-through stream that checks content against its descriptor as it
 * flows.
 *
 * @module
 */

import { digestMismatch, sizeMismatch } from "../_errors.ts";
import { type Digest, Sha256 } from "./digest.ts";

/** Options for {@linkcode DigestVerifier}. */
export interface DigestVerifierOptions {
  /** Which content, for error messages, e.g. `kernel layer sha256:…`. */
  what?: string | undefined;
  /** Called with the running byte count after each chunk. */
  onBytes?: ((bytes: number) => void) | undefined;
}

/**
 * Small chunks are gathered up to this size before hashing: one native hash
 * call per mebibyte instead of one per network packet.
 */
const BATCH_BYTES = 1024 * 1024;

class Verification {
  readonly hash: Sha256 = new Sha256();
  readonly expected: { digest: Digest; size: number };
  readonly what: string;
  readonly onBytes: ((bytes: number) => void) | undefined;
  batch: Uint8Array | undefined;
  fill = 0;
  seen = 0;
  result: Digest | undefined;

  constructor(
    expected: { digest: Digest; size: number },
    options: DigestVerifierOptions,
  ) {
    this.expected = expected;
    this.what = options.what ?? `content ${expected.digest}`;
    this.onBytes = options.onBytes;
  }

  flushBatch(): void {
    if (this.fill === 0 || !this.batch) return;
    this.hash.update(this.batch.subarray(0, this.fill));
    this.fill = 0;
  }

  add(chunk: Uint8Array): void {
    if (chunk.byteLength >= BATCH_BYTES) {
      this.flushBatch();
      this.hash.update(chunk);
      return;
    }
    if (this.fill + chunk.byteLength > BATCH_BYTES) this.flushBatch();
    // A copy, not a reference: the producer may reuse the chunk's memory
    // once it has been passed on.
    this.batch ??= new Uint8Array(BATCH_BYTES);
    this.batch.set(chunk, this.fill);
    this.fill += chunk.byteLength;
  }
}

/**
 * Passes bytes through unchanged while hashing them, and errors the stream
 * when it carries more bytes than the descriptor's size (as soon as it
 * does) or, at the end, fewer bytes or a different digest. The consumer sees
 * every byte before a mismatch at the end, so write to a temporary file and
 * keep it only when the stream ended without error.
 *
 * @example Verify a blob while copying it
 * ```ts
 * import { DigestVerifier, digestOf } from "@ironcore/image/oci";
 * const bytes = new TextEncoder().encode("kernel bytes");
 * const verified = new Blob([bytes]).stream().pipeThrough(
 *   new DigestVerifier({ digest: digestOf(bytes), size: bytes.byteLength }),
 * );
 * console.log(await new Response(verified).text()); // "kernel bytes"
 * ```
 */
export class DigestVerifier extends TransformStream<Uint8Array, Uint8Array> {
  readonly #state: Verification;

  /**
   * Creates a verifier for content of a known digest and size.
   *
   * @param expected The digest and size the content must have.
   * @param options Name for messages and a byte-count callback.
   */
  constructor(
    expected: { digest: Digest; size: number },
    options: DigestVerifierOptions = {},
  ) {
    const state = new Verification(expected, options);
    super({
      transform(chunk, controller) {
        state.seen += chunk.byteLength;
        if (state.seen > state.expected.size) {
          controller.error(
            sizeMismatch(state.expected.size, state.seen, state.what),
          );
          return;
        }
        state.add(chunk);
        controller.enqueue(chunk);
        state.onBytes?.(state.seen);
      },
      flush(controller) {
        state.flushBatch();
        state.batch = undefined;
        const digest = state.hash.digest();
        if (state.seen !== state.expected.size) {
          controller.error(
            sizeMismatch(state.expected.size, state.seen, state.what),
          );
          return;
        }
        if (digest !== state.expected.digest) {
          controller.error(
            digestMismatch(state.expected.digest, digest, state.what),
          );
          return;
        }
        state.result = digest;
      },
    });
    this.#state = state;
  }

  /** Bytes that have passed so far. */
  get bytes(): number {
    return this.#state.seen;
  }

  /** The verified digest, once the stream has ended without error. */
  get digest(): Digest | undefined {
    return this.#state.result;
  }
}
