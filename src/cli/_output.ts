/**
 * Text formatting for the CLI: references, sizes, tables, durations.
 */

import {
  familiarReference,
  parseReference,
  type ParseReferenceOptions,
} from "../oci/reference.ts";

/**
 * A reference in Docker's short form for display (`my-os:1.0` for
 * `docker.io/library/my-os:1.0`); text that is no reference (a digest
 * prefix, a tag another tool stored) as it is.
 */
export function familiar(
  text: string,
  options: ParseReferenceOptions = {},
): string {
  try {
    return familiarReference(parseReference(text, options));
  } catch {
    return text;
  }
}

/** The directory a file path names its file in: `.` for a bare name. */
export function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/** Formats a byte count with binary units, e.g. `1.5 GiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Lays out rows as columns separated by three spaces. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (r: string[]) =>
    r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/** Formats seconds as `1m05s` or `4.2s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m}m${String(s).padStart(2, "0")}s`;
}

/**
 * Library options that error messages name, and what a CLI user does
 * instead: the library speaks of its options, the CLI of its flags.
 */
const FLAG_HINTS: readonly (readonly [RegExp, string])[] = [
  [/\bset plainHttp: false\b/g, "use --plain-http=false"],
  [/\bset plainHttp\b/g, "use --plain-http"],
  [/\bset timeouts to wait longer\b/g, "raise --timeout to wait longer"],
  [/\bset platform to choose one\b/g, "choose one with --platform"],
  [
    /\bset tag to name it, such as (\S+)/g,
    "give one with --tag, such as --tag $1",
  ],
  [/^Cannot use the tag:/, "Cannot apply --tag:"],
  [/\bleave tag unset\b/g, "import it without --tag"],
  [/, and tag cannot name it\b/g, ", and --tag cannot name it"],
  [/\bverify the store with repair\b/g, "run ironcore-image verify --repair"],
  [/\bset force to delete them all\b/g, "add --force to delete them all"],
];

/**
 * A library message as the CLI says it: the library options it names
 * replaced by the flags that set them.
 */
export function inCliWords(message: string): string {
  let text = message;
  for (const [option, flag] of FLAG_HINTS) text = text.replace(option, flag);
  return text;
}
