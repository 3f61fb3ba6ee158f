/**
 * Loads an image from the local store or a registry and checks it with
 * `validateDocuments`.
 *
 * @module
 */

import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
  SizeMismatchError,
} from "../errors.ts";
import {
  type Descriptor,
  isIndexMediaType,
  type ParsedManifest,
} from "../oci/manifest.ts";
import { RegistryClient } from "../registry/client.ts";
import { MAX_CONFIG_BYTES } from "../spec/config.ts";
import {
  CONFIG_MEDIA_TYPE,
  LEGACY_CONFIG_MEDIA_TYPE,
} from "../spec/media_types.ts";
import {
  type ImageInput,
  type ManifestInput,
  validateDocuments,
  type ValidationResult,
} from "../spec/validate_documents.ts";
import type { Store } from "../store/store.ts";
import { openDocuments } from "./_documents.ts";

/** What {@linkcode validateImage} found. */
export interface ValidationReport extends ValidationResult {
  /** The full reference checked, or what was given for a digest. */
  reference: string;
  /** The manifest or index the reference names. */
  descriptor: Descriptor;
}

/** Options for {@linkcode validateImage}. */
export interface ValidateImageOptions {
  /** Aborts the loading. */
  signal?: AbortSignal | undefined;
}

type Loaded = ParsedManifest & { bytes?: Uint8Array | undefined };

/** Reads documents and config blobs from one place. */
interface Source {
  manifest(descriptor: Descriptor): Promise<Loaded>;
  config(descriptor: Descriptor): Promise<Uint8Array>;
  /** Checks that a layer blob is there with its size, without reading it. */
  layer?: ((descriptor: Descriptor) => Promise<void>) | undefined;
}

/** Errors that describe broken content rather than a failure to look. */
function contentProblem(e: unknown): string | undefined {
  if (
    e instanceof InvalidImageError || e instanceof DigestMismatchError ||
    e instanceof SizeMismatchError || e instanceof NotFoundError ||
    e instanceof SyntaxError
  ) {
    return e.message;
  }
  return undefined;
}

function isIroncoreConfig(mediaType: string): boolean {
  return mediaType === CONFIG_MEDIA_TYPE ||
    mediaType === LEGACY_CONFIG_MEDIA_TYPE;
}

async function loadManifestInput(
  source: Source,
  descriptor: Descriptor,
  manifest: Loaded & { kind: "manifest" },
  signal: AbortSignal | undefined,
): Promise<ManifestInput> {
  const input: ManifestInput = { descriptor, manifest: manifest.manifest };
  if (manifest.bytes) input.bytes = manifest.bytes;
  await checkLayers(source, input, signal);
  const config = manifest.manifest.config;
  if (!isIroncoreConfig(config.mediaType)) return input;
  if (config.size > MAX_CONFIG_BYTES) {
    input.configError =
      `its descriptor says ${config.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`;
    return input;
  }
  signal?.throwIfAborted();
  try {
    input.config = await source.config(config);
  } catch (e) {
    const problem = contentProblem(e);
    if (problem === undefined) throw e;
    input.configError = problem;
  }
  return input;
}

/** Notes the layer blobs that are missing or of another size. */
async function checkLayers(
  source: Source,
  input: ManifestInput,
  signal: AbortSignal | undefined,
): Promise<void> {
  const check = source.layer;
  if (check === undefined) return;
  const layers = Array.isArray(input.manifest.layers)
    ? input.manifest.layers
    : [];
  for (const [j, layer] of layers.entries()) {
    signal?.throwIfAborted();
    try {
      await check(layer);
    } catch (e) {
      const problem = contentProblem(e);
      if (problem === undefined) throw e;
      (input.layerErrors ??= {})[j] = problem;
    }
  }
}

async function check(
  source: Source,
  descriptor: Descriptor,
  top: Loaded,
  signal: AbortSignal | undefined,
): Promise<ValidationResult> {
  if (top.kind === "manifest") {
    return validateDocuments({
      manifests: [await loadManifestInput(source, descriptor, top, signal)],
    });
  }
  const input: ImageInput = {
    index: { descriptor, index: top.index },
    manifests: [],
    unloaded: [],
  };
  if (top.bytes) input.index!.bytes = top.bytes;
  const seen = new Set<string>();
  for (const entry of top.index.manifests) {
    if (seen.has(entry.digest)) continue;
    seen.add(entry.digest);
    signal?.throwIfAborted();
    let child: Loaded;
    try {
      child = await source.manifest(entry);
    } catch (e) {
      const problem = contentProblem(e);
      if (problem === undefined) throw e;
      input.unloaded!.push({ descriptor: entry, reason: problem });
      continue;
    }
    if (child.kind !== "manifest") {
      input.unloaded!.push({
        descriptor: entry,
        reason:
          "it is an index, not an image manifest: IronCore images do not nest indexes",
      });
      continue;
    }
    input.manifests.push(
      await loadManifestInput(source, entry, child, signal),
    );
  }
  return validateDocuments(input);
}

function unreadable(
  descriptor: Descriptor,
  reference: string,
  message: string,
): ValidationReport {
  return {
    reference,
    descriptor,
    ok: false,
    findings: [{
      level: "error",
      path: isIndexMediaType(descriptor.mediaType) ? "index" : "manifest",
      message: `cannot read ${descriptor.digest}: ${message}`,
    }],
  };
}

/**
 * Checks an image, in the local store or in a registry, against the
 * IronCore spec, loading only the index, the manifests and the (small)
 * config blobs; in the store, every layer blob is also checked to be there
 * with the size its descriptor gives (not re-hashed: `verifyStore` does
 * that). Content that is broken (a missing blob, a digest mismatch, a
 * document that does not parse) is reported as a finding, not thrown.
 *
 * @param source The local store or a registry client.
 * @param reference In a store a tag, digest or unique digest prefix; for a
 * registry a full reference such as `registry.example.com/os/demo:1.0`.
 * @param options Abort signal.
 * @returns The findings and whether the image is valid.
 * @throws {NotFoundError} When there is no such image.
 *
 * @example Validate a freshly built image
 * ```ts
 * import { buildImage, Store, validateImage } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const store = await Store.open(`${dir}/store`);
 * await buildImage(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } },
 * ], { tag: "example.com/os:1.0" });
 * const report = await validateImage(store, "example.com/os:1.0");
 * for (const f of report.findings) console.log(`${f.level}: ${f.path}: ${f.message}`);
 * console.log(report.ok); // true
 * ```
 */
export async function validateImage(
  source: Store | RegistryClient,
  reference: string,
  options: ValidateImageOptions = {},
): Promise<ValidationReport> {
  const signal = options.signal;
  const docs = await openDocuments(source, reference, signal);
  const loader: Source = {
    manifest: async (d) => {
      const doc = await docs.manifest(d);
      return { ...doc.parsed, bytes: doc.bytes };
    },
    config: (d) => docs.config(d),
  };
  // In the store, a layer is checked to be there, whole, by its size; in a
  // registry that would cost a request per layer, so only the documents
  // are checked there.
  if (!(source instanceof RegistryClient)) {
    loader.layer = async (d) => {
      await docs.blob(d, "layer");
    };
  }
  let top: Loaded;
  try {
    const doc = await docs.top();
    top = { ...doc.parsed, bytes: doc.bytes };
  } catch (e) {
    const problem = contentProblem(e);
    if (problem === undefined) throw e;
    return unreadable(docs.descriptor, docs.name, problem);
  }
  const result = await check(loader, docs.descriptor, top, signal);
  return { reference: docs.name, descriptor: docs.descriptor, ...result };
}
