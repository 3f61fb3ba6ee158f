import {
  type VerifyProblem,
  verifyStore,
  type VerifyStoreOptions,
} from "../../store/verify_store.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { familiar, formatBytes } from "../_output.ts";

/** The images of some problems, once each, in their short form. */
function imagesOf(problems: readonly VerifyProblem[]): string[] {
  const names = new Set<string>();
  for (const p of problems) {
    for (const image of p.images ?? []) names.add(familiar(image));
  }
  return [...names];
}

/** `verify`: re-hash and cross-check the store. */
export const verifyCommand: Command = {
  name: "verify",
  summary:
    "Check that every blob matches its digest and every image is complete",
  usage: "verify [REF] [--repair] [--json]",
  examples: [
    "ironcore-image verify",
    "ironcore-image verify my-os:1.0",
    "ironcore-image verify --repair",
  ],
  flags: [
    {
      name: "repair",
      type: "boolean",
      help:
        "Remove corrupt blobs, so that the next pull or build writes them again",
    },
    jsonFlag(
      "Print JSON: {ok, blobs, bytes, problems: [{kind, digest, message, images}], repaired}",
    ),
  ],
  positionals: { min: 0, max: 1, names: "at most one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: VerifyStoreOptions = { repair: ctx.bool("repair") };
    const ref = ctx.args.positionals[0];
    if (ref !== undefined) options.reference = ref;
    if (ctx.io.signal) options.signal = ctx.io.signal;
    const result = await verifyStore(await ctx.store(), options);
    if (await ctx.printJson(result)) return result.ok ? 0 : 1;
    let text = "";
    for (const p of result.problems) {
      const images = imagesOf([p]);
      text += `${p.kind}: ${p.message}${
        images.length ? ` (${images.join(", ")})` : ""
      }\n`;
    }
    text += `Checked ${result.blobs} blob(s), ${formatBytes(result.bytes)}: ${
      result.ok ? "no problems" : `${result.problems.length} problem(s)`
    }\n`;
    const corrupt = result.problems.filter((p) => p.kind === "corrupt");
    const images = imagesOf(corrupt);
    const again = images.length > 0
      ? `pull or build ${images.join(", ")} again`
      : "pull or build the images again";
    if (result.repaired.length > 0) {
      text += `Removed ${result.repaired.length} corrupt blob(s): ${again}\n`;
    } else if (corrupt.length > 0 && !options.repair) {
      text += `Run ironcore-image verify --repair, then ${again}\n`;
    }
    await ctx.out(text);
    return result.ok ? 0 : 1;
  },
};
