/**
 * The package as its users import it: an import map from the entry points of
 * deno.json "exports" (`@ironcore/image`, `@ironcore/image/serve`, …) to the
 * files of this checkout, for programs run with `--import-map`.
 *
 * @module
 */

import { pathToFileURL } from "node:url";
import denoConfig from "../../deno.json" with { type: "json" };
import { REPO_ROOT } from "./cli.ts";

/** An import map, as `deno run --import-map` reads it. */
export interface ImportMap {
  /** Specifier → file URL. */
  imports: Record<string, string>;
}

/**
 * Maps every entry point of the package to its file in this checkout:
 * `"."` to `@ironcore/image`, `"./serve"` to `@ironcore/image/serve`.
 *
 * @returns The import map.
 */
export function packageImportMap(): ImportMap {
  const imports: Record<string, string> = {};
  for (const [key, file] of Object.entries(denoConfig.exports)) {
    const name = key === "."
      ? denoConfig.name
      : `${denoConfig.name}${key.slice(1)}`;
    imports[name] =
      pathToFileURL(`${REPO_ROOT}/${file.replace(/^\.\//, "")}`).href;
  }
  return { imports };
}

/**
 * The module specifiers a program imports (static `import … from` and
 * `export … from`, and dynamic `import("…")` with a literal).
 *
 * @param source The program's text.
 * @returns The specifiers, in order.
 */
export function importedSpecifiers(source: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;
  for (const m of source.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}
