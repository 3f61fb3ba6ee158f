/**
 * Runs the `ironcore-image` CLI as a real child process, and snapshots store
 * directories so tests can assert that a failed command changed nothing.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

/** Absolute path of the repository root. */
export const REPO_ROOT: string = fileURLToPath(
  new URL("../..", import.meta.url),
);

/** Absolute path of `cli.ts`. */
export const CLI_PATH: string = `${REPO_ROOT}/cli.ts`;

/** What a CLI run produced. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Options for {@linkcode runCliProcess}. */
export interface RunCliProcessOptions {
  /** Working directory of the child; defaults to this process's. */
  cwd?: string;
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** Text for the child's standard input; without it, stdin is empty. */
  stdin?: string;
  /** See {@linkcode RunProcessOptions.killAfter}. */
  killAfter?: number;
}

/** Options for {@linkcode runProcess}. */
export interface RunProcessOptions {
  /** Working directory of the child; defaults to this process's. */
  cwd?: string;
  /** Environment variables for the child, added to this process's. */
  env?: Record<string, string>;
  /** Give the child only `env`, not this process's environment too. */
  clearEnv?: boolean;
  /** Text for the child's standard input; without it, stdin is empty. */
  stdin?: string;
  /**
   * Kills the child (SIGKILL) after this many milliseconds: a guard for a
   * case whose bug is a hang or a runaway read, so the test fails (with exit
   * code 137) instead of hanging. Not a timing assertion: pick a bound far
   * above the normal run time.
   */
  killAfter?: number;
}

/**
 * Runs a program to its end and collects its output.
 *
 * @param program The program, e.g. `Deno.execPath()`.
 * @param args Its arguments.
 * @param options Working directory, environment and standard input.
 * @returns Exit code, stdout and stderr.
 *
 * @example Type-check a file
 * ```ts ignore
 * const { code, stderr } = await runProcess(Deno.execPath(), ["check", "a.ts"]);
 * ```
 */
export async function runProcess(
  program: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<CliResult> {
  const child = new Deno.Command(program, {
    args: [...args],
    env: { ...options.env, NO_COLOR: "1" },
    clearEnv: options.clearEnv ?? false,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  }).spawn();
  const guard = options.killAfter === undefined ? undefined : setTimeout(
    () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    },
    options.killAfter,
  );
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output().finally(() => clearTimeout(guard));
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * Runs `deno run --allow-all cli.ts ...args` and collects its output. The
 * child's default store is unusable, so a test that forgets `--store-path`
 * fails instead of touching a real store.
 *
 * @param args Arguments after the program name.
 * @param options Working directory, environment and standard input.
 * @returns Exit code, stdout and stderr.
 *
 * @example Print the version
 * ```ts ignore
 * const { code, stdout } = await runCliProcess(["--version"]);
 * ```
 */
export function runCliProcess(
  args: readonly string[],
  options: RunCliProcessOptions = {},
): Promise<CliResult> {
  return runProcess(
    Deno.execPath(),
    ["run", "--allow-all", "--quiet", CLI_PATH, ...args],
    {
      ...options,
      env: {
        ...Deno.env.toObject(),
        // Nobody can create a directory under /dev/null, root included, so
        // a test that forgets --store-path fails instead of using
        // ~/.ironcore.
        IRONCORE_IMAGE_STORE: "/dev/null/ironcore-image-test-store",
        ...options.env,
      },
      clearEnv: true,
    },
  );
}

/**
 * Every entry under a directory: a directory maps to `"dir"`, a file to
 * `"<size> <sha256 hex>"`, a symlink to `"link -> <target>"`, a FIFO or
 * device to `"special"` (never opened). Compare two
 * snapshots with `assert.deepEqual` to prove a directory did not change.
 * A path that does not exist gives `{}`; a file gives one entry, `"."`.
 *
 * @param root The directory.
 * @returns Entries by path relative to `root`.
 *
 * @example Assert a command left the store alone
 * ```ts ignore
 * const before = await snapshotStore(store);
 * await runCliProcess(["--store-path", store, "delete", "nope:1"]);
 * assert.deepEqual(await snapshotStore(store), before);
 * ```
 */
export async function snapshotStore(
  root: string,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string, rel: string): Promise<void> {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      const key = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymlink) {
        out[key] = `link -> ${await Deno.readLink(path)}`;
      } else if (e.isDirectory) {
        out[key] = "dir";
        await walk(path, key);
      } else if (!e.isFile) {
        // A FIFO or device: reading it could block or never end.
        out[key] = "special";
      } else {
        out[key] = await describeFile(path);
      }
    }
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  if (info.isDirectory) await walk(root, "");
  else out["."] = await describeFile(root);
  return out;
}

async function describeFile(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    // A file made unreadable on purpose (chmod 000) is described by size.
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    return `${(await Deno.stat(path)).size} unreadable`;
  }
  const hex = createHash("sha256").update(bytes).digest("hex");
  return `${bytes.byteLength} ${hex}`;
}
