/**
 * Pushes an image from the local store to a registry.
 *
 * @module
 */

import { invalidReference, severalTags } from "../_errors.ts";
import { InvalidImageError, NotFoundError } from "../errors.ts";
import type { Descriptor } from "../oci/manifest.ts";
import {
  formatReference,
  parseReference,
  type Reference,
  withTag,
} from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import { RegistryClient } from "../registry/client.ts";
import { fileStream, type FileStreamOptions } from "../store/_file_stream.ts";
import { ownedChunks } from "../net/deadline_fetch.ts";
import { blobSourcesOf } from "../store/_internal.ts";
import type { Store } from "../store/store.ts";
import { putManifests, tagManifest } from "./_manifests.ts";
import { mountSources } from "./_mount_sources.ts";
import { runPool } from "./_pool.ts";

/** Options for {@linkcode pushImage}. */
export interface PushImageOptions extends OperationOptions {
  /** The registry client. Default: a new {@linkcode RegistryClient}. */
  client?: RegistryClient | undefined;
  /**
   * Also tag each per-architecture manifest of an index as `<tag>-<arch>` in
   * the registry. Default `true`.
   */
  pushSubManifests?: boolean | undefined;
  /** Blobs transferred at once. Default 4. */
  concurrency?: number | undefined;
}

/** What {@linkcode pushImage} did. */
export interface PushImageResult {
  /** Full reference pushed. */
  reference: string;
  /** Descriptor of the pushed manifest or index. */
  descriptor: Descriptor;
  /**
   * Blobs (configs and layers) uploaded. Manifests and the index are not
   * counted: they are sent unless the tag already names the image.
   */
  uploaded: number;
  /**
   * Blobs linked from another repository of the registry where the store
   * saw them (a cross-repository mount): no bytes sent.
   */
  mounted: number;
  /** Blobs (configs and layers) the registry already had. */
  skipped: number;
  /** Extra tags written for per-architecture manifests. */
  subTags: string[];
}

interface Plan {
  blobs: Map<string, Descriptor & { name: string }>;
  children: {
    descriptor: Descriptor;
    bytes: Uint8Array;
    arch?: string | undefined;
  }[];
  bytes: Uint8Array;
}

/** An image ID: a digest or digest prefix, with or without `sha256:`. */
const IMAGE_ID = /^(sha256:)?[a-f0-9]{1,64}$/;

function assertTagged(
  ref: Reference,
  reference: string,
): asserts ref is Reference & { tag: string } {
  if (ref.tag === undefined) {
    throw invalidReference(
      reference,
      "push needs a tag to push to, e.g. NAME:1.0",
    );
  }
}

/** The one tag of the image an ID names: where pushing it goes. */
async function onlyTag(
  store: Store,
  reference: string,
  digest: string,
): Promise<string> {
  const tags = (await store.tags())
    .filter((t) => t.descriptor.digest === digest)
    .map((t) => t.reference);
  if (tags.length === 1) return tags[0]!;
  if (tags.length > 1) {
    throw severalTags(reference, tags, "push one of them by its tag");
  }
  throw new NotFoundError(
    `Image ${reference} has no tag to push to: tag it with the name it gets in the registry, then push that tag`,
    { reference },
  );
}

