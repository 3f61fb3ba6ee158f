import type {
  DockerConfig,
  DockerConfigOptions,
} from "../../registry/credentials.ts";
import type { VerifyCredentialsOptions } from "../../registry/login.ts";
import { UsageError } from "../_args.ts";
import {
  checkPositionals,
  type Command,
  type CommandContext,
} from "../_command.ts";
import { dockerConfigPath, plainHttpFlag, timeouts } from "./_registry.ts";

const HOST_RE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$/;
const MAX_PASSWORD_BYTES = 64 * 1024;

/**
 * The registry host of a `login`/`logout` argument: a scheme and a path, as
 * in `https://registry.example.com/v2/`, are dropped.
 */
export function registryArgument(arg: string): string {
  const host = arg.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(
    /\/.*$/,
    "",
  );
  if (!HOST_RE.test(host)) {
    throw new UsageError(
      `"${arg}" is not a registry host: give one such as registry.example.com or localhost:5000`,
    );
  }
  return host;
}

/** Loads the Docker config chosen by `--docker-config-path` or the environment. */
export async function loadDockerConfig(
  ctx: CommandContext,
): Promise<DockerConfig> {
  const [{ DockerConfig, defaultDockerConfigPath }, { dirname }] = await Promise
    .all([import("../../registry/credentials.ts"), import("node:path")]);
  const options: DockerConfigOptions = { env: ctx.io.env };
  const path = dockerConfigPath(ctx);
  if (path !== undefined) options.path = path;
  try {
    // The file is rewritten through a temporary file beside it.
    ctx.workIn(dirname(path ?? defaultDockerConfigPath(ctx.io.env)));
  } catch {
    // No default path: loading says why.
  }
  return await DockerConfig.load(options);
}

async function readPassword(
  stdin: ReadableStream<Uint8Array>,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    size += chunk.byteLength;
    if (size > MAX_PASSWORD_BYTES) {
      throw new UsageError(
        `The password on standard input is over ${MAX_PASSWORD_BYTES} bytes: pipe only the password`,
      );
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
}

/** `login`: check credentials against a registry and store them. */
export const loginCommand: Command = {
  name: "login",
  summary: "Log in to a registry: check the credentials and store them",
  usage: "login REGISTRY -u USER --password-stdin",
  examples: [
    'echo "$PASSWORD" | ironcore-image login registry.example.com -u ada --password-stdin',
  ],
  flags: [
    {
      name: "username",
      type: "string",
      short: "u",
      value: "USER",
      help: "User name (required)",
    },
    {
      name: "password-stdin",
      type: "boolean",
      help: "Read the password from standard input",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REGISTRY" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const registry = registryArgument(ctx.args.positionals[0]!);
    const username = ctx.string("username");
    if (username === undefined || username === "") {
      throw new UsageError(
        `login needs a user name: pass -u USER, e.g. ironcore-image login ${registry} -u USER --password-stdin`,
      );
    }
    if (!ctx.bool("password-stdin") || !ctx.io.stdin) {
      throw new UsageError(
        `login reads the password from standard input: pass --password-stdin, e.g. echo "$PASSWORD" | ironcore-image login ${registry} -u ${username} --password-stdin`,
      );
    }
    const password = await readPassword(ctx.io.stdin);
    if (password === "") {
      throw new UsageError(
        "The password on standard input is empty: pipe the password into --password-stdin",
      );
    }
    const credential = { username, password };
    const options: VerifyCredentialsOptions = { timeouts: timeouts(ctx) };
    const plainHttp = plainHttpFlag(ctx);
    if (plainHttp !== undefined) options.plainHttp = plainHttp;
    if (ctx.io.signal) options.signal = ctx.io.signal;
    const { verifyCredentials } = await import("../../registry/login.ts");
    const { scheme } = await verifyCredentials(registry, credential, options);
    const config = await loadDockerConfig(ctx);
    await config.set(registry, credential);
    if (scheme === "none") {
      await ctx.err(
        `Warning: ${registry} does not ask for credentials, so they were stored unchecked\n`,
      );
    }
    await ctx.out(`Login succeeded for ${registry}\n`);
    return 0;
  },
};
