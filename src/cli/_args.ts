/**
 * A small argument parser: global flags anywhere, `--flag value`,
 * `--flag=value`, booleans as `--flag` or `--flag=false`, repeated flags,
 * and `--` to end flags.
 */

/** A flag a command accepts. */
export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  /** `boolean`, a single `string`, or `strings` (repeatable). */
  type: "boolean" | "string" | "strings";
  /** One-letter alias. */
  short?: string | undefined;
  /** Placeholder for the value in help. */
  value?: string | undefined;
  /** Help text. */
  help: string;
  /** Default shown in help. */
  default?: string | undefined;
  /** Accepted but left out of help (settings for tests, not for users). */
  hidden?: boolean | undefined;
  /** The values the flag takes, offered by shell completion. */
  choices?: readonly string[] | undefined;
}

/** A mistake in how the command was called; exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed flags and positionals. */
export interface ParsedArgs {
  /** Positional arguments after the command name. */
  positionals: string[];
  /** Flag values by long name: `boolean`, `string` or `string[]`. */
  flags: Map<string, boolean | string | string[]>;
}

function findSpec(
  specs: readonly FlagSpec[],
  token: string,
): FlagSpec | undefined {
  if (token.startsWith("--")) {
    return specs.find((s) => s.name === token.slice(2));
  }
  return specs.find((s) => s.short !== undefined && s.short === token.slice(1));
}

/**
 * Splits off the command name: the first token that is not a flag (or a
 * global flag's value).
 */
export function splitCommand(
  args: readonly string[],
  globals: readonly FlagSpec[],
): { command: string | undefined; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") break;
    if (a.startsWith("-") && a !== "-") {
      const spec = findSpec(globals, a.split("=")[0]!);
      if (spec && spec.type !== "boolean" && !a.includes("=")) i++;
      continue;
    }
    return { command: a, rest: [...args.slice(0, i), ...args.slice(i + 1)] };
  }
  return { command: undefined, rest: [...args] };
}

function parseBool(name: string, value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new UsageError(`Flag --${name} takes true or false, got "${value}"`);
}

/**
 * Parses the arguments of one command.
 *
 * @param args Arguments without the command name.
 * @param specs Flags the command and the globals accept.
 * @param command Command name, for messages.
 */
export function parseArgs(
  args: readonly string[],
  specs: readonly FlagSpec[],
  command: string,
): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, boolean | string | string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const key = eq >= 0 ? a.slice(0, eq) : a;
    const spec = findSpec(specs, key);
    if (!spec) {
      throw new UsageError(
        `Unknown flag ${key} for ${command}: run "ironcore-image ${command} --help" to see the flags`,
      );
    }
    if (spec.type === "boolean") {
      flags.set(
        spec.name,
        eq >= 0 ? parseBool(spec.name, a.slice(eq + 1)) : true,
      );
      continue;
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined) {
        throw new UsageError(`Flag --${spec.name} needs a value`);
      }
      value = next;
      i++;
    }
    if (spec.type === "string") {
      if (flags.has(spec.name)) {
        throw new UsageError(`Flag --${spec.name} is given more than once`);
      }
      flags.set(spec.name, value);
    } else {
      const list = (flags.get(spec.name) as string[] | undefined) ?? [];
      list.push(value);
      flags.set(spec.name, list);
    }
  }
  return { positionals, flags };
}
