/**
 * OCI descriptors, image manifests and image indexes, with strict validation
 * of untrusted JSON and deterministic encoding.
 *
 * @module
 */

import { InvalidImageError } from "../errors.ts";
import { type Digest, digestOf, isDigest } from "./digest.ts";
import type { Platform } from "./platform.ts";

/** Media type of an OCI image manifest. */
export const OCI_MANIFEST_MEDIA_TYPE =
  "application/vnd.oci.image.manifest.v1+json";
/** Media type of an OCI image index. */
export const OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
/** Docker schema 2 manifest, accepted when reading. */
export const DOCKER_MANIFEST_MEDIA_TYPE =
  "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list, accepted when reading. */
export const DOCKER_MANIFEST_LIST_MEDIA_TYPE =
  "application/vnd.docker.distribution.manifest.list.v2+json";
/** Annotation holding a tag in an OCI layout's `index.json`. */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
/** Annotation naming a layer's file. */
export const ANNOTATION_TITLE = "org.opencontainers.image.title";
/** Largest manifest or index accepted, in bytes. */
export const MAX_MANIFEST_BYTES: number = 4 * 1024 * 1024;
/** Most descriptors accepted in one manifest's layers or one index. */
export const MAX_DESCRIPTORS: number = 10_000;

/** A content descriptor: what a blob is, how big, and its digest. */
export interface Descriptor {
  /** Media type of the referenced content. */
  mediaType: string;
  /** Digest of the referenced content. */
  digest: Digest;
  /** Size of the referenced content in bytes. */
  size: number;
  /** Where the content can also be fetched. */
  urls?: string[] | undefined;
  /** Free-form string annotations. */
  annotations?: Record<string, string> | undefined;
  /** Platform of a manifest referenced from an index. */
  platform?: Platform | undefined;
  /** Type of an artifact, when the descriptor references a manifest. */
  artifactType?: string | undefined;
}

/** An OCI image manifest. */
export interface ImageManifest {
  /** Always 2. */
  schemaVersion: 2;
  /** The manifest's own media type. */
  mediaType?: string | undefined;
  /** Artifact type, when the manifest is an artifact. */
  artifactType?: string | undefined;
  /** Descriptor of the config blob. */
  config: Descriptor;
  /** Layer descriptors in order. */
  layers: Descriptor[];
  /** Manifest this one refers to. */
  subject?: Descriptor | undefined;
  /** Free-form string annotations. */
  annotations?: Record<string, string> | undefined;
}

/** An OCI image index: a list of manifests, typically one per platform. */
export interface ImageIndex {
  /** Always 2. */
  schemaVersion: 2;
  /** The index's own media type. */
  mediaType?: string | undefined;
  /** Artifact type, when the index is an artifact. */
  artifactType?: string | undefined;
  /** The manifests. */
  manifests: Descriptor[];
  /** Manifest this one refers to. */
  subject?: Descriptor | undefined;
  /** Free-form string annotations. */
  annotations?: Record<string, string> | undefined;
}

/** A manifest or index, told apart by `kind`. */
export type ParsedManifest =
  | { kind: "manifest"; manifest: ImageManifest }
  | { kind: "index"; index: ImageIndex };

/**
 * The media type of a parsed manifest or index: the one it declares, or
 * OCI's for its kind.
 *
 * @param parsed The parsed document.
 * @returns The media type.
 *
 * @example The media type of an index that declares none
 * ```ts
 * import { mediaTypeOf } from "./manifest.ts";
 * mediaTypeOf({ kind: "index", index: { schemaVersion: 2, manifests: [] } });
 * // "application/vnd.oci.image.index.v1+json"
 * ```
 */
export function mediaTypeOf(parsed: ParsedManifest): string {
  return parsed.kind === "index"
    ? parsed.index.mediaType ?? OCI_INDEX_MEDIA_TYPE
    : parsed.manifest.mediaType ?? OCI_MANIFEST_MEDIA_TYPE;
}

