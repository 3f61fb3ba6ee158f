import assert from "node:assert/strict";
import { NetworkError, StallError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { fileStream } from "../../src/store/_file_stream.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { runCliProcess } from "../_helpers/cli.ts";
import { startFakeRegistry } from "../_helpers/fake_registry.ts";
import { rawAnswer, startSilentServer } from "../_helpers/silent_server.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { MIB, withDeadline, writeRandomFile } from "./_common.ts";

/** Short deadlines, so that a test waits a fraction of a second per attempt. */
const TIMEOUTS = { response: 200, stall: 200 };

function client(): RegistryClient {
  return new RegistryClient({
    plainHttp: true,
    retries: 1,
    retryDelay: 1,
    timeouts: TIMEOUTS,
  });
}

/** Asserts a request gave up after two attempts, naming host and request. */
function timedOut(host: string, request: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof NetworkError, String(e));
    assert.equal(e.kind, "timeout");
    assert.equal(e.host, host);
    assert.match(e.message, request);
    assert.match(
      e.message,
      new RegExp(
        `^Registry ${host} did not answer .* within 0\\.2 s \\(2 attempts\\): check that the registry is up and reachable, or set timeouts to wait longer$`,
      ),
    );
    return true;
  };
}

Deno.test("every registry request gives up on a registry that never answers", async (t) => {
  await using silent = startSilentServer();
  const repo = { registry: silent.host, repository: "os/demo" };
  const digest = digestOf("blob");
  const c = client();
  const calls: [string, RegExp, () => Promise<unknown>][] = [
    [
      "manifest GET",
      /GET \/v2\/os\/demo\/manifests\/1/,
      () => c.getManifest(repo, "1"),
    ],
    [
      "manifest HEAD",
      /HEAD \/v2\/os\/demo\/manifests\/1/,
      () => c.headManifest(repo, "1"),
    ],
    [
      "manifest PUT",
      /PUT \/v2\/os\/demo\/manifests\/1/,
      () =>
        c.putManifest(repo, {
          tagOrDigest: "1",
          bytes: new TextEncoder().encode("{}"),
          mediaType: "application/vnd.oci.image.manifest.v1+json",
        }),
    ],
    [
      "blob HEAD",
      /HEAD \/v2\/os\/demo\/blobs\/sha256:/,
      () => c.hasBlob(repo, digest),
    ],
    [
      "blob GET",
      /GET \/v2\/os\/demo\/blobs\/sha256:/,
      () => c.getBlob(repo, digest),
    ],
    [
      "blob mount",
      /POST \/v2\/os\/demo\/blobs\/uploads\//,
      () => c.mountBlob(repo, { digest, from: "os/other" }),
    ],
    [
      "upload start",
      /POST \/v2\/os\/demo\/blobs\/uploads\//,
      () =>
        c.uploadBlob(repo, {
          digest,
          size: 4,
          open: () => Promise.resolve(new Blob(["blob"]).stream()),
        }),
    ],
    ["tag list", /GET \/v2\/os\/demo\/tags\/list/, () => c.listTags(repo)],
  ];
  for (const [name, request, call] of calls) {
    await t.step(name, async () => {
      const before = silent.connections;
      await withDeadline(
        name,
        () => assert.rejects(call(), timedOut(silent.host, request)),
        20_000,
      );
      assert.equal(
        silent.connections - before,
        2,
        "one connection per attempt",
      );
    });
  }
});

Deno.test("a token service that never answers is given up on like the registry", async () => {
  await using silent = startSilentServer();
  await using fake = startFakeRegistry(() =>
    new Response(null, {
      status: 401,
      headers: {
        "www-authenticate":
          `Bearer realm="http://${silent.host}/token",service="test"`,
      },
    })
  );
  const repo = { registry: fake.host, repository: "os/demo" };
  await withDeadline("token", () =>
    assert.rejects(
      client().getManifest(repo, "1"),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError, String(e));
        assert.equal(e.kind, "timeout");
        assert.match(
          e.message,
          new RegExp(`^Registry ${silent.host} did not answer GET /token`),
        );
        return true;
      },
    ), 20_000);
});

Deno.test("an upload the registry stops taking is given up on", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/blob`;
    // More than the kernel's socket buffers take in on their own.
    const size = 48 * MIB;
    const digest = await writeRandomFile(path, size);
    // Upload sessions open; their PUT and PATCH requests are never read.
    await using silent = startSilentServer((req) =>
      req.method === "POST"
        ? rawAnswer("202 Accepted", {
          location: `/v2/os/demo/blobs/uploads/${silent.requests.length}`,
        })
        : undefined
    );
    const repo = { registry: silent.host, repository: "os/demo" };
    const open = (offset: number, length?: number) =>
      fileStream(path, { offset, ...(length ? { length } : {}) });
    await withDeadline("upload", () =>
      assert.rejects(
        client().uploadBlob(repo, { digest, size, open }),
        (e: unknown) => {
          assert.ok(e instanceof StallError, String(e));
          assert.match(
            e.message,
            new RegExp(
              `^Registry ${silent.host} took no data for 0\\.2 s in the middle of PATCH /v2/os/demo/blobs/uploads/\\d+: check that`,
            ),
          );
          return true;
        },
      ), 30_000);
    // The single PUT stalled, then the chunks did.
    assert.deepEqual(
      silent.requests.map((r) => r.method).slice(0, 4),
      ["POST", "PUT", "POST", "PATCH"],
    );
  });
});

Deno.test("pull of an image from a registry that never answers fails with one line", async (t) => {
  await using silent = startSilentServer();
  await withTempDir(async (dir) => {
    await t.step("library", async () => {
      const store = await Store.open(`${dir}/lib`);
      await withDeadline("pull", () =>
        assert.rejects(
          pullImage(store, `${silent.host}/x/y:1`, { client: client() }),
          timedOut(silent.host, /GET \/v2\/x\/y\/manifests\/1/),
        ), 20_000);
    });
    await t.step("CLI", async () => {
      const result = await withDeadline("pull", () =>
        runCliProcess([
          "--store-path",
          `${dir}/cli`,
          "pull",
          `${silent.host}/x/y:1`,
          "--timeout",
          "300ms",
          "--retries",
          "1",
        ]), 30_000);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(
        result.stderr,
        `Error: Registry ${silent.host} did not answer GET /v2/x/y/manifests/1 within 0.3 s (2 attempts): check that the registry is up and reachable, or raise --timeout to wait longer\n`,
      );
    });
  });
});
