import type {
  CopyEndpoint,
  CopyImageOptions,
} from "../../transfer/copy_image.ts";
import { UsageError } from "../_args.ts";
import {
  checkPositionals,
  type Command,
  type CommandContext,
  jsonFlag,
} from "../_command.ts";
import {
  concurrency,
  CONCURRENCY_FLAG,
  registryClient,
  retries,
  timeouts,
} from "./_registry.ts";
import { familiar } from "../_output.ts";

/** Marks an argument that names an image in the local store. */
const LOCAL_PREFIX = "local:";

/**
 * `local:REF` names an image in the local store; anything else is a registry
 * reference. `local:<port>/…` is a registry host called `local` with a port.
 */
async function endpoint(
  ctx: CommandContext,
  arg: string,
): Promise<{ endpoint: CopyEndpoint; label: string }> {
  if (arg.startsWith(LOCAL_PREFIX) && !/^local:\d+\//.test(arg)) {
    const reference = arg.slice(LOCAL_PREFIX.length);
    if (reference === "") {
      throw new UsageError(
        `"${arg}" names no image: write local:NAME:TAG for an image in the local store`,
      );
    }
    return {
      endpoint: { store: await ctx.store(), reference },
      label: arg,
    };
  }
  return { endpoint: { reference: arg }, label: arg };
}

/** `copy`: an image between registries, or between a registry and the store. */
export const copyCommand: Command = {
  name: "copy",
  summary:
    "Copy an image between registries or between a registry and the store",
  usage:
    "copy SRC DST [--push-sub-manifests=true|false] [--concurrency N] [--json]",
  examples: [
    "ironcore-image copy registry-a.example.com/os/my-os:1.0 registry-b.example.com/os/my-os:1.0",
    "ironcore-image copy local:my-os:1.0 registry.example.com/os/my-os:1.0",
    "ironcore-image copy registry.example.com/os/my-os:1.0 local:my-os:1.0",
  ],
  flags: [
    {
      name: "push-sub-manifests",
      type: "boolean",
      help:
        "Also tag each arch manifest of an index as DST-<arch> in the destination registry",
      default: "true",
    },
    CONCURRENCY_FLAG,
    jsonFlag(
      "Print JSON: {source, destination, descriptor, copied, mounted, skipped, subTags}",
    ),
  ],
  positionals: {
    min: 2,
    max: 2,
    names: "SRC and DST (local:NAME:TAG for the local store)",
  },
  async run(ctx) {
    checkPositionals(this, ctx);
    const { copyImage } = await import("../../transfer/copy_image.ts");
    const src = await endpoint(ctx, ctx.args.positionals[0]!);
    const dst = await endpoint(ctx, ctx.args.positionals[1]!);
    const options: CopyImageOptions = {
      ...ctx.operation(),
      client: await registryClient(ctx),
      pushSubManifests: ctx.bool("push-sub-manifests", true),
      concurrency: concurrency(ctx),
      retries: retries(ctx),
      stallTimeout: timeouts(ctx).stall,
    };
    const result = await copyImage(src.endpoint, dst.endpoint, options);
    await ctx.endProgress();
    if (await ctx.printJson(result, { compact: true })) return 0;
    for (const t of result.subTags) await ctx.out(`Tagged ${familiar(t)}\n`);
    // A local end is shown as typed: it may be a digest prefix.
    const from = src.endpoint.store ? src.label : familiar(result.source);
    const to = dst.endpoint.store ? dst.label : familiar(result.destination);
    await ctx.out(
      `Copied ${from} to ${to}: ${result.descriptor.digest} (${result.copied} copied, ${result.mounted} mounted, ${result.skipped} skipped)\n`,
    );
    return 0;
  },
};
