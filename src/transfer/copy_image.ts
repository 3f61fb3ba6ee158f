/**
 * Copies an image between registries, or between a registry and a local
 * store, without staging it on disk.
 *
 * @module
 */

import { invalidReference } from "../_errors.ts";
import { InvalidImageError, RegistryError } from "../errors.ts";
import { ownedChunks } from "../net/deadline_fetch.ts";
import { BlobHash, DigestVerifier } from "../oci/digest_verifier.ts";
import {
  type Descriptor,
  isManifestMediaType,
  type ParsedManifest,
} from "../oci/manifest.ts";
import {
  formatReference,
  parseReference,
  type Reference,
  withTag,
} from "../oci/reference.ts";
import type { OperationOptions, ProgressCallback } from "../progress.ts";
import { RegistryClient, type Repository } from "../registry/client.ts";
import { fileStream, type FileStreamOptions } from "../store/_file_stream.ts";
import type { Store } from "../store/store.ts";
import { downloadBlob, type DownloadOptions } from "./_download.ts";
import { putManifests, tagManifest } from "./_manifests.ts";
import { mountSources } from "./_mount_sources.ts";
import { runPool } from "./_pool.ts";
import { contentRangeStart } from "./_resume.ts";
import { blobSourcesOf, blobStoreOf, tagIndexOf } from "../store/_internal.ts";

/**
 * One end of a copy. Without `store` it is a registry: `reference` is a full
 * registry reference such as `registry.example.com/os/demo:1.0`. With
 * `store` it is that local store: as a source, `reference` is anything
 * {@linkcode Store.resolve} accepts (a tag, digest or unique digest prefix);
 * as a destination, the tag to set.
 */
export interface CopyEndpoint {
  /** The image reference. */
  reference: string;
  /** The local store, when this end is a store rather than a registry. */
  store?: Store | undefined;
}

/** Options for {@linkcode copyImage}. */
export interface CopyImageOptions extends OperationOptions {
  /**
   * The registry client for both ends. Default: a new
   * {@linkcode RegistryClient}.
   */
  client?: RegistryClient | undefined;
  /**
   * When the destination is a registry tag and the image an index, also tag
   * each per-architecture manifest as `<tag>-<arch>`, as
   * {@linkcode pushImage} does. Default `true`. Ignored for a store
   * destination.
   */
  pushSubManifests?: boolean | undefined;
  /** Blobs transferred at once. Default 4. */
  concurrency?: number | undefined;
  /**
   * Attempts after a download from a registry into a store breaks off
   * midway; each resumes where the last stopped. Default 5.
   */
  retries?: number | undefined;
  /**
   * Milliseconds without data before a download into a store is abandoned
   * (and resumed). Default 30 s.
   */
  stallTimeout?: number | undefined;
}

/** What {@linkcode copyImage} did. */
export interface CopyImageResult {
  /** Full source reference (for a store source resolved by digest, the input). */
  source: string;
  /** Full destination reference. */
  destination: string;
  /** Descriptor of the copied manifest or index; the same on both ends. */
  descriptor: Descriptor;
  /** Blobs whose bytes were transferred. */
  copied: number;
  /** Blobs linked by a cross-repository mount in the same registry. */
  mounted: number;
  /** Blobs the destination already had. */
  skipped: number;
  /** Extra `<tag>-<arch>` tags written for per-architecture manifests. */
  subTags: string[];
}

/** A manifest or index with its exact bytes. */
interface Node {
  descriptor: Descriptor;
  bytes: Uint8Array;
  parsed: ParsedManifest;
  arch?: string | undefined;
}

interface Blob extends Descriptor {
  /** Display name, e.g. `amd64/kernel`. */
  name: string;
}

interface OpenOptions {
  /** Bytes passed so far, counted from the blob's start. */
  onBytes?: ((done: number) => void) | undefined;
  /** Hashes the bytes of an untrusted source on the way. */
  check?: SourceCheck | undefined;
  /** Tells the stream its consumer is done (stops progress polling). */
  done?: AbortSignal | undefined;
}

/** Opens a fresh stream of a blob's bytes `[offset, offset + length)`. */
type Opener = (
  blob: Blob,
  offset: number,
  length: number | undefined,
  options: OpenOptions,
) => Promise<ReadableStream<Uint8Array>>;

