/**
 * Loads an image from the local store or a registry and checks it with
 * {@linkcode validateImage}.
 *
 * @module
 */

import { sizeMismatch } from "../_errors.ts";
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
import { formatReference, parseReference } from "../oci/reference.ts";
import { readLimitedBytes } from "../net/_limited.ts";
import type { RegistryClient, Repository } from "../registry/client.ts";
import { MAX_CONFIG_BYTES } from "../spec/config.ts";
import {
  CONFIG_MEDIA_TYPE,
  LEGACY_CONFIG_MEDIA_TYPE,
} from "../spec/media_types.ts";
import {
  type ImageInput,
  type ManifestInput,
  validateImage,
  type ValidationResult,
} from "../spec/validate_documents.ts";
import type { Store } from "../store/store.ts";

/** What {@linkcode validateLocal} and {@linkcode validateRemote} found. */
export interface ValidationReport extends ValidationResult {
  /** The full reference checked, or what was given for a digest. */
  reference: string;
  /** The manifest or index the reference names. */
  descriptor: Descriptor;
}

/** Options for {@linkcode validateLocal} and {@linkcode validateRemote}. */
export interface ValidateOptions {
  /** Aborts the loading. */
  signal?: AbortSignal;
}

type Loaded = ParsedManifest & { bytes?: Uint8Array };

/** Reads documents and config blobs from one place. */
interface Source {
  manifest(descriptor: Descriptor): Promise<Loaded>;
  config(descriptor: Descriptor): Promise<Uint8Array>;
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

async function check(
  source: Source,
  descriptor: Descriptor,
  top: Loaded,
  signal: AbortSignal | undefined,
): Promise<ValidationResult> {
  if (top.kind === "manifest") {
    return validateImage({
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
  return validateImage(input);
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
 * Checks an image in the local store against the IronCore spec. Content
 * that is broken (a missing blob, a digest mismatch, a document that does
 * not parse) is reported as a finding, not thrown.
 *
 * @param store The store.
 * @param reference A tag, digest or unique digest prefix.
 * @param options Abort signal.
 * @returns The findings and whether the image is valid.
 * @throws {NotFoundError} When the store has no such image.
 *
 * @example
 * ```ts ignore
 * import { Store, validateLocal } from "../../mod.ts";
 * const report = await validateLocal(await Store.open("/tmp/store"), "my-os:1.0");
 * for (const f of report.findings) console.log(`${f.level}: ${f.path}: ${f.message}`);
 * ```
 */
export async function validateLocal(
  store: Store,
  reference: string,
  options: ValidateOptions = {},
): Promise<ValidationReport> {
  const resolved = await store.resolve(reference);
  const { annotations: _a, ...descriptor } = resolved.descriptor;
  const name = resolved.reference ?? reference;
  const source: Source = {
    manifest: (d) => store.readManifest(d),
    config: (d) => store.readBlob(d, { maxBytes: MAX_CONFIG_BYTES }),
  };
  let top: Loaded;
  try {
    top = await source.manifest(descriptor);
  } catch (e) {
    const problem = contentProblem(e);
    if (problem === undefined) throw e;
    return unreadable(descriptor, name, problem);
  }
  const result = await check(source, descriptor, top, options.signal);
  return { reference: name, descriptor, ...result };
}

async function fetchConfig(
  client: RegistryClient,
  repo: Repository,
  descriptor: Descriptor,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const res = await client.getBlob(
    repo,
    descriptor.digest,
    signal ? { signal } : {},
  );
  // One byte past the declared size shows a blob that is too long; the
  // digest and size themselves are checked by validateImage.
  const limit = Math.min(descriptor.size, MAX_CONFIG_BYTES) + 1;
  const bytes = await readLimitedBytes(res, limit);
  if (bytes.byteLength === limit) {
    throw sizeMismatch(
      descriptor.size,
      bytes.byteLength,
      `config blob ${descriptor.digest} (at least)`,
    );
  }
  return bytes;
}

/**
 * Checks an image in a registry against the IronCore spec, fetching only
 * the index, the manifests and the (small) config blobs. Broken content is
 * reported as a finding, not thrown.
 *
 * @param client The registry client.
 * @param reference The remote image, e.g. `registry.example.com/os/demo:1.0`.
 * @param options Abort signal.
 * @returns The findings and whether the image is valid.
 * @throws {NotFoundError} When the registry has no such image.
 *
 * @example
 * ```ts ignore
 * import { RegistryClient, validateRemote } from "../../mod.ts";
 * const report = await validateRemote(new RegistryClient(), "ghcr.io/org/os:1.0");
 * console.log(report.ok);
 * ```
 */
export async function validateRemote(
  client: RegistryClient,
  reference: string,
  options: ValidateOptions = {},
): Promise<ValidationReport> {
  const ref = parseReference(reference);
  const repo = { registry: ref.registry, repository: ref.repository };
  const signal = options.signal;
  const opts = signal ? { signal } : {};
  const top = await client.getManifest(repo, ref.digest ?? ref.tag!, opts);
  const source: Source = {
    // getManifest checks the digest; a wrong size in the index entry is
    // reported from the bytes by validateImage.
    manifest: (d) => client.getManifest(repo, d.digest, opts),
    config: (d) => fetchConfig(client, repo, d, signal),
  };
  const result = await check(source, top.descriptor, top, signal);
  return {
    reference: formatReference(ref),
    descriptor: top.descriptor,
    ...result,
  };
}
