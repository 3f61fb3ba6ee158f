import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { createBootHandler } from "../../src/serve/boot_handler.ts";
import { Store } from "../../src/store/store.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import {
  collect,
  type Collected,
  listeningAt,
  reap,
  spawnServe,
} from "../_helpers/serve.ts";
import { startSilentServer } from "../_helpers/silent_server.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { waitFor, withDeadline } from "../reliability/_common.ts";

/** A `serve` child, killed when the test is done with it. */
interface Serving extends AsyncDisposable {
  child: Deno.ChildProcess;
  stderr: Collected;
  base: string;
  /** Waits (a bounded time) for the child to exit; its code. */
  exit(): Promise<number>;
}

async function serve(dir: string, grace: string): Promise<Serving> {
  const child = spawnServe(dir, ["--shutdown-grace", grace]);
  const stderr = collect(child.stderr);
  const stdout = collect(child.stdout);
  return {
    child,
    stderr,
    base: await listeningAt(stderr),
    exit: async () =>
      (await withDeadline("serve to stop", () => child.status, 20_000)).code,
    [Symbol.asyncDispose]: () => reap(child, stderr, stdout),
  };
}

/**
 * Asks `serve` for a kernel of an image in a registry that never answers,
 * then goes away: a request that waits on the registry with nobody left to
 * answer.
 */
async function abandonedRequest(
  base: string,
  registry: { host: string; connections: number },
): Promise<void> {
  const client = new AbortController();
  const res = fetch(
    `${base}/v1/images/${encodeURIComponent(`${registry.host}/x/y:1`)}/kernel`,
    { signal: client.signal },
  ).catch(() => undefined);
  await waitFor(() => registry.connections > 0, "serve to ask the registry");
  client.abort();
  await res;
}

Deno.test("serve stops on SIGTERM while a request waits on a registry that never answers", async () => {
  await using silent = startSilentServer();
  await withTempDir(async (dir) => {
    await using server = await serve(dir, "1s");
    await abandonedRequest(server.base, silent);
    server.child.kill("SIGTERM");
    assert.equal(await server.exit(), 0, server.stderr.text());
    assert.match(
      server.stderr.text(),
      /\nStopping: waiting for 1 response \(Ctrl-C again to stop now\)\nStopping now: 1 response cut off after 1 s\n(.*\n)*Stopped\n$/,
    );
  });
});

Deno.test("serve stops at once on a second signal", async (t) => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    await t.step(`${signal} twice exits ${code}`, async () => {
      await using silent = startSilentServer();
      await withTempDir(async (dir) => {
        // A grace period no test waits for: only the second signal ends it.
        await using server = await serve(dir, "1h");
        await abandonedRequest(server.base, silent);
        server.child.kill(signal);
        await waitFor(
          () => server.stderr.text().includes("Ctrl-C again to stop now"),
          "the stopping line",
        );
        server.child.kill(signal);
        assert.equal(await server.exit(), code, server.stderr.text());
        assert.match(
          server.stderr.text(),
          /Stopping now: 1 response cut off\n/,
        );
      });
    });
  }
});

Deno.test("serve stops after its grace period while a slow client downloads", async () => {
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(1000),
      rootfs: randomBytes(64 * 1024 * 1024),
    });
    const store = await Store.open(`${dir}/cache`);
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: files.vmlinuz, rootfs: files.rootfs },
    }], { tag: "slow/os:1" });
    await using server = await serve(dir, "1s");
    const base = new URL(server.base);
    // A client that asks for the root file system and reads a little of it
    // now and then.
    using conn = await Deno.connect({
      hostname: base.hostname,
      port: Number(base.port),
    });
    await conn.write(
      new TextEncoder().encode(
        `GET /v1/images/${
          encodeURIComponent("slow/os:1")
        }/rootfs HTTP/1.1\r\nhost: ${base.host}\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(64 * 1024);
    assert.ok(await conn.read(buf));
    const reading = (async () => {
      try {
        while (await conn.read(buf) !== null) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } catch {
        // Closed by the server.
      }
    })();
    server.child.kill("SIGINT");
    assert.equal(await server.exit(), 0, server.stderr.text());
    assert.match(
      server.stderr.text(),
      /Stopping: waiting for 1 response \(Ctrl-C again to stop now\)\nStopping now: 1 response cut off after 1 s\n/,
    );
    await reading;
  });
});

Deno.test("serve stops without waiting for the grace period when nothing is in flight", async () => {
  await withTempDir(async (dir) => {
    await using server = await serve(dir, "1h");
    const res = await fetch(`${server.base}/healthz`);
    assert.equal(await res.text(), "ok\n");
    server.child.kill("SIGTERM");
    assert.equal(await server.exit(), 0, server.stderr.text());
    assert.doesNotMatch(server.stderr.text(), /Stopping/);
    assert.match(server.stderr.text(), /Stopped\n$/);
  });
});

Deno.test("createBootHandler() drains: new requests get 503, close() ends the ones that wait", async () => {
  await using silent = startSilentServer();
  const handler = createBootHandler({
    client: new RegistryClient({ plainHttp: true }),
  });
  const waiting = handler(
    new Request(
      `http://boot/v1/images/${
        encodeURIComponent(`${silent.host}/x/y:1`)
      }/kernel`,
    ),
  );
  await waitFor(() => silent.connections > 0, "the registry request");
  assert.equal(handler.inFlight, 1);
  let drained = false;
  const drain = handler.drain().then(() => drained = true);
  const late = await handler(new Request("http://boot/healthz"));
  assert.equal(late.status, 503);
  assert.equal(await late.text(), "The server is shutting down\n");
  assert.equal(drained, false);
  await handler.close();
  assert.equal((await waiting).status, 503);
  await drain;
  assert.equal(handler.inFlight, 0);
});