async function plan(store: Store, top: Descriptor): Promise<Plan> {
  const blobs = new Map<string, Descriptor & { name: string }>();
  const children: Plan["children"] = [];
  const addManifest = async (d: Descriptor, label: string) => {
    const parsed = await store.readManifest(d);
    if (parsed.kind !== "manifest") {
      throw new InvalidImageError(
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
 * again; a blob the store saw in another repository of the same registry
 * (pushed or pulled there before) is mounted from there, and uploaded only
 * when the registry declines; blobs move in a bounded concurrent pool.
 *
 * @param store The local store.
 * @param reference The local tag, which is also the destination; or the
 * image ID (a digest or digest prefix) of an image with one tag, which then
 * is the destination.
 * @param options Registry client, sub-manifest tags, concurrency, abort
 * signal, progress.
 * @returns What was pushed.
 * @throws {AmbiguousReferenceError} When an image ID names an image with
 * several tags.
 *
 * @example Push an image
 * ```ts
 * import { buildImage, pushImage, RegistryClient, Store } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "registry.example.com/os:1.0",
 * });
 * // For this example, an empty registry that accepts every upload, answering
 * // through the client's fetch option.
 * const client = new RegistryClient({
 *   fetch: async (input, init) => {
 *     const req = new Request(input, init);
 *     await req.body?.cancel();
 *     if (req.method === "POST") {
 *       return new Response(null, { status: 202, headers: { location: "/upload" } });
 *     }
 *     return new Response(null, { status: req.method === "PUT" ? 201 : 404 });
 *   },
 * });
 * const result = await pushImage(store, "registry.example.com/os:1.0", { client });
 * console.log(result.uploaded); // 2: config and kernel
 * console.log(result.subTags); // ["registry.example.com/os:1.0-amd64"]
 * ```
 */
export async function pushImage(
  store: Store,
  reference: string,
  options: PushImageOptions = {},
): Promise<PushImageResult> {
  const client = options.client ?? new RegistryClient();
  // An image ID may also read as a repository name (`3f2a9c`); anything
  // else must be a reference, and is refused as one before the store is
  // read.
  if (!IMAGE_ID.test(reference)) {
    assertTagged(parseReference(reference), reference);
  }
  const resolved = await store.resolve(reference);
  const destination = resolved.reference !== undefined
    ? reference
    : await onlyTag(store, reference, resolved.descriptor.digest);
  const ref: Reference = parseReference(destination);
  assertTagged(ref, reference);
  const { annotations: _a, ...descriptor } = resolved.descriptor;
  const repo = { registry: ref.registry, repository: ref.repository };
  const p = await plan(store, descriptor);
  const result: PushImageResult = {
    reference: formatReference(ref),
    descriptor,
    uploaded: 0,
    mounted: 0,
    skipped: 0,
    subTags: [],
  };
  const signal = options.signal;
  const progress = options.onProgress;
  const sources = blobSourcesOf(store);
  const [existing, seen] = await Promise.all([
    client.headManifest(repo, ref.tag, { signal }),
    mountSources(
      store,
      descriptor.digest,
      [...p.blobs.values()].map((b) => b.digest),
      repo.registry,
    ),
  ]);
  const complete = existing?.digest === descriptor.digest;
  /** Blobs known to be in the repository now. */
  const present: Descriptor[] = [];
  /** A blob the registry had, or linked: no bytes to send. */
  const none = (blob: Descriptor & { name: string }) =>
    progress?.({
      name: blob.name,
      digest: blob.digest,
      done: blob.size,
      total: blob.size,
      phase: "skip",
    });
  const skip = (blob: Descriptor & { name: string }) => {
    result.skipped++;
    present.push(blob);
    none(blob);
  };
  try {
    if (complete) {
      // The tag already names this image, so the registry holds every blob
      // of it (it accepts a manifest only then): all are skipped.
      for (const blob of p.blobs.values()) skip(blob);
    } else {
      await runPool([...p.blobs.values()], options.concurrency ?? 4, async (
        blob,
      ) => {
        if (await client.hasBlob(repo, blob.digest, { signal })) {
          skip(blob);
          return;
        }
        const path = store.blobPath(blob.digest);
        const stopPolling = new AbortController();
        let started = false;
        const { mounted } = await client.uploadBlob(
          repo,
          {
            digest: blob.digest,
            size: blob.size,
            open: (offset, length) => {
              if (!started) {
                started = true;
                progress?.({
                  name: blob.name,
                  digest: blob.digest,
                  done: 0,
                  total: blob.size,
                  phase: "start",
                });
              }
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
              // Each chunk is read for this upload alone: it may be let go
              // of as soon as it is sent.
              return fileStream(path, o).then(ownedChunks);
            },
          },
          {
            signal,
            mountFrom: seen.get(blob.digest)?.find((r) =>
              r !== repo.repository
            ),
          },
        ).finally(() => stopPolling.abort());
        present.push(blob);
        if (mounted) {
          result.mounted++;
          none(blob);
          return;
        }
        result.uploaded++;
        progress?.({
          name: blob.name,
          digest: blob.digest,
          done: blob.size,
          total: blob.size,
          phase: "done",
        });
      }, signal);
      await putManifests(client, repo, {
        children: p.children,
        top: { descriptor, bytes: p.bytes },
        tagOrDigest: ref.tag,
      }, signal);
    }
  } finally {
    // Where the blobs are now, for mounts into the next repository; also
    // after a failure, for the blobs that made it.
    await sources.record(
      present.map((b) => ({ digest: b.digest, ...repo })),
    );
  }
  if (options.pushSubManifests ?? true) {
    for (const child of p.children) {
      if (!child.arch) continue;
      const subRef = withTag(ref, `${ref.tag}-${child.arch}`);
      await tagManifest(client, repo, subRef.tag!, child, {
        lookFirst: complete,
        signal,
      });
      result.subTags.push(formatReference(subRef));
    }
  }
  return result;
}
