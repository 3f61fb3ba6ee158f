/**
 * The one pass-through stream that checks content against its descriptor
 * as it flows: whole blobs, ranges of a blob, and a blob sent as several
 * ranges in turn (a resumed upload), with the last bytes held back until
 * the digest checked out when asked.
 *
 * @module
 */

import { digestMismatch, sizeMismatch } from "../_errors.ts";
import { type Digest, loadNativeSha256, Sha256 } from "./digest.ts";

/** Chunks at least this large are hashed as they are. */
const DIRECT_BYTES = 1024 * 1024;
/**
 * Smaller chunks are gathered up to this size before hashing: one native
 * hash call per two mebibytes instead of one per network packet.
 */
const BATCH_BYTES = 2 * 1024 * 1024;

/**
 * The running hash of one blob, shared by the streams that carry it in
 * turn (a blob uploaded range by range, each range opened afresh). A
 * stream that starts where the hash stopped continues it; one that starts
 * at 0 starts it afresh; one that starts anywhere else makes the blob
 * unverifiable until a stream starts at 0 again.
 *
 * @example Verify a blob that arrives in two streams
 * ```ts
 * import { BlobHash, DigestVerifier, digestOf } from "@ironcore/image/oci";
 * const bytes = new TextEncoder().encode("kernel bytes");
 * const blob = { digest: digestOf(bytes), size: bytes.byteLength };
 * const state = new BlobHash();
 * let last: DigestVerifier | undefined;
 * for (const [start, end] of [[0, 6], [6, 12]]) {
 *   last = new DigestVerifier(blob, { offset: start, end, state });
 *   const part = new Blob([bytes.subarray(start, end)]).stream();
 *   await new Response(part.pipeThrough(last)).arrayBuffer();
 * }
 * console.log(last?.digest === blob.digest); // true
 * ```
 */
export class BlobHash {
  /** Made on the first bytes, by when the native hash has usually loaded. */
  #hash: Sha256 | undefined;
  #batch: Uint8Array | undefined;
  #fill = 0;
  #position = 0;
  #verifiable = true;

  /** Bytes of the blob hashed so far: where a stream continues the hash. */
  get position(): number {
    return this.#position;
  }

  /**
   * Whether the hash covers every byte from the blob's start and can still
   * be finished.
   */
  get verifiable(): boolean {
    return this.#verifiable;
  }

  /**
   * Announces a stream that starts at `offset` of the blob.
   *
   * @param offset The stream's first byte.
   */
  begin(offset: number): void {
    if (offset === 0) {
      this.#hash = undefined;
      this.#fill = 0;
      this.#position = 0;
      this.#verifiable = true;
    } else if (offset !== this.#position) {
      this.#verifiable = false;
    }
  }

