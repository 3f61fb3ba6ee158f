/**
 * A bare TCP listener writing one HTTP/1.1 response from reads into one
 * reused buffer: the runtime's floor (two copies per byte: file to buffer,
 * buffer to socket), not a server (it ignores the request). `KIB` sets the
 * buffer (default 1024); `sync` reads with `readSync` on the main thread
 * instead of the blocking pool.
 *
 * Usage: deno run -A raw_tcp.ts PORT FILE [KIB] [sync]
 *
 * @module
 */

const [port, path, kib, mode] = Deno.args;
const size = (await Deno.stat(path!)).size;
const head = new TextEncoder().encode(
  `HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`,
);

async function answer(conn: Deno.Conn): Promise<void> {
  await conn.read(new Uint8Array(8192));
  await conn.write(head);
  using file = await Deno.open(path!);
  const buf = new Uint8Array(Number(kib ?? 1024) * 1024);
  for (;;) {
    const n = mode === "sync" ? file.readSync(buf) : await file.read(buf);
    if (n === null) break;
    for (let off = 0; off < n;) off += await conn.write(buf.subarray(off, n));
  }
  conn.close();
}

const listener = Deno.listen({ port: Number(port), hostname: "127.0.0.1" });
for await (const conn of listener) answer(conn).catch(() => {});
