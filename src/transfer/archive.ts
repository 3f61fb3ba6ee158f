/**
 * OCI archives: a tar of an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`), the format `skopeo copy … oci-archive:FILE` reads
 * and writes. {@linkcode exportArchive} writes one image with everything it
 * references; {@linkcode importArchive} streams an archive into the store,
 * verifying every blob, and tags its images only once all of them check out.
 *
 * Naming: `index.json` in an OCI layout names an image with the
 * `org.opencontainers.image.ref.name` annotation. Our store, like skopeo's
 * `oci:DIR:NAME`, puts the full reference there
 * (`docker.io/library/demo:1`), and so does the export by default; skopeo
 * reads the archive as `oci-archive:FILE` (one image, no name needed) or
 * `oci-archive:FILE:docker.io/library/demo:1`. The export also writes
 * containerd's `io.containerd.image.name` with the full reference, which
 * `ctr import` and `docker load` use. On import a name is taken from
 * `io.containerd.image.name`, else from `ref.name`; a bare word such as
 * `v1` or `latest` (what `skopeo copy … oci-archive:FILE:v1` writes) names
 * no repository, so such an image needs an explicit tag.
 *
 * @module
 */

import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
} from "../errors.ts";
import { type Digest, digestHex, isDigest, Sha256 } from "../oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
  isIndexMediaType,
  isManifestMediaType,
  MAX_MANIFEST_BYTES,
  OCI_INDEX_MEDIA_TYPE,
  validateIndex,
} from "../oci/manifest.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import type { OperationOptions, ProgressCallback } from "../progress.ts";
import type { Store, TagEntry } from "../store/store.ts";
import { type TarEntry, TarReader, TarWriter } from "./_tar.ts";

/** Annotation containerd (`ctr import`, `docker load`) reads a full name from. */
export const ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name";

const LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';
const MAX_LAYOUT_BYTES = 64 * 1024;
/** Bytes read from a store blob at once while exporting. */
const READ_SIZE = 1024 * 1024;
/** Deepest nesting of indexes followed. */
const MAX_DEPTH = 8;
/** What skopeo (containers/image) accepts as the name in `oci:DIR:NAME`. */
const REF_NAME_RE = /^[A-Za-z0-9._-]+(?:[:@/][A-Za-z0-9._-]+)*$/;
const BLOB_RE = /^blobs\/sha256\/([^/]+)$/;

/** Options for {@linkcode exportArchive}. */
export interface ExportArchiveOptions extends OperationOptions {
  /**
   * The `org.opencontainers.image.ref.name` written to `index.json`. Default:
   * the full reference the image was resolved through (such as
   * `docker.io/library/demo:1`); none when it was given by digest.
   */
  name?: string;
  /**
   * Leave the sink open when done (for standard output). Default `false`.
   * A sink that buffers, such as `Deno.FsFile.writable`, writes its last
   * bytes only when closed.
   */
  preventClose?: boolean;
}

/** What {@linkcode exportArchive} wrote. */
export interface ExportArchiveResult {
  /** The full reference, when the image was given by tag. */
  reference?: string;
  /** The `ref.name` written, if any. */
  name?: string;
  /** Descriptor of the exported manifest or index. */
  descriptor: Descriptor;
  /** Blobs written. */
  blobs: number;
  /** Bytes of the archive. */
  bytes: number;
}

/** Options for {@linkcode importArchive}. */
export interface ImportArchiveOptions extends OperationOptions {
  /**
   * Tag for the archive's image (it must hold exactly one). Without it the
   * names in the archive's `index.json` are used.
   */
  tag?: string;
}

/** What {@linkcode importArchive} did. */
export interface ImportArchiveResult {
  /** The tags set, with what they point to. */
  images: TagEntry[];
  /** Blobs written to the store. */
  ingested: number;
  /** Blobs the store already had. */
  skipped: number;
  /** Bytes written to the store. */
  bytes: number;
}

function shortName(digest: Digest): string {
  return `sha256:${digestHex(digest).slice(0, 12)}`;
}

function plainDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
  };
  if (d.artifactType !== undefined) out.artifactType = d.artifactType;
  return out;
}

/**
 * Every blob an image reaches, manifests and indexes first, each once. Every
 * blob must be in the store with its declared size; manifests and indexes
 * are read and checked against their digests.
 */
