import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { RegistryError, StallError } from "../../src/errors.ts";
import { encodeJson, OCI_MANIFEST_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { verifyCredentials } from "../../src/registry/login.ts";
import { CONFIG_MEDIA_TYPE } from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { startFakeRegistry } from "../_helpers/fake_registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { withDeadline } from "./_common.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const PAGE = "<!doctype html><html><body><h1>Welcome</h1></body></html>";

/** A web server that answers every request with the same page. */
function startWebServer(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      await req.body?.cancel();
      return new Response(PAGE, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    },
  );
}

function notRegistry(host: string): string {
  return `${host} is not an OCI registry (GET /v2/ answered HTTP 200 with text/html and no Docker-Distribution-API-Version header): check the registry address`;
}

Deno.test("a web server that answers every request with a page is not taken for a registry", async (t) => {
  await using web = startWebServer();
  const host = `127.0.0.1:${web.addr.port}`;
  const client = new RegistryClient({ retryDelay: 1 });
  const isNotRegistry = (e: unknown) => {
    assert.ok(e instanceof RegistryError, String(e));
    assert.equal(e.message, notRegistry(host));
    return true;
  };
  await withTempDir(async (dir) => {
    await t.step("pull", async () => {
      const store = await Store.open(`${dir}/pull`);
      await assert.rejects(
        pullImage(store, `${host}/os/demo:1`, { client }),
        isNotRegistry,
      );
    });
    await t.step("push", async () => {
      await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
      const store = await Store.open(`${dir}/push`);
      await buildImage(store, [{
        arch: "amd64",
        layers: { kernel: `${dir}/vmlinuz` },
      }], { tag: `${host}/os/demo:1` });
      await assert.rejects(
        pushImage(store, `${host}/os/demo:1`, { client }),
        isNotRegistry,
      );
    });
    await t.step("login", async () => {
      await assert.rejects(
        verifyCredentials(host, { username: "ada", password: "pw" }),
        isNotRegistry,
      );
      const config = `${dir}/docker/config.json`;
      const result = await runCliProcess([
        "--store-path",
        `${dir}/cli`,
        "--docker-config-path",
        config,
        "login",
        host,
        "-u",
        "ada",
        "--password-stdin",
      ], { stdin: "pw\n" });
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr, `Error: ${notRegistry(host)}\n`);
      assert.deepEqual(await snapshotStore(`${dir}/docker`), {});
    });
    await t.step("pull on the command line", async () => {
      const result = await runCliProcess([
        "--store-path",
        `${dir}/cli`,
        "pull",
        `${host}/os/demo:1`,
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr, `Error: ${notRegistry(host)}\n`);
    });
  });
});

Deno.test("a registry's HTML error page is reported as its answer, not as a foreign server", async () => {
  // A registry behind a proxy that answers 404 with a page of its own.
  await using fake = startFakeRegistry(() =>
    new Response(PAGE, {
      status: 404,
      headers: { "content-type": "text/html" },
    })
  );
  const client = new RegistryClient({ retryDelay: 1 });
  await assert.rejects(
    client.getManifest({ registry: fake.host, repository: "os/demo" }, "1"),
    (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^Manifest os\/demo:1 not found in /);
      return true;
    },
  );
});

/** A manifest without layers, served by the tests' fake registries. */
const EMPTY_MANIFEST = encodeJson({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST_MEDIA_TYPE,
  config: {
    mediaType: CONFIG_MEDIA_TYPE,
    digest: `sha256:${"0".repeat(64)}`,
    size: 2,
  },
  layers: [],
});

Deno.test("a proxy's error page for a registry that is down is retried, not taken for a foreign server", async () => {
  // Every path, the API root included, answers 502 with a page at first.
  let down = 2;
  await using proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      if (down > 0) {
        down--;
        return new Response(PAGE, {
          status: 502,
          headers: { "content-type": "text/html" },
        });
      }
      return new URL(req.url).pathname.endsWith("/manifests/1")
        ? new Response(EMPTY_MANIFEST.bytes as Bytes, {
          headers: { "content-type": OCI_MANIFEST_MEDIA_TYPE },
        })
        : Response.json({});
    },
  );
  const client = new RegistryClient({ retryDelay: 1 });
  const m = await client.getManifest(
    { registry: `127.0.0.1:${proxy.addr.port}`, repository: "os/demo" },
    "1",
  );
  assert.equal(m.descriptor.digest, EMPTY_MANIFEST.digest);
});

Deno.test("a manifest whose body stalls midway is asked for again, then fails clearly", async (t) => {
  const bytes = EMPTY_MANIFEST.bytes as Bytes;
  /** Attempts whose body stalls after half the manifest. */
  let stalls = 0;
  await using fake = startFakeRegistry((req, n) => {
    if (!req.path.endsWith("/manifests/1")) {
      return new Response(null, { status: 404 });
    }
    const headers = {
      "content-type": OCI_MANIFEST_MEDIA_TYPE,
      "content-length": String(bytes.byteLength),
      "docker-content-digest": EMPTY_MANIFEST.digest,
    };
    if (n >= stalls) return new Response(bytes, { headers });
    let sent = false;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(bytes.slice(0, bytes.byteLength >> 1));
            return;
          }
          // Nothing more until the client gives up.
          await new Promise((resolve) => setTimeout(resolve, 5000));
          c.close();
        },
      }),
      { headers },
    );
  });
  const client = new RegistryClient({
    retries: 1,
    retryDelay: 1,
    timeouts: { response: 200, stall: 200 },
  });
  const repo = { registry: fake.host, repository: "os/demo" };

  await t.step("a stall once is retried", async () => {
    stalls = 1;
    const before = fake.count("GET", "/v2/os/demo/manifests/1");
    const m = await withDeadline(
      "manifest",
      () => client.getManifest(repo, "1"),
      20_000,
    );
    assert.equal(m.descriptor.digest, EMPTY_MANIFEST.digest);
    assert.equal(fake.count("GET", "/v2/os/demo/manifests/1") - before, 2);
  });

  await t.step("stalls on every attempt fail with one line", async () => {
    stalls = Infinity;
    await withDeadline(
      "manifest",
      () =>
        assert.rejects(client.getManifest(repo, "1"), (e: unknown) => {
          assert.ok(e instanceof StallError, String(e));
          assert.equal(
            e.message,
            `Registry ${fake.host} sent no data for 0.2 s in the middle of the answer to GET /v2/os/demo/manifests/1 (2 attempts): check that the registry is up and reachable, or set timeouts to wait longer`,
          );
          return true;
        }),
      20_000,
    );
  });
});
