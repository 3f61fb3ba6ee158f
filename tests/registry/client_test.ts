import assert from "node:assert/strict";
import {
  DigestMismatchError,
  ImageError,
  InvalidImageError,
  NetworkError,
  NotFoundError,
  RegistryError,
  UnauthorizedError,
} from "../../src/errors.ts";
import { type Digest, digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import {
  MANIFEST_ACCEPT,
  RegistryClient,
  type RegistryClientOptions,
  type Repository,
} from "../../src/registry/client.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import {
  type FakeRequest,
  manifestResponse,
  notFound,
  registryError,
  startFakeRegistry,
} from "../_helpers/fake_registry.ts";
import { randomBytes } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";

/** A request the client sent, as seen by a recording fetch. */
interface Sent {
  method: string;
  url: string;
  headers: Headers;
  status: number;
}

/** A client whose requests are recorded in `sent`. */
function recordingClient(
  options: RegistryClientOptions = {},
): { client: RegistryClient; sent: Sent[]; attempts: () => number } {
  const sent: Sent[] = [];
  let attempts = 0;
  const client = new RegistryClient({
    plainHttp: true,
    retryDelay: 1,
    ...options,
    fetch: async (input, init) => {
      attempts++;
      const res = await fetch(input, init);
      sent.push({
        method: init?.method ?? "GET",
        url: String(input),
        headers: new Headers(init?.headers),
        status: res.status,
      });
      return res;
    },
  });
  return { client, sent, attempts: () => attempts };
}

/** Opens slices of in-memory bytes the way `uploadBlob` wants. */
function opener(bytes: Uint8Array) {
  return (offset: number, length?: number) =>
    Promise.resolve(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(
            bytes.slice(
              offset,
              length === undefined ? undefined : offset + length,
            ),
          );
          c.close();
        },
      }),
    );
}

async function upload(
  client: RegistryClient,
  repo: Repository,
  bytes: Uint8Array,
): Promise<{ digest: Digest; size: number }> {
  const d = { digest: digestOf(bytes), size: bytes.byteLength };
  await client.uploadBlob(repo, { ...d, open: opener(bytes) });
  return d;
}

async function readBlob(
  client: RegistryClient,
  repo: Repository,
  digest: Digest,
): Promise<Uint8Array> {
  const res = await client.getBlob(repo, digest);
  return new Uint8Array(await res.arrayBuffer());
}

/** A small IronCore manifest whose blobs are in `repo`. */
async function pushManifest(
  client: RegistryClient,
  repo: Repository,
  tag: string,
): Promise<{ bytes: Uint8Array; digest: Digest }> {
  const config = encodeJson({ commandLine: `console=ttyS0 ${tag}` });
  await upload(client, repo, config.bytes);
  const kernel = await upload(client, repo, randomBytes(1024));
  const { bytes, digest } = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: config.digest,
      size: config.size,
    },
    layers: [{ mediaType: LAYER_MEDIA_TYPES.kernel, ...kernel }],
  });
  assert.equal(
    await client.putManifest(repo, {
      tagOrDigest: tag,
      bytes: bytes,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
    }),
    digest,
  );
  return { bytes, digest };
}