  /**
   * Hashes the blob's next bytes (copied when batched: the producer may
   * reuse a chunk's memory once it has been passed on).
   *
   * @param chunk The bytes at {@linkcode BlobHash.position}.
   */
  update(chunk: Uint8Array): void {
    if (!this.#verifiable) return;
    this.#position += chunk.byteLength;
    if (chunk.byteLength >= DIRECT_BYTES) {
      this.#flush();
      (this.#hash ??= new Sha256()).update(chunk);
      return;
    }
    if (this.#fill + chunk.byteLength > BATCH_BYTES) this.#flush();
    this.#batch ??= new Uint8Array(BATCH_BYTES);
    this.#batch.set(chunk, this.#fill);
    this.#fill += chunk.byteLength;
  }

  /**
   * Finishes the hash; it cannot be continued afterwards.
   *
   * @returns The digest of the bytes hashed.
   */
  digest(): Digest {
    this.#flush();
    this.#batch = undefined;
    this.#verifiable = false;
    return (this.#hash ?? new Sha256()).digest();
  }

  #flush(): void {
    if (this.#fill === 0 || !this.#batch) return;
    (this.#hash ??= new Sha256()).update(this.#batch.subarray(0, this.#fill));
    this.#fill = 0;
  }
}

/** Options for {@linkcode DigestVerifier}. */
export interface DigestVerifierOptions {
  /** Which content, for error messages, e.g. `kernel layer sha256:…`. */
  what?: string | undefined;
  /** Called with the position in the blob after each chunk passed on. */
  onBytes?: ((position: number) => void) | undefined;
  /** Where in the blob the incoming stream starts. Default 0. */
  offset?: number | undefined;
  /**
   * The first byte passed on; the bytes before it are hashed and dropped
   * (a server that sent the whole blob for a range). Default `offset`.
   */
  start?: number | undefined;
  /**
   * The byte after the last one passed on; the stream ends there and the
   * rest of the source is cancelled. Default: the blob's size.
   */
  end?: number | undefined;
  /**
   * The running hash shared with the streams that carried the bytes before
   * `offset`. Without it, a stream that starts past 0 or ends before the
   * blob's end is not hashed (it cannot be verified): only its size is
   * checked.
   */
  state?: BlobHash | undefined;
  /**
   * Hold the last chunk back until the digest checked out, so a consumer
   * never receives a complete but wrong blob. Default `false`.
   */
  holdBack?: boolean | undefined;
  /** Called with the error before the stream fails its check. */
  onError?: ((error: Error) => void) | undefined;
}

/**
 * Passes bytes through unchanged while hashing them, and errors the stream
 * when it carries more bytes than the descriptor's size (as soon as it
 * does) or, at the end, fewer bytes or a different digest. Without
 * `holdBack` the consumer sees every byte before a mismatch at the end, so
 * write to a temporary file and keep it only when the stream ended without
 * error; with it, the last chunk goes out only after the check passed.
 *
 * A stream can also carry part of a blob (`offset`, `start`, `end`), and a
 * blob can arrive as several streams in turn that share one
 * {@linkcode BlobHash}: the digest is checked when the last byte of the
 * blob passes, if every byte before it was hashed in order.
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
 *
 * @example Pass on bytes 6 to 11 only, from a stream of the whole blob
 * ```ts
 * import { DigestVerifier, digestOf } from "@ironcore/image/oci";
 * const bytes = new TextEncoder().encode("kernel bytes");
 * const blob = { digest: digestOf(bytes), size: bytes.byteLength };
 * const part = new Blob([bytes]).stream().pipeThrough(
 *   new DigestVerifier(blob, { start: 6, holdBack: true }),
 * );
 * console.log(await new Response(part).text()); // "bytes"
 * ```
 */
export class DigestVerifier extends TransformStream<Uint8Array, Uint8Array> {
  readonly #out: { passed: number; digest: Digest | undefined };

  /**
   * Creates a verifier for content of a known digest and size.
   *
   * @param expected The digest and size the content must have.
   * @param options Name for messages, progress, the window carried, the
   * shared hash and hold-back.
   */
  constructor(
    expected: { digest: Digest; size: number },
    options: DigestVerifierOptions = {},
  ) {
    const { size } = expected;
    // Large content wants the native hash: it loads while the first bytes
    // are on their way, and the first chunk waits for it.
    let hashReady = size <= BATCH_BYTES;
    if (!hashReady) loadNativeSha256();
    const what = options.what ?? `content ${expected.digest}`;
    const offset = options.offset ?? 0;
    const start = Math.max(offset, options.start ?? offset);
    const end = Math.min(size, options.end ?? size);
    // Without a shared hash, only a stream of the whole blob can be checked.
    const state = options.state ??
      (offset === 0 && end === size ? new BlobHash() : undefined);
    state?.begin(offset);
    const out = { passed: 0, digest: undefined as Digest | undefined };
    let position = offset;
    let held: Uint8Array | undefined;
    const fail = (e: Error): never => {
      options.onError?.(e);
      throw e;
    };
    const send = (
      controller: TransformStreamDefaultController<Uint8Array>,
      chunk: Uint8Array,
    ) => {
      if (options.holdBack) [chunk, held] = [held!, chunk];
      if (chunk === undefined) return;
      controller.enqueue(chunk);
      out.passed += chunk.byteLength;
    };
    // Checks the digest once the blob's last byte was hashed.
    const check = () => {
      if (position !== size || !state?.verifiable) return;
      if (state.position !== size) return;
      const actual = state.digest();
      if (actual !== expected.digest) {
        fail(digestMismatch(expected.digest, actual, what));
      }
      out.digest = actual;
    };
    const release = (
      controller: TransformStreamDefaultController<Uint8Array>,
    ) => {
      if (held === undefined) return;
      controller.enqueue(held);
      out.passed += held.byteLength;
      held = undefined;
    };
    const step = (
      chunk: Uint8Array,
      controller: TransformStreamDefaultController<Uint8Array>,
    ) => {
      if (chunk.byteLength === 0) return;
      if (position + chunk.byteLength > end) {
        if (end === size) {
          fail(sizeMismatch(size, position + chunk.byteLength, what));
        }
        chunk = chunk.subarray(0, end - position);
      }
      const from = position;
      position += chunk.byteLength;
      state?.update(chunk);
      if (position > start) {
        send(
          controller,
          from >= start ? chunk : chunk.subarray(start - from),
        );
        options.onBytes?.(position);
      }
      if (position === end) {
        check();
        release(controller);
        if (end < size) controller.terminate();
      }
    };
    super({
      transform(chunk, controller) {
        if (hashReady) return step(chunk, controller);
        return loadNativeSha256().then(() => {
          hashReady = true;
          step(chunk, controller);
        });
      },
      flush(controller) {
        if (position !== end) fail(sizeMismatch(end, position, what));
        // An empty blob never reaches the check in transform.
        if (size === 0) check();
        release(controller);
      },
    });
    this.#out = out;
  }

  /** Bytes passed on so far. */
  get bytes(): number {
    return this.#out.passed;
  }

  /** The verified digest, once the blob's last byte passed the check. */
  get digest(): Digest | undefined {
    return this.#out.digest;
  }
}
