import { familiarReference, parseReference } from "../../oci/reference.ts";
import type { PullImageOptions } from "../../transfer/pull_image.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import {
  concurrency,
  CONCURRENCY_FLAG,
  platformFlag,
  registryClient,
  retries,
  timeouts,
} from "./_registry.ts";

/** `pull`: registry image into the local store. */
export const pullCommand: Command = {
  name: "pull",
  summary: "Pull an image from a registry into the local store",
  usage: "pull REF [--platform os/arch] [--concurrency N] [--json]",
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
    jsonFlag("Print JSON: {reference, descriptor, downloaded, skipped}"),
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: PullImageOptions = {
      ...ctx.operation(),
      concurrency: concurrency(ctx),
      retries: retries(ctx),
      stallTimeout: timeouts(ctx).stall,
    };
    const platform = platformFlag(ctx);
    if (platform) options.platform = platform;
    const reference = ctx.args.positionals[0]!;
    // The code, the client and the store load together.
    const [{ pullImage }, client, store] = await Promise.all([
      import("../../transfer/pull_image.ts"),
      registryClient(ctx),
      ctx.store(),
    ]);
    options.client = client;
    const result = await pullImage(store, reference, options);
    await ctx.endProgress();
    if (await ctx.printJson(result, { compact: true })) return 0;
    await ctx.out(
      `Pulled ${
        familiarReference(parseReference(result.reference))
      }: ${result.descriptor.digest}\n`,
    );
    return 0;
  },
};
