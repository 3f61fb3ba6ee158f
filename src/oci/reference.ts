/**
 * Image references (`ghcr.io/org/img:v1`, `my-image`, `name@sha256:…`):
 * parsing with Docker's normalisation rules, canonical and familiar
 * formatting, and small helpers to derive new references.
 *
 * The grammar follows `distribution/reference` (`ParseNormalizedNamed`):
 *
 * ```text
 * reference := name [ ":" tag ] [ "@" digest ]
 * name      := [ registry "/" ] path
 * registry  := host [ ":" port ]       host: domain name, IPv4 or [IPv6]
 * path      := component ( "/" component )*
 * component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 * tag       := [\w][\w.-]{0,127}
 * digest    := "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex
 * ```
 *
 * @module
 */

import { invalidReference } from "../_errors.ts";

/** A parsed image reference. `tag` and `digest` may both be present. */
export interface Reference {
  /** Registry host with optional port: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  readonly registry: string;
  /** Repository path inside the registry: `library/my-image`, `org/img`. */
  readonly repository: string;
  /** Tag, such as `latest` or `v1.2.3`. */
  readonly tag?: string | undefined;
  /** Content digest, such as `sha256:` followed by 64 lowercase hex digits. */
  readonly digest?: string | undefined;
}

/** Options for {@linkcode parseReference}. */
export interface ParseReferenceOptions {
  /**
   * Tag to use when the input names neither a tag nor a digest, or `false`
   * to leave the reference without one.
   *
   * @default {"latest"}
   */
  readonly defaultTag?: string | false | undefined;
}

const DEFAULT_REGISTRY = "docker.io";
const LEGACY_DEFAULT_REGISTRY = "index.docker.io";
const DEFAULT_REGISTRY_API_HOST = "registry-1.docker.io";
const OFFICIAL_REPOSITORY_PREFIX = "library/";
const DEFAULT_TAG = "latest";
const NAME_TOTAL_LENGTH_MAX = 255;
const TAG_LENGTH_MAX = 128;

const DOMAIN_COMPONENT = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const REGISTRY_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_RE = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const IMAGE_ID_RE = /^[a-f0-9]{64}$/;
const SCHEME_RE = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;

/**
 * Parses an image reference the way `docker pull` reads it: a first path
 * component is a registry only if it contains `.` or `:` or is `localhost`;
 * otherwise the registry is `docker.io`, and single-component Docker Hub
 * names get the `library/` prefix. `index.docker.io` becomes `docker.io`.
 * The default tag applies only when the input has neither tag nor digest.
 *
 * @param input The reference as typed, such as `my-image` or `ghcr.io/org/img:v1`.
 * @param options The default tag.
 * @returns The normalised reference.
 * @throws {InvalidReferenceError} When the input does not follow the grammar;
 * the message names the part that is wrong.
 *
 * @example Normalise a short Docker Hub name
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReference } from "@ironcore/image/oci";
 *
 * assert.deepEqual(parseReference("my-image"), {
 *   registry: "docker.io",
 *   repository: "library/my-image",
 *   tag: "latest",
 * });
 * ```
 *
 * @example Keep a missing tag missing
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReference } from "@ironcore/image/oci";
 *
 * const ref = parseReference("localhost:5000/a/b", { defaultTag: false });
 * assert.equal(ref.registry, "localhost:5000");
 * assert.equal(ref.tag, undefined);
 * ```
 */
export function parseReference(
  input: string,
  options: ParseReferenceOptions = {},
): Reference {
  const defaultTag = options.defaultTag ?? DEFAULT_TAG;
  if (defaultTag !== false && !TAG_RE.test(defaultTag)) {
    throw new TypeError(
      `Invalid default tag ${
        JSON.stringify(defaultTag)
      }: use up to ${TAG_LENGTH_MAX} letters, digits, "_", "." and "-", not starting with "." or "-"`,
    );
  }
  if (input === "") {
    fail(input, 'reference is empty: give a name such as "my-image:latest"');
  }
  const scheme = SCHEME_RE.exec(input);
  if (scheme !== null) {
    fail(
      input,
      `a reference has no URL scheme: remove "${scheme[0]}"`,
    );
  }
  if (IMAGE_ID_RE.test(input)) {
    fail(
      input,
      'a 64-character hexadecimal string is an image ID, not a name: use "name@sha256:<hex>"',
    );
  }

  // Names and tags never contain "@", so the first one starts the digest.
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(input, digest);
  }

  let registry = DEFAULT_REGISTRY;
  const slash = rest.indexOf("/");
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost") {
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  if (!REGISTRY_RE.test(registry)) {
    fail(
      input,
      `invalid registry "${registry}": use a host name, IPv4 address or bracketed IPv6 address, optionally followed by ":" and a port number`,
    );
  }

  // Paths never contain ":", so the first one starts the tag.
  let tag: string | undefined;
  const colon = rest.indexOf(":");
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    checkTag(input, tag);
  }

  checkPath(input, rest);
  const repository = registry === DEFAULT_REGISTRY && !rest.includes("/")
    ? OFFICIAL_REPOSITORY_PREFIX + rest
    : rest;
  const nameLength = registry.length + 1 + repository.length;
  if (nameLength > NAME_TOTAL_LENGTH_MAX) {
    fail(
      input,
      `name "${registry}/${repository}" is ${nameLength} characters long: the limit is ${NAME_TOTAL_LENGTH_MAX} including the registry`,
    );
  }

  if (tag === undefined && digest === undefined && defaultTag !== false) {
    tag = defaultTag;
  }
  return build(registry, repository, tag, digest);
}

