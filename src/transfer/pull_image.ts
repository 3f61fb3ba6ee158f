/**
 * Pulls an image from a registry into the local store.
 *
 * @module
 */

import { InvalidImageError } from "../errors.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { isManifestMediaType } from "../oci/manifest.ts";
import { type Platform, selectPlatform } from "../oci/platform.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import {
  type FetchedManifest,
  RegistryClient,
  type Repository,
} from "../registry/client.ts";
import type { Store } from "../store/store.ts";
import { downloadBlob, type DownloadOptions } from "./_download.ts";
import { runPool } from "./_pool.ts";
import { blobSourcesOf, blobStoreOf, tagIndexOf } from "../store/_internal.ts";

/** Options for {@linkcode pullImage}. */
export interface PullImageOptions extends OperationOptions {
  /** The registry client. Default: a new {@linkcode RegistryClient}. */
  client?: RegistryClient | undefined;
  /** Pull only this platform of an index, stored as a single-arch image. */
  platform?: Platform | undefined;
  /** Blobs transferred at once. Default 4. */
  concurrency?: number | undefined;
  /** Resumes of a blob download after a drop or stall. Default 5. */
  retries?: number | undefined;
  /** Milliseconds without data before a download attempt is abandoned. Default 30 s. */
  stallTimeout?: number | undefined;
}

/** What {@linkcode pullImage} did. */
export interface PullImageResult {
  /** Full reference tagged in the store. */
  reference: string;
  /** Descriptor of the stored manifest or index. */
  descriptor: Descriptor;
  /** Blobs downloaded. */
  downloaded: number;
  /** Blobs the store already had. */
  skipped: number;
}

function blobName(d: Descriptor, prefix: string): string {
  if (d.mediaType.includes("config")) return `${prefix}config`;
  return `${prefix}${
    d.mediaType.replace(/^application\/vnd\.ironcore\.image\./, "")
  }`;
}

async function fetchChild(
  client: RegistryClient,
  repo: Repository,
  d: Descriptor,
  signal: AbortSignal | undefined,
): Promise<FetchedManifest> {
  if (!isManifestMediaType(d.mediaType)) {
    throw new InvalidImageError(
      `Invalid index: entry ${d.digest} has media type ${d.mediaType}, expected an image manifest`,
    );
  }
  const m = await client.getManifest(repo, d.digest, { signal });
  if (m.kind !== "manifest") {
    throw new InvalidImageError(
      `Invalid index: entry ${d.digest} is itself an index`,
    );
  }
  if (m.bytes.byteLength !== d.size) {
    throw new InvalidImageError(
      `Invalid index: entry ${d.digest} declares ${d.size} bytes, the manifest has ${m.bytes.byteLength}`,
    );
  }
  return m;
}

/**
 * Pulls a manifest or index with everything it references into the store,
 * verifying every blob's digest and size while it streams to disk, then
 * tags it locally. Blobs already in the store are not downloaded again.
 *
 * @param store The local store.
 * @param reference What to pull, e.g. `registry.example.com/os/demo:1.0`.
 * @param options Registry client, platform, concurrency, abort signal,
 * progress.
 * @returns What was pulled.
 *
 * @example Pull one architecture of an image
 * ```ts
 * import { buildImage, pullImage, RegistryClient, Store } from "@ironcore/image";
 * import { isDigest } from "@ironcore/image/oci";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const origin = await Store.open(`${dir}/origin`);
 * await buildImage(origin, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "registry.example.com/os:1.0",
 * });
 * // For this example, the registry answers from the store `origin` (a tag or
 * // a digest names one of its blobs), through the client's fetch option.
 * const client = new RegistryClient({
 *   fetch: async (input) => {
 *     const name = new URL(new Request(input).url).pathname.split("/").pop()!;
 *     const digest = isDigest(name)
 *       ? name
 *       : (await origin.resolve(`registry.example.com/os:${name}`)).descriptor.digest;
 *     return new Response(await Deno.readFile(origin.blobPath(digest)));
 *   },
 * });
 * const store = await Store.open(`${dir}/store`);
 * const result = await pullImage(store, "registry.example.com/os:1.0", {
 *   client,
 *   platform: { os: "linux", architecture: "amd64" },
 *   onProgress: (e) => {
 *     if (e.phase === "done") console.log(`${e.name}: ${e.done} bytes`);
 *   },
 * });
 * console.log(result.downloaded); // 2: config and kernel, each digest-verified
 * ```
 */