Deno.test("RegistryClient speaks the distribution API to a real registry", async (t) => {
  await using reg = await startRegistry();
  const repo = { registry: reg.host, repository: "client/one" };

  await t.step(
    "a blob goes up in one streaming PUT and comes back intact",
    async () => {
      const { client, sent } = recordingClient();
      const bytes = randomBytes(300_000);
      const { digest } = await upload(client, repo, bytes);
      const methods = sent.map((s) => s.method);
      assert.deepEqual(methods.filter((m) => m !== "GET"), ["POST", "PUT"]);
      const put = sent.find((s) => s.method === "PUT")!;
      assert.equal(new URL(put.url).searchParams.get("digest"), digest);
      assert.equal(await client.hasBlob(repo, digest), true);
      assert.deepEqual(await readBlob(client, repo, digest), bytes);
    },
  );

  await t.step(
    "a blob goes up in PATCH chunks with Content-Range when chunking is forced",
    async () => {
      const { client, sent } = recordingClient({
        forceChunked: true,
        chunkSize: 1000,
      });
      const bytes = randomBytes(3500);
      const { digest } = await upload(client, repo, bytes);
      const patches = sent.filter((s) => s.method === "PATCH");
      assert.deepEqual(
        patches.map((p) => p.headers.get("content-range")),
        ["0-999", "1000-1999", "2000-2999", "3000-3499"],
      );
      const puts = sent.filter((s) => s.method === "PUT");
      assert.equal(puts.length, 1);
      assert.equal(new URL(puts[0]!.url).searchParams.get("digest"), digest);
      assert.deepEqual(await readBlob(client, repo, digest), bytes);
    },
  );

  await t.step("HEAD tells a missing blob from a present one", async () => {
    const { client } = recordingClient();
    assert.equal(await client.hasBlob(repo, digestOf("never uploaded")), false);
  });

  await t.step(
    "manifests and indexes go up and come back with their media types",
    async () => {
      const { client, sent } = recordingClient();
      const m = await pushManifest(client, repo, "m1");
      const put = sent.findLast((s) => s.method === "PUT")!;
      assert.equal(put.headers.get("content-type"), OCI_MANIFEST_MEDIA_TYPE);

      const got = await client.getManifest(repo, "m1");
      assert.equal(got.kind, "manifest");
      assert.deepEqual(got.bytes, m.bytes);
      assert.deepEqual(got.descriptor, {
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: m.digest,
        size: m.bytes.byteLength,
      });
      const get = sent.findLast((s) => s.method === "GET")!;
      assert.equal(get.headers.get("accept"), MANIFEST_ACCEPT);
      for (
        const type of [
          OCI_MANIFEST_MEDIA_TYPE,
          OCI_INDEX_MEDIA_TYPE,
          "application/vnd.docker.distribution.manifest.v2+json",
          "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
      ) {
        assert.ok(MANIFEST_ACCEPT.includes(type), type);
      }
      assert.deepEqual(await client.headManifest(repo, "m1"), got.descriptor);
      assert.equal((await client.getManifest(repo, m.digest)).kind, "manifest");

      const index = encodeJson({
        schemaVersion: 2,
        mediaType: OCI_INDEX_MEDIA_TYPE,
        manifests: [{
          mediaType: OCI_MANIFEST_MEDIA_TYPE,
          digest: m.digest,
          size: m.bytes.byteLength,
          platform: { os: "linux", architecture: "amd64" },
        }],
      });
      await client.putManifest(repo, {
        tagOrDigest: "i1",
        bytes: index.bytes,
        mediaType: OCI_INDEX_MEDIA_TYPE,
      });
      const gotIndex = await client.getManifest(repo, "i1");
      assert.equal(gotIndex.kind, "index");
      assert.equal(gotIndex.descriptor.mediaType, OCI_INDEX_MEDIA_TYPE);
      assert.equal(gotIndex.descriptor.digest, index.digest);
    },
  );

  await t.step(
    "a blob is mounted from another repository without uploading it",
    async () => {
      const { client, sent } = recordingClient();
      const { digest } = await upload(client, repo, randomBytes(2000));
      const other = { registry: reg.host, repository: "client/two" };
      sent.length = 0;
      assert.equal(
        await client.mountBlob(other, {
          digest: digest,
          from: repo.repository,
        }),
        true,
      );
      assert.deepEqual(sent.map((s) => s.method), ["POST"]);
      assert.equal(new URL(sent[0]!.url).searchParams.get("mount"), digest);
      assert.equal(await client.hasBlob(other, digest), true);
      // An unknown blob is not mounted; the registry's upload session is dropped.
      assert.equal(
        await client.mountBlob(other, {
          digest: digestOf("unknown"),
          from: repo.repository,
        }),
        false,
      );
    },
  );

  await t.step("tags are listed", async () => {
    const { client } = recordingClient();
    const tags = await client.listTags(repo);
    assert.deepEqual(tags.toSorted(), ["i1", "m1"]);
  });

  await t.step(
    "a missing tag or repository is NotFoundError with the registry's message",
    async () => {
      const { client } = recordingClient();
      await assert.rejects(
        client.getManifest(repo, "nope"),
        (e: unknown) => {
          assert.ok(e instanceof NotFoundError);
          assert.match(e.message, /not found in 127\.0\.0\.1:\d+/);
          assert.match(e.message, /MANIFEST_UNKNOWN/);
          return true;
        },
      );
      await assert.rejects(
        client.getManifest({ registry: reg.host, repository: "no/such" }, "1"),
        NotFoundError,
      );
      await assert.rejects(
        client.listTags({ registry: reg.host, repository: "no/such" }),
        (e: unknown) =>
          e instanceof NotFoundError && /NAME_UNKNOWN/.test(e.message),
      );
      assert.equal(await client.headManifest(repo, "nope"), undefined);
    },
  );
});

Deno.test("listTags() follows Link pagination", async () => {
  await using fake = startFakeRegistry((req) => {
    const last = req.url.searchParams.get("last");
    const pages: Record<string, [string[], string | undefined]> = {
      "": [["a", "b"], "/v2/r/tags/list?n=2&last=b"],
      b: [["c", "d"], "/v2/r/tags/list?n=2&last=d"],
      d: [["e"], undefined],
    };
    const page = pages[last ?? ""];
    if (!req.path.endsWith("/tags/list") || !page) return notFound();
    const headers: Record<string, string> = {};
    if (page[1]) headers.link = `<${page[1]}>; rel="next"`;
    return Response.json({ name: "r", tags: page[0] }, { headers });
  });
  const { client } = recordingClient();
  const tags = await client.listTags({ registry: fake.host, repository: "r" });
  assert.deepEqual(tags, ["a", "b", "c", "d", "e"]);
  assert.equal(fake.count("GET", "/v2/r/tags/list"), 3);
});

Deno.test("getManifest() refuses a manifest over 4 MiB", async () => {
  const big = new Uint8Array(4 * 1024 * 1024 + 1).fill(0x20);
  await using fake = startFakeRegistry((req) => {
    if (req.path === "/v2/r/manifests/declared") {
      return manifestResponse(big, { digest: null });
    }
    if (req.path === "/v2/r/manifests/streamed") {
      // No Content-Length: the client must stop reading at the limit.
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < big.byteLength; i += 1 << 20) {
            c.enqueue(big.subarray(i, i + (1 << 20)));
          }
          c.close();
        },
      });
      return new Response(body, {
        headers: { "content-type": OCI_MANIFEST_MEDIA_TYPE },
      });
    }
    return notFound();
  });
  const { client } = recordingClient();
  const repo = { registry: fake.host, repository: "r" };
  for (const tag of ["declared", "streamed"]) {
    await assert.rejects(
      client.getManifest(repo, tag),
      (e: unknown) =>
        e instanceof InvalidImageError &&
        /over the 4194304-byte limit/.test(e.message),
      tag,
    );
  }
});

