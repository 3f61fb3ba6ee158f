import {
  validateImage,
  type ValidationReport,
} from "../../image/validate_image.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { registryClient } from "./_registry.ts";
import { familiar, inCliWords } from "../_output.ts";

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `validate`: check an image against the IronCore spec. */
export const validateCommand: Command = {
  name: "validate",
  summary: "Check an image against the IronCore image spec",
  usage: "validate REF [--remote] [--json]",
  examples: [
    "ironcore-image validate my-os:1.0",
    "ironcore-image validate ghcr.io/org/os:1.0 --remote --json",
  ],
  flags: [
    {
      name: "remote",
      type: "boolean",
      help: "Check the image in its registry instead of the local store",
    },
    jsonFlag('Print {"reference", "ok", "findings"} as JSON'),
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const reference = ctx.args.positionals[0]!;
    const source = ctx.bool("remote") ? registryClient(ctx) : await ctx.store();
    const report: ValidationReport = await validateImage(source, reference, {
      signal: ctx.io.signal,
    });
    const ok = report.ok;
    // Findings name the fix: in the CLI's words, its flags.
    const findings = report.findings.map((f) => ({
      ...f,
      message: inCliWords(f.message),
    }));
    if (await ctx.printJson({ reference: report.reference, ok, findings })) {
      return ok ? 0 : 1;
    }
    let text = "";
    for (const f of findings) {
      text += `${f.level}: ${f.path}: ${f.message}\n`;
    }
    const errors = findings.filter((f) => f.level === "error").length;
    const warnings = findings.length - errors;
    const name = familiar(report.reference);
    text += report.ok
      ? `${name} is a valid IronCore image${
        warnings ? ` (${count(warnings, "warning")})` : ""
      }\n`
      : `${name} is not a valid IronCore image: ${count(errors, "error")}, ${
        count(warnings, "warning")
      }\n`;
    await ctx.out(text);
    return report.ok ? 0 : 1;
  },
};
