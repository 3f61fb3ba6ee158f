/**
 * Streams one layer of an image (the kernel, the initramfs, …) out of the
 * local store or straight from a registry, verifying it as it is read.
 *
 * @module
 */

import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
  SizeMismatchError,
} from "../errors.ts";
import { DigestVerifier } from "../oci/digest_verifier.ts";
import type {
  Descriptor,
  ImageManifest,
  ParsedManifest,
} from "../oci/manifest.ts";
import {
  formatPlatform,
  type Platform,
  platformMatches,
} from "../oci/platform.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import { RegistryClient } from "../registry/client.ts";
import {
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  layerKindOf,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../spec/media_types.ts";
import { hashFile } from "../store/hash_file.ts";
import type { Store } from "../store/store.ts";
import { hostPlatform } from "./pull.ts";

/** Which layer of which image to open. */
export interface LayerRequest {
  /** The image: a local tag or digest (prefix), or a remote reference. */
  reference: string;
  /** The layer kind. */
  layer: LayerKind;
  /**
   * Platform to pick from an index. Default: the only entry of a
   * one-entry index, else this machine's platform.
   */
  platform?: Platform;
}

/** A layer opened by {@linkcode openLayer}. */
export interface OpenedLayer {
  /**
   * The layer's bytes. The stream errors with a `DigestMismatchError` or
   * `SizeMismatchError` at the end when the bytes do not match the
   * descriptor; cancel it when not read to the end. A local layer's blob is
   * opened on the first read, so a stream never read holds no file open.
   */
  stream: ReadableStream<Uint8Array>;
  /** The layer's descriptor. */
  descriptor: Descriptor;
  /** The layer's kind. */
  kind: LayerKind;
  /** The full reference, or what was given for a local digest. */
  reference: string;
  /** The platform chosen from an index; absent for a single manifest. */
  platform?: Platform;
  /**
   * For a local image, the blob's file in the store. Read it only for speed
   * (e.g. to copy or map it); unlike {@linkcode OpenedLayer.stream} it is
   * not verified. Asking for it opens nothing: the stream may be left
   * unread.
   */
  path?: string;
}

/** Options for {@linkcode writeLayerFile}. */
export interface WriteLayerFileOptions {
  /** Aborts the copy; nothing is left behind. */
  signal?: AbortSignal;
}

type Load = (descriptor: Descriptor) => Promise<ParsedManifest>;

function kindsIn(manifest: ImageManifest): string[] {
  const out = new Set<string>();
  for (const l of manifest.layers) {
    out.add(layerKindOf(l.mediaType)?.kind ?? l.mediaType);
  }
  return [...out].sort((a, b) => {
    const ia = LAYER_KINDS.indexOf(a as LayerKind);
    const ib = LAYER_KINDS.indexOf(b as LayerKind);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
}

function findLayer(
  manifest: ImageManifest,
  kind: LayerKind,
  where: string,
): Descriptor {
  const current = manifest.layers.filter((l) =>
    l.mediaType === LAYER_MEDIA_TYPES[kind]
  );
  const legacyType = LEGACY_LAYER_MEDIA_TYPES[kind];
  const legacy = legacyType === undefined
    ? []
    : manifest.layers.filter((l) => l.mediaType === legacyType);
  // Current over legacy, as resolveImage does; two of one kind is ambiguous.
  const candidates = current.length > 0 ? current : legacy;
  if (candidates.length > 1) {
    throw new InvalidImageError(
      `Invalid IronCore image ${where}: it has ${candidates.length} ${kind} layers (${
        candidates[0]!.mediaType
      }): run validate to see the problems`,
    );
  }
  const layer = candidates[0];
  if (!layer) {
    const have = kindsIn(manifest);
    throw new NotFoundError(
      `Image ${where} has no ${kind} layer: it has ${
        have.length ? have.join(", ") : "no layers"
      }`,
      { reference: where },
    );
  }
  return layer;
}

async function chooseManifest(
  top: ParsedManifest,
  request: LayerRequest,
  name: string,
  load: Load,
): Promise<{ manifest: ImageManifest; platform?: Platform }> {
  if (top.kind === "manifest") return { manifest: top.manifest };
  const entries = top.index.manifests;
  if (entries.length === 0) {
    throw new InvalidImageError(
      `Invalid image ${name}: the index lists no manifests`,
    );
  }
  let entry: Descriptor | undefined;
  if (request.platform === undefined && entries.length === 1) {
    entry = entries[0]!;
  } else {
    const want = request.platform ?? hostPlatform();
    entry = entries.find((m) =>
      m.platform && platformMatches(m.platform, want)
    );
    if (!entry) {
      const have = entries.map((m) =>
        m.platform ? formatPlatform(m.platform) : "unknown"
      ).join(", ");
      throw new NotFoundError(
        request.platform === undefined
          ? `Image ${name} has no manifest for this machine's platform ${
            formatPlatform(want)
          }: it has ${have}; choose one with --platform`
          : `Platform ${
            formatPlatform(want)
          } not found in ${name}: the image has ${have}`,
        { reference: formatPlatform(want) },
      );
    }
  }
  const child = await load(entry);
  if (child.kind !== "manifest") {
    throw new InvalidImageError(
      `Invalid image ${name}: index entry ${entry.digest} is itself an index`,
    );
  }
  return entry.platform
    ? { manifest: child.manifest, platform: entry.platform }
    : { manifest: child.manifest };
}

function describe(name: string, platform: Platform | undefined): string {
  return platform ? `${name} (${formatPlatform(platform)})` : name;
}

function verifier(
  layer: Descriptor,
  kind: LayerKind,
  options: OperationOptions,
): DigestVerifier {
  const progress = options.onProgress;
  const name = kind;
  const total = layer.size;
  progress?.({ name, digest: layer.digest, done: 0, total, phase: "start" });
  return new DigestVerifier(layer, {
    what: `${kind} layer ${layer.digest}`,
    ...(progress
      ? {
        onBytes: (done: number) =>
          progress({
            name,
            digest: layer.digest,
            done,
            total,
            phase: done === total ? "done" : "progress",
          }),
      }
      : {}),
  });
}

/** Size of the reads from a blob file. */
const READ_BYTES = 1024 * 1024;

/**
 * A file as a stream of 1 MiB chunks: a quarter of the chunks the runtime's
 * own file stream makes, which halves the time to copy a large layer to a
 * file. The file is closed at the end or on cancel.
 */
function readInChunks(file: Deno.FsFile): ReadableStream<Uint8Array> {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // A fresh buffer per chunk: the consumer may still hold the last one.
      const buf = new Uint8Array(READ_BYTES);
      let n: number | null;
      try {
        n = await file.read(buf);
      } catch (e) {
        close();
        throw e;
      }
      if (n === null) {
        close();
        controller.close();
        return;
      }
      controller.enqueue(n === READ_BYTES ? buf : buf.subarray(0, n));
    },
    cancel: close,
  }, { highWaterMark: 1 });
}

