import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { completionScript, isShell, SHELLS } from "../_completion.ts";

/** `completion`: a shell completion script. */
export const completionCommand: Command = {
  name: "completion",
  summary: "Print a shell completion script for bash, zsh, fish or powershell",
  usage: "completion bash|zsh|fish|powershell",
  examples: [
    "source <(ironcore-image completion bash)",
    "source <(ironcore-image completion zsh)",
    "ironcore-image completion fish | source",
    "ironcore-image completion powershell | Out-String | Invoke-Expression",
  ],
  flags: [],
  positionals: { min: 1, max: 1, names: `one SHELL (${SHELLS.join(", ")})` },
  complete: SHELLS,
  async run(ctx) {
    checkPositionals(this, ctx);
    const shell = ctx.args.positionals[0]!;
    if (!isShell(shell)) {
      throw new UsageError(
        `Unknown shell "${shell}": use one of ${SHELLS.join(", ")}`,
      );
    }
    await ctx.out(completionScript(shell, {
      program: "ironcore-image",
      commands: ctx.commands,
      globalFlags: ctx.globalFlags,
    }));
    return 0;
  },
};
