import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { formatBytes } from "../_output.ts";
import { durationFlag } from "./_flags.ts";

/** `prune`: delete unreferenced blobs and stale temporary files. */
export const pruneCommand: Command = {
  name: "prune",
  summary: "Delete blobs no tag reaches and stale temporary files",
  usage: "prune [--dry-run] [--grace 10m] [--json]",
  examples: [
    "ironcore-image prune --dry-run",
    "ironcore-image prune --grace 0",
  ],
  flags: [
    { name: "dry-run", type: "boolean", help: "Show what would be deleted" },
    {
      name: "grace",
      type: "string",
      value: "DURATION",
      help:
        "Spare anything written or used this recently (a concurrent build may be about to tag it)",
      default: "10m",
    },
    jsonFlag(
      "Print JSON: {blobs: [{digest, size}], temp: [{path, size}], freed, recent}",
    ),
  ],
  positionals: { min: 0, max: 0, names: "no arguments" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const dryRun = ctx.bool("dry-run");
    const { DEFAULT_PRUNE_GRACE, pruneStore } = await import(
      "../../store/prune_store.ts"
    );
    const result = await pruneStore(await ctx.store(), {
      dryRun,
      grace: durationFlag(ctx, "grace", DEFAULT_PRUNE_GRACE),
    });
    if (await ctx.printJson({ dryRun, ...result })) return 0;
    const verb = dryRun ? "Would delete" : "Deleted";
    for (const b of result.blobs) {
      await ctx.out(`${verb} ${b.digest} (${formatBytes(b.size)})\n`);
    }
    for (const t of result.temp) {
      await ctx.out(`${verb} ${t.path} (${formatBytes(t.size)})\n`);
    }
    await ctx.out(
      `${dryRun ? "Would free" : "Freed"} ${formatBytes(result.freed)}` +
        (result.recent
          ? `; kept ${result.recent} recent unreferenced blob(s), use --grace 0 to include them`
          : "") +
        "\n",
    );
    return 0;
  },
};
