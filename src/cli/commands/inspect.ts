import { checkPositionals, type Command, jsonFlag } from "../_command.ts";

/** `inspect`: JSON description of an image. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "Print an image's descriptor, manifest or index, and config as JSON",
  usage: "inspect REF [--json]",
  examples: [
    "ironcore-image inspect my-os:1.0",
    "ironcore-image inspect 3f2a9c",
  ],
  flags: [jsonFlag("Print JSON (what inspect always prints)")],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const { inspectImage } = await import("../../store/images.ts");
    const details = await inspectImage(
      await ctx.store(),
      ctx.args.positionals[0]!,
    );
    await ctx.out(JSON.stringify(details, null, 2) + "\n");
    return 0;
  },
};
