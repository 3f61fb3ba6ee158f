/**
 * Writes an OCI archive: a tar of an OCI image layout (`oci-layout`,
 * `index.json`, `blobs/sha256/<hex>`), the format
 * `skopeo copy … oci-archive:FILE` reads.
 *
 * Naming: `index.json` in an OCI layout names an image with the
 * `org.opencontainers.image.ref.name` annotation. Our store, like skopeo's
 * `oci:DIR:NAME`, puts the full reference there
 * (`docker.io/library/demo:1`), and so does the export by default; skopeo
 * reads the archive as `oci-archive:FILE` (one image, no name needed) or
 * `oci-archive:FILE:docker.io/library/demo:1`. The export also writes
 * containerd's `io.containerd.image.name` with the full reference, which
 * `ctr import` and `docker load` use.
 *
 * @module
 */

import { REPAIR_ADVICE } from "../_errors.ts";
import { InvalidImageError, NotFoundError } from "../errors.ts";
import { digestHex } from "../oci/digest.ts";
import { DigestVerifier } from "../oci/digest_verifier.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
  OCI_INDEX_MEDIA_TYPE,
} from "../oci/manifest.ts";
import type { OperationOptions, ProgressCallback } from "../progress.ts";
import type { Store } from "../store/store.ts";
import {
  ANNOTATION_CONTAINERD_NAME,
  closure,
  LAYOUT_JSON,
  plainDescriptor,
  shortName,
} from "./_layout.ts";
import { TarWriter } from "./_tar_writer.ts";
import { fileChunks } from "../store/_file_stream.ts";
import { blobStoreOf } from "../store/_internal.ts";

/** What skopeo (containers/image) accepts as the name in `oci:DIR:NAME`. */
const REF_NAME_RE = /^[A-Za-z0-9._-]+(?:[:@/][A-Za-z0-9._-]+)*$/;

/** Options for {@linkcode exportArchive}. */
export interface ExportArchiveOptions extends OperationOptions {
  /**
   * Receives the archive; closed at the end and aborted on failure, unless
   * `preventClose`.
   */
  writable: WritableStream<Uint8Array>;
  /**
   * The `org.opencontainers.image.ref.name` written to `index.json`. Default:
   * the full reference the image was resolved through (such as
   * `docker.io/library/demo:1`); none when it was given by digest.
   */
  name?: string | undefined;
  /**
   * Leave the sink open when done (for standard output). Default `false`.
   * A sink that buffers, such as `Deno.FsFile.writable`, writes its last
   * bytes only when closed.
   */
  preventClose?: boolean | undefined;
}

/** What {@linkcode exportArchive} wrote. */
export interface ExportArchiveResult {
  /** The full reference, when the image was given by tag. */
  reference?: string | undefined;
  /** The `ref.name` written, if any. */
  name?: string | undefined;
  /** Descriptor of the exported manifest or index. */
  descriptor: Descriptor;
  /** Blobs written. */
  blobs: number;
  /** Bytes of the archive. */
  bytes: number;
}

