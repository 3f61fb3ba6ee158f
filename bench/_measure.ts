/**
 * Shared by the benchmark scripts: flags, payload files, and measuring whole
 * processes (wall time, and with GNU time the CPU and peak RSS of each
 * measured command).
 *
 * @module
 */

/**
 * Reads `--name value`, `--name=value` and bare `--name` (`"true"`).
 *
 * @param argv The arguments.
 * @returns Values by flag name.
 */
export function parseFlags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) {
      out[a.slice(2)] = argv[++i]!;
    } else out[a.slice(2)] = "true";
  }
  return out;
}

/** One measurement. */
export interface Sample {
  /** Wall time in seconds. */
  wall: number;
  /** User plus system CPU of the measured commands, in seconds. */
  cpu: number;
  /** Largest peak RSS of the measured commands, in MiB. */
  rss: number;
}

/** GNU time, which reports CPU and peak RSS of a child. */
export const GNU_TIME = "/usr/bin/time";

/**
 * `tw CMD` in a script: run CMD under GNU time, appending its CPU and peak
 * RSS to `$TIMEFILE`. Only the commands run with `tw` count.
 */
export const TW =
  `tw() { ${GNU_TIME} -a -o "$TIMEFILE" -f '%U %S %M' "$@"; }; `;

/**
 * Runs one shell script (which uses {@linkcode TW}) and measures it.
 *
 * @param script The bash script.
 * @param timeFile A scratch file for GNU time's reports.
 * @param env Extra environment.
 * @returns Wall time of the script, CPU and peak RSS of its `tw` commands.
 */
export async function timed(
  script: string,
  timeFile: string,
  env: Record<string, string> = {},
): Promise<Sample> {
  const t0 = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    env: { ...env, TIMEFILE: timeFile, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - t0) / 1000;
  if (!out.success) {
    throw new Error(
      `Benchmark command failed (${out.code}): ${script}\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  let cpu = 0;
  let rss = 0;
  const text = await Deno.readTextFile(timeFile).catch(() => "");
  for (const line of text.split("\n")) {
    const m = /^([\d.]+) ([\d.]+) (\d+)$/.exec(line.trim());
    if (!m) continue;
    cpu += Number(m[1]) + Number(m[2]);
    rss = Math.max(rss, Number(m[3]) / 1024);
  }
  await Deno.remove(timeFile).catch(() => {});
  return { wall, cpu, rss };
}

/**
 * The median.
 *
 * @param xs At least one number.
 * @returns The middle value, or the mean of the two middle ones.
 */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/**
 * Runs a bash script and returns its standard output; throws with its
 * standard error when it fails.
 *
 * @param script The script.
 * @returns Standard output, trimmed.
 */
export async function sh(script: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * Makes a file of `mib` random MiB, unless one of that size is there.
 *
 * @param path The file.
 * @param mib Its size in MiB.
 */
export async function payload(path: string, mib: number): Promise<void> {
  const want = mib * 1024 * 1024;
  if ((await Deno.stat(path).catch(() => null))?.size === want) return;
  await sh(
    `head -c ${want} /dev/urandom > '${path}.tmp' && mv '${path}.tmp' '${path}'`,
  );
}

/**
 * Removes a file or directory tree; a missing one is fine.
 *
 * @param path What to remove.
 */
export function rm(path: string): Promise<void> {
  return Deno.remove(path, { recursive: true }).catch(() => {});
}