Deno.test("getManifest() refuses a manifest that is not JSON", async () => {
  await using fake = startFakeRegistry(() =>
    manifestResponse(new TextEncoder().encode("<html>hello</html>"))
  );
  const { client } = recordingClient();
  await assert.rejects(
    client.getManifest({ registry: fake.host, repository: "r" }, "1"),
    (e: unknown) => e instanceof InvalidImageError && /JSON/.test(e.message),
  );
});

Deno.test("getManifest() refuses bytes that do not match the announced or requested digest", async () => {
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, digest: digestOf("{}"), size: 2 },
    layers: [],
  });
  const wrong = digestOf("something else");
  await using fake = startFakeRegistry(() =>
    manifestResponse(manifest.bytes as Uint8Array<ArrayBuffer>, {
      digest: wrong,
    })
  );
  const { client } = recordingClient();
  const repo = { registry: fake.host, repository: "r" };
  await assert.rejects(client.getManifest(repo, "1"), (e: unknown) => {
    assert.ok(e instanceof DigestMismatchError);
    assert.equal(e.expected, wrong);
    assert.equal(e.actual, manifest.digest);
    return true;
  });
  fake.handle(() =>
    manifestResponse(manifest.bytes as Uint8Array<ArrayBuffer>, {
      digest: null,
    })
  );
  await assert.rejects(client.getManifest(repo, wrong), DigestMismatchError);
  assert.equal(
    (await client.getManifest(repo, manifest.digest)).kind,
    "manifest",
  );
});

