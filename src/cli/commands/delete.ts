import { deleteImage } from "../../store/images.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { familiar } from "../_output.ts";

/** `delete`: remove a tag. */
export const deleteCommand: Command = {
  name: "delete",
  summary: "Remove a tag from the local store (blobs stay until pruned)",
  usage: "delete REF [--force]",
  examples: [
    "ironcore-image delete my-os:1.0",
    "ironcore-image delete 3f2a9c --force",
  ],
  flags: [
    {
      name: "force",
      type: "boolean",
      help: "Let an image ID delete every tag of its image",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const removed = await deleteImage(
      await ctx.store(),
      ctx.args.positionals[0]!,
      { force: ctx.bool("force") },
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
