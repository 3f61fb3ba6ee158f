/**
 * The boot handler under `Deno.serve`.
 *
 * Usage: deno run -A ironcore_deno.ts PORT FILE
 *
 * @module
 */

import { layerHandler } from "./_boot.ts";

const [port, path] = Deno.args;
Deno.serve(
  { hostname: "127.0.0.1", port: Number(port), onListen() {} },
  await layerHandler(path!),
);