async function closure(
  store: Store,
  top: Descriptor,
  missing: (d: Descriptor, role: string) => Error,
): Promise<Descriptor[]> {
  const manifests: Descriptor[] = [];
  const blobs: Descriptor[] = [];
  const seen = new Set<string>();
  async function need(d: Descriptor, role: string): Promise<void> {
    if (!(await store.hasBlob(d.digest, d.size))) throw missing(d, role);
  }
  async function visit(d: Descriptor, depth: number, role: string) {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (!isIndexMediaType(d.mediaType) && !isManifestMediaType(d.mediaType)) {
      throw new InvalidImageError(
        `Invalid ${role} ${d.digest}: media type ${d.mediaType} is not an image manifest or index`,
      );
    }
    await need(d, role);
    const parsed = await store.readManifest(d);
    manifests.push(plainDescriptor(d));
    if (parsed.kind === "index") {
      if (depth >= MAX_DEPTH) {
        throw new InvalidImageError(
          `Invalid index ${d.digest}: indexes are nested more than ${MAX_DEPTH} deep`,
        );
      }
      for (const m of parsed.index.manifests) {
        await visit(m, depth + 1, `manifest of index ${d.digest}`);
      }
      return;
    }
    const m = parsed.manifest;
    for (
      const [b, r] of [
        [m.config, "config"],
        ...m.layers.map((l) => [l, "layer"] as const),
      ] as const
    ) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      await need(b, `${r} of manifest ${d.digest}`);
      blobs.push(plainDescriptor(b));
    }
  }
  await visit(top, 0, "image");
  return [...manifests, ...blobs];
}

