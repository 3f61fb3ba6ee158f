/**
 * The command-line interface as a function: parses arguments, calls the
 * library, prints results, and maps errors to one-line messages and exit
 * codes (0 success, 1 error, 2 usage).
 *
 * @module
 */

import { isDeviceFull } from "../_errors.ts";
import { ImageError, InvalidReferenceError, StoreError } from "../errors.ts";
import type { Store, StoreOptions } from "../store/store.ts";
import {
  type FlagSpec,
  parseArgs,
  type ParsedArgs,
  splitCommand,
  UsageError,
} from "./_args.ts";
import type { CliIo, Command, CommandContext } from "./_command.ts";
import { ProgressView } from "./_progress.ts";
import { inCliWords } from "./_output.ts";
import { COMMANDS } from "./commands/mod.ts";
import { retries, timeouts } from "./commands/_registry.ts";
import denoConfig from "../../deno.json" with { type: "json" };

export type { CliIo } from "./_command.ts";

/** The product version, printed by `--version`: the package's own, from deno.json. */
export const VERSION: string = denoConfig.version;

/** Flags every command accepts, before or after the command name. */
export const GLOBAL_FLAGS: FlagSpec[] = [
  {
    name: "store-path",
    type: "string",
    value: "DIR",
    help:
      "Local store directory (default $IRONCORE_IMAGE_STORE or ~/.ironcore)",
  },
  {
    name: "docker-config-path",
    type: "string",
    value: "FILE",
    help:
      "Docker config with registry credentials (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
  },
  {
    name: "plain-http",
    type: "boolean",
    help:
      "Talk plain HTTP to every registry (default: only to localhost, 127.0.0.0/8 and [::1]; --plain-http=false: HTTPS to all)",
  },
  {
    name: "retries",
    type: "string",
    value: "N",
    help: "Retries of a failed or interrupted registry transfer (default 5)",
  },
  {
    name: "timeout",
    type: "string",
    value: "DURATION",
    help:
      "How long a registry may take to answer, or keep a transfer without data, before the request is retried (default 30s)",
  },
  { name: "quiet", type: "boolean", short: "q", help: "No progress output" },
  { name: "debug", type: "boolean", help: "Show stack traces on errors" },
  { name: "help", type: "boolean", short: "h", help: "Show help" },
  { name: "version", type: "boolean", help: "Print the version" },
  // Blobs at least this large (bytes) are hashed on a worker thread while
  // they download (default 512 MiB). Hidden: the tests lower it to run that
  // path with small blobs under the documented permissions, which a
  // variable would not allow without an extra --allow-env.
  {
    name: "hash-worker-threshold",
    type: "string",
    value: "BYTES",
    help: "Hash downloads of at least this size on a worker thread",
    hidden: true,
  },
];

const encoder = new TextEncoder();
const pending = new WeakMap<WritableStream<Uint8Array>, Promise<void>>();

function write(
  stream: WritableStream<Uint8Array>,
  text: string,
): Promise<void> {
  // Progress redraws are not awaited, so writes to one stream queue behind
  // each other instead of failing on the stream's writer lock.
  const previous = pending.get(stream) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(async () => {
    const w = stream.getWriter();
    try {
      await w.write(encoder.encode(text));
    } finally {
      w.releaseLock();
    }
  });
  pending.set(stream, next);
  return next;
}

