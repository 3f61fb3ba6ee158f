/**
 * Where a push or copy from a store may mount each blob from, in one
 * registry: the repositories the store saw the blob in (`.sources.json`),
 * then the other repositories of that registry that the store tags with the
 * same image. The tags count because a push needs no write access to the
 * store, so a push that ran without it noted nothing, and `tag` then `push`
 * to a new name is how an image reaches a second repository. A wrong guess
 * costs no request: a registry that declines a mount opens the upload
 * session the blob then goes up in.
 *
 * @module
 */

import type { Digest } from "../oci/digest.ts";
import { parseReference } from "../oci/reference.ts";
import { blobSourcesOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";

/**
 * The repositories of a registry that may hold each blob of an image.
 *
 * @param store The store the image is in.
 * @param image The digest of the image's manifest or index.
 * @param blobs The digests of its blobs.
 * @param registry The registry host.
 * @returns For each blob with any, the repositories: where the store saw it
 * first, newest first, then those that tag the image in the store.
 */
export async function mountSources(
  store: Store,
  image: Digest,
  blobs: readonly Digest[],
  registry: string,
): Promise<Map<Digest, string[]>> {
  const [seen, tags] = await Promise.all([
    blobSourcesOf(store).find(blobs, registry),
    store.tags(),
  ]);
  const tagged = new Set<string>();
  for (const { reference, descriptor } of tags) {
    if (descriptor.digest !== image) continue;
    try {
      const ref = parseReference(reference);
      if (ref.registry === registry) tagged.add(ref.repository);
    } catch {
      // A name another tool wrote; it names no repository to mount from.
    }
  }
  if (tagged.size === 0) return seen;
  for (const digest of blobs) {
    const repos = seen.get(digest) ?? [];
    seen.set(digest, [...new Set([...repos, ...tagged])]);
  }
  return seen;
}
