/**
 * Reads an OCI archive (a tar of an OCI image layout, such as one written by
 * {@linkcode exportArchive} or `skopeo copy … oci-archive:FILE`) into the
 * store while it streams, verifying every blob, and tags its images only
 * once all of them check out.
 *
 * Naming: a name is taken from containerd's `io.containerd.image.name`, else
 * from `org.opencontainers.image.ref.name`; a bare word such as `v1` or
 * `latest` (what `skopeo copy … oci-archive:FILE:v1` writes) names no
 * repository, so such an image needs an explicit tag.
 *
 * @module
 */

import { digestMismatch } from "../_errors.ts";
import { DigestMismatchError, InvalidImageError } from "../errors.ts";
import { type Digest, isDigest } from "../oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
  MAX_MANIFEST_BYTES,
  validateIndex,
} from "../oci/manifest.ts";
import { tagReference } from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import type { Store, TagEntry } from "../store/store.ts";
import {
  ANNOTATION_CONTAINERD_NAME,
  closure,
  plainDescriptor,
  shortName,
} from "./_layout.ts";
import { type TarEntry, TarReader } from "./_tar_reader.ts";
import { blobStoreOf, tagIndexOf } from "../store/_internal.ts";

/** Largest `oci-layout` file read. */
const MAX_LAYOUT_BYTES = 64 * 1024;
/** The path of a blob in a layout. */
const BLOB_RE = /^blobs\/sha256\/([^/]+)$/;

/** Options for {@linkcode importArchive}. */
export interface ImportArchiveOptions extends OperationOptions {
  /**
   * Tag for the archive's image (it must hold exactly one). Without it the
   * names in the archive's `index.json` are used.
   */
  tag?: string | undefined;
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
      return tagReference(value);
    } catch {
      // Not a reference: try the next annotation, then ask for a tag.
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
        `Cannot use the tag: the archive holds ${images.size} images (${
          [...images.keys()].join(", ")
        }); leave tag unset to use the names in the archive`,
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
          ? `Archive image ${d.digest} ${why}: set tag to name it, such as registry.example.com/os:1.0`
          : `Archive image ${d.digest} ${why}, and tag cannot name it because the archive holds ${images.size} images: write the archive with full references as names`,
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
 * @throws {InvalidImageError} When the tar stream is malformed or truncated.
 * @throws {DigestMismatchError} When a blob's bytes do not match its name.
 *
 * @example Copy an image between stores through an archive
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { exportArchive, importArchive } from "@ironcore/image/archive";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const a = await Store.open(`${dir}/a`);
 * await buildImage(a, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "example.com/os:1.0",
 * });
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const b = await Store.open(`${dir}/b`);
 * const [, result] = await Promise.all([
 *   exportArchive(a, "example.com/os:1.0", { writable }),
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
      tag = tagReference(options.tag);
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
      if (await blobStoreOf(store).holds(digest, entry.size)) {
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
        await blobStoreOf(store).putStream(
          { digest, size: entry.size, name },
          tar.body(),
          opts,
        );
      } catch (e) {
        if (e instanceof DigestMismatchError) {
          throw digestMismatch(
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
    await tagIndexOf(store).setTags(tags);
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
