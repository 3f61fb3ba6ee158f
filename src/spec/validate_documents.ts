/**
 * Checks an IronCore image against `OCI-SPEC.md` and lists every problem
 * found, not only the first. Pure: the caller loads the documents (from the
 * local store or a registry) and hands them in.
 *
 * @module
 */

import { digestOf } from "../oci/digest.ts";
import {
  ANNOTATION_TITLE,
  type Descriptor,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  type ImageIndex,
  type ImageManifest,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../oci/manifest.ts";
import { formatPlatform } from "../oci/platform.ts";
import { architectureProblem } from "./architecture.ts";
import { MAX_CONFIG_BYTES } from "./config.ts";
import {
  ANNOTATION_VARIANT,
  CONFIG_MEDIA_TYPE,
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  layerKindOf,
  LEGACY_CONFIG_MEDIA_TYPE,
  VARIANTS,
} from "./media_types.ts";

/** One problem found by {@linkcode validateDocuments}. */
export interface Finding {
  /** `error` makes the image invalid; `warning` is worth a look. */
  level: "error" | "warning";
  /**
   * Where the problem is, e.g. `index.manifests[1].platform` or
   * `manifests[0].layers[2].mediaType` (the manifest reached through index
   * entry 0), `manifest.config` for an image without index.
   */
  path: string;
  /** What is wrong, and what is expected instead. */
  message: string;
}

/** What {@linkcode validateDocuments} found. */
export interface ValidationResult {
  /** `true` when there is no finding of level `error`. */
  ok: boolean;
  /** Every finding, errors and warnings, in document order. */
  findings: Finding[];
}

/** The index of an image, as loaded. */
export interface IndexInput {
  /** The descriptor the index was reached through (tag or digest). */
  descriptor: Descriptor;
  /** The parsed index. */
  index: ImageIndex;
  /** The raw bytes, when at hand, to check against the descriptor. */
  bytes?: Uint8Array | undefined;
}

/** One image manifest, as loaded. */
export interface ManifestInput {
  /** The descriptor it was reached through: an index entry, or the tag's. */
  descriptor: Descriptor;
  /** The parsed manifest. */
  manifest: ImageManifest;
  /** The raw manifest bytes, when at hand, to check against the descriptor. */
  bytes?: Uint8Array | undefined;
  /**
   * The config blob's bytes. Left out, the config's content is not checked
   * (only its media type), unless `configError` says why it is missing.
   */
  config?: Uint8Array | undefined;
  /** Why the config blob could not be loaded (missing, wrong digest, …). */
  configError?: string | undefined;
  /**
   * Why layer blobs cannot be read (missing, of another size), by the
   * layer's position in `layers`. Left out, the layer blobs are not checked.
   */
  layerErrors?: Record<number, string> | undefined;
}

/** An index entry whose manifest could not be loaded. */
export interface UnloadedManifest {
  /** The index entry. */
  descriptor: Descriptor;
  /** Why it could not be loaded. */
  reason: string;
}

/**
 * Everything {@linkcode validateDocuments} checks. Either an index with the
 * manifests its entries point to (matched by digest), or one manifest.
 */
export interface ImageInput {
  /** The index, when the image has one. */
  index?: IndexInput | undefined;
  /** The image manifests: one per distinct index entry, or the only one. */
  manifests: ManifestInput[];
  /** Index entries whose manifests could not be loaded. */
  unloaded?: UnloadedManifest[] | undefined;
}

const METAL_ROOTS: readonly LayerKind[] = ["rootfs", "squashfs", "disk"];
const VIRTUALIZATION_ROOTS: readonly LayerKind[] = [
  "disk",
  "rootfs",
  "squashfs",
];

class Findings {
  readonly list: Finding[] = [];
  error(path: string, message: string): void {
    this.list.push({ level: "error", path, message });
  }
  warning(path: string, message: string): void {
    this.list.push({ level: "warning", path, message });
  }
}

function checkBytes(
  out: Findings,
  path: string,
  what: string,
  descriptor: Pick<Descriptor, "digest" | "size">,
  bytes: Uint8Array | undefined,
): void {
  if (bytes === undefined) return;
  if (bytes.byteLength !== descriptor.size) {
    out.error(
      path,
      `${what} is ${bytes.byteLength} bytes, its descriptor says ${descriptor.size}`,
    );
  }
  const digest = digestOf(bytes);
  if (digest !== descriptor.digest) {
    out.error(
      path,
      `${what} has digest ${digest}, its descriptor says ${descriptor.digest}`,
    );
  }
}

/** The media types of an index or a manifest: OCI's, and Docker's. */
const DOCUMENT_TYPES = {
  index: {
    oci: OCI_INDEX_MEDIA_TYPE,
    docker: DOCKER_MANIFEST_LIST_MEDIA_TYPE,
    dockerName: "Docker manifest list",
    noun: "an image index",
  },
  manifest: {
    oci: OCI_MANIFEST_MEDIA_TYPE,
    docker: DOCKER_MANIFEST_MEDIA_TYPE,
    dockerName: "Docker manifest",
    noun: "an image manifest",
  },
} as const;

/**
 * Checks the media type of an index or a manifest: OCI's is right, Docker's
 * or none is a warning, anything else an error.
 */
function checkDocumentType(
  out: Findings,
  path: string,
  type: string | undefined,
  kind: keyof typeof DOCUMENT_TYPES,
): void {
  const { oci, docker, dockerName, noun } = DOCUMENT_TYPES[kind];
  if (type === undefined) {
    out.warning(path, `media type is not set, expected ${oci}`);
  } else if (type === docker) {
    out.warning(path, `${dockerName} ${type}: IronCore images use ${oci}`);
  } else if (type !== oci) {
    out.error(path, `media type ${type} is not ${noun}, expected ${oci}`);
  }
}

function checkIndex(out: Findings, input: IndexInput): void {
  const { index } = input;
  checkDocumentType(out, "index.mediaType", index.mediaType, "index");
  checkBytes(out, "index", "the index", input.descriptor, input.bytes);
  const entries = Array.isArray(index.manifests) ? index.manifests : [];
  if (entries.length === 0) {
    out.error("index.manifests", "the index lists no manifests");
  }
  const seen = new Map<string, number>();
  entries.forEach((entry, i) => {
    const path = `index.manifests[${i}]`;
    checkDocumentType(out, `${path}.mediaType`, entry.mediaType, "manifest");
    const p = entry.platform;
    if (p === undefined || p === null) {
      out.error(
        `${path}.platform`,
        'platform is missing: every entry needs {"os": "linux", "architecture": ARCH}',
      );
      return;
    }
    const hasOs = typeof p.os === "string" && p.os !== "";
    const hasArch = typeof p.architecture === "string" &&
      p.architecture !== "";
    if (!hasOs) out.error(`${path}.platform.os`, "os is missing");
    else if (p.os !== "linux") {
      out.warning(
        `${path}.platform.os`,
        `os is ${p.os}: IronCore images run on linux`,
      );
    }
    if (!hasArch) {
      out.error(`${path}.platform.architecture`, "architecture is missing");
    } else {
      const problem = architectureProblem(p.architecture);
      if (problem) out.error(`${path}.platform.architecture`, problem);
    }
    if (hasOs && hasArch) {
      const key = formatPlatform(p);
      const first = seen.get(key);
      if (first !== undefined) {
        out.error(
          `${path}.platform`,
          `platform ${key} is already listed by index.manifests[${first}]: an architecture appears at most once`,
        );
      } else seen.set(key, i);
    }
  });
}

function kindsOf(manifest: ImageManifest): Set<LayerKind> {
  const kinds = new Set<LayerKind>();
  for (const l of manifest.layers ?? []) {
    const k = layerKindOf(l.mediaType);
    if (k) kinds.add(k.kind);
  }
  return kinds;
}

function list(kinds: Iterable<LayerKind>): string {
  const sorted = LAYER_KINDS.filter((k) => [...kinds].includes(k));
  return sorted.length ? sorted.join(", ") : "no IronCore layers";
}

function checkVariant(
  out: Findings,
  prefix: string,
  manifest: ImageManifest,
): void {
  const variant = manifest.annotations?.[ANNOTATION_VARIANT];
  const path = `${prefix}.annotations.${ANNOTATION_VARIANT}`;
  if (variant === undefined) {
    out.warning(
      `${prefix}.annotations`,
      "no variant annotation, cannot check required layers",
    );
    return;
  }
  if (!(VARIANTS as readonly string[]).includes(variant)) {
    out.error(
      path,
      `unknown variant ${JSON.stringify(variant)}: expected ${
        VARIANTS.join(" or ")
      }`,
    );
    return;
  }
  const kinds = kindsOf(manifest);
  const has = (k: LayerKind) => kinds.has(k);
  if (variant === "metal") {
    const direct = has("kernel") && has("initramfs") &&
      METAL_ROOTS.some(has);
    if (direct || has("uki") || has("iso")) return;
    const missing: string[] = [];
    if (!has("kernel")) missing.push("kernel");
    if (!has("initramfs")) missing.push("initramfs");
    if (!METAL_ROOTS.some(has)) missing.push("a root file system");
    out.error(
      path,
      `variant metal needs kernel + initramfs + a root file system (rootfs, squashfs or disk), a uki, or an iso: the image has ${
        list(kinds)
      } (missing ${missing.join(", ")})`,
    );
  } else if (!VIRTUALIZATION_ROOTS.some(has)) {
    out.error(
      path,
      `variant virtualization needs a disk or a root file system (rootfs or squashfs): the image has ${
        list(kinds)
      }`,
    );
  }
}

function checkConfigBlob(
  out: Findings,
  path: string,
  input: ManifestInput,
): void {
  const bytes = input.config;
  if (bytes === undefined) {
    if (input.configError !== undefined) {
      out.error(path, `cannot read the config blob: ${input.configError}`);
    }
    return;
  }
  checkBytes(out, path, "the config blob", input.manifest.config, bytes);
  if (bytes.byteLength > MAX_CONFIG_BYTES) {
    out.error(
      path,
      `the config blob is ${bytes.byteLength} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`,
    );
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    out.error(
      path,
      `the config blob is not UTF-8 JSON (${(e as Error).message})`,
    );
    return;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    out.error(path, "the config blob is not a JSON object");
    return;
  }
  const commandLine = (value as Record<string, unknown>).commandLine;
  if (commandLine !== undefined && typeof commandLine !== "string") {
    out.error(
      `${path}.commandLine`,
      `commandLine must be a string, got ${
        commandLine === null
          ? "null"
          : Array.isArray(commandLine)
          ? "an array"
          : `a ${typeof commandLine}`
      }`,
    );
  }
}

function checkManifest(
  out: Findings,
  prefix: string,
  input: ManifestInput,
  entry: Descriptor,
): void {
  const { manifest } = input;
  const type = manifest.mediaType;
  checkDocumentType(out, `${prefix}.mediaType`, type, "manifest");
  if (type !== undefined && entry.mediaType !== type) {
    out.error(
      `${prefix}.mediaType`,
      `the manifest says ${type}, the descriptor pointing to it says ${entry.mediaType}`,
    );
  }
  if (input.bytes !== undefined) {
    checkBytes(out, prefix, "the manifest", entry, input.bytes);
  } else if (input.descriptor.size !== entry.size) {
    out.error(
      prefix,
      `the manifest is ${input.descriptor.size} bytes, its descriptor says ${entry.size}`,
    );
  }

  const config = manifest.config;
  const configPath = `${prefix}.config`;
  const ironcoreConfig = config.mediaType === CONFIG_MEDIA_TYPE ||
    config.mediaType === LEGACY_CONFIG_MEDIA_TYPE;
  if (config.mediaType === LEGACY_CONFIG_MEDIA_TYPE) {
    out.warning(
      `${configPath}.mediaType`,
      `legacy config media type ${config.mediaType}: current is ${CONFIG_MEDIA_TYPE}`,
    );
  } else if (!ironcoreConfig) {
    out.error(
      `${configPath}.mediaType`,
      `config media type ${config.mediaType} is not an IronCore config, expected ${CONFIG_MEDIA_TYPE}`,
    );
  }
  if (ironcoreConfig) checkConfigBlob(out, configPath, input);

  const layers = Array.isArray(manifest.layers) ? manifest.layers : [];
  if (layers.length === 0) {
    out.error(
      `${prefix}.layers`,
      `the manifest has no layers: an image needs at least one (${
        LAYER_KINDS.join(", ")
      })`,
    );
  }
  const first = new Map<string, number>();
  layers.forEach((layer, j) => {
    const path = `${prefix}.layers[${j}]`;
    const unreadable = input.layerErrors?.[j];
    if (unreadable !== undefined) {
      out.error(path, `cannot read the layer blob: ${unreadable}`);
    }
    const found = layerKindOf(layer.mediaType);
    if (!found) {
      out.error(
        `${path}.mediaType`,
        `unknown layer media type ${layer.mediaType}: expected one of ${
          LAYER_KINDS.map((k) => LAYER_MEDIA_TYPES[k]).join(", ")
        }`,
      );
    } else {
      if (found.legacy) {
        out.warning(
          `${path}.mediaType`,
          `legacy ${found.kind} media type ${layer.mediaType}: current is ${
            LAYER_MEDIA_TYPES[found.kind]
          }`,
        );
      }
      // The same kind once current and once legacy is allowed (old and new
      // readers); twice the same generation is not.
      const key = `${found.kind}/${found.legacy}`;
      const earlier = first.get(key);
      if (earlier !== undefined) {
        out.error(
          `${path}.mediaType`,
          `second ${found.kind} layer (${prefix}.layers[${earlier}] is one already): an image has at most one layer of each kind`,
        );
      } else first.set(key, j);
    }
    const title = layer.annotations?.[ANNOTATION_TITLE];
    if (title === undefined || title === "") {
      out.warning(
        `${path}.annotations`,
        `no ${ANNOTATION_TITLE} annotation: tools that unpack by title cannot name the file`,
      );
    }
  });
  checkVariant(out, prefix, manifest);
}

/**
 * Checks an IronCore image: media types of the index, manifests, config and
 * layers, the platform of every index entry (its architecture named as Go
 * names it: `amd64`, not `x86_64`), the config's JSON, one layer per
 * kind, the layers the `variant` annotation needs, layer titles, and that the
 * bytes given match their descriptors. Docker and legacy `v1alpha1` media
 * types are warnings; what `OCI-SPEC.md` forbids is an error. Every problem is
 * listed.
 *
 * @param input The index (if any), the manifests with their config blobs, and
 * the index entries that could not be loaded.
 * @returns `ok` (no errors) and the findings.
 *
 * @example Check a kernel-only image without variant
 * ```ts
 * import { digestOf, type ImageManifest } from "@ironcore/image/oci";
 * import { validateDocuments } from "@ironcore/image/spec";
 * const config = new TextEncoder().encode('{"commandLine":"console=ttyS0"}');
 * const mediaType = "application/vnd.oci.image.manifest.v1+json";
 * const manifest: ImageManifest = {
 *   schemaVersion: 2,
 *   mediaType,
 *   config: {
 *     mediaType: "application/vnd.ironcore.image.config.v1+json",
 *     digest: digestOf(config),
 *     size: config.byteLength,
 *   },
 *   layers: [{
 *     mediaType: "application/vnd.ironcore.image.kernel",
 *     digest: digestOf("kernel bytes"),
 *     size: 12,
 *   }],
 * };
 * const bytes = new TextEncoder().encode(JSON.stringify(manifest));
 * const result = validateDocuments({
 *   manifests: [{
 *     descriptor: { mediaType, digest: digestOf(bytes), size: bytes.byteLength },
 *     manifest,
 *     config,
 *   }],
 * });
 * console.log(result.ok); // true: missing title and variant are warnings
 * for (const f of result.findings) console.log(`${f.level}: ${f.path}: ${f.message}`);
 * ```
 */
export function validateDocuments(input: ImageInput): ValidationResult {
  const out = new Findings();
  const byDigest = new Map<string, ManifestInput>();
  for (const m of input.manifests) {
    if (!byDigest.has(m.descriptor.digest)) {
      byDigest.set(m.descriptor.digest, m);
    }
  }
  if (input.index) {
    checkIndex(out, input.index);
    const entries = Array.isArray(input.index.index.manifests)
      ? input.index.index.manifests
      : [];
    entries.forEach((entry, i) => {
      const m = byDigest.get(entry.digest);
      if (m) {
        checkManifest(out, `manifests[${i}]`, m, entry);
        return;
      }
      const failed = input.unloaded?.find((u) =>
        u.descriptor.digest === entry.digest
      );
      out.error(
        `index.manifests[${i}]`,
        `cannot read manifest ${entry.digest}: ${
          failed?.reason ?? "it was not loaded"
        }`,
      );
    });
  } else {
    input.manifests.forEach((m, i) => {
      const prefix = input.manifests.length === 1
        ? "manifest"
        : `manifests[${i}]`;
      checkManifest(out, prefix, m, m.descriptor);
    });
    if (input.manifests.length === 0) {
      out.error("manifest", "no manifest was given");
    }
  }
  return {
    ok: !out.list.some((f) => f.level === "error"),
    findings: out.list,
  };
}
