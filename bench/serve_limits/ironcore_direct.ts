/**
 * The boot handler on the CLI's direct HTTP/1.1 server.
 *
 * Usage: deno run -A ironcore_direct.ts PORT FILE
 *
 * @module
 */

import { serveHttp1 } from "../../src/serve/_serve_http1.ts";
import { layerHandler } from "./_boot.ts";

const [port, path] = Deno.args;
serveHttp1(
  { hostname: "127.0.0.1", port: Number(port) },
  await layerHandler(path!),
);
