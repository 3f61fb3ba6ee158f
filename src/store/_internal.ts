/**
 * The parts of a {@linkcode Store} that library code uses and users do not:
 * its blobs (ingest, partial downloads, temporary files) and its tag index
 * (`index.json` updates under the lock). The store registers them when it is
 * made; these accessors hand them out.
 *
 * @module
 */

import type { BlobStore } from "./_blob_store.ts";
import type { TagIndex } from "./_tag_index.ts";
import type { Store } from "./store.ts";

const parts = new WeakMap<Store, { blobs: BlobStore; index: TagIndex }>();

/**
 * Records a store's parts. Called by the store's constructor only.
 *
 * @param store The store.
 * @param blobs Its blobs.
 * @param index Its tag index.
 */
export function register(
  store: Store,
  blobs: BlobStore,
  index: TagIndex,
): void {
  parts.set(store, { blobs, index });
}

function partsOf(store: Store): { blobs: BlobStore; index: TagIndex } {
  const found = parts.get(store);
  if (!found) throw new TypeError("Not a store: open one with Store.open()");
  return found;
}

/**
 * The blobs of a store.
 *
 * @param store The store.
 * @returns Its blob store.
 */
export function blobStoreOf(store: Store): BlobStore {
  return partsOf(store).blobs;
}

/**
 * The tag index of a store.
 *
 * @param store The store.
 * @returns Its `index.json`.
 */
export function tagIndexOf(store: Store): TagIndex {
  return partsOf(store).index;
}
