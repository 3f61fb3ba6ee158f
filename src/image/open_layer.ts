/**
 * Streams one layer of an image (the kernel, the initramfs, …) out of the
 * local store or straight from a registry, verifying it as it is read.
 *
 * @module
 */

import {
  corruptBlob,
  deviceFull,
  isDeviceFull,
  REPAIR_ADVICE,
  sizeMismatch,
} from "../_errors.ts";
import { DigestVerifier } from "../oci/digest_verifier.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { formatPlatform, type Platform } from "../oci/platform.ts";
import type { OperationOptions } from "../progress.ts";
import type { RegistryClient } from "../registry/client.ts";
import type { LayerKind } from "../spec/media_types.ts";
import { hashFile } from "../store/_hash_file.ts";
import type { Store } from "../store/store.ts";
import {
  type ByteWriter,
  type ChunkReader,
  copyVerified,
  fileReader,
  streamReader,
  writeAll,
} from "../store/_verified_copy.ts";
import {
  findLayer,
  openDocuments,
  type OpenedBlob,
  selectManifest,
} from "./_documents.ts";

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
  platform?: Platform | undefined;
}

/** A layer opened by {@linkcode openLayer}. */
export interface OpenedLayer {
  /**
   * The layer's bytes. The stream errors with a `DigestMismatchError` or
   * `SizeMismatchError` when the bytes do not match the descriptor, before
   * its last chunk: a consumer never receives a complete wrong layer.
   * Cancel it when not read to the end. A local layer's blob is
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
  platform?: Platform | undefined;
  /**
   * For a local image, the blob's file in the store. Read it only for speed
   * (e.g. to copy or map it); unlike {@linkcode OpenedLayer.stream} it is
   * not verified. Asking for it opens nothing: the stream may be left
   * unread.
   */
  path?: string | undefined;
}

/** Options for {@linkcode writeLayerFile}. */
export interface WriteLayerFileOptions {
  /** Aborts the copy; nothing is left behind. */
  signal?: AbortSignal | undefined;
}

/** Options for {@linkcode writeLayer}. */
export interface WriteLayerOptions {
  /** Aborts the copy. */
  signal?: AbortSignal | undefined;
}

/**
 * How each layer {@linkcode openLayer} returned reads its bytes without its
 * stream: the blob and the checks its stream would make.
 */
const sources = new WeakMap<
  OpenedLayer,
  { blob: OpenedBlob; verifier: () => DigestVerifier }
>();

function describe(name: string, platform: Platform | undefined): string {
  return platform ? `${name} (${formatPlatform(platform)})` : name;
}

