import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import {
  type Http1Handler,
  type Http1Options,
  type Http1Server,
  serveHttp1,
} from "../../src/serve/_serve_http1.ts";
import { randomBytes } from "../_helpers/fixtures.ts";

function start(
  handler: Http1Handler,
  options: Partial<Http1Options> = {},
): Http1Server {
  return serveHttp1({ hostname: "127.0.0.1", port: 0, ...options }, handler);
}

/** A byte stream over bytes held in memory, as a file's stream would be. */
function byteStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const view = controller.byobRequest!.view!;
      const n = Math.min(view.byteLength, bytes.byteLength - offset);
      if (n === 0) {
        controller.close();
        controller.byobRequest!.respond(0);
        return;
      }
      new Uint8Array(view.buffer, view.byteOffset, n).set(
        bytes.subarray(offset, offset + n),
      );
      offset += n;
      controller.byobRequest!.respond(n);
    },
  });
}

/** Sends raw bytes on a new connection and reads until the server closes it. */
async function exchange(
  server: Http1Server,
  request: string | Uint8Array,
): Promise<string> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    await conn.write(
      typeof request === "string" ? new TextEncoder().encode(request) : request,
    );
    // The server reads the end of the requests as the client leaving.
    await conn.closeWrite();
    return await new Response(conn.readable).text();
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by reading to the end.
    }
  }
}

Deno.test("serveHttp1() reads a byte stream body into its own buffers", async () => {
  const bytes = randomBytes(5 * 1024 * 1024 + 3);
  await using server = start(() =>
    new Response(byteStream(bytes), {
      headers: { "content-length": String(bytes.byteLength) },
    })
  );
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-length"), String(bytes.byteLength));
  const got = new Uint8Array(await res.arrayBuffer());
  assert.equal(digestOf(got), digestOf(bytes));
  assert.equal(server.stats.pooledBytes, bytes.byteLength);
  assert.equal(server.stats.chunkBytes, 0);
});

Deno.test("serveHttp1() gives each body a smaller buffer when many are sent at once", async () => {
  const sizes: number[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  await using server = start(() =>
    new Response(
      new ReadableStream({
        type: "bytes",
        async pull(controller) {
          const request = controller.byobRequest!;
          sizes.push(request.view!.byteLength);
          await gate;
          new Uint8Array(request.view!.buffer, request.view!.byteOffset, 1)
            .set([7]);
          request.respond(1);
          controller.close();
        },
      }),
      { headers: { "content-length": "1" } },
    )
  );
  const clients = 80;
  const all = Promise.all(
    Array.from(
      { length: clients },
      () =>
        fetch(`http://127.0.0.1:${server.addr.port}/`).then((r) => r.bytes()),
    ),
  );
  while (sizes.length < clients) await new Promise((r) => setTimeout(r, 10));
  open();
  for (const bytes of await all) assert.deepEqual([...bytes], [7]);
  // 1 MiB each for the first 32, then half as much each time their number
  // doubles.
  const mib = 1024 * 1024;
  assert.deepEqual([...new Set(sizes)], [mib, mib / 2, mib / 4]);
  assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a));
});