/**
 * A stream that makes its source only when first read: one never read, or
 * cancelled first, never makes it.
 */
function openOnRead(
  open: () => Promise<ReadableStream<Uint8Array>>,
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      reader ??= (await open()).getReader();
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await reader?.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

function pipeOptions(options: OperationOptions): StreamPipeOptions {
  return options.signal ? { signal: options.signal } : {};
}

/**
 * Opens one layer of an image in the local store. Index entries are chosen
 * by platform; current media types win over legacy ones.
 *
 * @param store The store.
 * @param request Image, layer kind and platform.
 * @param options Abort signal and progress (reported as the stream is read).
 * @returns The verifying stream, the layer's descriptor and the blob's path.
 * @throws {NotFoundError} When the image, the platform or the layer kind is
 * missing (the message lists what there is), or the blob is gone.
 *
 * @example Read a kernel from the store
 * ```ts ignore
 * import { openLocalLayer, Store } from "../../mod.ts";
 * const store = await Store.open("/tmp/store");
 * const layer = await openLocalLayer(store, { reference: "my-os:1.0", layer: "kernel" });
 * const bytes = new Uint8Array(await new Response(layer.stream).arrayBuffer());
 * ```
 */
export async function openLocalLayer(
  store: Store,
  request: LayerRequest,
  options: OperationOptions = {},
): Promise<OpenedLayer> {
  const resolved = await store.resolve(request.reference);
  const name = resolved.reference ?? request.reference;
  const top = await store.readManifest(resolved.descriptor);
  const chosen = await chooseManifest(
    top,
    request,
    name,
    (d) => store.readManifest(d),
  );
  const where = describe(name, chosen.platform);
  const layer = findLayer(chosen.manifest, request.layer, where);
  options.signal?.throwIfAborted();
  const path = store.blobPath(layer.digest);
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    // Let the store word the error.
    (await store.openBlob(layer.digest)).close();
    throw e;
  }
  if (size !== layer.size) {
    throw new SizeMismatchError(
      layer.size,
      size,
      `${request.layer} layer ${layer.digest} in store ${store.path} (the blob is damaged, pull or build the image again)`,
    );
  }
  // Callers that only want the path (a hypervisor attaching a disk) never
  // read the stream: opening the blob on the first read leaks no file.
  const stream = openOnRead(async () =>
    readInChunks(await store.openBlob(layer.digest)).pipeThrough(
      verifier(layer, request.layer, options),
      pipeOptions(options),
    )
  );
  const out: OpenedLayer = {
    stream,
    descriptor: layer,
    kind: request.layer,
    reference: name,
    path,
  };
  if (chosen.platform) out.platform = chosen.platform;
  return out;
}

