/**
 * Platforms (`os/arch[/variant]`) as used on OCI index entries.
 *
 * @module
 */

/** The platform an image manifest runs on. */
export interface Platform {
  /** Operating system, e.g. `linux`. */
  os: string;
  /** CPU architecture in Go's naming, e.g. `amd64`, `arm64`. */
  architecture: string;
  /** CPU variant, e.g. `v8`. */
  variant?: string;
}

const PART_RE = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parses `os/arch[/variant]`, or a bare `arch` (meaning `linux/arch`).
 *
 * @param text The platform string, e.g. `linux/arm64`.
 * @returns The platform.
 * @throws {SyntaxError} When the text is not of that form.
 *
 * @example
 * ```ts
 * import { parsePlatform } from "./platform.ts";
 * parsePlatform("linux/arm64/v8"); // { os: "linux", architecture: "arm64", variant: "v8" }
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
 * @example
 * ```ts
 * import { formatPlatform } from "./platform.ts";
 * formatPlatform({ os: "linux", architecture: "amd64" }); // "linux/amd64"
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
 * @example
 * ```ts
 * import { platformMatches } from "./platform.ts";
 * platformMatches({ os: "linux", architecture: "arm64", variant: "v8" }, { os: "linux", architecture: "arm64" }); // true
 * ```
 */
export function platformMatches(have: Platform, want: Platform): boolean {
  return have.os === want.os && have.architecture === want.architecture &&
    (want.variant === undefined || have.variant === want.variant);
}
