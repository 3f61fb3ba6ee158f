/**
 * What every CLI command gets and provides.
 */

import type { OperationOptions, ProgressCallback } from "../progress.ts";
import type { Store } from "../store/store.ts";
import type { ByteWriter } from "../store/_verified_copy.ts";
import { type FlagSpec, type ParsedArgs, UsageError } from "./_args.ts";

/** Where the CLI reads and writes; `cli.ts` wires the process's streams. */
export interface CliIo {
  /** Standard output. */
  stdout: WritableStream<Uint8Array>;
  /**
   * Standard output as a writer that keeps nothing of a chunk once written
   * (`Deno.stdout`): large binary output (`export -o -`, `extract -o -`)
   * goes there in reused buffers. Without it, `stdout` takes that output.
   */
  stdoutWriter?: ByteWriter | undefined;
  /** Standard error. */
  stderr: WritableStream<Uint8Array>;
  /** Standard input, for commands that read it. */
  stdin?: ReadableStream<Uint8Array> | undefined;
  /** Whether standard error is a terminal (progress bars). */
  stderrIsTerminal?: boolean | undefined;
  /** Reads an environment variable. */
  env: (name: string) => string | undefined;
  /** Aborts long operations (Ctrl-C, SIGTERM). */
  signal?: AbortSignal | undefined;
  /**
   * Aborted by a second SIGINT or SIGTERM, for a command that winds down
   * gracefully after the first (`serve`); its reason's message is the
   * signal's name.
   */
  signalAgain?: AbortSignal | undefined;
}

/** Runtime context handed to a command. */
export interface CommandContext {
  /** Parsed flags and positionals. */
  args: ParsedArgs;
  /** Process streams and environment. */
  io: CliIo;
  /** Opens the store chosen by `--store-path` or the environment. */
  store(): Promise<Store>;
  /**
   * Names a directory the command writes in as a whole (an output file's
   * directory, where it also makes a temporary file): a missing permission
   * for a path inside it names the directory, as the store is named.
   */
  workIn(dir: string): void;
  /** Writes text to standard output. */
  out(text: string): Promise<void>;
  /** Writes text to standard error. */
  err(text: string): Promise<void>;
  /** A string flag. */
  string(name: string): string | undefined;
  /** A boolean flag, with its default. */
  bool(name: string, fallback?: boolean): boolean;
  /** A repeatable flag. */
  strings(name: string): string[];
  /** Every command, in help order (for help and shell completion). */
  commands: readonly Command[];
  /** The flags every command accepts. */
  globalFlags: readonly FlagSpec[];
  /** Progress renderer, unless quiet. */
  progress: ProgressCallback | undefined;
  /** Ends the progress display (prints a summary off a terminal). */
  endProgress(): Promise<void>;
  /** The abort signal (Ctrl-C) and the progress display, for a long operation. */
  operation(): OperationOptions;
  /**
   * With `--json`, prints a value as JSON, indented or (`compact`) on one
   * line, and returns `true`; without, returns `false`.
   */
  printJson(value: unknown, options?: { compact?: boolean }): Promise<boolean>;
}

/** A CLI command. */
export interface Command {
  /** Name typed on the command line. */
  name: string;
  /** One-line description. */
  summary: string;
  /** Usage line after the program name. */
  usage: string;
  /** Example invocations for help. */
  examples?: string[] | undefined;
  /** Flags beyond the global ones. */
  flags: FlagSpec[];
  /** Number of positionals accepted. */
  positionals: { min: number; max: number; names: string };
  /**
   * What shell completion offers for the positionals: the tags of the local
   * store, file names, or fixed words. Nothing when absent.
   */
  complete?: "tags" | "files" | readonly string[] | undefined;
  /** Runs the command; returns the exit code. */
  run(ctx: CommandContext): Promise<number>;
}

/**
 * The `--json` flag of a command.
 *
 * @param help What the JSON holds.
 * @returns The flag's spec.
 */
export function jsonFlag(help: string): FlagSpec {
  return { name: "json", type: "boolean", help };
}

/** Requires the given number of positionals. */
export function checkPositionals(cmd: Command, ctx: CommandContext): void {
  const n = ctx.args.positionals.length;
  if (n < cmd.positionals.min || n > cmd.positionals.max) {
    throw new UsageError(
      `${cmd.name} takes ${cmd.positionals.names}: usage: ironcore-image ${cmd.usage}`,
    );
  }
}
