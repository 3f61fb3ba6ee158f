/**
 * Downloads one blob into the store with resume: an interrupted or stalled
 * transfer continues with an HTTP range request from the bytes already on
 * disk, in this run (with capped exponential backoff and jitter) or the next.
 */

import { stalled } from "../_errors.ts";
import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
  RegistryError,
  SizeMismatchError,
  StallError,
  UnauthorizedError,
} from "../errors.ts";
import type { Descriptor } from "../oci/manifest.ts";
import type { ProgressCallback } from "../progress.ts";
import { backoffDelay, sleep } from "../net/retry.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";
import type { Store } from "../store/store.ts";
import { contentRangeStart } from "./_resume.ts";
import { blobStoreOf } from "../store/_internal.ts";

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
  const retries = options.retries ?? 5;
  const stallMs = options.stallTimeout ?? 30_000;
  const baseDelay = options.retryDelay ?? 250;
  try {
    progress?.({
      name,
      digest,
      done: partial.offset,
      total: size,
      phase: "start",
    });
    for (let attempt = 0;; attempt++) {
      options.signal?.throwIfAborted();
      const controller = new AbortController();
      const onOuterAbort = () => controller.abort(options.signal!.reason);
      options.signal?.addEventListener("abort", onOuterAbort, { once: true });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () => controller.abort(stalled(stallMs)),
          stallMs,
        );
      };
      const startOffset = partial.offset;
      try {
        if (partial.offset < size) {
          arm();
          const offset = partial.offset;
          const res = await client.getBlob(repo, digest, {
            offset,
            signal: controller.signal,
          });
          if (
            offset > 0 &&
            (res.status !== 206 || contentRangeStart(res) !== offset)
          ) {
            // The server sent the whole blob (or a range we did not ask for).
            if (res.status === 200) {
              await partial.restart();
            } else {
              await res.body?.cancel();
              await partial.restart();
              throw new TypeError("Unexpected range in response");
            }
          }
          await partial.append(res.body!, {
            onBytes: (n) => {
              arm();
              progress?.({
                name,
                digest,
                done: n,
                total: size,
                phase: "progress",
              });
            },
            signal: controller.signal,
          });
        }
        clearTimeout(timer);
        await partial.commit();
        progress?.({ name, digest, done: size, total: size, phase: "done" });
        return true;
      } catch (e) {
        clearTimeout(timer);
        if (options.signal?.aborted) throw options.signal.reason;
        // Wrong content, missing content and refused access do not heal;
        // everything else (drops, resets, stalls, 5xx) is worth a resume.
        const short = e instanceof SizeMismatchError && partial.offset < size;
        const retriable = !(
          (e instanceof SizeMismatchError &&
            !(short && partial.offset > startOffset)) ||
          e instanceof DigestMismatchError ||
          e instanceof NotFoundError || e instanceof UnauthorizedError ||
          e instanceof InvalidImageError ||
          (e instanceof RegistryError && e.status !== 0 && e.status < 500)
        );
        const wrong = e instanceof SizeMismatchError ||
          e instanceof DigestMismatchError;
        if (!retriable || attempt >= retries) {
          if (wrong) {
            await partial.discard();
            throw e;
          }
          if (controller.signal.reason instanceof StallError) {
            throw new StallError(
              `Download of ${name} from ${repo.registry} stalled: no data for ${
                stallMs / 1000
              } s, ${attempt} retries; run pull again to resume`,
              { host: repo.registry, timeout: stallMs, cause: e },
            );
          }
          if (retriable) {
            throw new RegistryError(
              `Download of ${name} from ${repo.registry} failed after ${attempt} retries (${
                (e as Error).message
              }); run pull again to resume`,
              { host: repo.registry, status: 0, cause: e },
            );
          }
          throw e;
        }
        await sleep(backoffDelay(baseDelay, attempt), options.signal);
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onOuterAbort);
      }
    }
  } finally {
    partial.close();
  }
}