function flagHelp(flags: FlagSpec[]): string {
  const rows = flags.filter((f) => !f.hidden).map((f) => {
    const name = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${
      f.value ? ` ${f.value}` : ""
    }`;
    // A name too long for the column puts its help on the next line.
    return name.length > 34
      ? `  ${name}\n${" ".repeat(37)}${f.help}`
      : `  ${name.padEnd(34)} ${f.help}`;
  });
  return rows.join("\n");
}

function mainHelp(): string {
  const cmds = COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join(
    "\n",
  );
  return `ironcore-image ${VERSION}: build, store and move IronCore OS images (OCI artifacts)

Usage: ironcore-image [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS]

Commands:
${cmds}
  help       Show help for a command

Global flags:
${flagHelp(GLOBAL_FLAGS)}

Run "ironcore-image COMMAND --help" for a command's flags.
`;
}

function commandHelp(cmd: Command): string {
  let text = `${cmd.summary}\n\nUsage: ironcore-image ${cmd.usage}\n`;
  if (cmd.flags.length) text += `\nFlags:\n${flagHelp(cmd.flags)}\n`;
  text += `\nGlobal flags:\n${flagHelp(GLOBAL_FLAGS)}\n`;
  if (cmd.examples?.length) {
    text += `\nExamples:\n${cmd.examples.map((e) => `  ${e}`).join("\n")}\n`;
  }
  return text;
}

/**
 * Turns an error into the one line the user sees. Unknown errors keep their
 * message, with library options replaced by the flags that set them;
 * permission errors name the flag to add.
 *
 * @param error What was thrown.
 * @param roots The directories the command works in as a whole, as the
 * user gave them: the store, the directory of an output file. A missing
 * permission for a path inside one names that directory, which is what the
 * flag must cover (the command writes more than the one path that failed
 * first, some under names made up on the spot).
 * @param store The store the command opened, if any: a full device under
 * it is named as the store's.
 * @returns The message and the exit code.
 */
export async function describeError(
  error: unknown,
  roots: readonly string[] = [],
  store?: string,
): Promise<{ message: string; code: number }> {
  const { message, code } = await classifyError(error, roots, store);
  return { message: inCliWords(message), code };
}

/**
 * The root `path` lies in, as the user wrote it (normalised: `x/../store`
 * is `store`), else `path`. The path helpers load only here, on the way to
 * an error message, not at every start.
 */
async function rootOf(path: string, roots: readonly string[]): Promise<string> {
  const { isAbsolute, normalize, resolve } = await import("node:path");
  /** A path made absolute and normalised, where the working directory is known. */
  const comparable = (p: string) => {
    if (isAbsolute(p)) return normalize(p);
    try {
      return resolve(p);
    } catch {
      // No read access to the working directory: compare as written.
      return normalize(p);
    }
  };
  const target = comparable(path);
  for (const root of roots) {
    const base = comparable(root).replace(/(.)\/$/, "$1");
    const inside = target === base ||
      target.startsWith(base.endsWith("/") ? base : `${base}/`);
    if (inside) return normalize(root).replace(/(.)\/$/, "$1");
  }
  return path;
}

async function classifyError(
  error: unknown,
  roots: readonly string[],
  storePath: string | undefined,
): Promise<{ message: string; code: number }> {
  if (error instanceof UsageError) return { message: error.message, code: 2 };
  // Every reference the CLI parses is one the user typed: a malformed one
  // is a wrong call, like a malformed flag.
  if (error instanceof InvalidReferenceError) {
    return { message: error.message, code: 2 };
  }
  if (error instanceof Deno.errors.NotCapable) {
    const m =
      /Requires (\w+) access to ([^,]+), run again with the (--allow-\w+) flag/
        .exec(error.message);
    if (!m) return { message: `Missing permission: ${error.message}`, code: 1 };
    let target = m[2]!.replace(/^"|"$/g, "");
    if (m[1] === "read" || m[1] === "write") {
      target = await rootOf(target, roots);
    }
    const shown = m[2]!.startsWith('"') ? `"${target}"` : target;
    return {
      message: `Missing permission: ${m[1]} access to ${shown}: run with ${
        m[3]
      }=${target}`,
      code: 1,
    };
  }
  if (error instanceof ImageError) return { message: error.message, code: 1 };
  if (isDeviceFull(error)) {
    // The runtime names the file last in its message, if at all; what the
    // commands write outside the store they name themselves.
    const file = /'([^']+)'[^']*$/.exec((error as Error).message)?.[1];
    const store = storePath === undefined
      ? undefined
      : await rootOf(file ?? storePath, [storePath]);
    const where = store !== undefined && store !== file
      ? `store ${store}: free some space there, or use another store with --store-path`
      : `${file ?? "the output"}: free some space there, or write elsewhere`;
    return { message: `No space left on the device of ${where}`, code: 1 };
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    return { message: "Interrupted", code: 130 };
  }
  return {
    message: error instanceof Error ? error.message : String(error),
    code: 1,
  };
}

function storeOptions(parsed: ParsedArgs): StoreOptions {
  const text = parsed.flags.get("hash-worker-threshold") as string | undefined;
  if (text === undefined) return {};
  if (!/^\d+$/.test(text)) {
    throw new UsageError(
      `Flag --hash-worker-threshold takes a number of bytes, got "${text}"`,
    );
  }
  return { hashWorkerThreshold: Number(text) };
}

/**
 * The store `--store-path` or the environment chooses. Without a home
 * directory the message names the flag.
 */
function storePathOf(
  path: string | undefined,
  env: (name: string) => string | undefined,
  defaultStorePath: (env: (name: string) => string | undefined) => string,
): string {
  // An empty path would be the working directory, or `/`: never meant.
  if (path === "") {
    throw new UsageError(
      "Flag --store-path is empty: give the store's directory, or leave the flag out for the default",
    );
  }
  if (path === undefined && env("IRONCORE_IMAGE_STORE") === "") {
    throw new UsageError(
      "IRONCORE_IMAGE_STORE is set but empty: set it to the store's directory, or unset it for ~/.ironcore",
    );
  }
  let chosen = path;
  if (chosen === undefined) {
    try {
      chosen = defaultStorePath(env);
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
      throw new StoreError(
        `Store ${e.path} is not usable: no home directory: set HOME, IRONCORE_IMAGE_STORE or --store-path`,
        { path: e.path, cause: e },
      );
    }
  }
  return chosen;
}

/**
 * The exit code after standard output was closed by its reader: what a
 * shell reports for a process that SIGPIPE ended (128 + 13).
 */
const EXIT_BROKEN_PIPE = 141;

/**
 * Passes writes on to a stream and tells when they fail because its reader
 * has gone (a broken pipe).
 */
function watchBrokenPipe(
  stream: WritableStream<Uint8Array>,
  onBroken: () => void,
): WritableStream<Uint8Array> {
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  const take = () => writer ??= stream.getWriter();
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      try {
        await take().write(chunk);
      } catch (e) {
        if (e instanceof Deno.errors.BrokenPipe) onBroken();
        throw e;
      }
    },
    close: () => take().close(),
    abort: (reason) => take().abort(reason),
  });
}

/**
 * Runs the CLI with the given arguments.
 *
 * @param args The arguments after the program name.
 * @param io Streams and environment.
 * @returns The exit code.
 *
 * @example Print the version
 * ```ts
 * import { runCli } from "./run_cli.ts";
 * const code = await runCli(["--version"], {
 *   stdout: new WritableStream(),
 *   stderr: new WritableStream(),
 *   env: () => undefined,
 * });
 * console.log(code); // 0
 * ```
 */
export async function runCli(
  args: readonly string[],
  cliIo: CliIo,
): Promise<number> {
  // A reader that went away (`| head`) ends the command quietly, as it
  // ends other Unix tools; only standard output is watched for it.
  let stdoutGone = false;
  const gone = () => stdoutGone = true;
  const rawWriter = cliIo.stdoutWriter;
  const io: CliIo = {
    ...cliIo,
    stdout: watchBrokenPipe(cliIo.stdout, gone),
    stdoutWriter: rawWriter && {
      async write(p) {
        try {
          return await rawWriter.write(p);
        } catch (e) {
          if (e instanceof Deno.errors.BrokenPipe) gone();
          throw e;
        }
      },
    },
  };
  const out = (t: string) => write(io.stdout, t);
  const err = (t: string) => write(io.stderr, t);
  let debug = args.includes("--debug");
  const roots: string[] = [];
  let storePath: string | undefined;
  try {
    const { command: name, rest } = splitCommand(args, GLOBAL_FLAGS);
    if (name === undefined || name === "help") {
      const globals = parseArgs(rest, GLOBAL_FLAGS, "ironcore-image");
      if (globals.flags.get("version")) {
        await out(`ironcore-image ${VERSION}\n`);
        return 0;
      }
      const topic = globals.positionals[0];
      const cmd = COMMANDS.find((c) => c.name === topic);
      if (topic !== undefined && !cmd) {
        throw new UsageError(
          `Unknown command "${topic}": run ironcore-image help`,
        );
      }
      // Without a command, the help answers a mistake: on standard error,
      // with the usage error's exit code.
      if (name === undefined && !globals.flags.get("help")) {
        await err(mainHelp());
        return 2;
      }
      await out(cmd ? commandHelp(cmd) : mainHelp());
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) {
      throw new UsageError(
        `Unknown command "${name}": run ironcore-image help to see the commands`,
      );
    }
    const parsed = parseArgs(rest, [...GLOBAL_FLAGS, ...cmd.flags], cmd.name);
    debug = parsed.flags.get("debug") === true;
    if (parsed.flags.get("help")) {
      await out(commandHelp(cmd));
      return 0;
    }
    if (parsed.flags.get("version")) {
      await out(`ironcore-image ${VERSION}\n`);
      return 0;
    }
    const quiet = parsed.flags.get("quiet") === true;
    const view = quiet ? undefined : new ProgressView((t) => {
      // Progress is best effort: a closed stderr must not fail the command.
      write(io.stderr, t).catch(() => {});
    }, io.stderrIsTerminal ?? false);
    let store: Promise<Store> | undefined;
    const ctx: CommandContext = {
      args: parsed,
      io,
      store() {
        // The store's code is loaded by the commands that use a store.
        store ??= import("../store/store.ts").then((m) => {
          const path = storePathOf(
            parsed.flags.get("store-path") as string | undefined,
            io.env,
            m.defaultStorePath,
          );
          if (!roots.includes(path)) roots.push(path);
          storePath = path;
          return m.Store.open(path, storeOptions(parsed));
        });
        return store;
      },
      workIn(dir) {
        if (!roots.includes(dir)) roots.push(dir);
      },
      out,
      err,
      commands: COMMANDS,
      globalFlags: GLOBAL_FLAGS.filter((f) => !f.hidden),
      string: (n) => parsed.flags.get(n) as string | undefined,
      bool: (n, fallback = false) =>
        (parsed.flags.get(n) as boolean | undefined) ?? fallback,
      strings: (n) => (parsed.flags.get(n) as string[] | undefined) ?? [],
      progress: view?.update,
      endProgress: () => {
        view?.finish(cmd.name === "build" ? "Stored" : "Transferred");
        return Promise.resolve();
      },
      operation: () => ({ signal: io.signal, onProgress: view?.update }),
      async printJson(value, options = {}) {
        if (parsed.flags.get("json") !== true) return false;
        const indent = options.compact ? undefined : 2;
        await out(JSON.stringify(value, null, indent) + "\n");
        return true;
      },
    };
    // Global flags are checked for every command, not only by those that
    // use them: a typo is a usage error wherever it is made.
    retries(ctx);
    timeouts(ctx);
    storeOptions(parsed);
    return await cmd.run(ctx);
  } catch (e) {
    if (stdoutGone) return EXIT_BROKEN_PIPE;
    const { message, code } = await describeError(e, roots, storePath);
    await err(`Error: ${message}\n`);
    if (debug && e instanceof Error && e.stack) await err(`${e.stack}\n`);
    return code;
  } finally {
    // Progress lines are written without waiting; they are out when this
    // returns, so the caller may exit at once.
    for (const stream of [io.stdout, io.stderr]) {
      await pending.get(stream)?.catch(() => {});
    }
  }
}