Deno.test("a blob redirect to another origin does not carry the Authorization header there", async () => {
  const bytes = new TextEncoder().encode("blob bytes from the CDN");
  const digest = digestOf(bytes);
  await using cdn = startFakeRegistry(() => new Response(bytes));
  await using fake = startFakeRegistry((req) => {
    if (req.headers.get("authorization") === null) {
      return registryError(401, "UNAUTHORIZED", "authentication required", {
        "www-authenticate": `Basic realm="fake"`,
      });
    }
    return new Response(null, {
      status: 307,
      headers: { location: `${cdn.url}/blobs/${digest}?sig=abc` },
    });
  });
  const { client } = recordingClient({
    credentials: () => Promise.resolve({ username: "u", password: "p" }),
  });
  const got = await readBlob(
    client,
    { registry: fake.host, repository: "r" },
    digest,
  );
  assert.deepEqual(got, bytes);
  const toRegistry = fake.requests.filter((r) => r.path.includes("/blobs/"));
  assert.ok(toRegistry.some((r) => r.headers.get("authorization") !== null));
  assert.equal(cdn.requests.length, 1);
  assert.equal(cdn.requests[0]!.headers.get("authorization"), null);
  assert.equal(cdn.requests[0]!.url.searchParams.get("sig"), "abc");
});

Deno.test("a redirect loop is cut off after a few hops", async () => {
  await using fake = startFakeRegistry((req) =>
    new Response(null, { status: 302, headers: { location: req.url.href } })
  );
  const { client } = recordingClient();
  await assert.rejects(
    client.getBlob(
      { registry: fake.host, repository: "r" },
      digestOf("x"),
    ),
    (e: unknown) =>
      e instanceof RegistryError && /redirected more than/.test(e.message),
  );
  assert.ok(fake.requests.length <= 12, `${fake.requests.length} requests`);
});

Deno.test("a 503 is retried and the next answer is used", async () => {
  const bytes = new TextEncoder().encode("after the outage");
  await using fake = startFakeRegistry((_req, n) =>
    n === 0
      ? registryError(503, "UNAVAILABLE", "try later")
      : new Response(bytes)
  );
  const { client } = recordingClient();
  const got = await readBlob(
    client,
    { registry: fake.host, repository: "r" },
    digestOf(bytes),
  );
  assert.deepEqual(got, bytes);
  assert.equal(fake.requests.length, 2);
});

Deno.test("a 429 is retried after the Retry-After delay", async () => {
  const bytes = new TextEncoder().encode("rate limited");
  await using fake = startFakeRegistry((_req, n) =>
    n === 0
      ? registryError(429, "TOOMANYREQUESTS", "slow down", {
        "retry-after": "1",
      })
      : new Response(bytes)
  );
  const { client } = recordingClient();
  const start = performance.now();
  const got = await readBlob(
    client,
    { registry: fake.host, repository: "r" },
    digestOf(bytes),
  );
  const elapsed = performance.now() - start;
  assert.deepEqual(got, bytes);
  assert.equal(fake.requests.length, 2);
  assert.ok(elapsed >= 900, `waited only ${elapsed} ms`);
});

Deno.test("retries stop after the configured count and the last error is reported", async () => {
  await using fake = startFakeRegistry(() =>
    registryError(502, "UNAVAILABLE", "the backend is down")
  );
  const { client } = recordingClient({ retries: 2 });
  await assert.rejects(
    client.getManifest({ registry: fake.host, repository: "r" }, "1"),
    (e: unknown) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.status, 502);
      assert.match(e.message, /HTTP 502/);
      assert.match(e.message, /UNAVAILABLE: the backend is down/);
      return true;
    },
  );
  assert.equal(fake.requests.length, 3);
});

