/**
 * `node:http` under Deno, piping `fs.createReadStream` in 1 MiB chunks
 * (a fresh buffer per chunk).
 *
 * Usage: deno run -A node_http_pipe.ts PORT FILE
 *
 * @module
 */

import fs from "node:fs";
import http from "node:http";

const [port, path] = Deno.args;
const size = fs.statSync(path!).size;
http.createServer((_req, res) => {
  res.writeHead(200, { "content-length": String(size) });
  fs.createReadStream(path!, { highWaterMark: 1 << 20 }).pipe(res);
}).listen(Number(port), "127.0.0.1");
