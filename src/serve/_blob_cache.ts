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
 *
 * A blob the store holds is served from its file. Once its bytes are known
 * to match the digest (see {@linkcode CheckedBlobs}), nothing is hashed on
 * the way: under `Deno.serve` the runtime streams the file itself, and a
 * server that offers its own buffers has the file read straight into them.
 *
 * @module
 */

import { REPAIR_ADVICE, sizeMismatch } from "../_errors.ts";
import { ImageError, StoreError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { partialName } from "../store/_partial_blob.ts";
import type { Store } from "../store/store.ts";
import { CheckedBlobs } from "./_checked_blobs.ts";
import {
  bodyStream,
  type ByteSource,
  ClientGoneError,
  fileSource,
  type RelayEnd,
} from "./_relay.ts";
import type { BootBodySource } from "./_reply.ts";
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

/** Where a body from the cache comes from. */
export type CachedSource = Exclude<BootBodySource, "registry">;

/** A response body from the cache. */
export interface CachedBody {
  /** The body. */
  body: ReadableStream<Uint8Array>;
  /** Where it comes from. */
  source: CachedSource;
}

/** Longest a reader waits at the end of the partial file before looking again. */
const POLL_MS = 100;

/** One blob being downloaded into the store. */
class Fill {
  readonly descriptor: Pick<Descriptor, "digest" | "size">;
  state: "waiting" | "writing" | "done" | "failed" = "waiting";
  error: unknown;
  /** Whether this fill wrote the blob (it did not find it present). */
  wrote = false;
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
  readonly #checked: CheckedBlobs;

  constructor(store: Store, signal: AbortSignal, options: BlobCacheOptions) {
    this.#store = store;
    this.#signal = signal;
    this.#options = options;
    this.#checked = new CheckedBlobs(store, signal);
  }

  /**
   * Streams bytes `[start, end)` of a blob the store already holds.
   *
   * @param d The blob.
   * @param start First byte.
   * @param end Byte after the last.
   * @param onEnd Called when the response body ends.
   * @param completed Settles when the server has sent the response (as
   * `Deno.serve` tells its handlers): with it, a whole file known to be
   * good is streamed by the runtime itself.
   * @returns The body, or `undefined` when the store lacks the blob.
   */
  async fromStore(
    d: Pick<Descriptor, "digest" | "size">,
    start: number,
    end: number,
    onEnd: RelayEnd,
    completed?: Promise<void> | undefined,
  ): Promise<CachedBody | undefined> {
    const blob = await this.#checked.open(d);
    if (!blob) return undefined;
    const { file, check } = blob;
    try {
      if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    } catch (e) {
      file.close();
      throw e;
    }
    if (check === undefined && end === d.size && completed) {
      // The runtime reads the file and sends it without JavaScript; it
      // does not say how far it got when the client leaves.
      completed.then(
        () => onEnd(end - start),
        () => onEnd(0, new ClientGoneError()),
      );
      return { body: file.readable, source: "store" };
    }
    const source = fileSource(file, end - start, {
      release: check,
      what: `cached blob ${d.digest}`,
    });
    return {
      body: bodyStream(source, onEnd),
      source: check ? "store-verify" : "store",
    };
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
   * @param completed Settles when the server has sent the response.
   * @returns The body.
   */
  async stream(
    d: Pick<Descriptor, "digest" | "size">,
    source: BlobSource,
    start: number,
    end: number,
    onEnd: RelayEnd,
    completed?: Promise<void> | undefined,
  ): Promise<CachedBody> {
    const stored = await this.fromStore(d, start, end, onEnd, completed);
    if (stored) return stored;
    if (this.#checked.stuck(d.digest)) {
      throw new StoreError(
        `Blob ${d.digest} in store ${this.#store.path} is corrupt and cannot be marked for replacement: ${REPAIR_ADVICE}`,
        { path: this.#store.path },
      );
    }
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
    if (fill.state === "done" && !fill.wrote) {
      // Another process brought the blob: serve it as any stored blob.
      const again = await this.fromStore(d, start, end, onEnd, completed);
      if (again) return again;
    }
    return {
      body: bodyStream(this.#tail(fill, start, end), onEnd),
      source: "fill",
    };
  }

  /** Waits until every fill has ended. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#running, ...this.#checked.running()];
      if (running.length === 0) return;
      await Promise.allSettled(running);
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
    fill.wrote = true;
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
    await this.#checked.trust(d.digest);
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

  /** The bytes `[start, end)` of a blob, read as the fill writes them. */
  #tail(fill: Fill, start: number, end: number): ByteSource {
    const d = fill.descriptor;
    const open = (at: number) => this.#open(fill, at);
    let file: Deno.FsFile | undefined;
    let seenResets = fill.resets.length;
    let pos = start;
    const close = () => {
      try {
        file?.close();
      } catch {
        // Already closed.
      }
      file = undefined;
    };
    const check = () => {
      if (fill.state === "failed") throw fill.error;
      for (; seenResets < fill.resets.length; seenResets++) {
        if (pos > start && fill.resets[seenResets]! < pos) {
          throw new ImageError(
            `The download of blob ${d.digest} started over: request it again`,
          );
        }
      }
    };
    return {
      async read(view) {
        if (pos === end) {
          close();
          return null;
        }
        if (!file) {
          seenResets = fill.resets.length;
          file = await open(start);
        }
        for (;;) {
          check();
          // Whether the fill had ended before this read, not after it.
          const complete = fill.state === "done";
          const n = await file.read(
            view.subarray(0, Math.min(view.byteLength, end - pos)),
          );
          if (n !== null && n > 0) {
            pos += n;
            // The last bytes go out only once the whole blob is verified.
            if (pos === end && fill.state !== "done") await fill.result;
            check();
            if (pos === end) close();
            return view.subarray(0, n);
          }
          if (complete) {
            throw sizeMismatch(d.size, pos, `cached blob ${d.digest}`);
          }
          if (fill.state === "writing") await fill.changed();
        }
      },
      cancel() {
        close();
        return Promise.resolve();
      },
    };
  }
}
