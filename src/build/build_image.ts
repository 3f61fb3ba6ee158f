/**
 * Builds an IronCore image from files into the local store.
 *
 * @module
 */

import { invalidReference } from "../_errors.ts";
import { readSmallFile, specialKind } from "../_files.ts";
import {
  ANNOTATION_TITLE,
  type Descriptor,
  encodeJson,
  type ImageIndex,
  type ImageManifest,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../oci/manifest.ts";
import {
  formatReference,
  parseReference,
  tagReference,
  withTag,
} from "../oci/reference.ts";
import type { OperationOptions } from "../progress.ts";
import type { ImageConfig } from "../spec/config.ts";
import {
  ANNOTATION_VARIANT,
  CONFIG_MEDIA_TYPE,
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  type LayerKind,
} from "../spec/media_types.ts";
import { validateDocuments } from "../spec/validate_documents.ts";
import type { Store, TagEntry } from "../store/store.ts";
import type { ArchConfig } from "./arch_config.ts";
import { blobStoreOf, tagIndexOf } from "../store/_internal.ts";

/** Options for {@linkcode buildImage}. */
export interface BuildImageOptions extends OperationOptions {
  /**
   * Tag for the index; each architecture's manifest is also tagged
   * `<tag>-<arch>`. Without it the image is stored untagged.
   */
  tag?: string | undefined;
  /** Annotations on the index. */
  annotations?: Record<string, string> | undefined;
}

/** What {@linkcode buildImage} made. */
export interface BuildImageResult {
  /** Descriptor of the index. */
  index: Descriptor;
  /** Per-architecture manifests, in the order of the configurations. */
  manifests: {
    arch: string;
    descriptor: Descriptor;
    reference?: string | undefined;
  }[];
  /** Full reference of the index's tag, when tagged. */
  reference?: string | undefined;
}

/** The largest command line file read. */
const MAX_COMMAND_LINE_BYTES = 64 * 1024;

function baseName(path: string): string {
  return path.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? path;
}

async function checkInputFile(path: string, role: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot read ${role} file ${path}: no such file, check the path`,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot read ${role} file ${path}: permission denied`,
      );
    }
    throw e;
  }
  // Refused before it is opened: opening a FIFO waits for a writer, and a
  // device never ends.
  const kind = specialKind(st);
  if (kind !== undefined) {
    throw new TypeError(
      `Cannot read ${role} file ${path}: it is ${kind}, give a regular file`,
    );
  }
  try {
    (await Deno.open(path, { read: true })).close();
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot read ${role} file ${path}: permission denied`,
      );
    }
    throw e;
  }
}

async function readCommandLine(path: string): Promise<string> {
  const bytes = await readSmallFile(
    path,
    MAX_COMMAND_LINE_BYTES,
    (kind) =>
      kind === undefined
        ? new RangeError(
          `Command line file ${path} is larger than 64 KiB: a kernel command line fits in 64 KiB`,
        )
        : new TypeError(
          `Cannot read cmdline file ${path}: it is ${kind}, give a regular file`,
        ),
  );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new TypeError(
      `Command line file ${path} is not UTF-8 text: give a text file with the kernel command line`,
    );
  }
  if (text.includes("\0")) {
    throw new TypeError(
      `Command line file ${path} contains NUL bytes: give a text file with the kernel command line`,
    );
  }
  return text.trim();
}

function layerDescriptor(
  kind: LayerKind,
  blob: Pick<Descriptor, "digest" | "size">,
  path: string,
): Descriptor {
  return {
    mediaType: LAYER_MEDIA_TYPES[kind],
    digest: blob.digest,
    size: blob.size,
    annotations: { [ANNOTATION_TITLE]: baseName(path) },
  };
}

function manifestFor(
  c: ArchConfig,
  config: Pick<Descriptor, "digest" | "size">,
  layers: Descriptor[],
): ImageManifest {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: config.digest,
      size: config.size,
    },
    layers,
  };
  if (c.variant !== undefined) {
    manifest.annotations = { [ANNOTATION_VARIANT]: c.variant };
  }
  return manifest;
}

function indexFor(
  manifests: readonly { arch: string; descriptor: Descriptor }[],
  annotations: Record<string, string> | undefined,
): ImageIndex {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: manifests.map((m) => ({
      ...m.descriptor,
      platform: { architecture: m.arch, os: "linux" },
    })),
  };
  if (annotations && Object.keys(annotations).length > 0) {
    index.annotations = { ...annotations };
  }
  return index;
}

/** Stands in for the digests of files not read yet. */
const UNREAD = { digest: `sha256:${"0".repeat(64)}`, size: 0 } as const;

/**
 * Tells what is wrong with one architecture's configuration: what
 * `validateImage` would find wrong in the image {@linkcode buildImage}
 * made of it (an architecture not named as Go names it, no layers, layers
 * the variant needs and lacks, an unknown variant), or a layer kind that does
 * not exist. Reads no file: whether the files exist is checked by `buildImage`.
 *
 * @param config The configuration.
 * @returns The first problem, with how many more there are, or `undefined`.
 *
 * @example Check a metal image without initramfs
 * ```ts
 * import { checkArchConfig } from "./build_image.ts";
 * const problem = checkArchConfig({
 *   arch: "amd64",
 *   layers: { kernel: "vmlinuz", squashfs: "root.squashfs" },
 *   variant: "metal",
 * });
 * console.log(problem); // "variant metal needs kernel + initramfs + …"
 * ```
 */
export function checkArchConfig(config: ArchConfig): string | undefined {
  const problems: string[] = [];
  for (const key of Object.keys(config.layers)) {
    if (!(LAYER_KINDS as readonly string[]).includes(key)) {
      problems.push(
        `unknown layer kind ${JSON.stringify(key)}: use ${
          LAYER_KINDS.slice(0, -1).join(", ")
        } or ${LAYER_KINDS.at(-1)}`,
      );
    }
  }
  // The image build would write, with the files' digests left out.
  const layers: Descriptor[] = [];
  for (const kind of LAYER_KINDS) {
    const path = config.layers[kind];
    if (path !== undefined) layers.push(layerDescriptor(kind, UNREAD, path));
  }
  const manifest = manifestFor(config, UNREAD, layers);
  const m = encodeJson(manifest);
  const descriptor: Descriptor = {
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    digest: m.digest,
    size: m.size,
  };
  const index = indexFor([{ arch: config.arch, descriptor }], undefined);
  const ix = encodeJson(index);
  const { findings } = validateDocuments({
    index: {
      descriptor: {
        mediaType: OCI_INDEX_MEDIA_TYPE,
        digest: ix.digest,
        size: ix.size,
      },
      index,
    },
    manifests: [{ descriptor, manifest, bytes: m.bytes }],
  });
  for (const f of findings) if (f.level === "error") problems.push(f.message);
  if (problems.length === 0) return undefined;
  const more = problems.length - 1;
  return more === 0
    ? problems[0]
    : `${problems[0]} (and ${more} more problem${more === 1 ? "" : "s"})`;
}

/**
 * Builds an image: one manifest per architecture (a config blob and one layer
 * per file) and an index over them. Every input is checked before anything is
 * written, so bad input leaves the store as it was: an image that
 * `validateImage` would find invalid is not built (see
 * {@linkcode checkArchConfig}). Files are streamed and
 * hashed in one pass; a blob already in the store is not written again. Same
 * inputs give the same digests.
 *
 * @param store The store to build into.
 * @param architectures One configuration per architecture.
 * @param options Tag, index annotations, abort signal and progress.
 * @returns The index and manifests made.
 * @throws {TypeError} When there is no configuration, an architecture is
 * configured twice, or {@linkcode checkArchConfig} finds a problem.
 *
 * @example Build a kernel-and-initramfs image for two architectures
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * await Deno.writeTextFile(`${dir}/initrd.img`, "initramfs");
 * await Deno.writeTextFile(`${dir}/cmdline`, "console=ttyS0");
 * const layers = { kernel: `${dir}/vmlinuz`, initramfs: `${dir}/initrd.img` };
 * const store = await Store.open(`${dir}/store`);
 * const result = await buildImage(store, [
 *   { arch: "amd64", layers, cmdline: `${dir}/cmdline` },
 *   { arch: "arm64", layers, cmdline: `${dir}/cmdline` },
 * ], { tag: "example.com/os:1.0" });
 * console.log(result.reference); // "example.com/os:1.0"
 * console.log(result.index.digest); // the index, also tagged example.com/os:1.0
 * ```
 */
export async function buildImage(
  store: Store,
  architectures: readonly ArchConfig[],
  options: BuildImageOptions = {},
): Promise<BuildImageResult> {
  const configs = architectures;
  if (configs.length === 0) {
    throw new TypeError(
      "Nothing to build: give at least one architecture's configuration",
    );
  }
  const arches = new Set<string>();
  for (const [i, c] of configs.entries()) {
    if (typeof c.arch !== "string" || c.arch.trim() === "") {
      throw new TypeError(
        `Cannot build configuration ${
          i + 1
        } of ${configs.length}: its architecture is missing, set arch to the target's, such as amd64`,
      );
    }
    if (arches.has(c.arch)) {
      throw new TypeError(
        `Architecture ${c.arch} is configured twice: give one configuration per architecture`,
      );
    }
    arches.add(c.arch);
    const problem = checkArchConfig(c);
    if (problem !== undefined) {
      throw new TypeError(`Cannot build ${c.arch}: ${problem}`);
    }
  }
  let indexRef: string | undefined;
  const archRefs = new Map<string, string>();
  if (options.tag !== undefined) {
    if (options.tag.trim() === "") {
      throw invalidReference(
        options.tag,
        "the tag is empty, give a name like my-os:1.0",
      );
    }
    indexRef = tagReference(options.tag);
    const ref = parseReference(indexRef);
    for (const c of configs) {
      archRefs.set(
        c.arch,
        formatReference(withTag(ref, `${ref.tag}-${c.arch}`)),
      );
    }
  }
  const commandLines = new Map<string, string>();
  for (const c of configs) {
    for (const kind of LAYER_KINDS) {
      const path = c.layers[kind];
      if (path !== undefined) await checkInputFile(path, kind);
    }
    if (c.cmdline !== undefined) {
      await checkInputFile(c.cmdline, "cmdline");
      commandLines.set(c.arch, await readCommandLine(c.cmdline));
    }
  }

  const added = new Map<string, Descriptor>();
  const manifests: BuildImageResult["manifests"] = [];
  for (const c of configs) {
    options.signal?.throwIfAborted();
    const layers: Descriptor[] = [];
    for (const kind of LAYER_KINDS) {
      const path = c.layers[kind];
      if (path === undefined) continue;
      let blob = added.get(path);
      if (!blob) {
        const opts: OperationOptions & { name: string } = {
          name: `${c.arch}/${kind}`,
        };
        if (options.signal) opts.signal = options.signal;
        if (options.onProgress) opts.onProgress = options.onProgress;
        blob = await blobStoreOf(store).putFile(
          path,
          LAYER_MEDIA_TYPES[kind],
          opts,
        );
        added.set(path, blob);
      }
      layers.push(layerDescriptor(kind, blob, path));
    }
    const config: ImageConfig = {};
    const cmdline = commandLines.get(c.arch);
    if (cmdline !== undefined) config.commandLine = cmdline;
    const cfg = encodeJson(config);
    await blobStoreOf(store).putBytes(cfg.bytes, CONFIG_MEDIA_TYPE);
    const m = encodeJson(manifestFor(c, cfg, layers));
    const descriptor = await blobStoreOf(store).putBytes(
      m.bytes,
      OCI_MANIFEST_MEDIA_TYPE,
    );
    const entry: BuildImageResult["manifests"][number] = {
      arch: c.arch,
      descriptor,
    };
    const ref = archRefs.get(c.arch);
    if (ref !== undefined) entry.reference = ref;
    manifests.push(entry);
  }

  const ix = encodeJson(indexFor(manifests, options.annotations));
  const indexDescriptor = await blobStoreOf(store).putBytes(
    ix.bytes,
    OCI_INDEX_MEDIA_TYPE,
  );

  if (indexRef !== undefined) {
    const tags: TagEntry[] = [
      ...manifests.map((m) => ({
        reference: m.reference!,
        descriptor: m.descriptor,
      })),
      { reference: indexRef, descriptor: indexDescriptor },
    ];
    await tagIndexOf(store).setTags(tags);
  } else {
    await tagIndexOf(store).update((ix) => ({
      ...ix,
      manifests: [
        ...ix.manifests.filter((d) =>
          d.digest !== indexDescriptor.digest || d.annotations !== undefined
        ),
        indexDescriptor,
      ],
    }));
  }
  const result: BuildImageResult = { index: indexDescriptor, manifests };
  if (indexRef !== undefined) result.reference = indexRef;
  return result;
}
