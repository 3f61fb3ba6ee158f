/**
 * Frees space: deletes blobs no entry of `index.json` reaches, and stale
 * temporary files.
 *
 * @module
 */

import { storeUnusable } from "../_errors.ts";
import { type Descriptor, parseManifest } from "../oci/manifest.ts";
import type { Store } from "./store.ts";
import { blobStoreOf, tagIndexOf } from "./_internal.ts";

/** Options for {@linkcode pruneStore}. */
export interface PruneStoreOptions {
  /** Report what would be deleted without deleting. */
  dryRun?: boolean | undefined;
  /**
   * Spare blobs and temporary files written or used within this many
   * milliseconds: a concurrent build or pull may be about to tag them.
   * Default 10 minutes.
   */
  grace?: number | undefined;
}

/** What {@linkcode pruneStore} deleted (or would delete). */
export interface PruneStoreResult {
  /** Unreferenced blobs removed. */
  blobs: { digest: string; size: number }[];
  /** Stale temporary files removed. */
  temp: { path: string; size: number }[];
  /** Bytes freed. */
  freed: number;
  /** Unreferenced blobs kept because they were used within the grace period. */
  recent: number;
}

/** Default grace period of {@linkcode pruneStore}, in milliseconds. */
export const DEFAULT_PRUNE_GRACE: number = 10 * 60 * 1000;

/**
 * Deletes blobs that no tag or untagged entry of the store reaches (walking
 * indexes and manifests), and temporary files of interrupted runs. Runs under
 * the store lock, so no tag changes meanwhile, and spares anything written or
 * used within the grace period.
 *
 * @param store The store.
 * @param options Dry run and grace period.
 * @returns What was freed.
 * @throws {StoreError} When a reachable manifest is missing or unreadable,
 * since its blobs cannot be told apart from garbage (run verify).
 *
 * @example See what pruning would delete
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { pruneStore } from "@ironcore/image/store";
 * const result = await pruneStore(await Store.open(await Deno.makeTempDir()), { dryRun: true });
 * console.log(result.freed); // 0
 * ```
 */
export async function pruneStore(
  store: Store,
  options: PruneStoreOptions = {},
): Promise<PruneStoreResult> {
  const grace = options.grace ?? DEFAULT_PRUNE_GRACE;
  const cutoff = Date.now() - grace;
  return await tagIndexOf(store).exclusive(async () => {
    const reachable = new Set<string>();
    const queue: Descriptor[] = [...await tagIndexOf(store).entries()];
    while (queue.length > 0) {
      const d = queue.shift()!;
      if (reachable.has(d.digest)) continue;
      reachable.add(d.digest);
      if (!/manifest|index/.test(d.mediaType)) continue;
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(store.blobPath(d.digest));
      } catch {
        throw storeUnusable(
          store.path,
          `manifest ${d.digest} is missing, so prune cannot tell which blobs it needs: run verify, then pull or delete the image`,
        );
      }
      try {
        const parsed = parseManifest(bytes, { mediaType: d.mediaType });
        if (parsed.kind === "index") queue.push(...parsed.index.manifests);
        else queue.push(parsed.manifest.config, ...parsed.manifest.layers);
      } catch (e) {
        throw storeUnusable(
          store.path,
          `manifest ${d.digest} does not parse (${
            (e as Error).message
          }): run verify, then pull or delete the image`,
        );
      }
    }
    const result: PruneStoreResult = {
      blobs: [],
      temp: [],
      freed: 0,
      recent: 0,
    };
    for (const b of await blobStoreOf(store).blobs()) {
      if (reachable.has(b.digest)) continue;
      if (b.lastUsed.getTime() > cutoff) {
        result.recent++;
        continue;
      }
      if (!options.dryRun) await blobStoreOf(store).removeBlob(b.digest);
      result.blobs.push({ digest: b.digest, size: b.size });
      result.freed += b.size;
    }
    for (const t of await blobStoreOf(store).tempFiles()) {
      if ((t.mtime?.getTime() ?? 0) > cutoff) continue;
      if (!options.dryRun) await Deno.remove(t.path).catch(() => {});
      result.temp.push({ path: t.path, size: t.size });
      result.freed += t.size;
    }
    return result;
  });
}
