/**
 * Platforms (`os/arch[/variant]`) as used on OCI index entries.
 *
 * @module
 */

import { NotFoundError } from "../errors.ts";

/** The platform an image manifest runs on. */
export interface Platform {
  /** Operating system, e.g. `linux`. */
  os: string;
  /** CPU architecture in Go's naming, e.g. `amd64`, `arm64`. */
  architecture: string;
  /** CPU variant, e.g. `v8`. */
  variant?: string | undefined;
}

const PART_RE = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parses `os/arch[/variant]`, or a bare `arch` (meaning `linux/arch`).
 *
 * @param text The platform string, e.g. `linux/arm64`.
 * @returns The platform.
 * @throws {SyntaxError} When the text is not of that form.
 *
 * @example Parse os/arch/variant
 * ```ts
 * import { parsePlatform } from "@ironcore/image";
 * console.log(parsePlatform("linux/arm64/v8")); // { os: "linux", architecture: "arm64", variant: "v8" }
 * ```
 */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (parts.length === 1) parts.unshift("linux");
  if (parts.length > 3 || !parts.every((p) => PART_RE.test(p))) {
    throw new SyntaxError(
      `Invalid platform "${text}": expected os/arch[/variant], e.g. linux/amd64`,
    );
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined
    ? { os, architecture }
    : { os, architecture, variant };
}

/**
 * Formats a platform as `os/arch[/variant]`.
 *
 * @param platform The platform.
 * @returns The text form.
 *
 * @example Write a platform as text
 * ```ts
 * import { formatPlatform } from "@ironcore/image/oci";
 * console.log(formatPlatform({ os: "linux", architecture: "amd64" })); // "linux/amd64"
 * ```
 */
export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant]
    .filter((p) => p).join("/");
}

/**
 * Tells whether a platform satisfies a wanted one. A wanted platform without
 * variant matches every variant.
 *
 * @param have The platform of an index entry.
 * @param want The platform asked for.
 * @returns `true` when they match.
 *
 * @example Match a platform that names no variant
 * ```ts
 * import { platformMatches } from "@ironcore/image/oci";
 * const have = { os: "linux", architecture: "arm64", variant: "v8" };
 * console.log(platformMatches(have, { os: "linux", architecture: "arm64" })); // true
 * ```
 */
export function platformMatches(have: Platform, want: Platform): boolean {
  return have.os === want.os && have.architecture === want.architecture &&
    (want.variant === undefined || have.variant === want.variant);
}

/** Options for {@linkcode selectPlatform}. */
export interface SelectPlatformOptions {
  /**
   * The platform to use when none was asked for and the index has more than
   * one entry. Default: {@linkcode hostPlatform}. Without an asked-for
   * platform, an index of one entry gives that entry.
   */
  fallback?: Platform | undefined;
  /** The image's name, for messages. */
  name?: string | undefined;
}

/**
 * Picks the manifest for a platform from an index's entries: the one
 * matching `platform` (a wanted platform without variant matches every
 * variant); without one, the only entry of a one-entry index, else the one
 * matching `options.fallback` (default: this machine's platform).
 *
 * @param manifests The index's entries.
 * @param platform The platform asked for, if any.
 * @param options The fallback platform and the image's name for messages.
 * @returns The matching entry.
 * @throws {NotFoundError} Listing the platforms the index has; with
 * `platform` set to the one that was looked for.
 *
 * @example Pick the arm64 entry of an index
 * ```ts
 * import { selectPlatform } from "@ironcore/image/oci";
 * const digest = `sha256:${"a".repeat(64)}` as const;
 * const entry = selectPlatform([
 *   { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: 2, platform: { os: "linux", architecture: "arm64" } },
 * ], { os: "linux", architecture: "arm64" });
 * console.log(entry.size); // 2
 * ```
 */
export function selectPlatform<T extends { platform?: Platform | undefined }>(
  manifests: readonly T[],
  platform: Platform | undefined,
  options: SelectPlatformOptions = {},
): T {
  if (platform === undefined && manifests.length === 1) return manifests[0]!;
  const want = platform ?? options.fallback ?? hostPlatform();
  const hit = manifests.find((m) =>
    m.platform && platformMatches(m.platform, want)
  );
  if (hit) return hit;
  const have =
    manifests.map((m) => m.platform ? formatPlatform(m.platform) : "unknown")
      .join(", ") || "no platforms";
  const wanted = formatPlatform(want);
  const found = { reference: options.name, platform: wanted };
  if (platform === undefined && options.fallback === undefined) {
    const image = options.name === undefined
      ? "The image"
      : `Image ${options.name}`;
    throw new NotFoundError(
      `${image} has no manifest for this machine's platform ${wanted}: it has ${have}; set platform to choose one`,
      found,
    );
  }
  throw new NotFoundError(
    `Platform ${wanted} not found${
      options.name === undefined ? "" : ` in ${options.name}`
    }: the image has ${have}`,
    found,
  );
}

/**
 * The platform of this machine, as OCI names it (`linux/amd64`, `linux/arm64`).
 *
 * @returns The platform.
 *
 * @example Name this machine's platform
 * ```ts
 * import { formatPlatform, hostPlatform } from "@ironcore/image/oci";
 * console.log(formatPlatform(hostPlatform())); // e.g. "linux/amd64"
 * ```
 */
export function hostPlatform(): Platform {
  // Outside Deno (this module is otherwise runtime-neutral) assume amd64.
  const arch = globalThis.Deno?.build.arch ?? "x86_64";
  return {
    os: "linux",
    architecture: arch === "x86_64"
      ? "amd64"
      : arch === "aarch64"
      ? "arm64"
      : arch,
  };
}
