/**
 * `node:http` under Deno with a hand loop: the file is read into two reused
 * 1 MiB buffers, each written with `res.write` once the other is sent.
 *
 * Usage: deno run -A node_http_loop.ts PORT FILE
 *
 * @module
 */

import http from "node:http";

const [port, path] = Deno.args;
const size = (await Deno.stat(path!)).size;
http.createServer(async (_req, res) => {
  res.writeHead(200, { "content-length": String(size) });
  using file = await Deno.open(path!);
  const buffers = [new Uint8Array(1 << 20), new Uint8Array(1 << 20)];
  let i = 0;
  let next = file.read(buffers[0]!);
  for (;;) {
    const n = await next;
    if (n === null) break;
    const current = buffers[i]!;
    i ^= 1;
    next = file.read(buffers[i]!);
    await new Promise<void>((resolve, reject) =>
      res.write(current.subarray(0, n), (e) => e ? reject(e) : resolve())
    );
  }
  res.end();
}).listen(Number(port), "127.0.0.1");
