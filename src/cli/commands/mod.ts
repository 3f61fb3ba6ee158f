/** The command table. */

import type { Command } from "../_command.ts";
import { buildCommand } from "./build.ts";
import { deleteCommand } from "./delete.ts";
import { inspectCommand } from "./inspect.ts";
import { listCommand } from "./list.ts";
import { pullCommand } from "./pull.ts";
import { pushCommand } from "./push.ts";
import { tagCommand } from "./tag.ts";
import { urlCommand } from "./url.ts";

/** Every command, in help order. */
export const COMMANDS: readonly Command[] = [
  buildCommand,
  tagCommand,
  listCommand,
  inspectCommand,
  deleteCommand,
  pushCommand,
  pullCommand,
  urlCommand,
];