Deno.test("a Retry-After the registry sent reaches the error when retries run out", async () => {
  await using fake = startFakeRegistry(() =>
    registryError(429, "TOOMANYREQUESTS", "slow down", { "retry-after": "0" })
  );
  const { client } = recordingClient({ retries: 1 });
  await assert.rejects(
    client.getManifest({ registry: fake.host, repository: "r" }, "1"),
    (e: unknown) =>
      e instanceof RegistryError && e.status === 429 && e.retryAfter === 0,
  );
  assert.equal(fake.requests.length, 2);
});

Deno.test("a 4xx is not retried and its JSON error body is in the message", async () => {
  await using fake = startFakeRegistry(() =>
    registryError(400, "MANIFEST_INVALID", "manifest invalid: bad layer")
  );
  const { client } = recordingClient();
  const repo = { registry: fake.host, repository: "r" };
  await assert.rejects(client.getManifest(repo, "1"), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.equal(e.status, 400);
    assert.deepEqual(e.codes, ["MANIFEST_INVALID"]);
    assert.match(e.message, /MANIFEST_INVALID: manifest invalid: bad layer/);
    return true;
  });
  assert.equal(fake.requests.length, 1);
});

Deno.test("a 403 is an UnauthorizedError and is not retried", async () => {
  await using fake = startFakeRegistry(() =>
    registryError(403, "DENIED", "requested access to the resource is denied")
  );
  const { client } = recordingClient();
  await assert.rejects(
    client.getManifest({ registry: fake.host, repository: "r" }, "1"),
    (e: unknown) =>
      e instanceof UnauthorizedError && e.status === 403 &&
      /Access denied by 127\.0\.0\.1:\d+ to r/.test(e.message),
  );
  assert.equal(fake.requests.length, 1);
});

/**
 * A fake upload endpoint: POST opens a session, PATCH appends, PUT with a
 * digest completes. `monolithic` says whether a PUT with a body is allowed.
 */
function uploadHandler(
  monolithic: boolean,
  received: { bytes: Uint8Array; announce?: string },
) {
  return async (req: FakeRequest) => {
    if (req.method === "POST" && req.path === "/v2/r/blobs/uploads/") {
      return new Response(null, {
        status: 202,
        headers: { location: "/v2/r/blobs/uploads/session-1", range: "0-0" },
      });
    }
    if (req.path !== "/v2/r/blobs/uploads/session-1") return notFound();
    if (req.method === "PATCH") {
      const joined = new Uint8Array(
        received.bytes.byteLength + req.body.byteLength,
      );
      joined.set(received.bytes);
      joined.set(req.body, received.bytes.byteLength);
      received.bytes = joined;
      return new Response(null, {
        status: 202,
        headers: {
          location: "/v2/r/blobs/uploads/session-1",
          range: `0-${joined.byteLength - 1}`,
        },
      });
    }
    if (req.method === "PUT") {
      if (req.body.byteLength > 0 && !monolithic) {
        return registryError(405, "UNSUPPORTED", "monolithic upload refused");
      }
      const all = new Uint8Array(
        received.bytes.byteLength + req.body.byteLength,
      );
      all.set(received.bytes);
      all.set(req.body, received.bytes.byteLength);
      received.bytes = all;
      const digest = req.url.searchParams.get("digest");
      const actual = digestOf(all);
      if (digest !== actual) {
        return registryError(400, "DIGEST_INVALID", "digest mismatch");
      }
      return new Response(null, {
        status: 201,
        headers: { "docker-content-digest": received.announce ?? actual },
      });
    }
    return await Promise.resolve(notFound());
  };
}

Deno.test("a registry that refuses a monolithic PUT gets the blob in PATCH chunks", async () => {
  const received = { bytes: new Uint8Array() };
  await using fake = startFakeRegistry(uploadHandler(false, received));
  const { client } = recordingClient({ chunkSize: 4000 });
  const bytes = randomBytes(10_000);
  await upload(client, { registry: fake.host, repository: "r" }, bytes);
  assert.deepEqual(received.bytes, bytes);
  const patches = fake.requests.filter((r) => r.method === "PATCH");
  assert.deepEqual(
    patches.map((p) => p.headers.get("content-range")),
    ["0-3999", "4000-7999", "8000-9999"],
  );
  const puts = fake.requests.filter((r) => r.method === "PUT");
  assert.equal(puts.length, 2, "the refused PUT and the closing PUT");
  assert.equal(puts[1]!.body.byteLength, 0);
});