function verifier(
  layer: Descriptor,
  kind: LayerKind,
  store: string | undefined,
  options: OperationOptions,
): DigestVerifier {
  const progress = options.onProgress;
  const name = kind;
  const total = layer.size;
  progress?.({ name, digest: layer.digest, done: 0, total, phase: "start" });
  // The last bytes go out only once the digest checked out, so a consumer
  // (standard output, a boot client) never gets a complete wrong layer.
  return new DigestVerifier(layer, {
    what: store === undefined
      ? `${kind} layer ${layer.digest}`
      : `${kind} layer ${layer.digest} in store ${store} (${REPAIR_ADVICE})`,
    holdBack: true,
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
 * Opens one layer of an image, in the local store or in a registry. Index
 * entries are chosen by platform; current media types win over legacy ones.
 * Only the documents on the way and then the layer's blob are read.
 *
 * @param source The local store or a registry client.
 * @param request Image, layer kind and platform.
 * @param options Abort signal and progress (reported as the stream is read).
 * @returns The verifying stream, the layer's descriptor and, for a local
 * image, the blob's path.
 * @throws {NotFoundError} When the image, the platform or the layer kind is
 * missing (the message lists what there is), or the blob is gone.
 *
 * @example Read a kernel from the store
 * ```ts
 * import { buildImage, openLayer, Store } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } },
 * ], { tag: "example.com/os:1.0" });
 * const layer = await openLayer(store, {
 *   reference: "example.com/os:1.0",
 *   layer: "kernel",
 * });
 * console.log(await new Response(layer.stream).text()); // "kernel bytes"
 * ```
 */
export async function openLayer(
  source: Store | RegistryClient,
  request: LayerRequest,
  options: OperationOptions = {},
): Promise<OpenedLayer> {
  const docs = await openDocuments(source, request.reference, options.signal);
  const chosen = await selectManifest(docs, { platform: request.platform });
  const layer = findLayer(
    chosen.manifest,
    request.layer,
    describe(docs.name, chosen.platform),
    { reference: docs.name, platform: chosen.platform },
  );
  options.signal?.throwIfAborted();
  const blob = await docs.blob(layer, `${request.layer} layer`);
  const checks = () =>
    verifier(
      layer,
      request.layer,
      blob.path === undefined ? undefined : (source as Store).path,
      options,
    );
  // Nothing is read (nor, for a local layer, opened) before the first read.
  const stream = openOnRead(async () =>
    (await blob.open()).pipeThrough(checks(), pipeOptions(options))
  );
  const out: OpenedLayer = {
    stream,
    descriptor: layer,
    kind: request.layer,
    reference: docs.name,
  };
  if (blob.path !== undefined) out.path = blob.path;
  if (chosen.platform) out.platform = chosen.platform;
  sources.set(out, { blob, verifier: checks });
  return out;
}

/**
 * Writes an opened layer to a writer that keeps nothing of a chunk once
 * written, such as `Deno.stdout` or an open `Deno.FsFile`. The bytes are
 * checked as {@linkcode OpenedLayer.stream} would check them (the last
 * chunk goes out only once the digest checked out), in a few buffers that
 * go round, so memory stays flat however large the layer. The layer's
 * stream is cancelled unread.
 *
 * @param layer A layer from {@linkcode openLayer}, its stream not read.
 * @param writer Where the bytes go; not closed.
 * @param options Abort signal.
 * @returns The number of bytes written.
 *
 * @example Write a kernel to standard output
 * ```ts
 * import { buildImage, openLayer, Store, writeLayer } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes\n");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "my-os:1.0",
 * });
 * const layer = await openLayer(store, { reference: "my-os:1.0", layer: "kernel" });
 * await writeLayer(layer, Deno.stdout); // prints "kernel bytes"
 * ```
 */
export async function writeLayer(
  layer: OpenedLayer,
  writer: ByteWriter,
  options: WriteLayerOptions = {},
): Promise<number> {
  const source = sources.get(layer);
  const write = (chunk: Uint8Array) => writeAll(writer, chunk);
  if (source === undefined) {
    // Not from openLayer: its stream is all there is.
    let bytes = 0;
    for await (const chunk of layer.stream) {
      await write(chunk);
      bytes += chunk.byteLength;
    }
    return bytes;
  }
  await layer.stream.cancel().catch(() => {});
  const { blob } = source;
  let read: ChunkReader;
  let release: () => Promise<void>;
  if (blob.openFile) {
    const file = await blob.openFile();
    read = fileReader(file);
    release = () => Promise.resolve(file.close());
  } else {
    const stream = streamReader(await blob.open());
    read = stream.read;
    release = () => stream.cancel();
  }
  try {
    await copyVerified(read, source.verifier(), write, {
      reuse: true,
      signal: options.signal,
    });
  } finally {
    await release();
  }
  return layer.descriptor.size;
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
 * @example Extract a kernel to a file
 * ```ts
 * import { buildImage, openLayer, Store, writeLayerFile } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/input`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/input` } }], {
 *   tag: "my-os:1.0",
 * });
 * const layer = await openLayer(store, { reference: "my-os:1.0", layer: "kernel" });
 * // Written under a temporary name, renamed once the digest checked out.
 * const bytes = await writeLayerFile(layer, `${dir}/vmlinuz`);
 * console.log(bytes); // 12
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
      const store = layer.path.replace(/\/blobs\/sha256\/[0-9a-f]{64}$/, "");
      if (actual.size !== layer.descriptor.size) {
        throw sizeMismatch(
          layer.descriptor.size,
          actual.size,
          `${layer.kind} layer ${layer.descriptor.digest} in store ${store} (${REPAIR_ADVICE})`,
        );
      }
      if (actual.digest !== layer.descriptor.digest) {
        throw corruptBlob(store, layer.descriptor.digest, actual.digest);
      }
      const copied = await Deno.stat(tmp);
      if (copied.size !== actual.size) {
        throw sizeMismatch(
          actual.size,
          copied.size,
          `${layer.kind} layer copy`,
        );
      }
      await Deno.rename(tmp, path);
      renamed = true;
      return actual.size;
    } catch (e) {
      if (isDeviceFull(e)) throw deviceFull(`${layer.kind} layer`, path, e);
      throw e;
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
  } catch (e) {
    if (isDeviceFull(e)) throw deviceFull(`${layer.kind} layer`, path, e);
    throw e;
  } finally {
    if (!renamed) await Deno.remove(tmp).catch(() => {});
  }
  return layer.descriptor.size;
}
