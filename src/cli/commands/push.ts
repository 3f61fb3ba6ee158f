import { familiarReference, parseReference } from "../../oci/reference.ts";
import { pushImage, type PushImageOptions } from "../../transfer/push_image.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { concurrency, CONCURRENCY_FLAG, registryClient } from "./_registry.ts";

/** `push`: local image to a registry. */
export const pushCommand: Command = {
  name: "push",
  summary: "Push an image from the local store to its registry",
  usage: "push REF [--push-sub-manifests=true|false] [--json]",
  examples: ["ironcore-image push registry.example.com/os/my-os:1.0"],
  flags: [
    {
      name: "push-sub-manifests",
      type: "boolean",
      help:
        "Also tag each arch manifest of an index as REF-<arch> in the registry",
      default: "true",
    },
    CONCURRENCY_FLAG,
    {
      name: "json",
      type: "boolean",
      help: "Print JSON: {reference, descriptor, uploaded, skipped, subTags}",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: PushImageOptions = {
      client: registryClient(ctx),
      pushSubManifests: ctx.bool("push-sub-manifests", true),
      concurrency: concurrency(ctx),
    };
    if (ctx.progress) options.onProgress = ctx.progress;
    if (ctx.io.signal) options.signal = ctx.io.signal;
    const result = await pushImage(
      await ctx.store(),
      ctx.args.positionals[0]!,
      options,
    );
    await ctx.endProgress();
    if (ctx.bool("json")) {
      await ctx.out(JSON.stringify(result) + "\n");
      return 0;
    }
    const name = familiarReference(parseReference(result.reference));
    for (const t of result.subTags) {
      await ctx.out(`Pushed ${familiarReference(parseReference(t))}\n`);
    }
    await ctx.out(`Pushed ${name}: ${result.descriptor.digest}\n`);
    return 0;
  },
};