async function writeBlob(
  store: Store,
  blob: Descriptor,
  tar: TarWriter,
  progress: ProgressCallback | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const name = shortName(blob.digest);
  const file = await blobStoreOf(store).openBlob(blob.digest);
  let size: number;
  try {
    size = (await file.stat()).size;
  } catch (e) {
    file.close();
    throw e;
  }
  if (size !== blob.size) {
    file.close();
    throw new InvalidImageError(
      `Blob ${blob.digest} in store ${store.path} has ${size} bytes, expected ${blob.size}: ${REPAIR_ADVICE}`,
    );
  }
  // The blob's last bytes go into the archive only once its digest checked
  // out: a damaged store never yields a complete-looking archive. The
  // stream closes the file.
  const verified = fileChunks(file).pipeThrough(
    new DigestVerifier(blob, {
      what: `blob in store ${store.path} (${REPAIR_ADVICE})`,
      holdBack: true,
      onBytes: progress
        ? (done) =>
          progress({
            name,
            digest: blob.digest,
            done,
            total: size,
            phase: "progress",
          })
        : undefined,
    }),
  );
  const reader = verified.getReader();
  progress?.({
    name,
    digest: blob.digest,
    done: 0,
    total: size,
    phase: "start",
  });
  try {
    await tar.add({
      name: `blobs/sha256/${digestHex(blob.digest)}`,
      type: "file",
      size,
    });
    for (;;) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      await tar.write(value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  progress?.({
    name,
    digest: blob.digest,
    done: size,
    total: size,
    phase: "done",
  });
}

/**
 * Writes an image as an OCI archive: `oci-layout`, an `index.json` naming
 * the image, and every blob it reaches (index, manifests, configs, layers),
 * each streamed from the store in large reads and checked against its
 * digest on the way. The archive is deterministic: the same image and name
 * give the same bytes.
 *
 * @param store The store.
 * @param reference A tag, digest or unique digest prefix.
 * @param options Where to write, the name to write, abort signal and
 * progress.
 * @returns What was written.
 * @throws {NotFoundError} When the image or one of its blobs is missing.
 *
 * @example Export an image to a file
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { exportArchive } from "@ironcore/image/archive";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "example.com/os:1.0",
 * });
 * // Closing the file's stream at the end flushes and closes the file.
 * const file = await Deno.open(`${dir}/os.tar`, { write: true, create: true });
 * const result = await exportArchive(store, "example.com/os:1.0", {
 *   writable: file.writable,
 * });
 * console.log(result.blobs); // 4: index, manifest, config, kernel
 * ```
 */
export async function exportArchive(
  store: Store,
  reference: string,
  options: ExportArchiveOptions,
): Promise<ExportArchiveResult> {
  const sink = options.writable;
  const ref = reference;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  try {
    const result = await writeArchive(store, ref, options, () => {
      writer = sink.getWriter();
      return writer;
    });
    if (options.preventClose) writer!.releaseLock();
    else await writer!.close();
    return result;
  } catch (e) {
    if (options.preventClose) writer?.releaseLock();
    else if (writer) await writer.abort(e).catch(() => {});
    else await sink.abort(e).catch(() => {});
    throw e;
  }
}

async function writeArchive(
  store: Store,
  ref: string,
  options: ExportArchiveOptions,
  open: () => WritableStreamDefaultWriter<Uint8Array>,
): Promise<ExportArchiveResult> {
  const name = options.name;
  if (name !== undefined && (!REF_NAME_RE.test(name) || name.length > 512)) {
    throw new TypeError(
      `Invalid archive name ${
        JSON.stringify(name)
      }: use letters, digits, ".", "_" and "-", separated by ":", "@" or "/", such as "v1" or "example.com/os:1.0"`,
    );
  }
  const resolved = await store.resolve(ref);
  const top = plainDescriptor(resolved.descriptor);
  // Every blob is checked before the first byte goes out.
  const blobs = await closure(store, top, (d, role) =>
    new NotFoundError(
      `Blob ${d.digest} (${role}) is missing from store ${store.path}: pull or build the image again`,
      { digest: d.digest },
    ));
  const annotations: Record<string, string> = {};
  const refName = name ?? resolved.reference;
  if (refName !== undefined) annotations[ANNOTATION_REF_NAME] = refName;
  if (resolved.reference !== undefined) {
    annotations[ANNOTATION_CONTAINERD_NAME] = resolved.reference;
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [
      Object.keys(annotations).length > 0 ? { ...top, annotations } : top,
    ],
  };
  const encoder = new TextEncoder();
  const indexBytes = encoder.encode(JSON.stringify(index));
  const layoutBytes = encoder.encode(LAYOUT_JSON);

  const writer = open();
  let bytes = 0;
  const tar = new TarWriter({
    write(chunk) {
      bytes += chunk.byteLength;
      return writer.write(chunk);
    },
  });
  await tar.add({
    name: "oci-layout",
    type: "file",
    size: layoutBytes.byteLength,
  });
  await tar.write(layoutBytes);
  await tar.add({
    name: "index.json",
    type: "file",
    size: indexBytes.byteLength,
  });
  await tar.write(indexBytes);
  await tar.add({ name: "blobs", type: "directory" });
  await tar.add({ name: "blobs/sha256", type: "directory" });
  for (const blob of blobs) {
    options.signal?.throwIfAborted();
    await writeBlob(store, blob, tar, options.onProgress, options.signal);
  }
  await tar.finish();
  const result: ExportArchiveResult = {
    descriptor: top,
    blobs: blobs.length,
    bytes,
  };
  if (resolved.reference !== undefined) result.reference = resolved.reference;
  if (refName !== undefined) result.name = refName;
  return result;
}
