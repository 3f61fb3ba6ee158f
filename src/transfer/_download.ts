/**
 * Downloads one blob into the store with resume: an interrupted or stalled
 * transfer continues with an HTTP range request from the bytes already on
 * disk, in this run (with capped exponential backoff and jitter) or the next.
 *
 * @module
 */

import type { Descriptor } from "../oci/manifest.ts";
import type { ProgressCallback } from "../progress.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";
import { blobStoreOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";
import { fillPartial } from "./_resume.ts";

/** How hard to try. */
export interface DownloadOptions {
  /** Attempts after the first one fails midway. Default 5. */
  retries?: number | undefined;
  /** Abort an attempt when no byte arrives for this long (ms). Default 30 s. */
  stallTimeout?: number | undefined;
  /** First backoff delay (ms); doubles up to 10 s, with jitter. Default 250. */
  retryDelay?: number | undefined;
  /** Aborts the download; the partial bytes stay for a later run. */
  signal?: AbortSignal | undefined;
  /** Progress. */
  onProgress?: ProgressCallback | undefined;
}

/**
 * Downloads a blob unless the store has it.
 *
 * @returns `true` when bytes were downloaded, `false` when the blob was present.
 */
export async function downloadBlob(
  store: Store,
  client: RegistryClient,
  repo: Repository,
  blob: Pick<Descriptor, "digest" | "size"> & { name: string },
  options: DownloadOptions = {},
): Promise<boolean> {
  const { digest, size, name } = blob;
  const progress = options.onProgress;
  const partial = await blobStoreOf(store).beginBlob(blob);
  if (!partial) {
    await blobStoreOf(store).touchBlob(digest);
    progress?.({ name, digest, done: size, total: size, phase: "skip" });
    return false;
  }
  const event = (phase: "start" | "progress" | "done", done: number) =>
    progress?.({ name, digest, done, total: size, phase });
  try {
    event("start", partial.offset);
    await fillPartial(partial, {
      host: repo.registry,
      open: (offset, signal) =>
        client.getBlob(repo, digest, { offset, signal }),
    }, {
      retries: options.retries,
      stallTimeout: options.stallTimeout,
      retryDelay: options.retryDelay,
      signal: options.signal,
      onBytes: progress ? (n) => event("progress", n) : undefined,
      failure: ({ retries, stalled, cause }) =>
        `Download of ${name} from ${repo.registry} ${
          stalled === undefined
            ? `failed after ${retries} retries (${cause.message})`
            : `stalled: no data for ${stalled / 1000} s, ${retries} retries`
        }; run pull again to resume`,
    });
    event("done", size);
    return true;
  } finally {
    partial.close();
  }
}
