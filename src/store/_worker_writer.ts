/**
 * Writes and hashes a blob on a worker thread. The main thread only moves
 * bytes from the stream into large buffers and hands them over (transferred,
 * not copied), so receiving from the network and hashing run on two cores at
 * once. Three 4 MiB buffers circulate: memory stays flat.
 */

import type { Digest } from "../oci/digest.ts";
import { HASH_WORKER_URL } from "./_hash_worker.ts";

const BUFFER_SIZE = 4 * 1024 * 1024;
const BUFFERS = 3;

type Reply =
  | { op: "opened"; offset: number }
  | { op: "written"; buffer: ArrayBuffer; bytes: number }
  | { op: "truncated" }
  | { op: "finished"; digest: Digest; bytes: number }
  | { op: "error"; message: string };

/** Hashing writer whose work happens on a worker thread. */
export class WorkerWriter {
  readonly #worker: Worker;
  readonly #waiting: {
    resolve: (r: Reply) => void;
    reject: (e: Error) => void;
  }[] = [];
  readonly #free: ArrayBuffer[] = [];
  #changed: (() => void)[] = [];
  #inflight = 0;
  #accepted = 0;
  #failure: Error | undefined;
  #closed = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<Reply>) => {
      const reply = e.data;
      if (reply.op === "written") {
        this.#inflight--;
        this.#free.push(reply.buffer);
      }
      const next = this.#waiting.shift();
      if (reply.op === "error") {
        this.#failure ??= new Error(reply.message);
        next?.reject(this.#failure);
        for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
      } else {
        next?.resolve(reply);
      }
      this.#notify();
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#failure ??= new Error(e.message);
      for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
      this.#notify();
    };
    for (let i = 0; i < BUFFERS; i++) {
      this.#free.push(new ArrayBuffer(BUFFER_SIZE));
    }
  }

  /**
   * Starts a worker on a file, which re-hashes the bytes already in it
   * (truncating a file longer than `limit`).
   *
   * @returns The writer, or `undefined` when no worker could be started or
   * it could not open the file: the caller then hashes on its own thread,
   * which also reports a real problem with the file in its own words.
   */
  static async open(
    path: string,
    limit: number,
  ): Promise<WorkerWriter | undefined> {
    let worker: Worker;
    try {
      worker = new Worker(HASH_WORKER_URL, { type: "module" });
    } catch {
      return undefined;
    }
    const w = new WorkerWriter(worker);
    try {
      const reply = await w.#send({ op: "open", path, limit });
      if (reply.op !== "opened") throw new Error("Unexpected reply");
      w.#accepted = reply.offset;
      return w;
    } catch {
      w.close();
      return undefined;
    }
  }

  #send(
    msg: Record<string, unknown>,
    transfer: Transferable[] = [],
  ): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) {
      return Promise.reject(new Error("The hash worker is already closed"));
    }
    return new Promise<Reply>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#worker.postMessage(msg, transfer);
    });
  }

  /** Bytes accepted so far (written, in flight, or in the current buffer). */
  get bytes(): number {
    return this.#accepted;
  }

  #notify(): void {
    for (const wake of this.#changed.splice(0)) wake();
  }

  #nextChange(): Promise<void> {
    return new Promise<void>((resolve) => this.#changed.push(resolve));
  }

  async #take(): Promise<ArrayBuffer> {
    while (this.#free.length === 0) {
      if (this.#failure) throw this.#failure;
      // Wait for a write to come back with its buffer.
      await this.#nextChange();
    }
    return this.#free.pop()!;
  }

  #post(buffer: ArrayBuffer, length: number): void {
    this.#inflight++;
    const p = this.#send({ op: "write", buffer, length }, [buffer]);
    p.catch(() => {});
  }

  /**
   * Drains a stream into the worker; on failure, the bytes received before
   * it are still written, so a retry can continue from {@linkcode bytes}.
   */
  async readFrom(
    stream: ReadableStream<Uint8Array>,
    limit: number,
    onOverflow: (seen: number) => Error,
    onBytes?: (n: number) => void,
    signal?: AbortSignal | undefined,
  ): Promise<void> {
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      byob = undefined;
    }
    let buffer = await this.#take();
    let fill = 0;
    try {
      if (byob) {
        for (;;) {
          signal?.throwIfAborted();
          const room = Math.min(BUFFER_SIZE - fill, limit - this.#accepted + 1);
          const { done, value } = await byob.read(
            new Uint8Array(buffer, fill, Math.max(1, room)),
          );
          if (value) buffer = value.buffer as ArrayBuffer;
          if (done) break;
          if (this.#accepted + value.byteLength > limit) {
            throw onOverflow(this.#accepted + value.byteLength);
          }
          fill += value.byteLength;
          this.#accepted += value.byteLength;
          onBytes?.(this.#accepted);
          if (fill === BUFFER_SIZE) {
            this.#post(buffer, fill);
            fill = 0;
            buffer = await this.#take();
          }
        }
      } else {
        const reader = stream.getReader();
        try {
          for (;;) {
            signal?.throwIfAborted();
            const { done, value } = await reader.read();
            if (done) break;
            if (this.#accepted + value.byteLength > limit) {
              throw onOverflow(this.#accepted + value.byteLength);
            }
            let off = 0;
            while (off < value.byteLength) {
              const n = Math.min(BUFFER_SIZE - fill, value.byteLength - off);
              new Uint8Array(buffer, fill, n).set(value.subarray(off, off + n));
              off += n;
              fill += n;
              this.#accepted += n;
              if (fill === BUFFER_SIZE) {
                this.#post(buffer, fill);
                fill = 0;
                buffer = await this.#take();
              }
            }
            onBytes?.(this.#accepted);
          }
        } finally {
          reader.releaseLock();
        }
      }
    } catch (e) {
      await (byob ?? stream).cancel().catch(() => {});
      throw e;
    } finally {
      byob?.releaseLock();
      if (buffer.byteLength === 0) {
        // A failed BYOB read took the buffer with it: the bytes gathered
        // there are gone, and a resume fetches them again.
        this.#accepted -= fill;
        fill = 0;
        buffer = new ArrayBuffer(BUFFER_SIZE);
      }
      if (fill > 0) this.#post(buffer, fill);
      else this.#free.push(buffer);
      await this.#drain();
    }
  }

  async #drain(): Promise<void> {
    while (this.#inflight > 0) {
      if (this.#failure) throw this.#failure;
      await this.#nextChange();
    }
    if (this.#failure) throw this.#failure;
  }

  /** Empties the file and starts hashing afresh. */
  async truncate(): Promise<void> {
    await this.#drain();
    await this.#send({ op: "truncate" });
    this.#accepted = 0;
  }

  /** Waits for every write; returns the digest of all bytes so far. */
  async finish(sync: boolean): Promise<{ digest: Digest; bytes: number }> {
    await this.#drain();
    const reply = await this.#send({ op: "finish", sync });
    if (reply.op !== "finished") {
      throw new Error("Unexpected reply from the hash worker");
    }
    return { digest: reply.digest, bytes: reply.bytes };
  }

  /** Stops the worker and closes its file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure ??= new Error("The hash worker is closed");
    for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
    this.#notify();
    try {
      this.#worker.postMessage({ op: "close" });
    } catch {
      // Already gone.
    }
    this.#worker.terminate();
  }
}
