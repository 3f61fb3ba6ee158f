import assert from "node:assert/strict";
import { RegistryError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { encodeJson, OCI_MANIFEST_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { verifyCredentials } from "../../src/registry/login.ts";
import { clip } from "../../src/registry/_network.ts";
import { selfSignedCertificate, startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

const LOOPBACK = [
  "localhost",
  "localhost:5000",
  "LOCALHOST:5000",
  "127.0.0.1",
  "127.0.0.1:5000",
  "127.10.20.30:443",
  "[::1]",
  "[::1]:5000",
  "[0:0:0:0:0:0:0:1]:5000",
  "::1",
];
const REMOTE = [
  "docker.io",
  "ghcr.io",
  "registry.example.com:5000",
  "localhost.example.com",
  "mylocalhost:5000",
  "10.0.0.1:5000",
  "128.0.0.1",
  "[::2]:5000",
  "[fe80::1]",
];

/** Asserts a connection failure message: one line, whole words, no CLI flag. */
function assertReadable(e: unknown, pattern: RegExp): true {
  assert.ok(e instanceof RegistryError, String(e));
  assert.equal(e.status, 0);
  assert.doesNotMatch(e.message, /\n/);
  assert.doesNotMatch(e.message, /--plain-http/);
  assert.match(e.message, pattern);
  return true;
}

Deno.test("RegistryClient talks plain HTTP to loopback registries unless told otherwise", () => {
  const byDefault = new RegistryClient();
  for (const host of LOOPBACK) {
    assert.match(byDefault.baseUrl(host), /^http:\/\//, host);
  }
  for (const host of REMOTE) {
    assert.match(byDefault.baseUrl(host), /^https:\/\//, host);
  }
  const always = new RegistryClient({ plainHttp: true });
  const never = new RegistryClient({ plainHttp: false });
  for (const host of [...LOOPBACK, ...REMOTE]) {
    assert.match(always.baseUrl(host), /^http:\/\//, host);
    assert.match(never.baseUrl(host), /^https:\/\//, host);
  }
  // A function decides per host; undefined leaves a host to the default.
  const some = new RegistryClient({
    plainHttp: (host) => host === "registry.lan:5000" ? true : undefined,
  });
  assert.equal(
    some.baseUrl("registry.lan:5000"),
    "http://registry.lan:5000/v2/",
  );
  assert.equal(some.baseUrl("localhost:5000"), "http://localhost:5000/v2/");
  assert.equal(some.baseUrl("ghcr.io"), "https://ghcr.io/v2/");
});

Deno.test("RegistryClient reaches a registry on 127.0.0.1 and localhost without plainHttp", async () => {
  await using reg = await startRegistry();
  const port = reg.host.split(":")[1];
  const client = new RegistryClient();
  const config = encodeJson({});
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
    layers: [],
  });
  for (const registry of [reg.host, `localhost:${port}`]) {
    const repo = { registry, repository: "loop/back" };
    await client.uploadBlob(repo, {
      ...config,
      open: () => Promise.resolve(new Blob([config.bytes.slice()]).stream()),
    });
    await client.putManifest(repo, {
      tagOrDigest: "1",
      bytes: manifest.bytes,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
    });
    const got = await client.getManifest(repo, "1");
    assert.equal(got.descriptor.digest, manifest.digest);
    assert.deepEqual(
      await verifyCredentials(registry, { username: "a", password: "b" }),
      { scheme: "none" },
    );
  }
});

Deno.test("plainHttp: false sends HTTPS to a loopback registry and explains the TLS failure in one line", async () => {
  await using reg = await startRegistry();
  const client = new RegistryClient({ plainHttp: false, retries: 0 });
  await assert.rejects(
    client.getManifest({ registry: reg.host, repository: "r" }, "1"),
    (e: unknown) =>
      assertReadable(
        e,
        new RegExp(
          `^Cannot connect to registry ${reg.host} over HTTPS \\(it does not answer TLS\\): set plainHttp for a registry without TLS, or DENO_CERT for a private CA$`,
        ),
      ),
  );
  await assert.rejects(
    verifyCredentials(reg.host, { username: "a", password: "b" }, {
      plainHttp: false,
    }),
    (e: unknown) => assertReadable(e, /over HTTPS .*: set plainHttp for/),
  );
});

Deno.test("a certificate Deno does not trust is named without cutting a word", async () => {
  await withTempDir(async (dir) => {
    const { cert, key } = await selfSignedCertificate(
      `${dir}/tls`,
      "localhost",
    );
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
      () => new Response("{}"),
    );
    const host = `127.0.0.1:${server.addr.port}`;
    const client = new RegistryClient({ plainHttp: false, retries: 0 });
    await assert.rejects(
      client.getManifest({ registry: host, repository: "r" }, "1"),
      (e: unknown) =>
        assertReadable(
          e,
          new RegExp(
            `^Cannot connect to registry ${host} over HTTPS \\(invalid peer certificate: [^…]+\\): set plainHttp for a registry without TLS, or DENO_CERT for a private CA$`,
          ),
        ),
    );

    // The other way round: plain HTTP to a TLS server.
    await assert.rejects(
      new RegistryClient({ retries: 0 }).getManifest(
        { registry: `localhost:${server.addr.port}`, repository: "r" },
        "1",
      ),
      (e: unknown) =>
        assertReadable(
          e,
          /over plain HTTP \(it does not answer HTTP, it may expect TLS\): set plainHttp: false to use HTTPS$/,
        ),
    );
  });
});

Deno.test("a registry that answers plain HTTP with 'use HTTPS' asks for plainHttp: false", async () => {
  // What Go's TLS server answers to a plain HTTP request.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response("Client sent an HTTP request to an HTTPS server.\n", {
        status: 400,
      }),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  const message =
    `Registry ${host} expects HTTPS, but the request was plain HTTP: set plainHttp: false to use HTTPS`;
  await assert.rejects(
    new RegistryClient().getManifest({ registry: host, repository: "r" }, "1"),
    (e: unknown) => e instanceof RegistryError && e.message === message,
  );
  await assert.rejects(
    verifyCredentials(host, { username: "a", password: "b" }),
    (e: unknown) => e instanceof RegistryError && e.message === message,
  );
  // An answer to HEAD has no body to tell: push asks HEAD first.
  const repo = { registry: host, repository: "r" };
  const client = new RegistryClient();
  await assert.rejects(
    client.headManifest(repo, "1"),
    (e: unknown) => e instanceof RegistryError && e.message === message,
  );
  await assert.rejects(
    client.hasBlob(repo, digestOf(new Uint8Array(0))),
    (e: unknown) => e instanceof RegistryError && e.message === message,
  );
});

Deno.test("a 400 without a body from a plain HTTP registry keeps its status when the registry is no TLS server", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(null, { status: 400 }),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  await assert.rejects(
    new RegistryClient().headManifest({ registry: host, repository: "r" }, "1"),
    (e: unknown) =>
      e instanceof RegistryError && e.status === 400 &&
      e.message === `Registry ${host} answered HTTP 400 for manifest r:1`,
  );
});

Deno.test("clip() shortens between words and keeps one line", () => {
  assert.equal(clip("short  text\nhere", 80), "short text here");
  const long = "error sending request for url (https://127.0.0.1:41933/v2/): " +
    "client error (Connect): received corrupt message of type InvalidContentType";
  const cut = clip(long, 120);
  assert.ok(cut.length <= 121, cut);
  assert.ok(cut.endsWith("…"));
  const kept = cut.slice(0, -1);
  assert.ok(long.startsWith(kept));
  assert.match(long.slice(kept.length), /^[\s,;:]/);
});
