/**
 * A pull cache for long-running controllers: concurrent requests for the same
 * reference share one pull, failed pulls are retried with backoff, and
 * callers can wait for or subscribe to completion.
 *
 * @module
 */

import { formatPlatform, type Platform } from "../oci/platform.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import type { ProgressCallback } from "../progress.ts";
import { retry } from "../net/retry.ts";
import { RegistryClient } from "../registry/client.ts";
import type { Store } from "../store/store.ts";
import { pullImage, type PullImageResult } from "./pull_image.ts";

/** State of one reference in a {@linkcode PullCache}. */
export type PullState =
  | { state: "pulling"; attempt: number }
  | { state: "ready"; result: PullImageResult }
  | { state: "failed"; error: unknown; attempts: number };

/** Event sent to subscribers when a reference changes state. */
export interface PullEvent {
  /** The full reference (with `@@os/arch` when a platform was asked for). */
  key: string;
  /** The new state. */
  state: PullState;
}

/** Options for {@linkcode PullCache}. */
export interface PullCacheOptions {
  /** The registry client. Default: a new {@linkcode RegistryClient}. */
  client?: RegistryClient | undefined;
  /** Attempts per request before it fails. Default 3. */
  attempts?: number | undefined;
  /** First delay between attempts (ms), doubling each time. Default 1000. */
  retryDelay?: number | undefined;
  /** Blobs transferred at once per pull. */
  concurrency?: number | undefined;
  /** Progress of every pull. */
  onProgress?: ProgressCallback | undefined;
}

/** Options for {@linkcode PullCache.pull}. */
export interface PullCachePullOptions {
  /** Pull only this platform of an index. */
  platform?: Platform | undefined;
  /** Stops waiting for this caller; the shared pull goes on. */
  signal?: AbortSignal | undefined;
}

function keyOf(reference: string, platform?: Platform): string {
  const full = formatReference(parseReference(reference));
  return platform ? `${full}@@${formatPlatform(platform)}` : full;
}

/**
 * Shares pulls between callers and remembers their outcome.
 *
 * @example Pull once for many callers
 * ```ts
 * import { buildImage, PullCache, RegistryClient, Store } from "@ironcore/image";
 * import { isDigest } from "@ironcore/image/oci";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const origin = await Store.open(`${dir}/origin`);
 * await buildImage(origin, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "registry.example.com/os:1.0",
 * });
 * // For this example, the registry answers from the store `origin` (a tag or
 * // a digest names one of its blobs), through the client's fetch option.
 * const client = new RegistryClient({
 *   fetch: async (input) => {
 *     const name = new URL(new Request(input).url).pathname.split("/").pop()!;
 *     const digest = isDigest(name)
 *       ? name
 *       : (await origin.resolve(`registry.example.com/os:${name}`)).descriptor.digest;
 *     return new Response(await Deno.readFile(origin.blobPath(digest)));
 *   },
 * });
 * const cache = new PullCache(await Store.open(`${dir}/store`), { client });
 * const unsubscribe = cache.subscribe((e) => console.log(e.key, e.state.state));
 * const [a, b] = await Promise.all([
 *   cache.pull("registry.example.com/os:1.0"),
 *   cache.pull("registry.example.com/os:1.0"),
 * ]); // "pulling", then "ready": one pull
 * unsubscribe();
 * console.log(a === b); // true
 * ```
 */
export class PullCache {
  readonly #store: Store;
  readonly #client: RegistryClient;
  readonly #options: PullCacheOptions;
  readonly #inflight = new Map<string, Promise<PullImageResult>>();
  readonly #states = new Map<string, PullState>();
  readonly #listeners = new Set<(e: PullEvent) => void>();

  /**
   * Creates a cache over a store.
   *
   * @param store Where images are pulled to.
   * @param options Registry client, retries, concurrency, progress.
   */
  constructor(store: Store, options: PullCacheOptions = {}) {
    this.#store = store;
    this.#client = options.client ?? new RegistryClient();
    this.#options = options;
  }

  #set(key: string, state: PullState): void {
    this.#states.set(key, state);
    for (const l of this.#listeners) {
      try {
        l({ key, state });
      } catch {
        // A subscriber's failure must not break the pull.
      }
    }
  }

  /**
   * Pulls a reference, or joins the pull already under way for it. A
   * reference pulled before is pulled again (cheaply: blobs present are not
   * fetched) so that tags are re-resolved.
   *
   * @param reference The image.
   * @param options Platform and abort signal for this caller.
   * @returns The pull's result.
   */
  pull(
    reference: string,
    options: PullCachePullOptions = {},
  ): Promise<PullImageResult> {
    const key = keyOf(reference, options.platform);
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#run(key, reference, options.platform).finally(() =>
        this.#inflight.delete(key)
      );
      this.#inflight.set(key, p);
    }
    if (!options.signal) return p;
    const signal = options.signal;
    // One caller giving up does not cancel the shared pull.
    return new Promise<PullImageResult>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(resolve, reject).finally(() =>
        signal.removeEventListener("abort", onAbort)
      );
    });
  }

  async #run(
    key: string,
    reference: string,
    platform?: Platform | undefined,
  ): Promise<PullImageResult> {
    let attempts = 0;
    try {
      return await retry(async () => {
        this.#set(key, { state: "pulling", attempt: ++attempts });
        const result = await pullImage(this.#store, reference, {
          client: this.#client,
          platform,
          concurrency: this.#options.concurrency,
          onProgress: this.#options.onProgress,
        });
        this.#set(key, { state: "ready", result });
        return result;
      }, {
        maxAttempts: this.#options.attempts ?? 3,
        minTimeout: this.#options.retryDelay ?? 1000,
        // Every failure: a controller asks for images that may not have been
        // pushed yet, and each pull has retried its own requests already.
        isRetriable: () => true,
      });
    } catch (error) {
      this.#set(key, { state: "failed", error, attempts });
      throw error;
    }
  }

  /**
   * The last known state of a reference.
   *
   * @param reference The image.
   * @param platform The platform, when one was asked for.
   * @returns The state, or `undefined` when never requested.
   */
  state(reference: string, platform?: Platform): PullState | undefined {
    return this.#states.get(keyOf(reference, platform));
  }

  /**
   * Calls `listener` on every state change of every reference.
   *
   * @param listener Receives events.
   * @returns A function that unsubscribes.
   */
  subscribe(listener: (e: PullEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
