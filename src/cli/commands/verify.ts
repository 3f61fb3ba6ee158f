import type { VerifyStoreOptions } from "../../store/verify_store.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { formatBytes } from "../_output.ts";

/** `verify`: re-hash and cross-check the store. */
export const verifyCommand: Command = {
  name: "verify",
  summary:
    "Check that every blob matches its digest and every image is complete",
  usage: "verify [REF] [--json]",
  examples: ["ironcore-image verify", "ironcore-image verify my-os:1.0"],
  flags: [
    jsonFlag(
      "Print JSON: {ok, blobs, bytes, problems: [{kind, digest, message}]}",
    ),
  ],
  positionals: { min: 0, max: 1, names: "at most one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const options: VerifyStoreOptions = {};
    const ref = ctx.args.positionals[0];
    if (ref !== undefined) options.reference = ref;
    if (ctx.io.signal) options.signal = ctx.io.signal;
    const { verifyStore } = await import("../../store/verify_store.ts");
    const result = await verifyStore(await ctx.store(), options);
    if (!(await ctx.printJson(result))) {
      for (const p of result.problems) {
        await ctx.out(`${p.kind}: ${p.message}\n`);
      }
      await ctx.out(
        `Checked ${result.blobs} blob(s), ${formatBytes(result.bytes)}: ${
          result.ok ? "no problems" : `${result.problems.length} problem(s)`
        }\n`,
      );
    }
    return result.ok ? 0 : 1;
  },
};