/**
 * Opens one layer of an image in a registry, fetching only the manifests on
 * the way and then that layer's blob. Index entries are chosen by platform;
 * current media types win over legacy ones.
 *
 * @param client The registry client.
 * @param request Image, layer kind and platform.
 * @param options Abort signal and progress (reported as the stream is read).
 * @returns The verifying stream and the layer's descriptor.
 * @throws {NotFoundError} When the image, the platform or the layer kind is
 * missing (the message lists what there is).
 *
 * @example Stream a kernel from a registry
 * ```ts ignore
 * import { openRemoteLayer, RegistryClient } from "../../mod.ts";
 * const layer = await openRemoteLayer(new RegistryClient(), {
 *   reference: "ghcr.io/org/os:1.0",
 *   layer: "kernel",
 *   platform: { os: "linux", architecture: "arm64" },
 * });
 * await layer.stream.pipeTo((await Deno.create("vmlinuz")).writable);
 * ```
 */
export async function openRemoteLayer(
  client: RegistryClient,
  request: LayerRequest,
  options: OperationOptions = {},
): Promise<OpenedLayer> {
  const ref = parseReference(request.reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  const name = formatReference(ref);
  const opts = options.signal ? { signal: options.signal } : {};
  const top = await client.getManifest(repo, ref.digest ?? ref.tag!, opts);
  const chosen = await chooseManifest(top, request, name, async (d) => {
    const m = await client.getManifest(repo, d.digest, opts);
    if (m.bytes.byteLength !== d.size) {
      throw new InvalidImageError(
        `Invalid index ${name}: entry ${d.digest} declares ${d.size} bytes, the manifest has ${m.bytes.byteLength}`,
      );
    }
    return m;
  });
  const where = describe(name, chosen.platform);
  const layer = findLayer(chosen.manifest, request.layer, where);
  const res = await client.getBlob(repo, layer.digest, opts);
  const length = res.headers.get("content-length");
  if (!res.body || (length !== null && Number(length) !== layer.size)) {
    await res.body?.cancel();
    throw new SizeMismatchError(
      layer.size,
      length === null ? 0 : Number(length),
      `${request.layer} layer ${layer.digest} from ${ref.registry}`,
    );
  }
  const stream = res.body.pipeThrough(
    verifier(layer, request.layer, options),
    pipeOptions(options),
  );
  const out: OpenedLayer = {
    stream,
    descriptor: layer,
    kind: request.layer,
    reference: name,
  };
  if (chosen.platform) out.platform = chosen.platform;
  return out;
}

/**
 * Opens one layer of an image, locally or in a registry, depending on the
 * source given. See {@linkcode openLocalLayer} and
 * {@linkcode openRemoteLayer}.
 *
 * @param source The local store or a registry client.
 * @param request Image, layer kind and platform.
 * @param options Abort signal and progress.
 * @returns The opened layer.
 *
 * @example Open a kernel wherever it is
 * ```ts ignore
 * import { openLayer, Store } from "../../mod.ts";
 * const layer = await openLayer(await Store.open("/tmp/store"), { reference: "my-os:1.0", layer: "kernel" });
 * await layer.stream.cancel();
 * ```
 */
export function openLayer(
  source: Store | RegistryClient,
  request: LayerRequest,
  options: OperationOptions = {},
): Promise<OpenedLayer> {
  return source instanceof RegistryClient
    ? openRemoteLayer(source, request, options)
    : openLocalLayer(source, request, options);
}

function splitPath(path: string): { dir: string; base: string } {
  const i = path.lastIndexOf("/");
  if (i < 0) return { dir: ".", base: path };
  return { dir: i === 0 ? "/" : path.slice(0, i), base: path.slice(i + 1) };
}

/**
 * Writes an opened layer to a file: into a temporary file next to it first,
 * renamed into place only once the digest and size have been verified. A
 * corrupt or interrupted download leaves no file behind (and an existing
 * file untouched).
 *
 * @param layer The opened layer; its stream is consumed.
 * @param path The file to write.
 * @param options Abort signal.
 * @returns The number of bytes written.
 *
 * @example Extract a kernel
 * ```ts ignore
 * import { openLocalLayer, Store, writeLayerFile } from "../../mod.ts";
 * const store = await Store.open("/tmp/store");
 * const layer = await openLocalLayer(store, { reference: "my-os:1.0", layer: "kernel" });
 * await writeLayerFile(layer, "./vmlinuz");
 * ```
 */
export async function writeLayerFile(
  layer: OpenedLayer,
  path: string,
  options: WriteLayerFileOptions = {},
): Promise<number> {
  const { dir, base } = splitPath(path);
  let tmp: string | undefined;
  let file: Deno.FsFile;
  try {
    if (base === "" || base === "." || base === "..") {
      throw new TypeError(
        `Cannot write ${layer.kind} layer to ${path}: give a file name`,
      );
    }
    const st = await Deno.stat(path).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (st?.isDirectory) {
      throw new TypeError(
        `Cannot write ${layer.kind} layer to ${path}: it is a directory, give a file name`,
      );
    }
    tmp = `${dir}/.${base}.${crypto.randomUUID().slice(0, 8)}.partial`;
    try {
      file = await Deno.open(tmp, { write: true, createNew: true });
    } catch (e) {
      tmp = undefined;
      if (e instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(
          `Cannot write ${layer.kind} layer to ${path}: directory ${dir} does not exist`,
        );
      }
      if (e instanceof Deno.errors.PermissionDenied) {
        throw new Deno.errors.PermissionDenied(
          `Cannot write ${layer.kind} layer to ${path}: permission denied in ${dir}`,
        );
      }
      throw e;
    }
  } catch (e) {
    await layer.stream.cancel().catch(() => {});
    throw e;
  }
  let renamed = false;
  if (layer.path !== undefined) {
    // A local blob: copy it in the kernel while hashing it, instead of
    // pushing every byte through JavaScript.
    await layer.stream.cancel().catch(() => {});
    file.close();
    try {
      const copying = Deno.copyFile(layer.path, tmp);
      copying.catch(() => {});
      let actual: { digest: string; size: number };
      try {
        actual = await hashFile(layer.path, undefined, options.signal);
      } finally {
        await copying.catch(() => {});
      }
      await copying;
      if (actual.size !== layer.descriptor.size) {
        throw new SizeMismatchError(
          layer.descriptor.size,
          actual.size,
          `${layer.kind} layer`,
        );
      }
      if (actual.digest !== layer.descriptor.digest) {
        throw new DigestMismatchError(
          layer.descriptor.digest,
          actual.digest,
          `${layer.kind} layer ${layer.descriptor.digest}`,
        );
      }
      const copied = await Deno.stat(tmp);
      if (copied.size !== actual.size) {
        throw new SizeMismatchError(
          actual.size,
          copied.size,
          `${layer.kind} layer copy`,
        );
      }
      await Deno.rename(tmp, path);
      renamed = true;
      return actual.size;
    } finally {
      if (!renamed) await Deno.remove(tmp).catch(() => {});
    }
  }
  try {
    try {
      await layer.stream.pipeTo(
        file.writable,
        options.signal ? { signal: options.signal } : {},
      );
    } catch (e) {
      // pipeTo aborts the file's writable, which closes it; be sure anyway.
      try {
        file.close();
      } catch {
        // Already closed.
      }
      throw e;
    }
    await Deno.rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await Deno.remove(tmp).catch(() => {});
  }
  return layer.descriptor.size;
}
