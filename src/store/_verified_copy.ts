/**
 * Copies a blob from a reader to a writer through a
 * {@linkcode DigestVerifier}, in large buffers: the next read runs while the
 * last chunk is written. With a writer that keeps nothing once its write
 * resolves (a file, standard output), three buffers go round and memory
 * stays flat however large the blob; fresh buffers pile up until the
 * runtime collects them, some 64 MiB of them.
 *
 * @module
 */

import type { DigestVerifier } from "../oci/digest_verifier.ts";
import { byobReaderOf } from "../_streams.ts";

/** Bytes read at once. */
const CHUNK_BYTES = 1024 * 1024;
/** Buffers that go round: one read into, one held back, one written. */
const BUFFERS = 3;

/**
 * Reads the next bytes into a buffer and returns the bytes read, which may
 * be a view of the same memory in another buffer object (a BYOB read moves
 * it), or `null` at the end.
 */
export type ChunkReader = (into: Uint8Array) => Promise<Uint8Array | null>;

/** Options for {@linkcode copyVerified}. */
export interface CopyVerifiedOptions {
  /**
   * Hand each chunk back for the next read once `write` resolved: only for
   * a writer that keeps nothing of a chunk after that (a file, standard
   * output). Otherwise every read gets a fresh buffer.
   */
  reuse: boolean;
  /** Stops the copy. */
  signal?: AbortSignal | undefined;
}

/**
 * A reader over an open file, from its current position.
 *
 * @param file The file.
 * @returns The reader.
 */
export function fileReader(file: Deno.FsFile): ChunkReader {
  return async (into) => {
    const n = await file.read(into);
    return n === null ? null : into.subarray(0, n);
  };
}

/**
 * A reader over a byte stream (a fetch body), reading straight into the
 * buffers with a BYOB reader where the stream allows one.
 *
 * @param stream The stream; locked by the reader.
 * @returns The reader, and a way to release the stream after a failure.
 */
export function streamReader(
  stream: ReadableStream<Uint8Array>,
): { read: ChunkReader; cancel: (reason?: unknown) => Promise<void> } {
  const byob = byobReaderOf(stream);
  if (byob) {
    const reader = byob;
    return {
      read: async (into) => {
        const { done, value } = await reader.read(into);
        return done || value === undefined ? null : value;
      },
      cancel: (reason) => reader.cancel(reason).catch(() => {}),
    };
  }
  const reader = stream.getReader();
  return {
    read: async () => {
      const { done, value } = await reader.read();
      return done ? null : value;
    },
    cancel: (reason) => reader.cancel(reason).catch(() => {}),
  };
}

/**
 * Copies everything `read` yields through `verifier` into `write`. The
 * verifier's checks (size, digest, the held-back last chunk) decide what
 * reaches the writer; its error ends the copy.
 *
 * @param read The source.
 * @param verifier The checks; its streams are used up.
 * @param write Takes one verified chunk; resolves when done with it.
 * @param options Whether buffers go round, and the abort signal.
 */
export async function copyVerified(
  read: ChunkReader,
  verifier: DigestVerifier,
  write: (chunk: Uint8Array) => Promise<void>,
  options: CopyVerifiedOptions,
): Promise<void> {
  const free: Uint8Array[] = [];
  const waiting: (() => void)[] = [];
  let made = 0;
  let stopped: { error: unknown } | undefined;
  const take = async (): Promise<Uint8Array> => {
    if (!options.reuse) return new Uint8Array(CHUNK_BYTES);
    while (free.length === 0 && made >= BUFFERS) {
      if (stopped) throw stopped.error;
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    if (free.length > 0) return free.pop()!;
    made++;
    return new Uint8Array(CHUNK_BYTES);
  };
  const give = (chunk: Uint8Array) => {
    if (!options.reuse || chunk.buffer.byteLength !== CHUNK_BYTES) return;
    free.push(new Uint8Array(chunk.buffer as ArrayBuffer));
    waiting.shift()?.();
  };
  const input = verifier.writable.getWriter();
  const output = verifier.readable.getReader();
  const stop = (e: unknown) => {
    // Unblock the other side: a copy stops as a whole.
    stopped ??= { error: e };
    input.abort(e).catch(() => {});
    output.cancel(e).catch(() => {});
    for (const wake of waiting.splice(0)) wake();
    throw e;
  };
  const produce = async () => {
    for (;;) {
      options.signal?.throwIfAborted();
      const chunk = await read(await take());
      if (chunk === null) break;
      await input.write(chunk);
    }
    await input.close();
  };
  const consume = async () => {
    for (;;) {
      const { done, value } = await output.read();
      if (done) return;
      await write(value);
      give(value);
    }
  };
  // Both sides settle before the caller closes the source or the sink.
  const results = await Promise.allSettled([
    produce().catch(stop),
    consume().catch(stop),
  ]);
  if (stopped) throw stopped.error;
  for (const r of results) if (r.status === "rejected") throw r.reason;
}

/**
 * Takes bytes through `write`, as `Deno.FsFile` and `Deno.stdout` do: each
 * call writes some of the chunk and says how much, and nothing of it is
 * kept once the call resolves.
 */
export interface ByteWriter {
  /** Writes some of `p`; resolves with the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes all of a chunk, however many calls it takes.
 *
 * @param writer The writer.
 * @param chunk The bytes.
 */
export async function writeAll(
  writer: ByteWriter,
  chunk: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < chunk.byteLength) off += await writer.write(chunk.subarray(off));
}