/**
 * A registry of upload sessions, each keeping the bytes PATCHed to it, that
 * drops a resumed session in the way distribution does when the session's
 * length moved after it said where the upload stood (it was still writing
 * a broken chunk): `refuse` answers the resumed PATCH 404
 * BLOB_UPLOAD_INVALID, `mix` takes it and answers the completing PUT 400
 * DIGEST_INVALID.
 */
function sessionRegistry(mode: "refuse" | "mix") {
  const sessions = new Map<string, Uint8Array>();
  let opened = 0;
  const resumed = new Set<string>();
  const fake = startFakeRegistry((req) => {
    if (req.method === "POST") {
      const id = `session-${++opened}`;
      sessions.set(id, new Uint8Array());
      return new Response(null, {
        status: 202,
        headers: { location: `/v2/r/blobs/uploads/${id}`, range: "0-0" },
      });
    }
    const id = req.path.split("/").at(-1)!;
    const kept = sessions.get(id);
    if (kept === undefined) return notFound();
    if (req.method === "GET") {
      resumed.add(id);
      return new Response(null, {
        status: 204,
        headers: { location: req.path, range: `0-${kept.byteLength - 1}` },
      });
    }
    if (req.method === "PATCH") {
      if (mode === "refuse" && resumed.has(id)) {
        sessions.delete(id);
        return registryError(404, "BLOB_UPLOAD_INVALID", "blob upload invalid");
      }
      const joined = new Uint8Array(kept.byteLength + req.body.byteLength);
      joined.set(kept);
      joined.set(req.body, kept.byteLength);
      sessions.set(id, joined);
      return new Response(null, {
        status: 202,
        headers: { location: req.path, range: `0-${joined.byteLength - 1}` },
      });
    }
    if (req.method === "PUT") {
      const digest = req.url.searchParams.get("digest");
      if (digest !== digestOf(kept) || resumed.has(id)) {
        sessions.delete(id);
        return registryError(400, "DIGEST_INVALID", "digest mismatch");
      }
      return new Response(null, {
        status: 201,
        headers: { "docker-content-digest": digest },
      });
    }
    return notFound();
  });
  return { fake, opened: () => opened };
}

/** A client whose second PATCH breaks before an answer comes. */
function breakingClient(): RegistryClient {
  let patches = 0;
  return new RegistryClient({
    plainHttp: true,
    retryDelay: 1,
    forceChunked: true,
    chunkSize: 4000,
    fetch: (input, init) => {
      if (init?.method === "PATCH" && ++patches === 2) {
        return Promise.reject(new TypeError("error sending request"));
      }
      return fetch(input, init);
    },
  });
}

Deno.test("a resumed upload the registry drops or garbles is sent again in a new session", async (t) => {
  for (const mode of ["refuse", "mix"] as const) {
    await t.step(mode, async () => {
      const { fake, opened } = sessionRegistry(mode);
      await using _ = fake;
      const bytes = randomBytes(10_000);
      await upload(
        breakingClient(),
        { registry: fake.host, repository: "r" },
        bytes,
      );
      assert.equal(opened(), 2, "a second session");
      const puts = fake.requests.filter((r) => r.method === "PUT");
      assert.match(puts.at(-1)!.path, /session-2$/);
      const resumedAt = fake.requests.findIndex((r) =>
        r.method === "PATCH" && r.path.endsWith("session-1") &&
        r.headers.get("content-range") === "4000-7999"
      );
      assert.ok(resumedAt > 0, "the chunk was resumed in the first session");
      // The whole blob again, in the second session.
      assert.deepEqual(
        fake.requests.filter((r) =>
          r.method === "PATCH" && r.path.endsWith("session-2")
        ).map((r) => r.headers.get("content-range")),
        ["0-3999", "4000-7999", "8000-9999"],
      );
    });
  }
});

