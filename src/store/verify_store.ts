/**
 * Checks a store: every blob hashes to its name, every manifest and index
 * parses and references blobs that exist with the declared sizes.
 *
 * @module
 */

import { isDigest } from "../oci/digest.ts";
import {
  type Descriptor,
  isIndexMediaType,
  parseManifest,
} from "../oci/manifest.ts";
import type { OperationOptions } from "../progress.ts";
import { hashFile } from "./_hash_file.ts";
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
}

/** Options for {@linkcode verifyStore}. */
export interface VerifyStoreOptions extends OperationOptions {
  /** Check only the closure of this reference (tag, digest or prefix). */
  reference?: string | undefined;
}

/**
 * Verifies the store (or the closure of one reference): re-hashes blobs and
 * checks that manifests and indexes parse and reference existing blobs.
 * Every problem is reported, not just the first.
 *
 * @param store The store.
 * @param options Reference to limit the check to, abort signal, progress.
 * @returns The problems found.
 *
 * @example Check a store
 * ```ts
 * import { Store } from "@ironcore/image";
 * import { verifyStore } from "@ironcore/image/store";
 * const result = await verifyStore(await Store.open(await Deno.makeTempDir()));
 * console.log(result.ok); // true
 * ```
 */
export async function verifyStore(
  store: Store,
  options: VerifyStoreOptions = {},
): Promise<VerifyStoreResult> {
  const problems: VerifyProblem[] = [];
  const declared = new Map<string, number>();
  const roots: Descriptor[] = [];
  if (options.reference !== undefined) {
    roots.push((await store.resolve(options.reference)).descriptor);
  } else {
    try {
      roots.push(...await tagIndexOf(store).entries());
    } catch (e) {
      problems.push({ kind: "index", message: (e as Error).message });
    }
  }
  // Walk manifests and indexes from the roots.
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const d = queue.shift()!;
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
      if (parsed.kind === "index") queue.push(...parsed.index.manifests);
      else queue.push(parsed.manifest.config, ...parsed.manifest.layers);
    } catch (e) {
      problems.push({
        kind: "invalid",
        digest: d.digest,
        message: `Manifest ${d.digest} does not parse: ${(e as Error).message}`,
      });
    }
  }
  // Re-hash the blobs: all of them, or those reachable from the reference.
  const files = await blobStoreOf(store).blobs();
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
  for (const f of toHash) {
    const name = f.digest;
    options.onProgress?.({
      name,
      digest: name,
      done: 0,
      total: f.size,
      phase: "start",
    });
    const actual = await hashFile(
      store.blobPath(f.digest),
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
    bytes += actual.size;
    if (isDigest(actual.digest) && actual.digest !== f.digest) {
      problems.push({
        kind: "corrupt",
        digest: f.digest,
        message:
          `Blob ${f.digest} is corrupt: its bytes hash to ${actual.digest}`,
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
  return { ok: problems.length === 0, problems, blobs: toHash.length, bytes };
}