interface Source {
  /** The reference shown in the result. */
  label: string;
  top: Node;
  children: Node[];
  blobs: Blob[];
  /** The registry repository, for mounts; undefined for a store. */
  repo?: Repository | undefined;
  /** The store, when the source is one: it knows where blobs were seen. */
  store?: Store | undefined;
  open: Opener;
}

const LAYER_PREFIX = /^application\/vnd\.ironcore\.image\./;

function collectBlobs(top: Node, children: readonly Node[]): Blob[] {
  const blobs = new Map<string, Blob>();
  const manifests = top.parsed.kind === "manifest" ? [top] : children;
  for (const node of manifests) {
    if (node.parsed.kind !== "manifest") continue;
    const prefix = node.arch ? `${node.arch}/` : "";
    const m = node.parsed.manifest;
    if (!blobs.has(m.config.digest)) {
      blobs.set(m.config.digest, { ...m.config, name: `${prefix}config` });
    }
    for (const l of m.layers) {
      if (!blobs.has(l.digest)) {
        blobs.set(l.digest, {
          ...l,
          name: `${prefix}${l.mediaType.replace(LAYER_PREFIX, "")}`,
        });
      }
    }
  }
  return [...blobs.values()];
}

function nestedIndex(d: Descriptor): never {
  throw new InvalidImageError(
    `Invalid index: entry ${d.digest} is itself an index; nested indexes are not supported, copy its manifests instead`,
  );
}

