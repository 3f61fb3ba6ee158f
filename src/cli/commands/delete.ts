import { checkPositionals, type Command } from "../_command.ts";
import { familiar } from "../_output.ts";

/** `delete`: remove a tag. */
export const deleteCommand: Command = {
  name: "delete",
  summary: "Remove a tag from the local store (blobs stay until pruned)",
  usage: "delete REF",
  examples: ["ironcore-image delete my-os:1.0"],
  flags: [],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const { deleteImage } = await import("../../store/images.ts");
    const removed = await deleteImage(
      await ctx.store(),
      ctx.args.positionals[0]!,
    );
    for (const r of removed) {
      await ctx.out(`Deleted ${familiar(r, { defaultTag: false })}\n`);
    }
    if (removed.length === 0) {
      await ctx.out(`Deleted ${ctx.args.positionals[0]}\n`);
    }
    return 0;
  },
};