Deno.test("serveHttp1() sends a file's own stream and other streams", async () => {
  const bytes = randomBytes(3 * 1024 * 1024);
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, bytes);
    await using server = start(async (req) => {
      if (new URL(req.url).pathname === "/file") {
        const file = await Deno.open(path);
        return new Response(file.readable, {
          headers: { "content-length": String(bytes.byteLength) },
        });
      }
      return new Response(new Blob([bytes]).stream(), {
        headers: { "content-length": String(bytes.byteLength) },
      });
    });
    const base = `http://127.0.0.1:${server.addr.port}`;
    for (const path of ["/file", "/blob"]) {
      const got = new Uint8Array(
        await (await fetch(base + path)).arrayBuffer(),
      );
      assert.equal(digestOf(got), digestOf(bytes), path);
    }
    assert.equal(
      server.stats.pooledBytes + server.stats.chunkBytes,
      2 * bytes.byteLength,
    );
    assert.ok(server.stats.pooledBytes >= bytes.byteLength);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("serveHttp1() answers pipelined requests in order on one connection", async () => {
  await using server = start((req) => {
    const url = new URL(req.url);
    const text = `${req.method} ${url.pathname} ${url.host}\n`;
    return new Response(text, {
      headers: { "content-length": String(text.length) },
    });
  });
  const text = await exchange(
    server,
    "GET /a HTTP/1.1\r\nHost: boot.example\r\n\r\n" +
      "\r\nGET /b HTTP/1.1\r\nHost: boot.example:8080\r\n\r\n" +
      "HEAD /c HTTP/1.1\nHost: x\n\n" +
      "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const parts = text.split("HTTP/1.1 200 OK\r\n");
  assert.equal(parts.length, 5, text);
  assert.match(parts[1]!, /content-length: 20\r\n/);
  assert.match(parts[1]!, /connection: keep-alive\r\n/);
  assert.match(parts[1]!, /\r\n\r\nGET \/a boot\.example\n$/);
  assert.match(parts[2]!, /\r\n\r\nGET \/b boot\.example:8080\n$/);
  // HEAD keeps the length of the body it does not send.
  assert.match(parts[3]!, /content-length: 10\r\n/);
  assert.match(parts[3]!, /\r\n\r\n$/);
  assert.match(parts[4]!, /connection: close\r\n/);
  assert.match(parts[4]!, /\r\n\r\nGET \/d x\n$/);
  assert.equal(server.stats.requests, 4);
});

Deno.test("serveHttp1() closes after HTTP/1.0 and after a request with a body", async () => {
  await using server = start(() => new Response("ok\n"));
  for (
    const request of [
      "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
  ) {
    const text = await exchange(server, request);
    assert.equal(text.split("HTTP/1.1 ").length, 2, text);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /connection: close\r\n/);
  }
});

Deno.test("serveHttp1() sends bodies without a length with one or chunked", async () => {
  const big = randomBytes(200_000);
  await using server = start((req) =>
    new URL(req.url).pathname === "/big"
      ? new Response(new Blob([big]).stream())
      : new Response("small\n")
  );
  const small = await exchange(
    server,
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(small, /content-length: 6\r\n/);
  const chunked = await exchange(
    server,
    "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(chunked, /transfer-encoding: chunked\r\n/);
  assert.doesNotMatch(chunked, /content-length/);
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/big`);
  assert.equal(
    digestOf(new Uint8Array(await res.arrayBuffer())),
    digestOf(big),
  );
});

Deno.test("serveHttp1() cuts the connection when a body fails or ends short", async () => {
  await using server = start((req) => {
    const path = new URL(req.url).pathname;
    const bytes = randomBytes(300_000);
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulls++ === 0) controller.enqueue(bytes.subarray(0, 100_000));
        else if (path === "/short") controller.close();
        else controller.error(new Error("the disk broke"));
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-length": String(bytes.byteLength) },
    });
  });
  for (const path of ["/short", "/error"]) {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}${path}`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer(), path);
  }
  // A chunked body that fails never gets its last chunk.
  await using chunked = start(() => {
    let pulls = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulls++ === 0) controller.enqueue(randomBytes(100_000));
          else controller.error(new Error("the disk broke"));
        },
      }, { highWaterMark: 0 }),
    );
  });
  const text = await exchange(
    chunked,
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.match(text, /transfer-encoding: chunked/);
  assert.doesNotMatch(text, /\r\n0\r\n\r\n$/);
});