async function registrySource(
  client: RegistryClient,
  reference: string,
  options: CopyImageOptions,
): Promise<Source> {
  const ref = parseReference(reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  const signal = options.signal;
  const opts = signal ? { signal } : {};
  const fetched = await client.getManifest(repo, ref.digest ?? ref.tag!, opts);
  const top: Node = {
    descriptor: fetched.descriptor,
    bytes: fetched.bytes,
    parsed: fetched,
  };
  const children: Node[] = [];
  if (fetched.kind === "index") {
    const entries = fetched.index.manifests;
    const found = new Array<Node>(entries.length);
    await runPool(
      entries.map((d, i) => ({ d, i })),
      options.concurrency ?? 4,
      async ({ d, i }) => {
        if (!isManifestMediaType(d.mediaType)) {
          throw new InvalidImageError(
            `Invalid index: entry ${d.digest} has media type ${d.mediaType}, expected an image manifest`,
          );
        }
        const m = await client.getManifest(repo, d.digest, opts);
        if (m.kind !== "manifest") nestedIndex(d);
        if (m.bytes.byteLength !== d.size) {
          throw new InvalidImageError(
            `Invalid index: entry ${d.digest} declares ${d.size} bytes, the manifest has ${m.bytes.byteLength}`,
          );
        }
        const node: Node = {
          descriptor: { ...m.descriptor, mediaType: d.mediaType },
          bytes: m.bytes,
          parsed: m,
        };
        const arch = d.platform?.architecture;
        if (arch) node.arch = arch;
        found[i] = node;
      },
      signal,
    );
    children.push(...found);
  }
  return {
    label: formatReference(ref),
    top,
    children,
    blobs: collectBlobs(top, children),
    repo,
    open: async (blob, offset, length, openOptions) => {
      const getOptions: Parameters<RegistryClient["getBlob"]>[2] = { offset };
      if (length !== undefined) getOptions.length = length;
      if (signal) getOptions.signal = signal;
      const res = await client.getBlob(repo, blob.digest, getOptions);
      // A registry that ignored the range sends the whole blob.
      const from = offset > 0 && res.status === 200 ? 0 : offset;
      if (
        res.status === 206 && (offset > 0 || length !== undefined) &&
        contentRangeStart(res) !== offset
      ) {
        await res.body?.cancel();
        throw new RegistryError(
          `Registry ${repo.registry} answered a range request for blob ${blob.digest} with the wrong range`,
          { host: repo.registry, status: res.status },
        );
      }
      if (!res.body) {
        throw new RegistryError(
          `Registry ${repo.registry} sent no body for blob ${blob.digest}`,
          { host: repo.registry, status: res.status },
        );
      }
      const check = openOptions.check;
      // The last byte leaves only once the digest is known to be right.
      // Each chunk is the response's own, passed on once: the upload may
      // let go of it as soon as it is sent.
      return ownedChunks(res.body.pipeThrough(
        new DigestVerifier(blob, {
          what: `blob ${blob.digest}`,
          offset: from,
          start: offset,
          end: length === undefined ? undefined : offset + length,
          state: check?.hash,
          holdBack: true,
          onBytes: openOptions.onBytes,
          onError: check ? (e) => check.fail(e) : undefined,
        }),
      ));
    },
  };
}

async function storeSource(
  store: Store,
  reference: string,
): Promise<Source> {
  const resolved = await store.resolve(reference);
  const { annotations: _a, platform: _p, ...descriptor } = resolved.descriptor;
  const topParsed = await store.readManifest(descriptor);
  const top: Node = { descriptor, bytes: topParsed.bytes, parsed: topParsed };
  const children: Node[] = [];
  if (topParsed.kind === "index") {
    for (const d of topParsed.index.manifests) {
      const parsed = await store.readManifest(d);
      if (parsed.kind !== "manifest") nestedIndex(d);
      const { annotations: _ca, platform: _cp, ...plain } = d;
      const node: Node = { descriptor: plain, bytes: parsed.bytes, parsed };
      const arch = d.platform?.architecture;
      if (arch) node.arch = arch;
      children.push(node);
    }
  }
  return {
    label: resolved.reference ?? reference,
    top,
    children,
    blobs: collectBlobs(top, children),
    store,
    open: (blob, offset, length, { onBytes, done }) => {
      const o: FileStreamOptions = { offset };
      if (length !== undefined) o.length = length;
      if (onBytes) o.onBytes = (n) => onBytes(offset + n);
      if (done) o.signal = done;
      // Fresh chunks, read for this upload alone.
      return fileStream(store.blobPath(blob.digest), o).then(
        ownedChunks,
      );
    },
  };
}

/**
 * The streams opened for one blob of an untrusted source: the running hash
 * they share, and their first failure, which stops the upload (a wrong
 * blob is not worth the upload's retries).
 */
class SourceCheck {
  readonly hash: BlobHash = new BlobHash();
  #abort = new AbortController();
  /** The first failure of a source stream, which explains a failed upload. */
  error: Error | undefined;

  /** Aborted on the first failure, so that the upload stops retrying. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Records a failure of the source and stops the upload. */
  fail(e: unknown): void {
    this.error ??= e instanceof Error ? e : new Error(String(e));
    this.#abort.abort(this.error);
  }
}

function blobEvent(
  progress: ProgressCallback | undefined,
  blob: Blob,
  phase: "start" | "skip" | "done",
): void {
  progress?.({
    name: blob.name,
    digest: blob.digest,
    done: phase === "start" ? 0 : blob.size,
    total: blob.size,
    phase,
  });
}

/**
 * Sends one blob to a registry: mounted from `mountFrom` when the registry
 * agrees, else streamed from the source (hashed on the way when the source
 * is a registry).
 *
 * @returns `true` when mounted.
 */
async function uploadOne(
  client: RegistryClient,
  repo: Repository,
  source: Source,
  blob: Blob,
  mountFrom: string | undefined,
  options: CopyImageOptions,
): Promise<boolean> {
  const signal = options.signal;
  const progress = options.onProgress;
  const onBytes = progress
    ? (done: number) =>
      progress({
        name: blob.name,
        digest: blob.digest,
        done,
        total: blob.size,
        phase: "progress",
      })
    : undefined;
  // A registry source is untrusted: its bytes are hashed on the way.
  const check = source.repo ? new SourceCheck() : undefined;
  const stopPolling = new AbortController();
  const uploadSignal = check
    ? signal ? AbortSignal.any([signal, check.signal]) : check.signal
    : signal;
  let started = false;
  try {
    const openOptions: OpenOptions = { done: stopPolling.signal };
    if (onBytes) openOptions.onBytes = onBytes;
    if (check) openOptions.check = check;
    const { mounted } = await client.uploadBlob(repo, {
      digest: blob.digest,
      size: blob.size,
      open: async (offset, length) => {
        if (check?.error) throw check.error;
        if (!started) {
          started = true;
          blobEvent(progress, blob, "start");
        }
        try {
          return await source.open(blob, offset, length, openOptions);
        } catch (e) {
          check?.fail(e);
          throw e;
        }
      },
    }, { signal: uploadSignal, mountFrom });
    return mounted;
  } catch (e) {
    // The upload fails with a transport error when its body errors; the
    // body's own error says what went wrong.
    throw check?.error ?? e;
  } finally {
    stopPolling.abort();
  }
}

async function toRegistry(
  client: RegistryClient,
  source: Source,
  dst: Reference,
  result: CopyImageResult,
  options: CopyImageOptions,
): Promise<void> {
  const repo = { registry: dst.registry, repository: dst.repository };
  const top = source.top;
  const signal = options.signal;
  const progress = options.onProgress;
  if (dst.digest !== undefined && dst.digest !== top.descriptor.digest) {
    throw invalidReference(
      formatReference(dst),
      `the source is ${top.descriptor.digest}: drop the @sha256:… part or name the matching image`,
    );
  }
  // Sub-manifest tags are checked before anything is written.
  const subs: { ref: Reference; node: Node }[] = [];
  if ((options.pushSubManifests ?? true) && dst.tag !== undefined) {
    for (const node of source.children) {
      if (node.arch) {
        subs.push({ ref: withTag(dst, `${dst.tag}-${node.arch}`), node });
      }
    }
  }
  const target = dst.tag ?? top.descriptor.digest;
  const existing = await client.headManifest(repo, target, { signal });
  const complete = existing?.digest === top.descriptor.digest;
  // Within one registry the source repository has every blob; a store
  // knows where it saw its blobs.
  const sameRegistry = source.repo?.registry === repo.registry
    ? source.repo.repository
    : undefined;
  const seen = source.store && !complete
    ? await mountSources(
      source.store,
      top.descriptor.digest,
      source.blobs.map((b) => b.digest),
      repo.registry,
    )
    : new Map<string, string[]>();
  /** Blobs known to be in the destination now. */
  const present: Blob[] = [];
  try {
    if (complete) {
      // A registry stores a manifest only once everything it references
      // is there, so the blobs need no checking.
      for (const blob of source.blobs) blobEvent(progress, blob, "skip");
      result.skipped += source.blobs.length;
      present.push(...source.blobs);
    } else {
      await runPool(source.blobs, options.concurrency ?? 4, async (blob) => {
        if (await client.hasBlob(repo, blob.digest, { signal })) {
          result.skipped++;
          present.push(blob);
          blobEvent(progress, blob, "skip");
          return;
        }
        const mountFrom = sameRegistry ??
          seen.get(blob.digest)?.find((r) => r !== repo.repository);
        if (await uploadOne(client, repo, source, blob, mountFrom, options)) {
          result.mounted++;
          blobEvent(progress, blob, "skip");
        } else {
          result.copied++;
          blobEvent(progress, blob, "done");
        }
        present.push(blob);
      }, signal);
      await putManifests(client, repo, {
        children: source.children,
        top,
        tagOrDigest: target,
      }, signal);
    }
  } finally {
    // A store source notes where its blobs are now, for later mounts.
    if (source.store) {
      await blobSourcesOf(source.store).record(
        present.map((b) => ({ digest: b.digest, ...repo })),
      );
    }
  }
  for (const { ref, node } of subs) {
    await tagManifest(client, repo, ref.tag!, node, {
      lookFirst: complete,
      signal,
    });
    result.subTags.push(formatReference(ref));
  }
}

async function toStore(
  client: RegistryClient,
  store: Store,
  source: Source,
  dst: Reference,
  result: CopyImageResult,
  options: CopyImageOptions,
): Promise<void> {
  const signal = options.signal;
  const download: DownloadOptions = {};
  if (signal) download.signal = signal;
  if (options.onProgress) download.onProgress = options.onProgress;
  if (options.retries !== undefined) download.retries = options.retries;
  if (options.stallTimeout !== undefined) {
    download.stallTimeout = options.stallTimeout;
  }
  await runPool(source.blobs, options.concurrency ?? 4, async (blob) => {
    if (source.repo) {
      // From a registry this is a pull: resumable, verified, retried.
      const got = await downloadBlob(
        store,
        client,
        source.repo,
        blob,
        download,
      );
      if (got) result.copied++;
      else result.skipped++;
      return;
    }
    if (await blobStoreOf(store).holds(blob.digest, blob.size)) {
      result.skipped++;
      blobEvent(options.onProgress, blob, "skip");
      return;
    }
    // ingest() hashes and checks the size itself.
    const body = await source.open(blob, 0, undefined, {});
    const opts: OperationOptions = {};
    if (signal) opts.signal = signal;
    if (options.onProgress) opts.onProgress = options.onProgress;
    await blobStoreOf(store).putStream(
      { digest: blob.digest, size: blob.size, name: blob.name },
      body,
      opts,
    );
    result.copied++;
  }, signal);
  for (const child of source.children) {
    await blobStoreOf(store).putBytes(child.bytes, child.descriptor.mediaType);
  }
  const top = source.top.descriptor;
  await blobStoreOf(store).putBytes(source.top.bytes, top.mediaType);
  await tagIndexOf(store).setTags([{
    reference: formatReference(dst),
    descriptor: {
      mediaType: top.mediaType,
      digest: top.digest,
      size: top.size,
    },
  }]);
  const from = source.repo;
  if (from) {
    // As after a pull: where the blobs are, for later mounts.
    await blobSourcesOf(store).record(
      source.blobs.map((b) => ({ digest: b.digest, ...from })),
    );
  }
}

/**
 * Copies a manifest or index with everything it references from one
 * registry or store to another. Between registries, each blob streams from
 * the source's GET straight into the destination's upload and is hashed on
 * the way; nothing is staged on disk. Blobs the destination has are skipped,
 * and within one registry they are mounted across repositories instead of
 * uploaded. Manifests are copied byte for byte, so every digest is
 * preserved.
 *
 * @param source Where the image is: a registry reference, or a store and a
 * reference in it.
 * @param destination Where it goes: a registry reference (a tag, or a digest
 * that must match the source's), or a store and the tag to set.
 * @param options Registry client, sub-manifest tags, concurrency, abort
 * signal, progress.
 * @returns What was copied.
 * @throws {NotFoundError} When the source does not exist; the destination is
 * left unchanged.
 * @throws {DigestMismatchError} When a blob from the source registry does
 * not match its digest.
 *
 * @example Copy an image into another store
 * ```ts
 * import { buildImage, copyImage, Store } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const a = await Store.open(`${dir}/a`);
 * await buildImage(a, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "my-os:1.0",
 * });
 * const b = await Store.open(`${dir}/b`);
 * // A string instead of { store, reference } names an image in a registry:
 * // copyImage("ghcr.io/org/os:1.0", "registry.internal/mirror/os:1.0").
 * const result = await copyImage(
 *   { store: a, reference: "my-os:1.0" },
 *   { store: b, reference: "my-os:1.0" },
 * );
 * console.log(result.copied, result.descriptor.digest); // 2 "sha256:…", the same index
 * ```
 */
export async function copyImage(
  source: string | CopyEndpoint,
  destination: string | CopyEndpoint,
  options: CopyImageOptions = {},
): Promise<CopyImageResult> {
  const client = options.client ?? new RegistryClient();
  if (typeof source === "string") source = { reference: source };
  if (typeof destination === "string") destination = { reference: destination };
  const dst = parseReference(destination.reference);
  if (destination.store && dst.tag === undefined) {
    throw invalidReference(
      destination.reference,
      "a copy into the local store needs a tag, e.g. NAME:1.0",
    );
  }
  options.signal?.throwIfAborted();
  const src = source.store
    ? await storeSource(source.store, source.reference)
    : await registrySource(client, source.reference, options);
  const result: CopyImageResult = {
    source: src.label,
    destination: formatReference(dst),
    descriptor: src.top.descriptor,
    copied: 0,
    mounted: 0,
    skipped: 0,
    subTags: [],
  };
  if (destination.store) {
    await toStore(client, destination.store, src, dst, result, options);
  } else {
    await toRegistry(client, src, dst, result, options);
  }
  return result;
}
