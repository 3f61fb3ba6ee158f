import { familiarReference, parseReference } from "../../oci/reference.ts";
import { pullImage, type PullImageOptions } from "../../transfer/pull_image.ts";
import { checkPositionals, type Command } from "../_command.ts";
import {
  concurrency,
  CONCURRENCY_FLAG,
  platformFlag,
  registryClient,
  retries,
} from "./_registry.ts";

/** `pull`: registry image into the local store. */
export const pullCommand: Command = {
  name: "pull",
  summary: "Pull an image from a registry into the local store",
  usage: "pull REF [--platform os/arch] [--json]",
  examples: [
    "ironcore-image pull registry.example.com/os/my-os:1.0 --platform linux/arm64",
  ],
  flags: [
    {
      name: "platform",
      type: "string",
      value: "OS/ARCH",
      help: "Pull only this platform of an index",
    },
    CONCURRENCY_FLAG,
    {
      name: "json",
      type: "boolean",
      help: "Print JSON: {reference, descriptor, downloaded, skipped}",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: PullImageOptions = {
      client: registryClient(ctx),
      concurrency: concurrency(ctx),
      retries: retries(ctx),
    };
    const platform = platformFlag(ctx);
    if (platform) options.platform = platform;
    if (ctx.progress) options.onProgress = ctx.progress;
    if (ctx.io.signal) options.signal = ctx.io.signal;
    const result = await pullImage(
      await ctx.store(),
      ctx.args.positionals[0]!,
      options,
    );
    await ctx.endProgress();
    if (ctx.bool("json")) {
      await ctx.out(JSON.stringify(result) + "\n");
      return 0;
    }
    await ctx.out(
      `Pulled ${
        familiarReference(parseReference(result.reference))
      }: ${result.descriptor.digest}\n`,
    );
    return 0;
  },
};