/**
 * Formats a reference in full canonical form, registry included:
 * `docker.io/library/my-image:latest`, `ghcr.io/org/img@sha256:…`.
 * {@linkcode parseReference} reads the result back to the same reference.
 *
 * @param ref The reference.
 * @returns `registry/repository[:tag][@digest]`.
 *
 * @example Format a Docker Hub reference
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReference, parseReference } from "@ironcore/image/oci";
 *
 * assert.equal(
 *   formatReference(parseReference("my-image")),
 *   "docker.io/library/my-image:latest",
 * );
 * ```
 */
export function formatReference(ref: Reference): string {
  return repositoryName(ref) + suffix(ref);
}

/**
 * Formats a reference in Docker's short form for display: Docker Hub names
 * lose `docker.io/` and, for official images, `library/`. Other registries
 * are kept. Unlike Docker, `docker.io/` stays when dropping it would make the
 * first path component read as a registry (`docker.io/my.org/img`).
 *
 * @param ref The reference.
 * @returns The short form, such as `my-image:latest` or `org/img:v1`.
 *
 * @example Shorten Docker Hub references
 * ```ts
 * import assert from "node:assert/strict";
 * import { familiarReference, parseReference } from "@ironcore/image/oci";
 *
 * assert.equal(familiarReference(parseReference("my-image")), "my-image:latest");
 * assert.equal(familiarReference(parseReference("docker.io/org/img:v1")), "org/img:v1");
 * assert.equal(familiarReference(parseReference("ghcr.io/org/img:v1")), "ghcr.io/org/img:v1");
 * ```
 */
export function familiarReference(ref: Reference): string {
  if (ref.registry !== DEFAULT_REGISTRY) return formatReference(ref);
  let path = ref.repository;
  if (path.startsWith(OFFICIAL_REPOSITORY_PREFIX)) {
    const rest = path.slice(OFFICIAL_REPOSITORY_PREFIX.length);
    if (!rest.includes("/")) path = rest;
  }
  const slash = path.indexOf("/");
  const first = slash === -1 ? "" : path.slice(0, slash);
  if (first.includes(".") || first === "localhost") {
    return formatReference(ref);
  }
  return path + suffix(ref);
}

/**
 * The full repository name, registry included, without tag or digest.
 *
 * @param ref The reference.
 * @returns `registry/repository`, such as `docker.io/library/my-image`.
 *
 * @example Name the repository
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReference, repositoryName } from "./reference.ts";
 *
 * assert.equal(repositoryName(parseReference("org/img:v1")), "docker.io/org/img");
 * ```
 */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/**
 * A reference to the same repository with another tag and no digest.
 *
 * @param ref The reference.
 * @param tag The new tag.
 * @returns A new reference; `ref` is unchanged.
 * @throws {InvalidReferenceError} When the tag does not follow the grammar.
 *
 * @example Retag
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReference, parseReference, withTag } from "./reference.ts";
 *
 * const ref = parseReference("ghcr.io/org/img:v1");
 * assert.equal(formatReference(withTag(ref, "v2")), "ghcr.io/org/img:v2");
 * ```
 */
export function withTag(ref: Reference, tag: string): Reference {
  checkTag(`${repositoryName(ref)}:${tag}`, tag);
  return build(ref.registry, ref.repository, tag, undefined);
}

/**
 * A reference to the same repository pinned to a digest, with no tag.
 *
 * @param ref The reference.
 * @param digest The digest, such as `sha256:` followed by 64 lowercase hex digits.
 * @returns A new reference; `ref` is unchanged.
 * @throws {InvalidReferenceError} When the digest does not follow the grammar.
 *
 * @example Pin to a digest
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReference, parseReference, withDigest } from "./reference.ts";
 *
 * const digest = "sha256:" + "a".repeat(64);
 * const ref = withDigest(parseReference("ghcr.io/org/img:v1"), digest);
 * assert.equal(formatReference(ref), `ghcr.io/org/img@${digest}`);
 * ```
 */
