/** The command table. */

import type { Command } from "../_command.ts";
import { buildCommand } from "./build.ts";
import { completionCommand } from "./completion.ts";
import { copyCommand } from "./copy.ts";
import { deleteCommand } from "./delete.ts";
import { exportCommand } from "./export.ts";
import { extractCommand } from "./extract.ts";
import { importCommand } from "./import.ts";
import { inspectCommand } from "./inspect.ts";
import { listCommand } from "./list.ts";
import { loginCommand } from "./login.ts";
import { logoutCommand } from "./logout.ts";
import { pullCommand } from "./pull.ts";
import { pushCommand } from "./push.ts";
import { pruneCommand } from "./prune.ts";
import { serveCommand } from "./serve.ts";
import { tagCommand } from "./tag.ts";
import { urlCommand } from "./url.ts";
import { verifyCommand } from "./verify.ts";
import { validateCommand } from "./validate.ts";

/** Every command, in help order. */
export const COMMANDS: readonly Command[] = [
  buildCommand,
  tagCommand,
  listCommand,
  inspectCommand,
  deleteCommand,
  pushCommand,
  pullCommand,
  copyCommand,
  loginCommand,
  logoutCommand,
  urlCommand,
  serveCommand,
  verifyCommand,
  pruneCommand,
  extractCommand,
  exportCommand,
  importCommand,
  validateCommand,
  completionCommand,
];
