/**
 * The parts of a {@linkcode Store} that library code uses and users do not:
 * its blobs (ingest, partial downloads, temporary files), its tag index
 * (`index.json` updates under the lock) and where its blobs were seen in
 * registries. The store registers them when it is made; these accessors
 * hand them out.
 *
 * @module
 */

import type { BlobSources } from "./_blob_sources.ts";
import type { BlobStore } from "./_blob_store.ts";
import type { TagIndex } from "./_tag_index.ts";
import type { Store } from "./store.ts";

/** The parts of a store. */
export interface StoreParts {
  /** Its blobs. */
  blobs: BlobStore;
  /** Its tag index. */
  index: TagIndex;
  /** Where its blobs were seen in registries. */
  sources: BlobSources;
}

const parts = new WeakMap<Store, StoreParts>();

/**
 * Records a store's parts. Called by the store's constructor only.
 *
 * @param store The store.
 * @param storeParts Its parts.
 */
export function register(store: Store, storeParts: StoreParts): void {
  parts.set(store, storeParts);
}

function partsOf(store: Store): StoreParts {
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

/**
 * Where the blobs of a store were seen in registries.
 *
 * @param store The store.
 * @returns Its blob sources.
 */
export function blobSourcesOf(store: Store): BlobSources {
  return partsOf(store).sources;
}
