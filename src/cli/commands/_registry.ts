/**
 * Builds the registry client the way every remote command needs it. The
 * client and the credential store are loaded when a command asks for them,
 * so that commands that never talk to a registry do not load them.
 */

import type {
  RegistryClient,
  RegistryClientOptions,
} from "../../registry/client.ts";
import type {
  DockerConfig,
  DockerConfigOptions,
} from "../../registry/credentials.ts";
import type { CommandContext } from "../_command.ts";
import { UsageError } from "../_args.ts";
import { countFlag, durationFlag } from "./_flags.ts";
import type { RegistryTimeouts } from "../../net/deadline_fetch.ts";
import { parsePlatform, type Platform } from "../../oci/platform.ts";

/** Flags shared by commands that talk to registries. */
export const CONCURRENCY_FLAG = {
  name: "concurrency",
  type: "string",
  value: "N",
  help: "Blobs transferred at once",
  default: "4",
} as const;

/**
 * `--plain-http`: `true` or `false` when given, `undefined` (plain HTTP for
 * loopback registries only) when not.
 */
export function plainHttpFlag(ctx: CommandContext): boolean | undefined {
  return ctx.args.flags.get("plain-http") as boolean | undefined;
}

/**
 * `--docker-config-path`: the file given, or `undefined` for the default
 * file (also when given as "").
 */
export function dockerConfigPath(ctx: CommandContext): string | undefined {
  return ctx.string("docker-config-path") || undefined;
}

/** A registry client with credentials from the Docker config. */
export async function registryClient(
  ctx: CommandContext,
): Promise<RegistryClient> {
  const { RegistryClient } = await import("../../registry/client.ts");
  const path = dockerConfigPath(ctx);
  let config: Promise<DockerConfig> | undefined;
  const options: RegistryClientOptions = {
    retries: retries(ctx),
    timeouts: timeouts(ctx),
    // The CLI's fetch is Deno's own, which takes each chunk over before it
    // asks for the next.
    releaseSentChunks: true,
    credentials: async (registry) => {
      const options: DockerConfigOptions = { env: ctx.io.env };
      if (path !== undefined) options.path = path;
      else if (
        !["DOCKER_CONFIG", "HOME", "USERPROFILE"].some((n) => ctx.io.env(n))
      ) {
        // Nowhere to look for a Docker config: anonymous access.
        return undefined;
      }
      config ??= import("../../registry/credentials.ts").then((m) =>
        m.DockerConfig.load(options)
      );
      return await (await config).get(registry);
    },
  };
  const plainHttp = plainHttpFlag(ctx);
  if (plainHttp !== undefined) options.plainHttp = plainHttp;
  return new RegistryClient(options);
}

/** Parses `--retries`. */
export function retries(ctx: CommandContext): number {
  return countFlag(ctx, "retries", { min: 0, max: 100, fallback: 5 });
}

/** Default of `--timeout`: how long a registry may keep silent. */
const DEFAULT_TIMEOUT = 30_000;

/**
 * Parses `--timeout`: how long to wait for a registry's answer, and for a
 * transfer that stopped moving.
 */
export function timeouts(ctx: CommandContext): RegistryTimeouts {
  const ms = durationFlag(ctx, "timeout", DEFAULT_TIMEOUT);
  if (ms <= 0) {
    throw new UsageError(
      `Flag --timeout takes a duration above zero, such as 30s or 2m, got "${
        ctx.string("timeout")
      }"`,
    );
  }
  return { response: ms, stall: ms };
}

/** Parses `--concurrency`. */
export function concurrency(ctx: CommandContext): number {
  return countFlag(ctx, "concurrency", { min: 1, max: 64, fallback: 4 });
}

/** Parses `--platform`. */
export function platformFlag(ctx: CommandContext): Platform | undefined {
  const v = ctx.string("platform");
  if (v === undefined) return undefined;
  try {
    return parsePlatform(v);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
