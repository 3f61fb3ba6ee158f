/**
 * CPU architecture names. IronCore images name the architecture of each
 * index entry as Go does (`GOARCH`), so that `amd64` is never also spelled
 * `x86_64` or `AMD64` and a platform match is a plain string comparison.
 *
 * @module
 */

/** Every `GOARCH` value Go knows, in Go's own order. */
const GO_ARCHITECTURES: readonly string[] = [
  "386",
  "amd64",
  "amd64p32",
  "arm",
  "armbe",
  "arm64",
  "arm64be",
  "loong64",
  "mips",
  "mipsle",
  "mips64",
  "mips64le",
  "mips64p32",
  "mips64p32le",
  "ppc",
  "ppc64",
  "ppc64le",
  "riscv",
  "riscv64",
  "s390",
  "s390x",
  "sparc",
  "sparc64",
  "wasm",
];

/** Names other tools use (`uname -m`, Debian) for a Go architecture. */
const OTHER_NAMES: Readonly<Record<string, string>> = {
  x86_64: "amd64",
  x64: "amd64",
  i386: "386",
  i686: "386",
  x86: "386",
  aarch64: "arm64",
  armhf: "arm",
  armel: "arm",
  armv7: "arm",
  armv7l: "arm",
  ppc64el: "ppc64le",
  loongarch64: "loong64",
};

/**
 * Tells what is wrong with an architecture name, if anything.
 *
 * @param architecture The name, e.g. from an index entry's platform.
 * @returns The problem and its fix, or `undefined` for a Go architecture
 * name.
 *
 * @example Check two names
 * ```ts
 * import assert from "node:assert/strict";
 * import { architectureProblem } from "./architecture.ts";
 *
 * assert.equal(architectureProblem("arm64"), undefined);
 * assert.equal(
 *   architectureProblem("x86_64"),
 *   'architecture "x86_64" is not a Go architecture name: use "amd64"',
 * );
 * ```
 */
export function architectureProblem(architecture: string): string | undefined {
  if (GO_ARCHITECTURES.includes(architecture)) return undefined;
  const lower = architecture.toLowerCase();
  const fix = GO_ARCHITECTURES.includes(lower) ? lower : OTHER_NAMES[lower];
  return `architecture ${
    JSON.stringify(architecture)
  } is not a Go architecture name: ${
    fix === undefined
      ? "use the name Go gives it, such as amd64, arm64, arm, 386, ppc64le, riscv64 or s390x"
      : `use "${fix}"`
  }`;
}
