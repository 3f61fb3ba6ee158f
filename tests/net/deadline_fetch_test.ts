import assert from "node:assert/strict";
import { NetworkError, StallError } from "../../src/errors.ts";
import { deadlineFetch, ownedChunks } from "../../src/net/deadline_fetch.ts";

const TIMEOUTS = { response: 200, stall: 200 };

/**
 * A server whose answer to `/body?size=N&stall=M` is N bytes that stop
 * after M, and whose answer to `/hang` never comes.
 */
function startServer(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/hang") {
        return new Promise<Response>((resolve) =>
          req.signal.addEventListener("abort", () => resolve(new Response()))
        );
      }
      const size = Number(url.searchParams.get("size"));
      const stall = Number(url.searchParams.get("stall") ?? Infinity);
      let sent = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (sent >= stall) {
              await new Promise<void>((resolve) =>
                req.signal.addEventListener("abort", () => resolve())
              );
              return controller.close();
            }
            if (sent >= size) return controller.close();
            const n = Math.min(64 * 1024, size - sent);
            controller.enqueue(new Uint8Array(n).fill(sent % 251));
            sent += n;
          },
        }),
      );
    },
  );
}

Deno.test("deadlineFetch() gives up on an answer that does not come", async () => {
  await using server = startServer();
  const host = `127.0.0.1:${server.addr.port}`;
  await assert.rejects(
    deadlineFetch(fetch, `http://${host}/hang`, {}, {
      host,
      timeouts: TIMEOUTS,
    }),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError && !(e instanceof StallError));
      assert.equal(e.kind, "timeout");
      assert.equal(
        e.message,
        `Registry ${host} did not answer GET /hang within 0.2 s`,
      );
      return true;
    },
  );
});

Deno.test("deadlineFetch() gives up on a body that stops, and only then", async (t) => {
  await using server = startServer();
  const host = `127.0.0.1:${server.addr.port}`;
  const get = (query: string) =>
    deadlineFetch(fetch, `http://${host}/body?${query}`, {}, {
      host,
      timeouts: TIMEOUTS,
    });

  await t.step("a body that stops midway is a stall", async () => {
    const res = await get(`size=${1024 * 1024}&stall=${256 * 1024}`);
    await assert.rejects(res.arrayBuffer(), (e: unknown) => {
      assert.ok(e instanceof StallError, String(e));
      assert.equal(e.timeout, 200);
      assert.equal(
        e.message,
        `Registry ${host} sent no data for 0.2 s in the middle of the answer to GET /body`,
      );
      return true;
    });
  });

  await t.step(
    "a reader that takes longer than the stall timeout between reads is no stall",
    async () => {
      const res = await get(`size=${2 * 64 * 1024}`);
      const reader = res.body!.getReader();
      let bytes = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.equal(bytes, 2 * 64 * 1024);
    },
  );

  await t.step("a reader's own buffers are filled (BYOB)", async () => {
    const size = 3 * 1024 * 1024 + 17;
    const res = await get(`size=${size}`);
    const reader = res.body!.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(1024 * 1024);
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read(new Uint8Array(buffer));
      if (value) {
        assert.equal(value.buffer.byteLength, 1024 * 1024);
        bytes += value.byteLength;
        buffer = value.buffer as ArrayBuffer;
      }
      if (done) break;
    }
    assert.equal(bytes, size);
  });
});

Deno.test("deadlineFetch() passes an abort of the caller on as it is", async () => {
  await using server = startServer();
  const host = `127.0.0.1:${server.addr.port}`;
  const controller = new AbortController();
  const reason = new Error("stopped by the caller");
  setTimeout(() => controller.abort(reason), 10);
  await assert.rejects(
    deadlineFetch(fetch, `http://${host}/hang`, {
      signal: controller.signal,
    }, { host, timeouts: { response: 60_000 } }),
    (e: unknown) => e === reason,
  );
});

Deno.test("deadlineFetch() lets go of an owned body's sent chunks only when asked to", async (t) => {
  // The server answers with the SHA-256 of the body it received.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      const hash = await crypto.subtle.digest("SHA-256", body);
      return new Response(new Uint8Array(hash).toHex());
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}/upload`;
  const CHUNKS = 64;
  const SIZE = 64 * 1024;
  /** Fresh chunks of distinct bytes, and the hash of all of them. */
  const chunksAndHash = async () => {
    const chunks = Array.from({ length: CHUNKS }, (_, i) => {
      const c = new Uint8Array(SIZE);
      crypto.getRandomValues(c.subarray(0, 1024));
      c.fill(i, 1024);
      return c;
    });
    const all = new Uint8Array(CHUNKS * SIZE);
    chunks.forEach((c, i) => all.set(c, i * SIZE));
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all))
      .toHex();
    return { chunks, hash };
  };
  const streamOf = (chunks: Uint8Array[]) => {
    let i = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (i < chunks.length) controller.enqueue(chunks[i++]!);
        else controller.close();
      },
    }, { highWaterMark: 0 });
  };
  const send = async (
    doFetch: typeof fetch,
    body: ReadableStream,
    releaseSent: boolean,
  ) => {
    const res = await deadlineFetch(doFetch, url, {
      method: "PUT",
      body,
    }, {
      host: "127.0.0.1",
      timeouts: { response: 10_000, stall: 10_000 },
      releaseSent,
    });
    return await res.text();
  };
  const detached = (chunks: Uint8Array[]) =>
    chunks.filter((c) => (c.buffer as ArrayBuffer).detached).length;

  await t.step(
    "owned, released: every chunk let go, bytes intact",
    async () => {
      const { chunks, hash } = await chunksAndHash();
      assert.equal(
        await send(fetch, ownedChunks(streamOf(chunks)), true),
        hash,
      );
      // Every chunk was let go once the next one (or the end) was asked for.
      assert.equal(detached(chunks), CHUNKS);
    },
  );

  await t.step("not owned: kept", async () => {
    const { chunks, hash } = await chunksAndHash();
    assert.equal(await send(fetch, streamOf(chunks), true), hash);
    assert.equal(detached(chunks), 0);
  });

  await t.step(
    "owned, not asked to release: kept by a fetch that holds the body",
    async () => {
      const { chunks, hash } = await chunksAndHash();
      // A fetch that reads the whole body before it sends anything, as a
      // wrapper that logs request bodies would.
      const gathering: typeof fetch = async (input, init) => {
        const bytes = await new Response(init?.body).arrayBuffer();
        return await fetch(input, { ...init, body: bytes });
      };
      assert.equal(
        await send(gathering, ownedChunks(streamOf(chunks)), false),
        hash,
      );
      assert.equal(detached(chunks), 0);
    },
  );
});
