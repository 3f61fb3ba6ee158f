/**
 * The per-architecture build configuration and its text form,
 * `arch=amd64,kernel=./vmlinuz,initramfs=./initrd,cmdline=./cmdline`.
 *
 * @module
 */

import { architectureProblem } from "../spec/architecture.ts";
import {
  LAYER_KINDS,
  type LayerKind,
  type Variant,
  VARIANTS,
} from "../spec/media_types.ts";

/** What to build for one architecture. */
export interface ArchConfig {
  /** CPU architecture in Go's naming, e.g. `amd64`, `arm64`. */
  arch: string;
  /** Files to add, one per layer kind. */
  layers: Partial<Record<LayerKind, string>>;
  /** File holding the kernel command line. */
  cmdline?: string | undefined;
  /** Boot variant, written as the manifest's `variant` annotation. */
  variant?: Variant | undefined;
}

const KEYS = [...LAYER_KINDS, "arch", "cmdline", "variant"].join(", ");

/** Options for {@linkcode parseArchConfig}. */
export interface ParseArchConfigOptions {
  /**
   * What the text is called in error messages, such as the name of the
   * setting it came from. Default `architecture config`.
   */
  name?: string | undefined;
}

/**
 * Parses the text form of an architecture's configuration:
 * `arch=amd64,kernel=vmlinuz,initramfs=initrd.img,cmdline=cmdline.txt`.
 *
 * @param text Comma-separated `key=value` pairs.
 * @param options What to call the text in messages.
 * @returns The configuration.
 * @throws {SyntaxError} On an unknown key, a missing `arch` or one not named
 * as Go names it, a repeated key,
 * an empty value or an unknown variant.
 *
 * @example Parse a --config value
 * ```ts
 * import { parseArchConfig } from "@ironcore/image";
 * const c = parseArchConfig("arch=amd64,kernel=vmlinuz,initramfs=initrd.img");
 * console.log(c.arch, c.layers.kernel); // amd64 vmlinuz
 * ```
 */
export function parseArchConfig(
  text: string,
  options: ParseArchConfigOptions = {},
): ArchConfig {
  const name = options.name ?? "architecture config";
  const layers: Partial<Record<LayerKind, string>> = {};
  const seen = new Set<string>();
  let arch: string | undefined;
  let cmdline: string | undefined;
  let variant: Variant | undefined;
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) {
      throw new SyntaxError(
        `Invalid ${name} entry "${part}": expected key=value, with keys ${KEYS}`,
      );
    }
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (seen.has(key)) {
      throw new SyntaxError(`Invalid ${name}: key ${key} is given twice`);
    }
    seen.add(key);
    if (value === "") {
      throw new SyntaxError(`Invalid ${name}: ${key} has an empty value`);
    }
    if (key === "arch") {
      const problem = architectureProblem(value);
      if (problem) throw new SyntaxError(`Invalid ${name}: ${problem}`);
      arch = value;
    } else if (key === "cmdline") {
      cmdline = value;
    } else if (key === "variant") {
      if (!(VARIANTS as readonly string[]).includes(value)) {
        throw new SyntaxError(
          `Invalid ${name}: variant "${value}" is not one of ${
            VARIANTS.join(", ")
          }`,
        );
      }
      variant = value as Variant;
    } else if ((LAYER_KINDS as readonly string[]).includes(key)) {
      layers[key as LayerKind] = value;
    } else {
      throw new SyntaxError(
        `Unknown ${name} key "${key}": use one of ${KEYS}`,
      );
    }
  }
  if (arch === undefined) {
    throw new SyntaxError(
      `Invalid ${name} "${text}": arch is missing, add arch=amd64 (or the target architecture)`,
    );
  }
  if (Object.keys(layers).length === 0) {
    throw new SyntaxError(
      `Invalid ${name} for ${arch}: no layer file given, add at least one of ${
        LAYER_KINDS.join(", ")
      }`,
    );
  }
  const config: ArchConfig = { arch, layers };
  if (cmdline !== undefined) config.cmdline = cmdline;
  if (variant !== undefined) config.variant = variant;
  return config;
}
