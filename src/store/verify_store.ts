/**
 * Checks a store: every blob hashes to its name, every manifest and index
 * parses and references blobs that exist with the declared sizes. A blob
 * whose bytes do not match its name is marked corrupt, so that the next
 * build, pull or import replaces it; with `repair` it is removed.
 *
 * @module
 */

import { type Digest, isDigest } from "../oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  isIndexMediaType,
  parseManifest,
} from "../oci/manifest.ts";
import type { OperationOptions } from "../progress.ts";
import { hashOpenFile } from "./_hash_file.ts";
import type { Store } from "./store.ts";
import { blobStoreOf, tagIndexOf } from "./_internal.ts";

/** One problem {@linkcode verifyStore} found. */
export interface VerifyProblem {
  /** What is wrong: `corrupt`, `missing`, `size`, `invalid`, `index`. */
  kind: "corrupt" | "missing" | "size" | "invalid" | "index";
  /** The blob concerned, when there is one. */
  digest?: string | undefined;
  /** One line saying what is wrong. */
  message: string;
  /**
   * The images that need the blob: the tags (full references), or the
   * digests of untagged store entries, whose image reaches it. Empty for a
   * blob no image reaches.
   */
  images?: string[] | undefined;
}

/** Result of {@linkcode verifyStore}. */
export interface VerifyStoreResult {
  /** `true` when no problem was found. */
  ok: boolean;
  /** Every problem, in the order found. */
  problems: VerifyProblem[];
  /** Blobs re-hashed. */
  blobs: number;
  /** Bytes re-hashed. */
  bytes: number;
  /**
   * With `repair`, the corrupt blobs removed; the next pull or build of the
   * images that need them writes them again. Empty without `repair`.
   */
  repaired: string[];
}

/** Options for {@linkcode verifyStore}. */
export interface VerifyStoreOptions extends OperationOptions {
  /** Check only the closure of this reference (tag, digest or prefix). */
  reference?: string | undefined;
  /**
   * Remove every blob whose bytes do not match its digest (under the
   * store's lock, and only if the file is still the one that was hashed),
   * so that the next pull or build writes it again. Needs write access to
   * the store, which is checked before anything is hashed. Default `false`:
   * corrupt blobs are only marked, which makes the next build, pull or
   * import replace them where it would otherwise skip them.
   */
  repair?: boolean | undefined;
}

/** A blob file as it was when hashed. */
interface Hashed {
  digest: Digest;
  ino: number | null;
  dev: number;
  size: number;
  mtime: number | undefined;
}

/**
 * Verifies the store (or the closure of one reference): re-hashes blobs and
 * checks that manifests and indexes parse and reference existing blobs.
 * Every problem is reported, not just the first. A corrupt blob is marked
 * (where the store is writable) so that the next build, pull or import
 * replaces it, or removed with `repair`.
 *
 * @param store The store.
 * @param options Reference to limit the check to, repair, abort signal,
 * progress.
 * @returns The problems found, and the blobs removed.
 *
 * @example Check a store
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { verifyStore } from "@ironcore/image/store";
 * const result = await verifyStore(await Store.open(await Deno.makeTempDir()));
 * console.log(result.ok); // true
 * ```
 *
 * @example Remove corrupt blobs, then restore them with a pull
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { verifyStore } from "@ironcore/image/store";
 * const store = await Store.open(await Deno.makeTempDir());
 * const result = await verifyStore(store, { repair: true });
 * for (const p of result.problems) {
 *   if (p.kind === "corrupt") console.log(`${p.digest}: pull or build ${p.images} again`);
 * }
 * console.log(result.repaired); // [] in an empty store
 * ```
 */
