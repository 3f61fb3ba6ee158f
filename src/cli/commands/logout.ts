import { NotFoundError } from "../../errors.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { loadDockerConfig, registryArgument } from "./login.ts";

/** `logout`: remove stored credentials for a registry. */
export const logoutCommand: Command = {
  name: "logout",
  summary: "Log out of a registry: remove its stored credentials",
  usage: "logout REGISTRY",
  examples: ["ironcore-image logout registry.example.com"],
  flags: [],
  positionals: { min: 1, max: 1, names: "one REGISTRY" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const registry = registryArgument(ctx.args.positionals[0]!);
    const config = await loadDockerConfig(ctx);
    if (!(await config.erase(registry))) {
      throw new NotFoundError(
        `Not logged in to ${registry}: ${config.path} holds no credentials for it`,
      );
    }
    await ctx.out(`Removed credentials for ${registry}\n`);
    return 0;
  },
};
