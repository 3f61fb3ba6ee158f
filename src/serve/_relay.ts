/**
 * Response bodies of the boot server, read into the reader's own buffer.
 *
 * A body is a byte stream over a {@linkcode ByteSource}: each read fills
 * the buffer the reader offers (a server that reuses its buffers allocates
 * nothing per chunk; `Deno.serve` offers a fresh one each time, as it keeps
 * the chunk until it is sent). Sources read a file window, relay a
 * registry's response (cut to a window, or checked against the digest with
 * the last block held back until the check passed, so a client never
 * receives a complete but wrong body), and count what was sent.
 *
 * @module
 */

import { digestMismatch, sizeMismatch } from "../_errors.ts";
import { type Digest, type Sha256, sha256For } from "../oci/digest.ts";
import { byobReaderOf } from "../_streams.ts";

/** How a body ended: bytes passed on, and the failure if any. */
export type RelayEnd = (bytes: number, error?: unknown) => void;

/** The error a body ends with when the client goes away. */
export class ClientGoneError extends Error {
  constructor() {
    super("Client disconnected");
    this.name = "ClientGoneError";
  }
}

/** Where the bytes of a body come from. */
export interface ByteSource {
  /**
   * Reads the next bytes into `view`.
   *
   * @param view Where to put them.
   * @returns The bytes read, at the start of `view` (possibly over the same
   * memory moved to a new `ArrayBuffer`), never empty; `null` at the end.
   */
  read(view: Uint8Array): Promise<Uint8Array | null>;
  /**
   * Releases what the source holds (files, response bodies) when the body
   * ends early. It may be called more than once.
   *
   * @param reason Why.
   */
  cancel(reason?: unknown): Promise<void>;
}

/**
 * Blocks a body is read in: one hop through JavaScript per mebibyte instead
 * of one per network packet roughly halves the cost of a relay.
 */
export const BLOCK_SIZE = 1024 * 1024;

/**
 * A response body over a source: a byte stream, so a reader can offer its
 * own buffer. The source is cancelled when the body fails or the reader
 * cancels.
 *
 * @param source The bytes.
 * @param onEnd Called once when the body ends, fails or is cancelled.
 * @returns The body.
 */
export function bodyStream(
  source: ByteSource,
  onEnd?: RelayEnd,
): ReadableStream<Uint8Array> {
  let sent = 0;
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    onEnd?.(sent, error);
  };
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: BLOCK_SIZE,
    async pull(controller) {
      const request = controller.byobRequest!;
      const view = request.view!;
      let got: Uint8Array | null;
      try {
        got = await source.read(
          new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
        );
      } catch (e) {
        end(e);
        await source.cancel(e).catch(() => {});
        controller.error(e);
        return;
      }
      if (got === null) {
        end();
        controller.close();
        request.respond(0);
        return;
      }
      sent += got.byteLength;
      if (got.buffer === view.buffer) request.respond(got.byteLength);
      else request.respondWithNewView(got);
    },
    async cancel(reason) {
      end(new ClientGoneError());
      await source.cancel(reason).catch(() => {});
    },
  });
}

/**
 * A stream as a source: read straight into the offered buffer when the
 * stream is a byte stream (a `fetch` body is), copied otherwise. Each read
 * fills the buffer unless the stream ends first.
 *
 * @param stream The stream.
 * @returns The source.
 */
export function streamSource(stream: ReadableStream<Uint8Array>): ByteSource {
  const byob = byobReaderOf(stream);
  const plain = byob ? undefined : stream.getReader();
  let rest: Uint8Array | undefined;
  let done = false;
  return {
    async read(view) {
      const { byteOffset, byteLength } = view;
      let buffer = view.buffer;
      let fill = 0;
      while (fill < byteLength && !done) {
        if (byob) {
          const r = await byob.read(
            new Uint8Array(buffer, byteOffset + fill, byteLength - fill),
          );
          if (r.value) {
            buffer = r.value.buffer;
            fill += r.value.byteLength;
          }
          if (r.done) done = true;
          continue;
        }
        let chunk = rest;
        rest = undefined;
        if (!chunk) {
          const r = await plain!.read();
          if (r.done) {
            done = true;
            break;
          }
          chunk = r.value;
        }
        const n = Math.min(chunk.byteLength, byteLength - fill);
        new Uint8Array(buffer, byteOffset + fill, n).set(chunk.subarray(0, n));
        fill += n;
        if (n < chunk.byteLength) rest = chunk.subarray(n);
      }
      return fill === 0 ? null : new Uint8Array(buffer, byteOffset, fill);
    },
    async cancel(reason) {
      done = true;
      await (byob ?? plain)!.cancel(reason).catch(() => {});
    },
  };
}

/** Options for {@linkcode fileSource}. */
export interface FileSourceOptions {
  /** The last bytes wait for this; when it rejects, the body fails instead. */
  release?: Promise<void> | undefined;
  /** Which content, for error messages. */
  what: string;
}

