/**
 * Layers served out of the local store, filled from the registry once per
 * blob however many clients ask at the same time.
 *
 * A fill downloads a blob into the store's partial file for its digest (the
 * same file and lock `pull` uses, so a pull in another process and this
 * server never download a blob twice), resuming after a dropped connection
 * and verifying size and digest before the blob becomes visible. Every
 * client, the first one included, reads the partial file as it grows, at
 * its own pace; the last bytes of a response are released only after the
 * fill verified the blob, so a client never gets a complete wrong body, and
 * the store only ever holds verified blobs. A fill goes on when its clients
 * disconnect: the next boot of the same image then finds the blob cached.
 */

import { sizeMismatch } from "../_errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { fileStream } from "../store/_file_stream.ts";
import { partialName } from "../store/_partial_blob.ts";
import type { Store } from "../store/store.ts";
import { ClientGoneError, relay, type RelayEnd } from "./_relay.ts";
import { fillPartial, type ResumeSource } from "../transfer/_resume.ts";
import { blobStoreOf } from "../store/_internal.ts";

/** Where a blob comes from when the store lacks it. */
export type BlobSource = ResumeSource;

/** Tuning of fills. */
export interface BlobCacheOptions {
  /** Resumes of a fill after a drop or stall. Default 5. */
  retries?: number | undefined;
  /** Milliseconds without data before a fill attempt is abandoned. Default 30 s. */
  stallTimeout?: number | undefined;
  /** First backoff delay in ms, doubling up to 10 s. Default 250. */
  retryDelay?: number | undefined;
}

const READ_SIZE = 1024 * 1024;
/** Longest a reader waits at the end of the partial file before looking again. */
const POLL_MS = 100;

/** One blob being downloaded into the store. */
class Fill {
  readonly descriptor: Pick<Descriptor, "digest" | "size">;
  state: "waiting" | "writing" | "done" | "failed" = "waiting";
  error: unknown;
  /** The partial file readers follow, when known. */
  partialPath: string | undefined;
  /**
   * Offsets the partial file was cut back to, in order: a reader that had
   * read past one of them may have bytes that are written anew.
   */
  readonly resets: number[] = [];
  /** Settles when the blob is in the store (or the fill failed). */
  readonly result: Promise<void>;
  /** Settles when bytes start to arrive (or the fill failed before). */
  readonly started: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: unknown) => void;
  #resolveStarted!: () => void;
  #rejectStarted!: (e: unknown) => void;
  #waiters = new Set<() => void>();

  constructor(descriptor: Pick<Descriptor, "digest" | "size">) {
    this.descriptor = descriptor;
    this.result = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.started = new Promise((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    // Nobody may be listening when a fill fails after its clients left.
    this.result.catch(() => {});
    this.started.catch(() => {});
  }

  writing(): void {
    if (this.state !== "waiting") return;
    this.state = "writing";
    this.#resolveStarted();
  }

  done(): void {
    this.state = "done";
    this.#resolveStarted();
    this.#resolve();
    this.notify();
  }

  fail(e: unknown): void {
    this.state = "failed";
    this.error = e;
    this.#rejectStarted(e);
    this.#reject(e);
    this.notify();
  }

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Waits for news from the fill, or a short while. */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.#waiters.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, POLL_MS);
      this.#waiters.add(wake);
    });
  }
}

/** Serves blobs from a store, filling it from the registry on a miss. */
export class BlobCache {
  readonly #store: Store;
  readonly #signal: AbortSignal;
  readonly #options: BlobCacheOptions;
  readonly #fills = new Map<Digest, Fill>();
  readonly #running = new Set<Promise<void>>();

  constructor(store: Store, signal: AbortSignal, options: BlobCacheOptions) {
    this.#store = store;
    this.#signal = signal;
    this.#options = options;
  }