async function writeBlob(
  store: Store,
  blob: Descriptor,
  tar: TarWriter,
  progress: ProgressCallback | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const name = shortName(blob.digest);
  using file = await store.openBlob(blob.digest);
  const size = (await file.stat()).size;
  if (size !== blob.size) {
    throw new InvalidImageError(
      `Blob ${blob.digest} in store ${store.path} has ${size} bytes, expected ${blob.size}: pull or build the image again`,
    );
  }
  progress?.({
    name,
    digest: blob.digest,
    done: 0,
    total: size,
    phase: "start",
  });
  await tar.add({
    name: `blobs/sha256/${digestHex(blob.digest)}`,
    type: "file",
    size,
  });
  const hash = new Sha256();
  // Fresh buffers: the sink may hold on to a chunk after its write resolves.
  // The next read runs while the current chunk is written.
  const read = async (): Promise<Uint8Array | null> => {
    const buf = new Uint8Array(Math.min(READ_SIZE, Math.max(1, size)));
    let filled = 0;
    while (filled < buf.byteLength) {
      const n = await file.read(buf.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return filled === 0 ? null : buf.subarray(0, filled);
  };
  let next = read();
  try {
    for (;;) {
      signal?.throwIfAborted();
      const chunk = await next;
      if (chunk === null) break;
      if (hash.bytes + chunk.byteLength > size) break;
      next = read();
      hash.update(chunk);
      await tar.write(chunk);
      progress?.({
        name,
        digest: blob.digest,
        done: hash.bytes,
        total: size,
        phase: "progress",
      });
    }
  } finally {
    await next.catch(() => {});
  }
  if (hash.bytes !== size) {
    throw new InvalidImageError(
      `Blob ${blob.digest} in store ${store.path} changed while it was read: try again`,
    );
  }
  const actual = hash.digest();
  if (actual !== blob.digest) {
    throw new DigestMismatchError(
      blob.digest,
      actual,
      `blob in store ${store.path} (run verify, then pull or build the image again)`,
    );
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
 * @param ref A tag, digest or unique digest prefix.
 * @param sink Receives the archive; closed at the end and aborted on
 * failure, unless `preventClose`.
 * @param options The name to write, abort signal and progress.
 * @returns What was written.
 * @throws {NotFoundError} When the image or one of its blobs is missing.
 *
 * @example Export an image to a file
 * ```ts
 * import { build, exportArchive, Store } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const store = await Store.open(`${dir}/store`);
 * await build(store, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "example.com/os:1.0",
 * });
 * // Closing the file's stream at the end flushes and closes the file.
 * const file = await Deno.open(`${dir}/os.tar`, { write: true, create: true });
 * const result = await exportArchive(store, "example.com/os:1.0", file.writable);
 * console.log(result.blobs); // 4: index, manifest, config, kernel
 * ```
 */
export async function exportArchive(
  store: Store,
  ref: string,
  sink: WritableStream<Uint8Array>,
  options: ExportArchiveOptions = {},
): Promise<ExportArchiveResult> {
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
      { reference: d.digest },
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

function refuse(entry: TarEntry, problem: string): never {
  throw new InvalidImageError(
    `Refusing archive entry ${
      JSON.stringify(entry.name)
    }: ${problem}; an OCI archive holds only the files of an image layout`,
  );
}

/**
 * The entry's path inside the layout, with `.` components and repeated or
 * trailing slashes removed. Refuses anything that could point outside it.
 */
function entryPath(entry: TarEntry): string {
  if (entry.name.startsWith("/")) refuse(entry, "it is an absolute path");
  const parts: string[] = [];
  for (const part of entry.name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") refuse(entry, 'it has a ".." component');
    parts.push(part);
  }
  return parts.join("/");
}

const ENTRY_KINDS: Partial<Record<TarEntry["type"], string>> = {
  symlink: "it is a symbolic link",
  hardlink: "it is a hard link",
  "character-device": "it is a character device",
  "block-device": "it is a block device",
  fifo: "it is a FIFO",
};

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new InvalidImageError(
      `Invalid archive: ${what} is not valid UTF-8 JSON (${
        (e as Error).message
      })`,
    );
  }
}

function normalizeTag(input: string, what: string): string {
  const ref = parseReference(input);
  if (ref.digest !== undefined) {
    throw new InvalidImageError(
      `Cannot tag ${what} as ${input}: a tag cannot carry a digest, drop the @sha256:… part`,
    );
  }
  return formatReference(ref);
}

/**
 * The full reference an archive's `index.json` entry names, if any. A bare
 * word (no `/`, `:` or `@`) is a tag without a repository and names nothing.
 */
function archiveName(d: Descriptor): string | undefined {
  const annotations = d.annotations ?? {};
  for (
    const key of [ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME] as const
  ) {
    const value = annotations[key];
    if (value === undefined || !/[/:@]/.test(value)) continue;
    try {
      return normalizeTag(value, `image ${d.digest}`);
    } catch {
      // Not a reference: try the next annotation, then ask for --tag.
    }
  }
  return undefined;
}

/** Picks the tags for the images of an archive's `index.json`. */
function chooseTags(
  index: ImageIndex,
  tag: string | undefined,
): TagEntry[] {
  const images = new Map<string, Descriptor>();
  for (const d of index.manifests) images.set(d.digest, d);
  if (images.size === 0) {
    throw new InvalidImageError(
      "Invalid archive: index.json lists no images",
    );
  }
  if (tag !== undefined) {
    if (images.size > 1) {
      throw new InvalidImageError(
        `Cannot apply --tag: the archive holds ${images.size} images (${
          [...images.keys()].join(", ")
        }); import it without --tag to use the names in the archive`,
      );
    }
    const [only] = images.values();
    return [{ reference: tag, descriptor: plainDescriptor(only!) }];
  }
  const byName = new Map<string, TagEntry>();
  for (const d of index.manifests) {
    const reference = archiveName(d);
    if (reference === undefined) {
      const raw = d.annotations?.[ANNOTATION_REF_NAME];
      const why = raw === undefined
        ? "has no name"
        : `is named ${JSON.stringify(raw)}, which is not a full reference`;
      throw new InvalidImageError(
        images.size === 1
          ? `Archive image ${d.digest} ${why}: give one with --tag, such as --tag registry.example.com/os:1.0`
          : `Archive image ${d.digest} ${why}, and --tag cannot name it because the archive holds ${images.size} images: write the archive with full references as names`,
      );
    }
    const previous = byName.get(reference);
    if (previous && previous.descriptor.digest !== d.digest) {
      throw new InvalidImageError(
        `Invalid archive: ${reference} names two images, ${previous.descriptor.digest} and ${d.digest}`,
      );
    }
    byName.set(reference, { reference, descriptor: plainDescriptor(d) });
  }
  return [...byName.values()];
}

/**
 * Imports an OCI archive into the store while it streams: each
 * `blobs/sha256/<hex>` entry goes through {@linkcode Store.ingest}, which
 * checks its digest and size before the blob becomes visible; blobs the
 * store already has are passed over. After the last entry `index.json` is
 * validated and every image it lists is checked to be complete (manifests,
 * configs, layers), and only then tagged. Entries that could escape a
 * directory (absolute paths, `..`, links, devices) and archives that are
 * not OCI image layouts are refused. On any failure no tag changes and the
 * blobs this call added are removed again.
 *
 * @param store The store.
 * @param source The archive bytes; always consumed or cancelled.
 * @param options The tag to give the archive's single image, abort signal
 * and progress.
 * @returns The tags set and what moved.
 * @throws {InvalidImageError} When the archive is not a complete OCI layout
 * or holds unsafe entries.
 * @throws {SyntaxError} When the tar stream is malformed or truncated.
 * @throws {DigestMismatchError} When a blob's bytes do not match its name.
 *
 * @example Copy an image between stores through an archive
 * ```ts
 * import { build, exportArchive, importArchive, Store } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const a = await Store.open(`${dir}/a`);
 * await build(a, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "example.com/os:1.0",
 * });
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const b = await Store.open(`${dir}/b`);
 * const [, result] = await Promise.all([
 *   exportArchive(a, "example.com/os:1.0", writable),
 *   importArchive(b, readable, { tag: "example.com/os:copy" }),
 * ]);
 * console.log(result.images[0]!.reference); // "example.com/os:copy"
 * ```
 */
export async function importArchive(
  store: Store,
  source: ReadableStream<Uint8Array>,
  options: ImportArchiveOptions = {},
): Promise<ImportArchiveResult> {
  let tag: string | undefined;
  try {
    if (options.tag !== undefined) {
      tag = normalizeTag(options.tag, "the archive's image");
    }
    options.signal?.throwIfAborted();
  } catch (e) {
    await source.cancel(e).catch(() => {});
    throw e;
  }
  const tar = new TarReader(source);
  const added: Digest[] = [];
  const result: ImportArchiveResult = {
    images: [],
    ingested: 0,
    skipped: 0,
    bytes: 0,
  };
  const progress = options.onProgress;
  try {
    let layout: Uint8Array | undefined;
    let indexBytes: Uint8Array | undefined;
    const blobs = new Set<string>();
    for (;;) {
      options.signal?.throwIfAborted();
      const entry = await tar.next();
      if (entry === null) break;
      const kind = ENTRY_KINDS[entry.type];
      if (kind !== undefined) refuse(entry, kind);
      const path = entryPath(entry);
      if (entry.type !== "file") continue;
      if (path === "oci-layout" || path === "index.json") {
        if ((path === "oci-layout" ? layout : indexBytes) !== undefined) {
          throw new InvalidImageError(
            `Invalid archive: it holds ${path} twice`,
          );
        }
        const limit = path === "oci-layout"
          ? MAX_LAYOUT_BYTES
          : MAX_MANIFEST_BYTES;
        if (entry.size > limit) {
          throw new InvalidImageError(
            `Invalid archive: ${path} is ${entry.size} bytes, over the ${limit}-byte limit`,
          );
        }
        const bytes = await tar.readAll(limit);
        if (path === "oci-layout") layout = bytes;
        else indexBytes = bytes;
        continue;
      }
      const m = BLOB_RE.exec(path);
      if (m === null) continue; // Other files (manifest.json, …) are not ours.
      const digest = `sha256:${m[1]}`;
      if (!isDigest(digest)) {
        refuse(entry, "its name is not 64 lowercase hex digits");
      }
      blobs.add(digest);
      const name = shortName(digest);
      if (await store.hasBlob(digest, entry.size)) {
        result.skipped++;
        progress?.({
          name,
          digest,
          done: entry.size,
          total: entry.size,
          phase: "skip",
        });
        continue;
      }
      const existed = await store.hasBlob(digest);
      const opts: OperationOptions = {};
      if (options.signal) opts.signal = options.signal;
      if (progress) opts.onProgress = progress;
      try {
        await store.ingest(
          { digest, size: entry.size, name },
          tar.body(),
          opts,
        );
      } catch (e) {
        if (e instanceof DigestMismatchError) {
          throw new DigestMismatchError(
            e.expected,
            e.actual,
            `archive entry ${path}`,
          );
        }
        throw e;
      }
      if (!existed) added.push(digest);
      result.ingested++;
      result.bytes += entry.size;
    }
    if (layout === undefined) {
      throw new InvalidImageError(
        "Not an OCI archive: it has no oci-layout file; give a tar of an OCI image layout, such as one written by export or skopeo copy … oci-archive:FILE",
      );
    }
    const version = (parseJson(layout, "oci-layout") as {
      imageLayoutVersion?: unknown;
    } | null)?.imageLayoutVersion;
    if (version !== "1.0.0") {
      throw new InvalidImageError(
        `Unsupported OCI archive: oci-layout gives imageLayoutVersion ${
          JSON.stringify(version)
        }, expected "1.0.0"`,
      );
    }
    if (indexBytes === undefined) {
      throw new InvalidImageError(
        "Invalid OCI archive: it has no index.json; the archive is incomplete",
      );
    }
    const index = validateIndex(parseJson(indexBytes, "index.json"));
    const tags = chooseTags(index, tag);
    for (const t of tags) {
      await closure(store, t.descriptor, (d, role) =>
        new InvalidImageError(
          `Incomplete archive: blob ${d.digest} (${role}, ${d.size} bytes) is ${
            blobs.has(d.digest) ? "there with another size" : "missing"
          }; export or copy the image again`,
        ));
    }
    options.signal?.throwIfAborted();
    await store.setTags(tags);
    result.images = tags;
  } catch (e) {
    await tar.cancel(e);
    for (const digest of added) {
      await Deno.remove(store.blobPath(digest)).catch(() => {});
    }
    throw e;
  }
  await tar.cancel();
  return result;
}