const MEDIA_TYPE_RE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

function fail(where: string, problem: string): never {
  throw new InvalidImageError(`Invalid ${where}: ${problem}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkMediaType(value: unknown, where: string): string {
  if (typeof value !== "string" || !MEDIA_TYPE_RE.test(value)) {
    fail(where, `expected a media type like type/subtype, got ${show(value)}`);
  }
  return value;
}

function show(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Checks what a manifest and an index start with: a JSON object, schema
 * version 2, and (if set) a media type of their kind.
 */
function checkHeader(
  value: unknown,
  what: string,
  isKind: (mediaType: string) => boolean,
  expected: string,
): asserts value is Record<string, unknown> {
  if (!isObject(value)) fail(what, "expected a JSON object");
  if (value.schemaVersion !== 2) {
    fail(
      `${what} schemaVersion`,
      `expected 2, got ${show(value.schemaVersion)}`,
    );
  }
  if (value.mediaType === undefined) return;
  const mediaType = checkMediaType(value.mediaType, `${what} mediaType`);
  if (!isKind(mediaType)) {
    fail(`${what} mediaType`, `expected ${expected}, got ${mediaType}`);
  }
}

function checkAnnotations(
  value: unknown,
  where: string,
): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) fail(where, "expected an object of strings");
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") fail(`${where}.${k}`, "expected a string");
  }
  return value as Record<string, string>;
}

function checkPlatform(value: unknown, where: string): Platform | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) fail(where, "expected an object");
  const { os, architecture, variant } = value;
  if (typeof os !== "string" || os === "") {
    fail(`${where}.os`, "expected a non-empty string");
  }
  if (typeof architecture !== "string" || architecture === "") {
    fail(`${where}.architecture`, "expected a non-empty string");
  }
  if (variant !== undefined && typeof variant !== "string") {
    fail(`${where}.variant`, "expected a string");
  }
  const out: Platform = { ...value, os, architecture } as Platform;
  return out;
}

/**
 * Validates one descriptor of untrusted JSON.
 *
 * @param value The parsed JSON value.
 * @param where Its path, e.g. `manifest layers[2]`, for error messages.
 * @returns The descriptor.
 * @throws {InvalidImageError} Naming the bad field.
 *
 * @example Check a descriptor
 * ```ts
 * import { validateDescriptor } from "./manifest.ts";
 * validateDescriptor({ mediaType: "a/b", digest: "sha256:" + "0".repeat(64), size: 1 }, "config");
 * ```
 */
export function validateDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) fail(where, "expected an object");
  checkMediaType(value.mediaType, `${where}.mediaType`);
  if (!isDigest(value.digest)) {
    fail(
      `${where}.digest`,
      `expected sha256: and 64 lowercase hex digits, got ${show(value.digest)}`,
    );
  }
  const size = value.size;
  if (
    typeof size !== "number" || !Number.isSafeInteger(size) || size < 0
  ) {
    fail(`${where}.size`, `expected a non-negative integer, got ${show(size)}`);
  }
  checkAnnotations(value.annotations, `${where}.annotations`);
  checkPlatform(value.platform, `${where}.platform`);
  if (value.urls !== undefined) {
    if (
      !Array.isArray(value.urls) ||
      !value.urls.every((u) => typeof u === "string")
    ) fail(`${where}.urls`, "expected an array of strings");
  }
  if (value.artifactType !== undefined) {
    checkMediaType(value.artifactType, `${where}.artifactType`);
  }
  return value as unknown as Descriptor;
}

function checkDescriptors(
  value: unknown,
  where: string,
  max: number = MAX_DESCRIPTORS,
): Descriptor[] {
  if (!Array.isArray(value)) fail(where, "expected an array");
  if (value.length > max) {
    fail(where, `more than ${max} entries`);
  }
  return value.map((d, i) => validateDescriptor(d, `${where}[${i}]`));
}

/**
 * Validates an image manifest of untrusted JSON.
 *
 * @param value The parsed JSON value.
 * @returns The manifest.
 * @throws {InvalidImageError} Naming the bad field.
 *
 * @example Check parsed JSON before using it as a manifest
 * ```ts
 * import { validateManifest } from "@ironcore/image/oci";
 * const config = { mediaType: "a/b", digest: "sha256:" + "0".repeat(64), size: 2 };
 * const manifest = validateManifest(JSON.parse(JSON.stringify({ schemaVersion: 2, config, layers: [] })));
 * console.log(manifest.layers.length); // 0
 * ```
 */
export function validateManifest(value: unknown): ImageManifest {
  checkHeader(value, "manifest", isManifestMediaType, OCI_MANIFEST_MEDIA_TYPE);
  if ("manifests" in value) {
    fail("manifest", "has a manifests field; it looks like an index");
  }
  validateDescriptor(value.config, "manifest config");
  checkDescriptors(value.layers, "manifest layers");
  if (value.subject !== undefined) {
    validateDescriptor(value.subject, "manifest subject");
  }
  checkAnnotations(value.annotations, "manifest annotations");
  return value as unknown as ImageManifest;
}

/** Options for {@linkcode validateIndex}. */
export interface ValidateIndexOptions {
  /** Most entries accepted. Default {@linkcode MAX_DESCRIPTORS}. */
  maxDescriptors?: number | undefined;
}

/**
 * Validates an image index of untrusted JSON.
 *
 * @param value The parsed JSON value.
 * @param options The most entries accepted.
 * @returns The index.
 * @throws {InvalidImageError} Naming the bad field.
 *
 * @example Check parsed JSON before using it as an index
 * ```ts
 * import { validateIndex } from "@ironcore/image/oci";
 * const index = validateIndex(JSON.parse('{"schemaVersion":2,"manifests":[]}'));
 * console.log(index.manifests.length); // 0
 * ```
 */
export function validateIndex(
  value: unknown,
  options: ValidateIndexOptions = {},
): ImageIndex {
  checkHeader(value, "index", isIndexMediaType, OCI_INDEX_MEDIA_TYPE);
  if ("layers" in value || "config" in value) {
    fail("index", "has layers or config; it looks like a manifest");
  }
  checkDescriptors(value.manifests, "index manifests", options.maxDescriptors);
  if (value.subject !== undefined) {
    validateDescriptor(value.subject, "index subject");
  }
  checkAnnotations(value.annotations, "index annotations");
  return value as unknown as ImageIndex;
}

/**
 * Tells whether a media type is an index (OCI index or Docker manifest list).
 *
 * @param mediaType The media type.
 * @returns `true` for index media types.
 *
 * @example Tell an index by its media type
 * ```ts
 * import { isIndexMediaType } from "./manifest.ts";
 * isIndexMediaType("application/vnd.oci.image.index.v1+json"); // true
 * ```
 */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX_MEDIA_TYPE ||
    mediaType === DOCKER_MANIFEST_LIST_MEDIA_TYPE;
}

/**
 * Tells whether a media type is an image manifest (OCI or Docker schema 2).
 *
 * @param mediaType The media type.
 * @returns `true` for manifest media types.
 *
 * @example Tell a manifest by its media type
 * ```ts
 * import { isManifestMediaType } from "./manifest.ts";
 * isManifestMediaType("application/vnd.oci.image.manifest.v1+json"); // true
 * ```
 */
export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === OCI_MANIFEST_MEDIA_TYPE ||
    mediaType === DOCKER_MANIFEST_MEDIA_TYPE;
}

/**
 * Parses manifest or index bytes of untrusted origin. The kind is taken from
 * `mediaType` (the descriptor's or the document's) and, failing that, from the
 * fields present.
 *
 * @param bytes The raw JSON bytes.
 * @param options `mediaType` known from the descriptor or Content-Type.
 * @returns The manifest or index.
 * @throws {InvalidImageError} When the bytes are too large, not JSON or invalid.
 *
 * @example Parse bytes as a manifest or an index
 * ```ts
 * import { parseManifest } from "@ironcore/image/oci";
 * const parsed = parseManifest(new TextEncoder().encode('{"schemaVersion":2,"manifests":[]}'));
 * console.log(parsed.kind); // "index"
 * ```
 */
export function parseManifest(
  bytes: Uint8Array,
  options: { mediaType?: string | undefined } = {},
): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    fail(
      "manifest",
      `${bytes.byteLength} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail("manifest", `not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const declared = isObject(value) && typeof value.mediaType === "string"
    ? value.mediaType
    : options.mediaType;
  const isIndex = declared !== undefined && isIndexMediaType(declared)
    ? true
    : declared !== undefined && isManifestMediaType(declared)
    ? false
    : isObject(value) && Array.isArray(value.manifests);
  return isIndex
    ? { kind: "index", index: validateIndex(value) }
    : { kind: "manifest", manifest: validateManifest(value) };
}

/**
 * Encodes a manifest, index or config as compact JSON with the keys in the
 * order given. Same input, same bytes, same digest.
 *
 * @param value The document.
 * @returns The bytes and their descriptor fields.
 *
 * @example Encode a config
 * ```ts
 * import { encodeJson } from "./manifest.ts";
 * const { bytes, digest, size } = encodeJson({ commandLine: "console=ttyS0" });
 * ```
 */
export function encodeJson(
  value: unknown,
): { bytes: Uint8Array; digest: Digest; size: number } {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return { bytes, digest: digestOf(bytes), size: bytes.byteLength };
}

/**
 * Checks an index entry before its manifest is fetched: IronCore images (and
 * this library) do not nest indexes, so an entry must name an image manifest.
 *
 * @param entry The index entry.
 * @param index The index's name or digest, for the message.
 * @throws {InvalidImageError} When the entry names something else.
 *
 * @example Check an index entry
 * ```ts
 * import { checkIndexEntry } from "./manifest.ts";
 * checkIndexEntry({
 *   mediaType: "application/vnd.oci.image.manifest.v1+json",
 *   digest: `sha256:${"a".repeat(64)}`,
 *   size: 2,
 * }, "example.com/os:1.0");
 * ```
 */
export function checkIndexEntry(entry: Descriptor, index: string): void {
  if (!isManifestMediaType(entry.mediaType)) {
    throw new InvalidImageError(
      `Invalid index ${index}: entry ${entry.digest} has media type ${entry.mediaType}, expected an image manifest`,
    );
  }
}

/**
 * Checks the document fetched for an index entry: an image manifest of the
 * size the entry declares (its digest is checked as it is fetched).
 *
 * @param entry The index entry.
 * @param parsed The document.
 * @param size Its size in bytes.
 * @param index The index's name or digest, for the message.
 * @throws {InvalidImageError} When it is an index or of another size.
 *
 * @example Check a manifest against its index entry
 * ```ts
 * import { checkEntryManifest, parseManifest } from "./manifest.ts";
 * const bytes = new TextEncoder().encode('{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:' + "a".repeat(64) + '","size":2},"layers":[]}');
 * const entry = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${"b".repeat(64)}` as const, size: bytes.byteLength };
 * checkEntryManifest(entry, parseManifest(bytes), bytes.byteLength, "example.com/os:1.0");
 * ```
 */
export function checkEntryManifest(
  entry: Descriptor,
  parsed: ParsedManifest,
  size: number,
  index: string,
): asserts parsed is ParsedManifest & { kind: "manifest" } {
  if (parsed.kind !== "manifest") {
    throw new InvalidImageError(
      `Invalid index ${index}: entry ${entry.digest} is itself an index; nested indexes are not supported`,
    );
  }
  if (size !== entry.size) {
    throw new InvalidImageError(
      `Invalid index ${index}: entry ${entry.digest} declares ${entry.size} bytes, the manifest has ${size}`,
    );
  }
}
