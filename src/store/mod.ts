/**
 * The local image store: an OCI image layout directory that other OCI tools
 * read, with tags, listing, inspection, deletion, verification and pruning.
 *
 * @example List what a store holds
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { listImages } from "@ironcore/image/store";
 * const store = await Store.open(await Deno.makeTempDir());
 * console.log(await listImages(store)); // []
 * ```
 *
 * @module
 */

export {
  defaultStorePath,
  type ReadBlobOptions,
  type ResolvedRef,
  Store,
  type StoreOptions,
  type TagEntry,
} from "./store.ts";
export {
  deleteImage,
  type DeleteImageOptions,
  type ImageDetails,
  type ImageSummary,
  inspectImage,
  listImages,
  type ManifestDetails,
} from "./images.ts";
export {
  type VerifyProblem,
  verifyStore,
  type VerifyStoreOptions,
  type VerifyStoreResult,
} from "./verify_store.ts";
export {
  DEFAULT_PRUNE_GRACE,
  pruneStore,
  type PruneStoreOptions,
  type PruneStoreResult,
} from "./prune_store.ts";