Deno.test("serveHttp1() refuses malformed requests and closes", async (t) => {
  await using server = start(() => new Response("ok\n"));
  const cases: [string, string, RegExp][] = [
    ["a garbled request line", "GET\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["HTTP/2", "GET / HTTP/2.0\r\n\r\n", /^HTTP\/1\.1 505 /],
    [
      "a folded header",
      "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    [
      "a header without a colon",
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    [
      "a malformed Host",
      "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    [
      "two Hosts",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    ["a bad target", "GET ftp://x/ HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /],
    [
      "two Content-Lengths",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    [
      "CONNECT",
      "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
      /^HTTP\/1\.1 405 /,
    ],
    [
      "a head of 17 KiB",
      `GET / HTTP/1.1\r\nX: ${"a".repeat(17 * 1024)}\r\n\r\n`,
      /^HTTP\/1\.1 431 /,
    ],
    [
      "a head of 12 KiB",
      `GET / HTTP/1.1\r\nConnection: close\r\nX: ${
        "a".repeat(12 * 1024)
      }\r\n\r\n`,
      /^HTTP\/1\.1 200 /,
    ],
  ];
  for (const [name, request, status] of cases) {
    await t.step(name, async () => {
      const text = await exchange(server, request);
      assert.match(text, status);
      assert.match(text, /connection: close\r\n/);
    });
  }
  await t.step("no request line at all", async () => {
    assert.equal(await exchange(server, ""), "");
  });
});

Deno.test("serveHttp1() cancels the body of a client that leaves", async () => {
  let cancelled: (reason: unknown) => void;
  const gone = new Promise<unknown>((resolve) => cancelled = resolve);
  await using server = start(() =>
    new Response(
      new ReadableStream({
        type: "bytes",
        pull(controller) {
          const view = controller.byobRequest!.view!;
          controller.byobRequest!.respond(view.byteLength);
        },
        cancel: (reason) => cancelled(reason),
      }),
      { headers: { "content-length": String(2 ** 40) } },
    )
  );
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  assert.ok(await gone);
});

Deno.test("serveHttp1() drops connections that idle or stop reading", async () => {
  await using server = start(
    () =>
      new Response(
        new ReadableStream({
          type: "bytes",
          pull(controller) {
            controller.byobRequest!.respond(
              controller.byobRequest!.view!.byteLength,
            );
          },
        }),
        { headers: { "content-length": String(2 ** 40) } },
      ),
    { headerTimeout: 100, sendTimeout: 100 },
  );
  const idle = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  // The server closes a connection that sends no request.
  assert.equal(await idle.read(new Uint8Array(1)), null);
  idle.close();
  const stuck = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await stuck.write(
    new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  // Never read: the server's writes fill the socket buffers and wait.
  let seen = -1;
  while (server.stats.pooledBytes !== seen) {
    seen = server.stats.pooledBytes;
    await new Promise((r) => setTimeout(r, 150));
  }
  await new Promise((r) => setTimeout(r, 300));
  // Dropped: what the socket buffers hold, then the end.
  let received = 0;
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await stuck.read(buf).catch(() => null);
    if (n === null) break;
    received += n;
    assert.ok(received < 256 * 1024 * 1024, "the server kept sending");
  }
  stuck.close();
  assert.ok(server.stats.pooledBytes > 0);
});

Deno.test("serveHttp1() shutdown() lets a response in flight finish and closes idle connections", async () => {
  const bytes = randomBytes(4 * 1024 * 1024);
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  let entered!: () => void;
  const inHandler = new Promise<void>((resolve) => entered = resolve);
  const server = start(async () => {
    entered();
    await held;
    return new Response(byteStream(bytes), {
      headers: { "content-length": String(bytes.byteLength) },
    });
  });
  const idle = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const pending = fetch(`http://127.0.0.1:${server.addr.port}/`);
  await inHandler;
  const stopped = server.shutdown();
  assert.equal(await idle.read(new Uint8Array(1)), null);
  idle.close();
  release();
  const res = await pending;
  assert.equal(res.headers.get("connection"), "close");
  const got = new Uint8Array(await res.arrayBuffer());
  assert.equal(digestOf(got), digestOf(bytes));
  await stopped;
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
  );
});

Deno.test("serveHttp1() closes every connection at once when its signal aborts, a body waiting for its source too", async () => {
  const closing = new AbortController();
  let cancelled = false;
  let entered!: () => void;
  const inHandler = new Promise<void>((resolve) => entered = resolve);
  const server = serveHttp1(
    { hostname: "127.0.0.1", port: 0, signal: closing.signal },
    () => {
      entered();
      return new Response(
        new ReadableStream({
          type: "bytes",
          // Never answers: a download that stalls.
          pull: () => new Promise(() => {}),
          cancel: () => {
            cancelled = true;
          },
        }),
        { headers: { "content-length": "10" } },
      );
    },
  );
  const pending = fetch(`http://127.0.0.1:${server.addr.port}/`);
  await inHandler;
  closing.abort();
  await assert.rejects(pending.then((res) => res.arrayBuffer()));
  await server.finished;
  assert.ok(cancelled);
});

Deno.test("serveHttp1() refuses a request framed by both Transfer-Encoding and Content-Length", async () => {
  let answered = 0;
  await using server = start(() => {
    answered++;
    return new Response("ok\n");
  });
  const text = await exchange(
    server,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /connection: close\r\n/);
  assert.equal(text.split("HTTP/1.1 ").length, 2, text);
  assert.equal(answered, 0);
});

Deno.test("serveHttp1() refuses a request line without a version at once", async () => {
  await using server = start(() => new Response("ok\n"));
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  // An HTTP/0.9 client sends one line and waits: it is never sent a blank
  // line to end a head, so only an answer to the line itself reaches it.
  await conn.write(new TextEncoder().encode("GET /\r\n"));
  const text = await new Response(conn.readable).text();
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /connection: close\r\n/);
});

Deno.test("serveHttp1() sends an HTTP/1.0 client a large body without chunks, then closes", async () => {
  const big = randomBytes(200_000);
  await using server = start(() => new Response(new Blob([big]).stream()));
  for (const extra of ["", "Connection: keep-alive\r\n"]) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    await conn.write(
      new TextEncoder().encode(`GET / HTTP/1.0\r\n${extra}\r\n`),
    );
    // Read to the end without closing our side: the server must end it.
    const got = new Uint8Array(await new Response(conn.readable).arrayBuffer());
    const split = got.findIndex((_, i) =>
      got[i] === 13 && got[i + 1] === 10 && got[i + 2] === 13 &&
      got[i + 3] === 10
    );
    const head = new TextDecoder().decode(got.subarray(0, split));
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.match(head, /connection: close/);
    assert.equal(digestOf(got.subarray(split + 4)), digestOf(big));
  }
});

Deno.test("serveHttp1() sends no body to a HEAD request however the method is spelled", async () => {
  await using server = start((req) =>
    new Response(`${req.method}\n`, {
      headers: { "content-length": String(req.method.length + 1) },
    })
  );
  const text = await exchange(
    server,
    "head / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const parts = text.split("HTTP/1.1 200 OK\r\n");
  assert.equal(parts.length, 3, text);
  assert.match(parts[1]!, /content-length: 5\r\n/);
  assert.match(parts[1]!, /\r\n\r\n$/);
  assert.match(parts[2]!, /\r\n\r\nGET\n$/);
});

Deno.test("serveHttp1() keeps accepting when clients that say nothing take every file descriptor", async () => {
  // A server of its own, in a process that may open 64 files.
  const dir = await Deno.makeTempDir();
  const script = `${dir}/server.ts`;
  await Deno.writeTextFile(
    script,
    `import { serveHttp1 } from ${
      JSON.stringify(
        new URL("../../src/serve/_serve_http1.ts", import.meta.url).href,
      )
    };
// As the CLI does: the runtime sets up signals before files run out.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
const server = serveHttp1({ hostname: "127.0.0.1", port: 0 }, () => new Response("ok\\n"));
console.log(server.addr.port);
await server.finished;
`,
  );
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'ulimit -n 64 && exec "$0" run -A --no-lock "$1"',
      Deno.execPath(),
      script,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const silent: Deno.TcpConn[] = [];
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const port = Number((await reader.read()).value);
    reader.releaseLock();
    for (let i = 0; i < 100; i++) {
      silent.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "ok\n");
  } finally {
    for (const conn of silent) conn.close();
    child.kill();
    await child.stdout.cancel().catch(() => {});
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveHttp1() aborts the signal of a request whose connection closes before it is answered", async () => {
  let seen: Request | undefined;
  let entered!: () => void;
  const inHandler = new Promise<void>((resolve) => entered = resolve);
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  const server = start(async (req) => {
    seen = req;
    entered();
    await held;
    return new Response("late\n");
  });
  const pending = fetch(`http://127.0.0.1:${server.addr.port}/`);
  await inHandler;
  assert.equal(seen!.signal.aborted, false);
  server.close();
  assert.equal(seen!.signal.aborted, true);
  release();
  await assert.rejects(pending);
  await server.finished;
});
