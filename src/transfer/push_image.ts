/**
 * Pushes an image from the local store to a registry.
 *
 * @module
 */

import { invalidReference } from "../_errors.ts";
import type { Descriptor } from "../oci/manifest.ts";
import {
  formatReference,
  parseReference,
  type Reference,
  withTag,
} from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import type { RegistryClient } from "../registry/client.ts";
import { fileStream, type FileStreamOptions } from "../store/_file_stream.ts";
import type { Store } from "../store/store.ts";
import { runPool } from "./_pool.ts";

/** Options for {@linkcode push}. */
export interface PushOptions extends OperationOptions {
  /**
   * Also tag each per-architecture manifest of an index as `<tag>-<arch>` in
   * the registry. Default `true`.
   */
  pushSubManifests?: boolean;
  /** Blobs transferred at once. Default 4. */
  concurrency?: number;
}

/** What {@linkcode push} did. */
export interface PushResult {
  /** Full reference pushed. */
  reference: string;
  /** Descriptor of the pushed manifest or index. */
  descriptor: Descriptor;
  /** Blobs uploaded. */
  uploaded: number;
  /** Blobs the registry already had. */
  skipped: number;
  /** Extra tags written for per-architecture manifests. */
  subTags: string[];
}

interface Plan {
  blobs: Map<string, Descriptor & { name: string }>;
  children: { descriptor: Descriptor; bytes: Uint8Array; arch?: string }[];
  bytes: Uint8Array;
}

async function plan(store: Store, top: Descriptor): Promise<Plan> {
  const blobs = new Map<string, Descriptor & { name: string }>();
  const children: Plan["children"] = [];
  const addManifest = async (d: Descriptor, label: string) => {
    const parsed = await store.readManifest(d);
    if (parsed.kind !== "manifest") {
      throw new TypeError(
        `Nested index ${d.digest} is not supported: push its manifests instead`,
      );
    }
    const m = parsed.manifest;
    blobs.set(m.config.digest, { ...m.config, name: `${label}config` });
    for (const l of m.layers) {
      const kind = l.mediaType.replace(
        /^application\/vnd\.ironcore\.image\./,
        "",
      );
      if (!blobs.has(l.digest)) {
        blobs.set(l.digest, { ...l, name: `${label}${kind}` });
      }
    }
    return parsed.bytes;
  };
  const top2 = await store.readManifest(top);
  if (top2.kind === "index") {
    for (const child of top2.index.manifests) {
      const arch = child.platform?.architecture;
      const bytes = await addManifest(child, arch ? `${arch}/` : "");
      const entry: Plan["children"][number] = { descriptor: child, bytes };
      if (arch) entry.arch = arch;
      children.push(entry);
    }
  } else {
    await addManifest(top, "");
  }
  return { blobs, children, bytes: top2.bytes };
}

/**
 * Pushes a local image or index, with every blob it references, to the
 * registry named by the reference. Blobs the registry has are not uploaded
 * again; blobs move in a bounded concurrent pool.
 *
 * @param store The local store.
 * @param client The registry client.
 * @param reference The local tag, which is also the destination.
 * @param options Sub-manifest tags, concurrency, abort signal, progress.
 * @returns What was pushed.
 *
 * @example
 * ```ts ignore
 * import { push, RegistryClient, Store } from "../../mod.ts";
 * const store = await Store.open("/tmp/store");
 * await push(store, new RegistryClient(), "registry.example.com/os/demo:1.0");
 * ```
 */
export async function push(
  store: Store,
  client: RegistryClient,
  reference: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const ref: Reference = parseReference(reference);
  if (ref.tag === undefined) {
    throw invalidReference(
      reference,
      "push needs a tag to push to, e.g. NAME:1.0",
    );
  }
  const { descriptor: top } = await store.resolve(reference);
  const { annotations: _a, ...descriptor } = top;
  const repo = { registry: ref.registry, repository: ref.repository };
  const p = await plan(store, descriptor);
  const result: PushResult = {
    reference: formatReference(ref),
    descriptor,
    uploaded: 0,
    skipped: 0,
    subTags: [],
  };
  const signal = options.signal;
  const progress = options.onProgress;
  const existing = await client.headManifest(repo, ref.tag);
  const complete = existing?.digest === descriptor.digest;
  if (!complete) {
    await runPool(
      [...p.blobs.values()],
      options.concurrency ?? 4,
      async (blob) => {
        const opts = signal ? { signal } : {};
        if (await client.hasBlob(repo, blob.digest, opts)) {
          result.skipped++;
          progress?.({
            name: blob.name,
            digest: blob.digest,
            done: blob.size,
            total: blob.size,
            phase: "skip",
          });
          return;
        }
        progress?.({
          name: blob.name,
          digest: blob.digest,
          done: 0,
          total: blob.size,
          phase: "start",
        });
        const path = store.blobPath(blob.digest);
        const stopPolling = new AbortController();
        await client.uploadBlob(
          repo,
          blob,
          (offset, length) => {
            const o: FileStreamOptions = {
              offset,
              signal: stopPolling.signal,
            };
            if (length !== undefined) o.length = length;
            if (progress) {
              o.onBytes = (n) =>
                progress({
                  name: blob.name,
                  digest: blob.digest,
                  done: offset + n,
                  total: blob.size,
                  phase: "progress",
                });
            }
            return fileStream(path, o);
          },
          signal ? { signal } : {},
        ).finally(() => stopPolling.abort());
        result.uploaded++;
        progress?.({
          name: blob.name,
          digest: blob.digest,
          done: blob.size,
          total: blob.size,
          phase: "done",
        });
      },
      signal,
    );
    for (const child of p.children) {
      await client.putManifest(
        repo,
        child.descriptor.digest,
        child.bytes,
        child.descriptor.mediaType,
      );
    }
    await client.putManifest(repo, ref.tag, p.bytes, descriptor.mediaType);
  }
  if (options.pushSubManifests ?? true) {
    for (const child of p.children) {
      if (!child.arch) continue;
      const subRef = withTag(ref, `${ref.tag}-${child.arch}`);
      const tag = subRef.tag!;
      const have = complete ? await client.headManifest(repo, tag) : undefined;
      if (have?.digest !== child.descriptor.digest) {
        await client.putManifest(
          repo,
          tag,
          child.bytes,
          child.descriptor.mediaType,
        );
      }
      result.subTags.push(formatReference(subRef));
    }
  }
  return result;
}