Deno.test("an upload the registry stores under another digest is an error", async () => {
  const received = { bytes: new Uint8Array(), announce: digestOf("other") };
  await using fake = startFakeRegistry(uploadHandler(true, received));
  const { client } = recordingClient();
  await assert.rejects(
    upload(client, { registry: fake.host, repository: "r" }, randomBytes(10)),
    DigestMismatchError,
  );
});

Deno.test("a registry that is down is reported by host, not retried forever", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const host = `127.0.0.1:${listener.addr.port}`;
  listener.close();
  const { client, attempts } = recordingClient();
  await assert.rejects(
    client.getManifest({ registry: host, repository: "r" }, "1"),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.ok(e instanceof RegistryError && e instanceof ImageError);
      assert.equal(e.kind, "refused");
      assert.equal(e.status, 0);
      assert.equal(e.host, host);
      assert.match(
        e.message,
        new RegExp(`Cannot connect to registry ${host}: connection refused`),
      );
      return true;
    },
  );
  assert.ok(attempts() <= 2, `${attempts()} attempts`);
});

Deno.test("a registry on a port fetch blocks is named with the port, not retried", async () => {
  // 6000 (X11) is on the fetch standard's list of blocked ports.
  const host = "127.0.0.1:6000";
  const { client, attempts } = recordingClient();
  await assert.rejects(
    client.getManifest({ registry: host, repository: "r" }, "1"),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.equal(e.kind, "refused");
      assert.match(
        e.message,
        new RegExp(
          `^Cannot connect to registry ${host}: port 6000 is blocked by fetch .*another port`,
        ),
      );
      return true;
    },
  );
  assert.ok(attempts() <= 2, `${attempts()} attempts`);
});

Deno.test("HTTPS to a registry without TLS is a NetworkError of kind tls", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("{}"),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  const client = new RegistryClient({ plainHttp: false, retryDelay: 1 });
  await assert.rejects(
    client.getManifest({ registry: host, repository: "r" }, "1"),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.equal(e.kind, "tls");
      assert.equal(e.status, 0);
      assert.match(
        e.message,
        new RegExp(
          `^Cannot connect to registry ${host} over HTTPS \\(it does not answer TLS\\): set plainHttp for a registry without TLS, or DENO_CERT for a private CA$`,
        ),
      );
      assert.doesNotMatch(e.message, /--/);
      return true;
    },
  );
});

Deno.test("a challenge from a redirect target on another origin gets no credentials", async () => {
  const digest = digestOf("protected");
  await using cdn = startFakeRegistry((req) =>
    req.path === "/token"
      ? Response.json({ token: "cdn-token" })
      : registryError(401, "UNAUTHORIZED", "signature expired", {
        "www-authenticate": `Bearer realm="http://${req.url.host}/token"`,
      })
  );
  await using fake = startFakeRegistry((req) => {
    if (req.headers.get("authorization") === null) {
      return registryError(401, "UNAUTHORIZED", "authentication required", {
        "www-authenticate": `Basic realm="fake"`,
      });
    }
    if (!req.path.endsWith(digest)) return notFound();
    return new Response(null, {
      status: 307,
      headers: { location: `${cdn.url}/blobs/${digest}` },
    });
  });
  const { client } = recordingClient({
    credentials: () => Promise.resolve({ username: "u", password: "secret" }),
  });
  const repo = { registry: fake.host, repository: "r" };
  // Authenticate first, so the blob request carries credentials at once.
  assert.equal(await client.hasBlob(repo, digestOf("other")), false);
  await assert.rejects(
    client.getBlob(repo, digest),
    (e: unknown) =>
      e instanceof RegistryError && e.status === 401 &&
      /signature expired/.test(e.message),
  );
  assert.deepEqual(cdn.requests.map((r) => r.path), [`/blobs/${digest}`]);
  assert.equal(cdn.requests[0]!.headers.get("authorization"), null);
  // The registry's own challenge still holds for the next request.
  assert.equal(await client.hasBlob(repo, digestOf("other")), false);
  assert.ok(
    fake.requests.at(-1)!.headers.get("authorization")?.startsWith("Basic "),
  );
});