export async function verifyStore(
  store: Store,
  options: VerifyStoreOptions = {},
): Promise<VerifyStoreResult> {
  const blobs = blobStoreOf(store);
  const index = tagIndexOf(store);
  if (options.repair && await isDirectory(store.path)) {
    // Repairing writes: find a missing permission before hours of hashing.
    await index.exclusive(() => Promise.resolve());
  }
  const problems: VerifyProblem[] = [];
  const declared = new Map<string, number>();
  /** Which entries of `index.json` (by name) start a walk at a digest. */
  const rootNames = new Map<string, Set<string>>();
  /** The manifests and indexes that reference a digest. */
  const parents = new Map<string, Set<string>>();
  const roots: Descriptor[] = [];
  if (options.reference !== undefined) {
    const resolved = await store.resolve(options.reference);
    roots.push(resolved.descriptor);
    addTo(
      rootNames,
      resolved.descriptor.digest,
      resolved.reference ?? resolved.descriptor.digest,
    );
  } else {
    try {
      for (const d of await index.entries()) {
        roots.push(d);
        addTo(
          rootNames,
          d.digest,
          d.annotations?.[ANNOTATION_REF_NAME] ?? d.digest,
        );
      }
    } catch (e) {
      problems.push({ kind: "index", message: (e as Error).message });
    }
  }
  /** The images that reach a digest: the names of the roots above it. */
  const imagesOf = (digest: string): string[] => {
    const out = new Set<string>();
    const seen = new Set<string>();
    const queue = [digest];
    while (queue.length > 0) {
      const d = queue.shift()!;
      if (seen.has(d)) continue;
      seen.add(d);
      for (const name of rootNames.get(d) ?? []) out.add(name);
      queue.push(...(parents.get(d) ?? []));
    }
    return [...out];
  };
  // Walk manifests and indexes from the roots.
  const seen = new Set<string>();
  const queue: { d: Descriptor; parent?: string }[] = roots.map((d) => ({
    d,
  }));
  while (queue.length > 0) {
    const { d, parent } = queue.shift()!;
    if (parent !== undefined) addTo(parents, d.digest, parent);
    const known = declared.get(d.digest);
    if (known !== undefined && known !== d.size) {
      problems.push({
        kind: "size",
        digest: d.digest,
        message:
          `Blob ${d.digest} is referenced with sizes ${known} and ${d.size}`,
      });
    }
    declared.set(d.digest, d.size);
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    const isManifestLike = isIndexMediaType(d.mediaType) ||
      /manifest|index/.test(d.mediaType);
    if (!isManifestLike) continue;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(store.blobPath(d.digest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        problems.push({
          kind: "missing",
          digest: d.digest,
          message: `Manifest ${d.digest} is missing`,
        });
        continue;
      }
      throw e;
    }
    try {
      const parsed = parseManifest(bytes, { mediaType: d.mediaType });
      const children = parsed.kind === "index"
        ? parsed.index.manifests
        : [parsed.manifest.config, ...parsed.manifest.layers];
      for (const c of children) queue.push({ d: c, parent: d.digest });
    } catch (e) {
      problems.push({
        kind: "invalid",
        digest: d.digest,
        message: `Manifest ${d.digest} does not parse: ${(e as Error).message}`,
      });
    }
  }
  // Re-hash the blobs: all of them, or those reachable from the reference.
  const files = await blobs.blobs();
  const present = new Map(files.map((f) => [f.digest as string, f.size]));
  for (const [digest, size] of declared) {
    if (!present.has(digest)) {
      problems.push({
        kind: "missing",
        digest,
        message: `Blob ${digest} is referenced but missing`,
      });
    } else if (present.get(digest) !== size) {
      problems.push({
        kind: "size",
        digest,
        message: `Blob ${digest} has ${
          present.get(digest)
        } bytes, its descriptor says ${size}`,
      });
    }
  }
  const toHash = options.reference === undefined
    ? files
    : files.filter((f) => declared.has(f.digest));
  let bytes = 0;
  const corrupt: Hashed[] = [];
  for (const f of toHash) {
    const name = f.digest;
    options.onProgress?.({
      name,
      digest: name,
      done: 0,
      total: f.size,
      phase: "start",
    });
    let file: Deno.FsFile;
    try {
      file = await Deno.open(store.blobPath(f.digest), { read: true });
    } catch (e) {
      // Removed since the listing (a prune, a repair): nothing to hash.
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    let actual: { digest: Digest; size: number };
    let info: Deno.FileInfo;
    try {
      info = await file.stat();
      actual = await hashOpenFile(
        file,
        options.onProgress
          ? (n) =>
            options.onProgress!({
              name,
              digest: name,
              done: n,
              total: f.size,
              phase: "progress",
            })
          : undefined,
        options.signal,
      );
    } finally {
      file.close();
    }
    bytes += actual.size;
    if (isDigest(actual.digest) && actual.digest !== f.digest) {
      problems.push({
        kind: "corrupt",
        digest: f.digest,
        message:
          `Blob ${f.digest} is corrupt: its bytes hash to ${actual.digest}`,
      });
      corrupt.push({
        digest: f.digest,
        ino: info.ino,
        dev: info.dev,
        size: info.size,
        mtime: info.mtime?.getTime(),
      });
    }
    options.onProgress?.({
      name,
      digest: name,
      done: f.size,
      total: f.size,
      phase: "done",
    });
  }
  for (const p of problems) {
    if (p.digest !== undefined) p.images = imagesOf(p.digest);
  }
  const repaired: string[] = [];
  if (options.repair && corrupt.length > 0) {
    // Under the lock, so no prune runs meanwhile; a blob replaced by a
    // build or pull since it was hashed is left alone.
    await index.exclusive(async () => {
      for (const c of corrupt) {
        const now = await Deno.stat(blobs.blobPath(c.digest)).catch(() =>
          undefined
        );
        if (
          now === undefined || now.ino !== c.ino || now.dev !== c.dev ||
          now.size !== c.size || now.mtime?.getTime() !== c.mtime
        ) {
          continue;
        }
        await blobs.removeBlob(c.digest);
        repaired.push(c.digest);
      }
    });
  } else {
    for (const c of corrupt) await blobs.markCorrupt(c.digest);
  }
  return {
    ok: problems.length === 0,
    problems,
    blobs: toHash.length,
    bytes,
    repaired,
  };
}

function addTo(map: Map<string, Set<string>>, key: string, value: string) {
  let set = map.get(key);
  if (!set) map.set(key, set = new Set());
  set.add(value);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