  /**
   * Streams bytes `[start, end)` of a blob the store already holds.
   *
   * @returns The stream, or `undefined` when the store lacks the blob.
   */
  async fromStore(
    d: Pick<Descriptor, "digest" | "size">,
    start: number,
    end: number,
    onEnd: RelayEnd,
  ): Promise<ReadableStream<Uint8Array> | undefined> {
    // A blob marked corrupt is fetched again: the fill replaces it.
    if (!(await blobStoreOf(this.#store).holds(d.digest, d.size))) {
      return undefined;
    }
    let body: ReadableStream<Uint8Array>;
    try {
      body = await fileStream(this.#store.blobPath(d.digest), {
        offset: start,
      });
    } catch (e) {
      // Pruned in the meantime.
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    await blobStoreOf(this.#store).touchBlob(d.digest);
    return relay(body, { take: end - start, onEnd });
  }

  /**
   * Streams bytes `[start, end)` of a blob, from the store or through the
   * fill that brings it there. Resolves once the fill has started, so a
   * registry that cannot deliver the blob fails the request before any
   * status line is sent.
   *
   * @param d The blob.
   * @param source Where to fetch the blob.
   * @param start First byte.
   * @param end Byte after the last.
   * @param onEnd Called when the response body ends.
   * @returns The stream.
   */
  async stream(
    d: Pick<Descriptor, "digest" | "size">,
    source: BlobSource,
    start: number,
    end: number,
    onEnd: RelayEnd,
  ): Promise<ReadableStream<Uint8Array>> {
    const stored = await this.fromStore(d, start, end, onEnd);
    if (stored) return stored;
    let fill = this.#fills.get(d.digest);
    if (!fill) {
      const created = new Fill(d);
      fill = created;
      this.#fills.set(d.digest, created);
      const run = this.#run(created, source).then(
        () => created.done(),
        (e) => created.fail(e),
      ).finally(() => {
        this.#fills.delete(d.digest);
        this.#running.delete(run);
      });
      this.#running.add(run);
    }
    await fill.started;
    return this.#tail(fill, start, end, onEnd);
  }

  /** Waits until every fill has ended. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) {
      await Promise.allSettled([...this.#running]);
    }
  }

  async #partialPath(digest: Digest): Promise<string | undefined> {
    const name = partialName(digest);
    const files = await blobStoreOf(this.#store).tempFiles();
    return files.find((f) => f.path.endsWith(`/${name}`))?.path;
  }

  async #run(fill: Fill, source: BlobSource): Promise<void> {
    const d = fill.descriptor;
    const partial = await blobStoreOf(this.#store).beginBlob(d);
    // Another process finished the blob while we waited for its lock.
    if (!partial) return;
    try {
      fill.partialPath = await this.#partialPath(d.digest);
      await fillPartial(partial, source, {
        retries: this.#options.retries,
        stallTimeout: this.#options.stallTimeout,
        retryDelay: this.#options.retryDelay,
        signal: this.#signal,
        onStart: () => fill.writing(),
        onBytes: () => fill.notify(),
        onReset: (offset) => fill.resets.push(offset),
        failure: ({ retries, stalled, cause }) =>
          `Download of blob ${d.digest} from ${source.host} ${
            stalled === undefined
              ? `failed after ${retries} retries (${cause.message})`
              : `stalled: no data for ${stalled / 1000} s`
          }`,
      });
    } finally {
      partial.close();
    }
  }

  async #open(fill: Fill, start: number): Promise<Deno.FsFile> {
    let file: Deno.FsFile | undefined;
    if (fill.state !== "done" && fill.partialPath !== undefined) {
      try {
        file = await Deno.open(fill.partialPath, { read: true });
      } catch (e) {
        // Committed (renamed) a moment ago.
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    if (!file) {
      await fill.result;
      file = await blobStoreOf(this.#store).openBlob(fill.descriptor.digest);
    }
    if (start > 0) {
      try {
        await file.seek(start, Deno.SeekMode.Start);
      } catch (e) {
        file.close();
        throw e;
      }
    }
    return file;
  }

  #tail(
    fill: Fill,
    start: number,
    end: number,
    onEnd: RelayEnd,
  ): ReadableStream<Uint8Array> {
    const d = fill.descriptor;
    const open = (at: number) => this.#open(fill, at);
    let file: Deno.FsFile | undefined;
    let seenResets = fill.resets.length;
    let pos = start;
    let sent = 0;
    let ended = false;
    const finish = (error?: unknown) => {
      try {
        file?.close();
      } catch {
        // Already closed.
      }
      file = undefined;
      if (ended) return;
      ended = true;
      onEnd(sent, error);
    };
    const check = () => {
      if (fill.state === "failed") throw fill.error;
      for (; seenResets < fill.resets.length; seenResets++) {
        if (pos > start && fill.resets[seenResets]! < pos) {
          throw new TypeError(
            `The download of blob ${d.digest} started over: request it again`,
          );
        }
      }
    };
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (!file) {
            seenResets = fill.resets.length;
            file = await open(start);
          }
          for (;;) {
            check();
            // Whether the fill had ended before this read, not after it.
            const complete = fill.state === "done";
            const buf = new Uint8Array(Math.min(READ_SIZE, end - pos));
            const n = await file.read(buf);
            if (n !== null && n > 0) {
              pos += n;
              // The last bytes go out only once the whole blob is verified.
              if (pos === end && fill.state !== "done") await fill.result;
              check();
              controller.enqueue(
                n === buf.byteLength ? buf : buf.subarray(0, n),
              );
              sent += n;
              if (pos === end) {
                controller.close();
                finish();
              }
              return;
            }
            if (complete) {
              throw sizeMismatch(
                d.size,
                pos,
                `cached blob ${d.digest}`,
              );
            }
            if (fill.state === "writing") await fill.changed();
          }
        } catch (e) {
          controller.error(e);
          finish(e);
        }
      },
      cancel() {
        finish(new ClientGoneError());
      },
    });
  }
}