export async function pullImage(
  store: Store,
  reference: string,
  options: PullImageOptions = {},
): Promise<PullImageResult> {
  const client = options.client ?? new RegistryClient();
  const signal = options.signal;
  const ref = parseReference(reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  let top = await client.getManifest(repo, ref.digest ?? ref.tag!, {
    signal,
  });
  let children: { prefix: string; manifest: FetchedManifest }[] = [];
  if (top.kind === "index") {
    if (options.platform) {
      const d = selectPlatform(top.index.manifests, options.platform);
      top = await fetchChild(client, repo, d, signal);
      children = [];
    } else {
      // The manifests of an index are fetched at once, not one after another.
      const entries = top.index.manifests;
      children = new Array(entries.length);
      await runPool(
        entries.map((d, i) => ({ d, i })),
        options.concurrency ?? 4,
        async ({ d, i }) => {
          children[i] = {
            prefix: d.platform ? `${d.platform.architecture}/` : "",
            manifest: await fetchChild(client, repo, d, signal),
          };
        },
        signal,
      );
    }
  }
  const manifests = top.kind === "manifest"
    ? [{ prefix: "", manifest: top }]
    : children;
  const blobs = new Map<string, Descriptor & { name: string }>();
  for (const { prefix, manifest } of manifests) {
    if (manifest.kind !== "manifest") continue;
    for (const d of [manifest.manifest.config, ...manifest.manifest.layers]) {
      if (!blobs.has(d.digest)) {
        blobs.set(d.digest, { ...d, name: blobName(d, prefix) });
      }
    }
  }
  const result: PullImageResult = {
    reference: formatReference(ref),
    descriptor: top.descriptor,
    downloaded: 0,
    skipped: 0,
  };
  const progress = options.onProgress;
  const download: DownloadOptions = {};
  if (signal) download.signal = signal;
  if (progress) download.onProgress = progress;
  if (options.retries !== undefined) download.retries = options.retries;
  if (options.stallTimeout !== undefined) {
    download.stallTimeout = options.stallTimeout;
  }
  await runPool([...blobs.values()], options.concurrency ?? 4, async (blob) => {
    if (await downloadBlob(store, client, repo, blob, download)) {
      result.downloaded++;
    } else result.skipped++;
  }, signal);
  for (const { manifest } of children) {
    await blobStoreOf(store).putBytes(
      manifest.bytes,
      manifest.descriptor.mediaType,
    );
  }
  await blobStoreOf(store).putBytes(top.bytes, top.descriptor.mediaType);
  const localRef = ref.tag !== undefined || ref.digest === undefined
    ? formatReference({
      registry: ref.registry,
      repository: ref.repository,
      tag: ref.tag ?? "latest",
    })
    : undefined;
  if (localRef !== undefined) {
    await tagIndexOf(store).setTags([{
      reference: localRef,
      descriptor: top.descriptor,
    }]);
    result.reference = localRef;
  } else {
    await tagIndexOf(store).update((ix) => ({
      ...ix,
      manifests: [
        ...ix.manifests.filter((d) =>
          d.digest !== top.descriptor.digest || d.annotations !== undefined
        ),
        top.descriptor,
      ],
    }));
  }
  // Where the blobs are, for mounts when they are pushed to another
  // repository of this registry.
  await blobSourcesOf(store).record(
    [...blobs.values()].map((b) => ({ digest: b.digest, ...repo })),
  );
  return result;
}
