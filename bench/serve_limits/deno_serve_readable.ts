/**
 * `Deno.serve` answering every request with the file's own stream: the
 * runtime reads it in 64 KiB pieces on its blocking thread pool and sends it
 * without JavaScript.
 *
 * Usage: deno run -A deno_serve_readable.ts PORT FILE
 *
 * @module
 */

const [port, path] = Deno.args;
Deno.serve(
  { port: Number(port), hostname: "127.0.0.1", onListen() {} },
  async () => {
    const file = await Deno.open(path!);
    const { size } = await file.stat();
    return new Response(file.readable, {
      headers: { "content-length": String(size) },
    });
  },
);
