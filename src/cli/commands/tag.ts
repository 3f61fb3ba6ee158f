import { familiarReference, parseReference } from "../../oci/reference.ts";
import { checkPositionals, type Command } from "../_command.ts";

/** `tag`: a new name for an image. */
export const tagCommand: Command = {
  name: "tag",
  summary: "Give an image in the local store another tag",
  usage: "tag SOURCE TARGET",
  examples: ["ironcore-image tag my-os:1.0 registry.example.com/os/my-os:1.0"],
  flags: [],
  positionals: { min: 2, max: 2, names: "SOURCE and TARGET" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const [source, target] = ctx.args.positionals as [string, string];
    const ref = await (await ctx.store()).tag(source, target);
    await ctx.out(`Tagged ${familiarReference(parseReference(ref))}\n`);
    return 0;
  },
};
