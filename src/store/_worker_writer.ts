/**
 * Writes and hashes blobs on worker threads. The main thread only moves
 * bytes from the stream into large buffers and hands them over (transferred,
 * not copied), so receiving from the network and hashing run on different
 * cores. A few workers (no more than the machine has cores) serve every
 * download of the process, each several blobs at once, so concurrent
 * downloads hash on all cores without a thread per blob. Three 4 MiB buffers
 * circulate per blob: memory stays flat.
 */

import type { Digest } from "../oci/digest.ts";
import type { DrainOptions } from "./_blob_writer.ts";
import { HASH_WORKER_URL } from "./_hash_worker.ts";
import { byobReaderOf } from "../_streams.ts";

const BUFFER_SIZE = 2 * 1024 * 1024;
const BUFFERS = 3;
/** Most worker threads alive at once: the cores, up to four. */
const MAX_WORKERS = Math.max(
  1,
  Math.min(4, globalThis.navigator?.hardwareConcurrency ?? 2),
);

type Reply =
  | { op: "opened"; id: number; offset: number }
  | { op: "written"; id: number; buffer: ArrayBuffer; bytes: number }
  | { op: "truncated"; id: number }
  | { op: "finished"; id: number; digest: Digest; bytes: number }
  | { op: "error"; id: number; message: string };

/** Where a worker's answers go: the writer of each blob it serves. */
interface Client {
  onReply(reply: Reply): void;
  onFailure(error: Error): void;
}

/** One worker thread and the blobs it serves. */
class HashThread {
  readonly #worker: Worker;
  readonly #clients = new Map<number, Client>();
  #failure: Error | undefined;

  constructor() {
    this.#worker = new Worker(HASH_WORKER_URL, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<Reply>) => {
      this.#clients.get(e.data.id)?.onReply(e.data);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#failure ??= new Error(e.message);
      for (const c of this.#clients.values()) c.onFailure(this.#failure);
    };
  }

  /** Blobs being served. */
  get load(): number {
    return this.#clients.size;
  }

  /** The error that broke the thread, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  attach(id: number, client: Client): void {
    this.#clients.set(id, client);
  }

  detach(id: number): void {
    this.#clients.delete(id);
  }

  post(msg: Record<string, unknown>, transfer: Transferable[] = []): void {
    this.#worker.postMessage(msg, transfer);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

const threads: HashThread[] = [];
let nextId = 1;

/**
 * A thread for one more blob: an idle one, a new one while there is room,
 * else the least busy. `undefined` when no worker can start here.
 */
function acquire(): HashThread | undefined {
  const usable = threads.filter((t) => t.failure === undefined);
  let best = usable.reduce<HashThread | undefined>(
    (a, t) => a === undefined || t.load < a.load ? t : a,
    undefined,
  );
  if ((best === undefined || best.load > 0) && threads.length < MAX_WORKERS) {
    try {
      const fresh = new HashThread();
      threads.push(fresh);
      best = fresh;
    } catch {
      // No worker here (a runtime without them): the best there is, if any.
    }
  }
  return best;
}

/**
 * Ends the threads once none serves a blob: an idle worker would keep the
 * process alive. While others are busy an idle one stays, for the next blob
 * of the same pull.
 */
function release(): void {
  if (threads.some((t) => t.load > 0)) return;
  for (const t of threads.splice(0)) t.terminate();
}

/** Hashing writer of one blob, whose work happens on a worker thread. */
export class WorkerWriter {
  readonly #thread: HashThread;
  readonly #id: number;
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

  private constructor(thread: HashThread) {
    this.#thread = thread;
    this.#id = nextId++;
    thread.attach(this.#id, {
      onReply: (reply) => {
        if (reply.op === "written") {
          this.#inflight--;
          this.#free.push(reply.buffer);
        }
        const next = this.#waiting.shift();
        if (reply.op === "error") this.#fail(new Error(reply.message), next);
        else next?.resolve(reply);
        this.#notify();
      },
      onFailure: (error) => this.#fail(error),
    });
    for (let i = 0; i < BUFFERS; i++) {
      this.#free.push(new ArrayBuffer(BUFFER_SIZE));
    }
  }

  #fail(
    error: Error,
    first?: { reject: (e: Error) => void } | undefined,
  ): void {
    this.#failure ??= error;
    first?.reject(this.#failure);
    for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
    this.#notify();
  }

  /**
   * Starts hashing a file on a worker thread, which re-hashes the bytes
   * already in it (truncating a file longer than `limit`).
   *
   * @returns The writer, or `undefined` when no worker could be started or
   * it could not open the file: the caller then hashes on its own thread,
   * which also reports a real problem with the file in its own words.
   */
  static async open(
    path: string,
    limit: number,
  ): Promise<WorkerWriter | undefined> {
    const thread = acquire();
    if (thread === undefined) return undefined;
    const w = new WorkerWriter(thread);
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
      this.#thread.post({ ...msg, id: this.#id }, transfer);
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
    options: DrainOptions,
  ): Promise<void> {
    const { limit, onOverflow, onBytes, signal } = options;
    const byob = byobReaderOf(stream);
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

  /** Closes the blob's file on the worker, and the worker once it serves no blob. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(new Error("The hash worker is closed"));
    try {
      this.#thread.post({ op: "close", id: this.#id });
    } catch {
      // Already gone.
    }
    this.#thread.detach(this.#id);
    release();
  }
}