export function withDigest(ref: Reference, digest: string): Reference {
  checkDigest(`${repositoryName(ref)}@${digest}`, digest);
  return build(ref.registry, ref.repository, undefined, digest);
}

/**
 * Normalises a reference meant as a tag, the way Docker does
 * (`demo:1` is `docker.io/library/demo:1`, a missing tag is `latest`).
 *
 * @param input The tag as typed.
 * @returns The full reference.
 * @throws {InvalidReferenceError} When it does not parse or carries a digest.
 *
 * @example Normalise a tag
 * ```ts
 * import assert from "node:assert/strict";
 * import { tagReference } from "./reference.ts";
 *
 * assert.equal(tagReference("demo"), "docker.io/library/demo:latest");
 * ```
 */
export function tagReference(input: string): string {
  const ref = parseReference(input);
  if (ref.digest !== undefined) {
    throw invalidReference(
      input,
      "a tag cannot carry a digest, drop the @sha256:… part",
    );
  }
  return formatReference(ref);
}

/**
 * The host to send registry API requests to. Docker Hub's name `docker.io`
 * does not serve the API; `registry-1.docker.io` does. Other registries
 * serve it under their own name.
 *
 * @param registry A registry as found in {@linkcode Reference.registry}.
 * @returns The API host, with port if any.
 *
 * @example Map Docker Hub to its API host
 * ```ts
 * import assert from "node:assert/strict";
 * import { registryApiHost } from "./reference.ts";
 *
 * assert.equal(registryApiHost("docker.io"), "registry-1.docker.io");
 * assert.equal(registryApiHost("localhost:5000"), "localhost:5000");
 * ```
 */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY || registry === LEGACY_DEFAULT_REGISTRY
    ? DEFAULT_REGISTRY_API_HOST
    : registry;
}

function suffix(ref: Reference): string {
  let text = "";
  if (ref.tag !== undefined) text += `:${ref.tag}`;
  if (ref.digest !== undefined) text += `@${ref.digest}`;
  return text;
}

function build(
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
): Reference {
  // Leave absent parts out instead of setting them to undefined, so that
  // references compare equal with deepEqual (exactOptionalPropertyTypes).
  const ref: {
    registry: string;
    repository: string;
    tag?: string | undefined;
    digest?: string | undefined;
  } = {
    registry,
    repository,
  };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

function fail(input: string, reason: string): never {
  throw invalidReference(input, reason);
}

function checkTag(input: string, tag: string): void {
  if (tag === "") {
    fail(input, 'tag after ":" is empty: remove the ":" or add a tag');
  }
  if (tag.length > TAG_LENGTH_MAX) {
    fail(
      input,
      `tag is ${tag.length} characters long: the limit is ${TAG_LENGTH_MAX}`,
    );
  }
  if (!TAG_RE.test(tag)) {
    fail(
      input,
      `invalid tag "${tag}": use letters, digits, "_", "." and "-", not starting with "." or "-"`,
    );
  }
}

function checkDigest(input: string, digest: string): void {
  if (digest === "") {
    fail(input, 'digest after "@" is empty: remove the "@" or add a digest');
  }
  if (!DIGEST_RE.test(digest)) {
    fail(
      input,
      `invalid digest "${digest}": use "sha256:" followed by 64 lowercase hexadecimal digits`,
    );
  }
}

function checkPath(input: string, path: string): void {
  if (path === "") {
    fail(input, 'repository name is empty: add a name such as "my-image"');
  }
  if (path.startsWith("/")) {
    fail(input, 'repository name starts with "/": remove the leading "/"');
  }
  if (path.endsWith("/")) {
    fail(input, 'repository name ends with "/": remove the trailing "/"');
  }
  if (path.includes("//")) {
    fail(input, 'repository name contains "//": use a single "/"');
  }
  // The lowercase spelling is suggested only when it is a valid name.
  const lower = path.toLowerCase();
  if (
    /[A-Z]/.test(path) &&
    lower.split("/").every((c) => PATH_COMPONENT_RE.test(c))
  ) {
    fail(
      input,
      `repository name must be lowercase: use "${lower}"`,
    );
  }
  for (const component of path.split("/")) {
    // Case was checked above: name the component that is wrong in any case.
    if (!PATH_COMPONENT_RE.test(component.toLowerCase())) {
      fail(
        input,
        `invalid repository path component "${component}": use lowercase letters and digits separated by ".", "_", "__" or "-"`,
      );
    }
  }
}
