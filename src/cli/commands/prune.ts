import { DEFAULT_PRUNE_GRACE, pruneStore } from "../../store/prune_store.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { formatBytes } from "../_output.ts";

/** Parses `90s`, `10m`, `2h`, `0`. */
function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `Invalid duration "${text}": use a number with s, m, h or d, e.g. 10m`,
    );
  }
  const unit = {
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

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
    {
      name: "json",
      type: "boolean",
      help:
        "Print JSON: {blobs: [{digest, size}], temp: [{path, size}], freed, recent}",
    },
  ],
  positionals: { min: 0, max: 0, names: "no arguments" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const grace = ctx.string("grace");
    const dryRun = ctx.bool("dry-run");
    const result = await pruneStore(await ctx.store(), {
      dryRun,
      grace: grace === undefined ? DEFAULT_PRUNE_GRACE : parseDuration(grace),
    });
    if (ctx.bool("json")) {
      await ctx.out(JSON.stringify({ dryRun, ...result }, null, 2) + "\n");
      return 0;
    }
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