/**
 * `length` bytes of an open file from its current position, read into the
 * offered buffer. The file is closed at the end, on a failure and on
 * cancel.
 *
 * @param file The file.
 * @param length Bytes to read.
 * @param options What holds back the last bytes, and a name for messages.
 * @returns The source.
 */
export function fileSource(
  file: Deno.FsFile,
  length: number,
  options: FileSourceOptions,
): ByteSource {
  let left = length;
  let open = true;
  let failed = false;
  // A failed check ends the body at the next read, not only at its end.
  options.release?.catch(() => failed = true);
  const close = () => {
    if (!open) return;
    open = false;
    file.close();
  };
  return {
    async read(view) {
      if (failed) await options.release;
      if (left === 0) {
        close();
        return null;
      }
      const n = await file.read(
        view.subarray(0, Math.min(view.byteLength, left)),
      );
      if (n === null || n === 0) {
        throw sizeMismatch(length, length - left, options.what);
      }
      left -= n;
      if (left === 0) {
        await options.release;
        close();
      }
      return view.subarray(0, n);
    },
    cancel() {
      close();
      return Promise.resolve();
    },
  };
}

/**
 * The window `[skip, skip + take)` of a source; the source is cancelled
 * after the window.
 *
 * @param source The whole.
 * @param skip Bytes to drop from the start.
 * @param take Bytes to pass on at most.
 * @returns The window.
 */
export function windowSource(
  source: ByteSource,
  skip: number,
  take: number,
): ByteSource {
  let left = take;
  const short = () =>
    new TypeError(
      `The registry ended the body ${left} bytes short of the range`,
    );
  return {
    async read(view) {
      // A read may move the memory to a new ArrayBuffer (and detach this
      // view): keep where the bytes go.
      const { byteOffset, byteLength } = view;
      let buffer = view.buffer;
      while (skip > 0) {
        const got = await source.read(
          new Uint8Array(buffer, byteOffset, Math.min(byteLength, skip)),
        );
        if (got === null) throw short();
        buffer = got.buffer;
        skip -= got.byteLength;
      }
      if (left === 0) return null;
      const got = await source.read(
        new Uint8Array(buffer, byteOffset, Math.min(byteLength, left)),
      );
      if (got === null) {
        if (left !== Infinity) throw short();
        return null;
      }
      left -= got.byteLength;
      if (left === 0) await source.cancel();
      return got;
    },
    cancel: (reason) => source.cancel(reason),
  };
}

/**
 * A whole blob from a source, checked against its size and digest: the
 * read that brings the last byte returns only once the digest checked out,
 * so the last block never reaches a client when the blob is wrong.
 *
 * @param source The blob's bytes from its start.
 * @param expected Digest and size.
 * @param what Which content, for error messages.
 * @returns The checked source.
 */
export function verifiedSource(
  source: ByteSource,
  expected: { digest: Digest; size: number },
  what: string,
): ByteSource {
  const made = sha256For(expected.size);
  let hash: Sha256 | undefined;
  let position = 0;
  return {
    async read(view) {
      if (position === expected.size && expected.size > 0) return null;
      hash ??= await made;
      const got = await source.read(view);
      if (got === null) {
        if (position !== expected.size) {
          throw sizeMismatch(expected.size, position, what);
        }
        // An empty blob never reaches the check below.
        const actual = hash.digest();
        if (actual !== expected.digest) {
          throw digestMismatch(expected.digest, actual, what);
        }
        return null;
      }
      position += got.byteLength;
      if (position > expected.size) {
        throw sizeMismatch(expected.size, position, what);
      }
      hash.update(got);
      if (position === expected.size) {
        const actual = hash.digest();
        if (actual !== expected.digest) {
          throw digestMismatch(expected.digest, actual, what);
        }
        await source.cancel();
      }
      return got;
    },
    cancel: (reason) => source.cancel(reason),
  };
}

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Check size and digest of the whole stream before its last block goes out. */
  verify?: { digest: Digest; size: number; what: string } | undefined;
  /** Bytes to drop from the start (a server that ignored a range). */
  skip?: number | undefined;
  /** Bytes to pass on at most; the source is cancelled after them. */
  take?: number | undefined;
  /** Called once when the body ends, fails or is cancelled. */
  onEnd?: RelayEnd | undefined;
}

/**
 * Passes a registry's response body on to a client.
 *
 * @param stream The registry's body.
 * @param options Verification, window and end callback.
 * @returns The body to answer with.
 */
export function relay(
  stream: ReadableStream<Uint8Array>,
  options: RelayOptions = {},
): ReadableStream<Uint8Array> {
  let source = streamSource(stream);
  const verify = options.verify;
  if (verify) source = verifiedSource(source, verify, verify.what);
  if (options.skip !== undefined || options.take !== undefined) {
    source = windowSource(source, options.skip ?? 0, options.take ?? Infinity);
  }
  return bodyStream(source, options.onEnd);
}
