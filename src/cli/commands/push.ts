import { familiarReference, parseReference } from "../../oci/reference.ts";
import type { PushImageOptions } from "../../transfer/push_image.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { concurrency, CONCURRENCY_FLAG, registryClient } from "./_registry.ts";

/** `push`: local image to a registry. */
export const pushCommand: Command = {
  name: "push",
  summary: "Push an image from the local store to its registry",
  usage:
    "push REF [--push-sub-manifests=true|false] [--concurrency N] [--json]",
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
    jsonFlag(
      "Print JSON: {reference, descriptor, uploaded, mounted, skipped, subTags}",
    ),
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: PushImageOptions = {
      ...ctx.operation(),
      pushSubManifests: ctx.bool("push-sub-manifests", true),
      concurrency: concurrency(ctx),
    };
    const reference = ctx.args.positionals[0]!;
    // The code, the client and the store load together.
    const [{ pushImage }, client, store] = await Promise.all([
      import("../../transfer/push_image.ts"),
      registryClient(ctx),
      ctx.store(),
    ]);
    options.client = client;
    const result = await pushImage(store, reference, options);
    await ctx.endProgress();
    if (await ctx.printJson(result, { compact: true })) return 0;
    const name = familiarReference(parseReference(result.reference));
    for (const t of result.subTags) {
      await ctx.out(`Pushed ${familiarReference(parseReference(t))}\n`);
    }
    await ctx.out(`Pushed ${name}: ${result.descriptor.digest}\n`);
    return 0;
  },
};
