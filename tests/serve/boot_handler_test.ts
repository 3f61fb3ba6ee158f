import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import { encodeJson, OCI_MANIFEST_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import {
  RegistryClient,
  type RegistryClientOptions,
} from "../../src/registry/client.ts";
import {
  type AccessLogEntry,
  type BootHandler,
  type BootHandlerOptions,
  type BootImageJson,
  createBootHandler,
} from "../../src/serve/boot_handler.ts";
import { type Http1Stats, serveHttp1 } from "../../src/serve/_serve_http1.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  LEGACY_CONFIG_MEDIA_TYPE,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { verifyStore } from "../../src/store/verify_store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startTrap } from "../_helpers/trap.ts";
import {
  startRegistry,
  type TestRegistry,
  TOKEN_SERVICE,
} from "../_helpers/registry.ts";

const AMD64 = { os: "linux", architecture: "amd64" };

/** Compares bytes by length and digest: node's diff of large arrays takes minutes. */
function assertBytes(
  actual: Uint8Array,
  expected: Uint8Array | undefined,
  message?: string,
): void {
  assert.ok(expected, "nothing to compare with");
  assert.equal(actual.byteLength, expected.byteLength, message);
  assert.equal(digestOf(actual), digestOf(expected), message);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- a counting (and optionally slow or strict) proxy in front of a registry

interface SeenRequest {
  method: string;
  path: string;
  range: string | null;
}

interface ProxyOptions {
  /** Delay between 64 KiB chunks of blob bodies, in ms. */
  throttleMs?: number;
  /** Refuse Bearer tokens first seen longer ago than this, in ms. */
  maxTokenAgeMs?: number;
  /** Break off the first full GET of this blob after some bytes. */
  dropOnce?: { digest: Digest; after: number };
  /** Answer range requests with the whole blob, as some servers do. */
  ignoreRange?: boolean;
}

interface Proxy extends AsyncDisposable {
  host: string;
  requests: SeenRequest[];
  /** Requests refused for an old token. */
  refused: number;
  blobGets(digest: Digest): number;
}

function throttle(
  body: ReadableStream<Uint8Array>,
  ms: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let pending = new Uint8Array(0);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (pending.byteLength < 65536) {
        const { done, value } = await reader.read();
        if (done) break;
        const next = new Uint8Array(pending.byteLength + value.byteLength);
        next.set(pending);
        next.set(value, pending.byteLength);
        pending = next;
      }
      if (pending.byteLength === 0) {
        controller.close();
        return;
      }
      await sleep(ms);
      const n = Math.min(65536, pending.byteLength);
      controller.enqueue(pending.slice(0, n));
      pending = pending.slice(n);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Passes `after` bytes, then ends early: the declared length is not met. */
function cut(
  body: ReadableStream<Uint8Array>,
  after: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done || sent >= after) {
        await reader.cancel();
        controller.close();
        return;
      }
      const part = value.subarray(0, after - sent);
      sent += part.byteLength;
      controller.enqueue(part);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

function startProxy(reg: TestRegistry, options: ProxyOptions = {}): Proxy {
  let dropped = false;
  const requests: SeenRequest[] = [];
  const firstSeen = new Map<string, number>();
  const state = { refused: 0 };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      requests.push({
        method: req.method,
        path: url.pathname,
        range: req.headers.get("range"),
      });
      const auth = req.headers.get("authorization");
      if (options.maxTokenAgeMs !== undefined && auth?.startsWith("Bearer ")) {
        const seen = firstSeen.get(auth) ?? Date.now();
        firstSeen.set(auth, seen);
        if (Date.now() - seen > options.maxTokenAgeMs) {
          state.refused++;
          const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(url.pathname)
            ?.[1];
          return new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', {
            status: 401,
            headers: {
              "www-authenticate":
                `Bearer realm="${reg.tokenRealm}",service="${TOKEN_SERVICE}",scope="repository:${repo}:pull",error="invalid_token"`,
            },
          });
        }
      }
      const headers = new Headers(req.headers);
      headers.delete("host");
      if (options.ignoreRange) headers.delete("range");
      const res = await fetch(`${reg.url}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
      });
      const slow = options.throttleMs !== undefined && res.body !== null &&
        url.pathname.includes("/blobs/");
      let body = slow ? throttle(res.body!, options.throttleMs!) : res.body;
      const drop = options.dropOnce;
      if (
        drop && !dropped && req.method === "GET" && body !== null &&
        url.pathname.endsWith(`/blobs/${drop.digest}`) &&
        !req.headers.has("range")
      ) {
        dropped = true;
        body = cut(body, drop.after);
      }
      return new Response(body, { status: res.status, headers: res.headers });
    },
  );
  return {
    host: `127.0.0.1:${server.addr.port}`,
    requests,
    get refused() {
      return state.refused;
    },
    blobGets: (digest) =>
      requests.filter((r) =>
        r.method === "GET" && r.path.endsWith(`/blobs/${digest}`)
      ).length,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

// --- the handler on a real server

interface Served extends AsyncDisposable {
  url: string;
  handler: BootHandler;
  logs: string[];
  entries: AccessLogEntry[];
  /** The direct server's counters; absent under Deno.serve. */
  stats?: Http1Stats;
}

/** Which server runs the handler: the runtime's, or the CLI's direct one. */
type ServerKind = "deno" | "direct";

function serve(options: BootHandlerOptions, kind: ServerKind = "deno"): Served {
  const logs: string[] = [];
  const entries: AccessLogEntry[] = [];
  const handler = createBootHandler({
    ...options,
    onLog: (e) => {
      entries.push(e);
      logs.push(
        `${e.method} ${e.path} ${e.status} ${e.bytes} ${e.error ?? ""}`,
      );
    },
  });
  const listen = { hostname: "127.0.0.1", port: 0 };
  const server = kind === "direct" ? serveHttp1(listen, handler) : Deno.serve({
    ...listen,
    onListen() {},
    // A body that breaks off is in the access log already.
    onError: () => new Response(null, { status: 500 }),
  }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    handler,
    logs,
    entries,
    ...("stats" in server ? { stats: server.stats } : {}),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await handler.close();
    },
  };
}

function client(options: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({ plainHttp: true, retryDelay: 1, ...options });
}

async function get(
  url: string,
  init: RequestInit = {},
): Promise<{ res: Response; bytes: Uint8Array }> {
  const res = await fetch(url, init);
  return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
}

function layerPath(ref: string, layer: string, query = ""): string {
  return `/v1/images/${encodeURIComponent(ref)}/${layer}${query}`;
}

// --- images

type Files = Record<LayerKind, Uint8Array>;

interface Pushed {
  ref: string;
  amd64: Partial<Files>;
  arm64: Partial<Files>;
  config: Uint8Array;
  build: BuildImageResult;
}

const SIZES: Record<LayerKind, number> = {
  kernel: 70_001,
  initramfs: 200_003,
  rootfs: 3 * 1024 * 1024 + 7,
  disk: 300_000,
  squashfs: 1_000_000,
  uki: 50_000,
  iso: 100_000,
};

/** Builds an amd64 image with every layer kind and an arm64 one, and pushes it. */
async function pushTestImage(
  registry: string,
  repository: string,
  credentials?: { username: string; password: string },
  tag = "1.0",
): Promise<Pushed> {
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const amd64 = {} as Files;
    const inputs: Record<string, Uint8Array | string> = {
      cmdline: "console=ttyS0 quiet",
    };
    for (const [kind, size] of Object.entries(SIZES)) {
      amd64[kind as LayerKind] = randomBytes(size);
      inputs[`amd64-${kind}`] = amd64[kind as LayerKind];
    }
    const arm64 = { kernel: randomBytes(40_000), rootfs: randomBytes(90_000) };
    inputs["arm64-kernel"] = arm64.kernel;
    inputs["arm64-rootfs"] = arm64.rootfs;
    const paths = await writeFiles(dir, inputs);
    const layers: Partial<Record<LayerKind, string>> = {};
    for (const kind of Object.keys(SIZES)) {
      layers[kind as LayerKind] = paths[`amd64-${kind}`]!;
    }
    const store = await Store.open(`${dir}/store`);
    const ref = `${registry}/${repository}:${tag}`;
    const result = await buildImage(store, [
      { arch: "amd64", layers, cmdline: paths.cmdline!, variant: "metal" },
      {
        arch: "arm64",
        layers: {
          kernel: paths["arm64-kernel"]!,
          rootfs: paths["arm64-rootfs"]!,
        },
      },
    ], { tag: ref });
    await pushImage(store, ref, {
      client: client(
        credentials ? { credentials: () => Promise.resolve(credentials) } : {},
      ),
    });
    const manifest = await store.readManifest(result.manifests[0]!.descriptor);
    if (manifest.kind !== "manifest") throw new Error("expected a manifest");
    const config = await store.readBlob(manifest.manifest.config);
    return { ref, amd64, arm64, config, build: result };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The file the registry keeps a blob in. */
function registryBlobPath(reg: TestRegistry, digest: Digest): string {
  const hex = digestHex(digest);
  return `${reg.dir}/data/docker/registry/v2/blobs/sha256/${
    hex.slice(0, 2)
  }/${hex}/data`;
}

/** Every blob file of a store hashes to its name; no other file is under blobs/. */
async function assertStoreSound(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${path}/blobs/sha256`)) {
      const bytes = await Deno.readFile(`${path}/blobs/sha256/${e.name}`);
      assert.equal(digestHex(digestOf(bytes)), e.name, `broken blob ${e.name}`);
      names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names;
}

/** Every layer of the amd64 image in full, in ranges, with HEAD and conditions. */
async function assertLayersServed(base: string, image: Pushed): Promise<void> {
  const all: [string, Uint8Array, string][] = [
    ...Object.entries(image.amd64).map(([k, v]) =>
      [
        k,
        v,
        k === "uki"
          ? "application/efi"
          : k === "iso"
          ? "application/x-iso9660-image"
          : "application/octet-stream",
      ] as [string, Uint8Array, string]
    ),
    ["config", image.config, "application/json"],
  ];
  for (const [layer, source, type] of all) {
    const url = `${base}${layerPath(image.ref, layer)}`;
    const etag = `"${digestOf(source)}"`;
    const { res, bytes } = await get(url);
    assert.equal(res.status, 200, layer);
    assert.equal(res.headers.get("content-type"), type, layer);
    assert.equal(
      res.headers.get("content-length"),
      String(source.byteLength),
    );
    assert.equal(res.headers.get("etag"), etag);
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assertBytes(bytes, source, `${layer} bytes`);

    const size = source.byteLength;
    const ranges: [string, number, number][] = [
      ["bytes=10-19", 10, 20],
      [`bytes=${size - 10}-`, size - 10, size],
      ["bytes=-5", size - 5, size],
      [`bytes=5-${size + 1000}`, 5, size],
      ["bytes=0-", 0, size],
    ];
    for (const [header, start, end] of ranges) {
      const r = await get(url, { headers: { range: header } });
      assert.equal(r.res.status, 206, `${layer} ${header}`);
      assert.equal(
        r.res.headers.get("content-range"),
        `bytes ${start}-${end - 1}/${size}`,
      );
      assert.equal(
        r.res.headers.get("content-length"),
        String(end - start),
      );
      assertBytes(r.bytes, source.subarray(start, end), header);
    }
    const bad = await get(url, { headers: { range: `bytes=${size}-` } });
    assert.equal(bad.res.status, 416);
    assert.equal(bad.res.headers.get("content-range"), `bytes */${size}`);

    const head = await get(url, { method: "HEAD" });
    assert.equal(head.res.status, 200);
    assert.equal(head.res.headers.get("content-length"), String(size));
    assert.equal(head.res.headers.get("etag"), etag);
    assert.equal(head.bytes.byteLength, 0);
    const headRange = await get(url, {
      method: "HEAD",
      headers: { range: "bytes=0-9" },
    });
    assert.equal(headRange.res.status, 206);
    assert.equal(headRange.res.headers.get("content-length"), "10");

    const unchanged = await get(url, { headers: { "if-none-match": etag } });
    assert.equal(unchanged.res.status, 304);
    assert.equal(unchanged.bytes.byteLength, 0);
    const sameRange = await get(url, {
      headers: { range: "bytes=1-3", "if-range": etag },
    });
    assert.equal(sameRange.res.status, 206);
    assertBytes(sameRange.bytes, source.subarray(1, 4));
    const otherRange = await get(url, {
      headers: { range: "bytes=1-3", "if-range": `"sha256:${"0".repeat(64)}"` },
    });
    assert.equal(otherRange.res.status, 200);
    assertBytes(otherRange.bytes, source);
  }
}

// --- tests

Deno.test("createBootHandler() serves every layer in full and in ranges, streamed and cached", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/os");
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    // "stored" serves the store "cache" filled, with a new handler: its
    // first answers are checked against the digest, later ones are not.
    const modes = ["stream", "cache", "stored"] as const;
    for (const kind of ["deno", "direct"] as const) {
      for (const mode of modes) {
        await t.step(
          `${kind}, ${mode}: each layer matches the source bytes`,
          async () => {
            const store = await Store.open(
              `${dir}/${kind}-${mode === "stored" ? "cache" : mode}`,
            );
            await using srv = serve({
              client: client(),
              platform: AMD64,
              ...(mode === "stream" ? {} : { store, cache: true }),
            }, kind);
            await assertLayersServed(srv.url, image);
            const sources = new Set(
              srv.entries.flatMap((e) => e.source ?? []),
            );
            const expected = {
              stream: ["registry"],
              // The config blob is stored when the image is resolved, not
              // by a fill: its first answer is checked.
              cache: ["fill", "store", "store-verify"],
              stored: ["store-verify", "store"],
            }[mode];
            assert.deepEqual([...sources].sort(), expected.sort());
            if (mode !== "stream") {
              const kept = await assertStoreSound(store.path);
              for (const source of Object.values(image.amd64)) {
                assert.ok(kept.includes(digestHex(digestOf(source))));
              }
            }
            if (srv.stats) {
              // Every blob body went through the server's own buffers, and
              // only the one-line answers did not.
              const sent = (blob: boolean) =>
                srv.entries.filter((e) => (e.source !== undefined) === blob)
                  .reduce((sum, e) => sum + e.bytes, 0);
              assert.equal(srv.stats.pooledBytes, sent(true));
              assert.equal(srv.stats.chunkBytes, sent(false));
            }
          },
        );
      }
    }

    await using srv = serve({ client: client(), platform: AMD64 });
    await t.step("another platform is picked with ?platform", async () => {
      const { res, bytes } = await get(
        `${srv.url}${layerPath(image.ref, "kernel", "?platform=linux/arm64")}`,
      );
      assert.equal(res.status, 200);
      assertBytes(bytes, image.arm64.kernel);
    });

    await t.step(
      "an unencoded reference takes its last segment as the layer",
      async () => {
        const { res, bytes } = await get(
          `${srv.url}/v1/images/${image.ref}/initramfs`,
        );
        assert.equal(res.status, 200);
        assertBytes(bytes, image.amd64.initramfs);
      },
    );

    await t.step(
      "the server's platform is the default for an index",
      async () => {
        await using arm = serve({
          client: client(),
          platform: { os: "linux", architecture: "arm64" },
        });
        const { bytes } = await get(
          `${arm.url}${layerPath(image.ref, "kernel")}`,
        );
        assertBytes(bytes, image.arm64.kernel);
      },
    );

    await t.step("a matching If-None-Match answers 304", async () => {
      const etag = `"${digestOf(image.amd64.kernel!)}"`;
      const { res, bytes } = await get(
        `${srv.url}${layerPath(image.ref, "kernel")}`,
        { headers: { "if-none-match": etag } },
      );
      assert.equal(res.status, 304);
      assert.equal(bytes.byteLength, 0);
    });

    await t.step("the access log has one line per request", () => {
      assert.equal(srv.logs.length, 3);
      assert.match(
        srv.logs.find((l) => l.includes("platform=linux/arm64"))!,
        new RegExp(
          `^GET /v1/images/\\S+/kernel\\?platform=linux/arm64 200 ${
            image.arm64.kernel!.byteLength
          } $`,
        ),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() answers HEAD and the image JSON without downloading layers", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/json");
  await using proxy = startProxy(reg);
  const ref = image.ref.replace(reg.host, proxy.host);
  await using srv = serve({ client: client(), platform: AMD64 });

  await t.step("HEAD has the headers of GET and no body", async () => {
    const { res, bytes } = await get(
      `${srv.url}${layerPath(ref, "squashfs")}`,
      {
        method: "HEAD",
      },
    );
    assert.equal(res.status, 200);
    assert.equal(
      res.headers.get("content-length"),
      String(image.amd64.squashfs!.byteLength),
    );
    assert.equal(
      res.headers.get("etag"),
      `"${digestOf(image.amd64.squashfs!)}"`,
    );
    assert.equal(bytes.byteLength, 0);
    const ranged = await get(`${srv.url}${layerPath(ref, "squashfs")}`, {
      method: "HEAD",
      headers: { range: "bytes=0-9" },
    });
    assert.equal(ranged.res.status, 206);
    assert.equal(ranged.res.headers.get("content-length"), "10");
    assert.equal(proxy.blobGets(digestOf(image.amd64.squashfs!)), 0);
  });

  await t.step(
    "the JSON describes the image and links every layer",
    async () => {
      const { res, bytes } = await get(
        `${srv.url}/v1/images/${encodeURIComponent(ref)}`,
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/json");
      const body: BootImageJson = JSON.parse(new TextDecoder().decode(bytes));
      const amd = image.build.manifests[0]!.descriptor;
      assert.equal(body.reference, ref);
      assert.equal(body.digest, image.build.index.digest);
      assert.equal(body.manifest.digest, amd.digest);
      assert.equal(body.platform, "linux/amd64");
      assert.deepEqual(body.platforms, ["linux/amd64", "linux/arm64"]);
      assert.equal(body.commandLine, "console=ttyS0 quiet");
      assert.equal(body.variant, "metal");
      assert.equal(body.source, "registry");
      assert.equal(body.config.mediaType, CONFIG_MEDIA_TYPE);
      assert.deepEqual(
        Object.keys(body.layers).sort(),
        Object.keys(SIZES).sort(),
      );
      for (const [kind, source] of Object.entries(image.amd64)) {
        const layer = body.layers[kind as LayerKind];
        assert.ok(layer, kind);
        assert.equal(layer.digest, digestOf(source));
        assert.equal(layer.size, source.byteLength);
        assert.equal(layer.mediaType, LAYER_MEDIA_TYPES[kind as LayerKind]);
        assert.equal(layer.legacy, false);
        assert.ok(layer.url.startsWith(`${srv.url}/v1/images/`));
        assert.ok(layer.url.includes(encodeURIComponent(`@${amd.digest}`)));
      }
      const kernel = await get(body.layers.kernel!.url);
      assertBytes(kernel.bytes, image.amd64.kernel);
      const config = await get(body.config.url);
      assertBytes(config.bytes, image.config);
    },
  );

  await t.step(
    "a trailing slash asks for the JSON of an unencoded reference",
    async () => {
      const { res, bytes } = await get(
        `${srv.url}/v1/images/${ref}/?platform=linux/arm64`,
      );
      assert.equal(res.status, 200);
      const body = JSON.parse(new TextDecoder().decode(bytes));
      assert.equal(body.platform, "linux/arm64");
      assert.deepEqual(Object.keys(body.layers).sort(), ["kernel", "rootfs"]);
    },
  );

  await t.step("healthz answers ok", async () => {
    const { res, bytes } = await get(`${srv.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(new TextDecoder().decode(bytes), "ok\n");
  });
});

Deno.test("createBootHandler() with a cache downloads each blob from the registry once", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/cache");
  await using proxy = startProxy(reg, { throttleMs: 2 });
  const ref = image.ref.replace(reg.host, proxy.host);
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const store = await Store.open(`${dir}/store`);
    await using srv = serve({
      client: client(),
      store,
      cache: true,
      platform: AMD64,
    });

    await t.step(
      "20 concurrent downloads of an uncached layer share one registry GET",
      async () => {
        const url = `${srv.url}${layerPath(ref, "rootfs")}`;
        const results = await Promise.all(
          Array.from(
            { length: 20 },
            (_, i) =>
              get(
                url,
                i % 5 === 4 ? { headers: { range: "bytes=1000-" } } : {},
              ),
          ),
        );
        results.forEach(({ res, bytes }, i) => {
          if (i % 5 === 4) {
            assert.equal(res.status, 206);
            assertBytes(bytes, image.amd64.rootfs!.subarray(1000));
          } else {
            assert.equal(res.status, 200);
            assertBytes(bytes, image.amd64.rootfs);
          }
        });
        assert.equal(proxy.blobGets(digestOf(image.amd64.rootfs!)), 1);
      },
    );

    await t.step("a second download does not touch the registry", async () => {
      await get(`${srv.url}${layerPath(ref, "kernel")}`);
      const before = proxy.requests.length;
      for (const layer of ["kernel", "rootfs", "config"]) {
        const { res, bytes } = await get(`${srv.url}${layerPath(ref, layer)}`);
        assert.equal(res.status, 200);
        assert.ok(bytes.byteLength > 0);
      }
      const ranged = await get(`${srv.url}${layerPath(ref, "kernel")}`, {
        headers: { range: "bytes=-10" },
      });
      assertBytes(ranged.bytes, image.amd64.kernel!.subarray(-10));
      assert.equal(proxy.requests.length, before);
    });

    await t.step(
      "a client that disconnects mid-stream leaves no broken cache entry",
      async () => {
        const digest = digestOf(image.amd64.squashfs!);
        const res = await fetch(`${srv.url}${layerPath(ref, "squashfs")}`);
        const reader = res.body!.getReader();
        const first = await reader.read();
        assert.ok(first.value && first.value.byteLength > 0);
        await reader.cancel();
        // The fill goes on without its client; the store only ever shows
        // verified blobs, and the blob turns up complete.
        const hex = digestHex(digest);
        for (let i = 0; i < 200; i++) {
          const names = await assertStoreSound(store.path);
          if (names.includes(hex)) break;
          await sleep(25);
        }
        assert.ok((await assertStoreSound(store.path)).includes(hex));
        assert.equal(proxy.blobGets(digest), 1);
        const again = await get(`${srv.url}${layerPath(ref, "squashfs")}`);
        assertBytes(again.bytes, image.amd64.squashfs);
        assert.equal(proxy.blobGets(digest), 1);
        await srv.handler.close();
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() with a cache fetches a blob verify found corrupt again, and replaces it", async () => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/repair");
  await using proxy = startProxy(reg);
  const ref = image.ref.replace(reg.host, proxy.host);
  const digest = digestOf(image.amd64.kernel!);
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const store = await Store.open(`${dir}/store`);
    await using srv = serve({
      client: client(),
      store,
      cache: true,
      platform: AMD64,
    });
    const url = `${srv.url}${layerPath(ref, "kernel")}`;
    assertBytes((await get(url)).bytes, image.amd64.kernel);
    for (let i = 0; i < 200 && !(await store.hasBlob(digest)); i++) {
      await sleep(25);
    }
    // One flipped byte in the cached copy: same size, other digest.
    const path = store.blobPath(digest);
    const bytes = await Deno.readFile(path);
    bytes[10] = bytes[10]! ^ 0xff;
    await Deno.writeFile(path, bytes);
    assert.equal((await verifyStore(store)).ok, false);

    const again = await get(url);
    assert.equal(again.res.status, 200);
    assertBytes(again.bytes, image.amd64.kernel);
    assert.equal(proxy.blobGets(digest), 2);
    await srv.handler.close();
    assert.equal(digestOf(await Deno.readFile(path)), digest);
    assert.equal((await verifyStore(store)).ok, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() never delivers a blob whose digest is wrong", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/corrupt");
  const digest = digestOf(image.amd64.disk!);
  // Same size, other bytes: only the digest can tell.
  await Deno.writeFile(registryBlobPath(reg, digest), randomBytes(SIZES.disk));
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    for (const mode of ["stream", "cache"] as const) {
      await t.step(
        `${mode}: the transfer breaks instead of completing`,
        async () => {
          const store = await Store.open(`${dir}/${mode}`);
          await using srv = serve({
            client: client(),
            platform: AMD64,
            ...(mode === "cache" ? { store, cache: true, retries: 0 } : {}),
          });
          const res = await fetch(`${srv.url}${layerPath(image.ref, "disk")}`);
          await assert.rejects(res.arrayBuffer());
          await srv.handler.close();
          const kept = await assertStoreSound(store.path);
          assert.ok(!kept.includes(digestHex(digest)));
          assert.match(srv.logs.join("\n"), /disk blob|sha256/);
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() cuts a range out of the whole blob when the registry ignores ranges", async () => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/norange");
  await using proxy = startProxy(reg, { ignoreRange: true });
  const ref = image.ref.replace(reg.host, proxy.host);
  const rootfs = image.amd64.rootfs!;
  for (const kind of ["deno", "direct"] as const) {
    await using srv = serve({ client: client(), platform: AMD64 }, kind);
    const url = `${srv.url}${layerPath(ref, "rootfs")}`;
    // Past the first mebibyte, so the skipped part takes several reads.
    const ranges: [number, number][] = [
      [10, 20],
      [2_500_000, 2_600_000],
      [rootfs.byteLength - 5, rootfs.byteLength],
    ];
    for (const [start, end] of ranges) {
      const { res, bytes } = await get(url, {
        headers: { range: `bytes=${start}-${end - 1}` },
      });
      assert.equal(res.status, 206, kind);
      assertBytes(bytes, rootfs.subarray(start, end), `${kind} ${start}`);
    }
    assert.ok(srv.entries.every((e) => e.source === "registry" && !e.error));
  }
});

/** Flips one byte in the middle of a file, as a failing disk might. */
async function flipByte(path: string): Promise<void> {
  // A change must show in the file's times: wait until the clock has moved
  // past the last one, whatever the file system's granularity.
  const before = await Deno.stat(path);
  const last = Math.max(
    before.mtime?.getTime() ?? 0,
    before.ctime?.getTime() ?? 0,
  );
  while (Date.now() < last + 20) await sleep(5);
  using file = await Deno.open(path, { read: true, write: true });
  const at = Math.floor(before.size / 2);
  const one = new Uint8Array(1);
  await file.seek(at, Deno.SeekMode.Start);
  await file.read(one);
  one[0] = one[0]! ^ 0xff;
  await file.seek(at, Deno.SeekMode.Start);
  await file.write(one);
}

/**
 * Fetches a URL: the body in full, or `undefined` when the transfer broke
 * off. A complete body must be the expected bytes.
 */
async function getWhole(
  url: string,
  expected: Uint8Array,
  init: RequestInit = {},
): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array;
  try {
    const res = await fetch(url, init);
    bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status >= 300) return undefined;
  } catch {
    return undefined;
  }
  assertBytes(bytes, expected, `a complete body from ${url}`);
  return bytes;
}

/** The log shows a stored blob whose check failed on the way out. */
function assertCheckFailed(entries: AccessLogEntry[]): void {
  const failed = entries.filter((e) => e.source === "store-verify" && e.error);
  assert.equal(failed.length, 1, JSON.stringify(entries));
  assert.match(
    failed[0]!.error!,
    /^Blob sha256:\w+ in store \S+ is corrupt: its bytes hash to sha256:/,
  );
}

Deno.test("createBootHandler() never sends a corrupt cached blob as a complete body", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/flipped");
  await using proxy = startProxy(reg);
  const ref = image.ref.replace(reg.host, proxy.host);
  const disk = image.amd64.disk!;
  const digest = digestOf(disk);
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    for (const kind of ["deno", "direct"] as const) {
      await t.step(
        `${kind}: after a restart, the first answer breaks and the blob is fetched again`,
        async () => {
          const store = await Store.open(`${dir}/${kind}-restart`);
          const options = {
            client: client(),
            store,
            cache: true,
            platform: AMD64,
          };
          {
            await using first = serve(options, kind);
            await getWhole(`${first.url}${layerPath(ref, "disk")}`, disk);
          }
          const gets = proxy.blobGets(digest);
          const blobFile = `${store.path}/blobs/sha256/${digestHex(digest)}`;
          await flipByte(blobFile);
          await using srv = serve(options, kind);
          const url = `${srv.url}${layerPath(ref, "disk")}`;
          await getWhole(url, disk);
          assertCheckFailed(srv.entries);
          // Marked corrupt, fetched again, and served whole.
          await Deno.stat(`${store.path}/.tmp/corrupt-${digestHex(digest)}`);
          assert.ok(await getWhole(url, disk));
          assert.equal(srv.entries.at(-1)!.source, "fill");
          assert.equal(proxy.blobGets(digest), gets + 1);
          assert.ok(
            (await assertStoreSound(store.path)).includes(digestHex(digest)),
          );
          assert.ok(await getWhole(url, disk));
          assert.equal(srv.entries.at(-1)!.source, "store");
        },
      );

      await t.step(
        `${kind}: a blob changed after it was checked is checked again, ranges too`,
        async () => {
          const store = await Store.open(`${dir}/${kind}-change`);
          await using srv = serve({
            client: client(),
            store,
            cache: true,
            platform: AMD64,
          }, kind);
          const url = `${srv.url}${layerPath(ref, "disk")}`;
          assert.ok(await getWhole(url, disk));
          assert.ok(await getWhole(url, disk));
          assert.equal(srv.entries.at(-1)!.source, "store");
          await flipByte(`${store.path}/blobs/sha256/${digestHex(digest)}`);
          const range = { headers: { range: "bytes=0-99" } };
          // A client may retry a request whose connection closed without
          // an answer: then the blob fetched again answers it.
          await getWhole(url, disk.subarray(0, 100), range);
          assertCheckFailed(srv.entries);
          assert.ok(await getWhole(url, disk.subarray(0, 100), range));
          assert.ok(await getWhole(url, disk));
        },
      );
    }

    await t.step(
      "without a cache, a corrupt blob of a local image is never sent whole",
      async () => {
        const store = await Store.open(`${dir}/local`);
        const files = await writeFiles(dir, { vmlinuz: randomBytes(300_000) });
        const local = "127.0.0.1:9/local/os:1.0";
        const built = await buildImage(store, [{
          arch: "amd64",
          layers: { kernel: files.vmlinuz },
        }], { tag: local });
        assert.ok(built);
        const kernel = await Deno.readFile(files.vmlinuz);
        const hex = digestHex(digestOf(kernel));
        await flipByte(`${store.path}/blobs/sha256/${hex}`);
        await using srv = serve({
          client: client({ retries: 0 }),
          store,
          platform: AMD64,
        }, "direct");
        const url = `${srv.url}${layerPath(local, "kernel")}`;
        assert.equal(await getWhole(url, kernel), undefined);
        // Marked corrupt: the registry is asked, and it cannot be reached.
        const { res } = await get(url);
        assert.equal(res.status, 502);
        await Deno.stat(`${store.path}/.tmp/corrupt-${hex}`);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() keeps working when registry tokens expire", async () => {
  await using reg = await startRegistry({ auth: "token", tokenTtlSeconds: 2 });
  const credentials = { username: reg.username, password: reg.password };
  const image = await pushTestImage(reg.host, "boot/token", credentials);
  // The proxy refuses tokens a second after their first use, as a registry
  // that revokes them early would; the client's own cache expires them at
  // 1.5 s.
  await using proxy = startProxy(reg, { maxTokenAgeMs: 1000 });
  const ref = image.ref.replace(reg.host, proxy.host);
  await using srv = serve({
    client: client({ credentials: () => Promise.resolve(credentials) }),
    platform: AMD64,
    resolveInterval: 0,
  });
  const tokensBefore = reg.tokenRequests;
  for (
    const [layer, wait] of [["kernel", 0], ["initramfs", 1100], [
      "uki",
      1600,
    ]] as const
  ) {
    await sleep(wait);
    const { res, bytes } = await get(`${srv.url}${layerPath(ref, layer)}`);
    assert.equal(res.status, 200, layer);
    assertBytes(bytes, image.amd64[layer]);
  }
  assert.ok(proxy.refused >= 1, "no token was refused");
  assert.ok(reg.tokenRequests - tokensBefore >= 3);
});

Deno.test("createBootHandler() re-resolves a tag at most once per interval and a digest never", async () => {
  await using reg = await startRegistry();
  const first = await pushTestImage(reg.host, "boot/moving");
  const second = await pushTestImage(reg.host, "boot/moving", undefined, "2.0");
  const c = client();
  const repo = { registry: reg.host, repository: "boot/moving" };
  const next = await c.getManifest(repo, "2.0");
  await using proxy = startProxy(reg);
  const ref = first.ref.replace(reg.host, proxy.host);
  await using srv = serve({
    client: c,
    platform: AMD64,
    resolveInterval: 1000,
  });
  const manifestRequests = () =>
    proxy.requests.filter((r) => r.path.includes("/manifests/")).length;
  const kernel = async (reference: string) =>
    (await get(`${srv.url}${layerPath(reference, "kernel")}`)).bytes;

  assertBytes(await kernel(ref), first.amd64.kernel);
  const afterFirst = manifestRequests();
  // Move the tag: one request, well within the interval.
  await c.putManifest(repo, {
    tagOrDigest: "1.0",
    bytes: next.bytes,
    mediaType: next.descriptor.mediaType,
  });
  assertBytes(await kernel(ref), first.amd64.kernel);
  assert.equal(manifestRequests(), afterFirst);
  await sleep(1100);
  assertBytes(await kernel(ref), second.amd64.kernel);

  const pinned = `${proxy.host}/boot/moving@${first.build.index.digest}`;
  assertBytes(await kernel(pinned), first.amd64.kernel);
  const afterPinned = manifestRequests();
  await sleep(1100);
  const { res, bytes } = await get(`${srv.url}${layerPath(pinned, "kernel")}`);
  assertBytes(bytes, first.amd64.kernel);
  assert.equal(
    res.headers.get("cache-control"),
    "public, max-age=31536000, immutable",
  );
  assert.equal(manifestRequests(), afterPinned);
});

Deno.test("createBootHandler() with a cache keeps serving a tag while the registry is down", async () => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/down");
  const proxy = startProxy(reg);
  const ref = image.ref.replace(reg.host, proxy.host);
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const store = await Store.open(`${dir}/store`);
    await using srv = serve({
      client: client({ retries: 0 }),
      store,
      cache: true,
      platform: AMD64,
      resolveInterval: 100,
    });
    const url = `${srv.url}${layerPath(ref, "kernel")}`;
    assertBytes((await get(url)).bytes, image.amd64.kernel);
    await proxy[Symbol.asyncDispose]();
    await sleep(150);
    const { res, bytes } = await get(url);
    assert.equal(res.status, 200);
    assertBytes(bytes, image.amd64.kernel);
    const uncached = await get(`${srv.url}${layerPath(ref, "initramfs")}`);
    assert.equal(uncached.res.status, 502);
    assert.match(
      new TextDecoder().decode(uncached.bytes),
      /Cannot connect to registry/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() with a cache recovers from a blob download that broke off", async () => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/resume");
  const digest = digestOf(image.amd64.rootfs!);
  await using proxy = startProxy(reg, {
    dropOnce: { digest, after: 1024 * 1024 },
  });
  const ref = image.ref.replace(reg.host, proxy.host);
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const store = await Store.open(`${dir}/store`);
    await using srv = serve({
      client: client(),
      store,
      cache: true,
      platform: AMD64,
    });
    const { res, bytes } = await get(`${srv.url}${layerPath(ref, "rootfs")}`);
    assert.equal(res.status, 200);
    assertBytes(bytes, image.amd64.rootfs);
    const gets = proxy.requests.filter((r) =>
      r.method === "GET" && r.path.endsWith(`/blobs/${digest}`)
    );
    // One more GET, from the bytes the store kept (a range) or afresh.
    assert.equal(gets.length, 2);
    assert.match(gets[1]!.range ?? "bytes=0-", /^bytes=\d+-$/);
    assert.ok((await assertStoreSound(store.path)).includes(digestHex(digest)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() reads legacy media types, preferring current ones", async () => {
  await using reg = await startRegistry();
  const c = client();
  const repo = { registry: reg.host, repository: "boot/legacy" };
  const blobs = {
    config: encodeJson({ commandLine: "root=/dev/sda" }).bytes,
    oldKernel: randomBytes(1000),
    newKernel: randomBytes(2000),
    initramfs: randomBytes(3000),
  };
  for (const bytes of Object.values(blobs)) {
    await c.uploadBlob(repo, {
      ...{ digest: digestOf(bytes), size: bytes.byteLength },
      open: (offset, length) =>
        Promise.resolve(
          new Blob([
            bytes.slice(
              offset,
              length === undefined ? undefined : offset + length,
            ),
          ])
            .stream(),
        ),
    });
  }
  const d = (mediaType: string, bytes: Uint8Array) => ({
    mediaType,
    digest: digestOf(bytes),
    size: bytes.byteLength,
  });
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: d(LEGACY_CONFIG_MEDIA_TYPE, blobs.config),
    layers: [
      d(LEGACY_LAYER_MEDIA_TYPES.kernel!, blobs.oldKernel),
      d(LAYER_MEDIA_TYPES.kernel, blobs.newKernel),
      d(LEGACY_LAYER_MEDIA_TYPES.initramfs!, blobs.initramfs),
    ],
  });
  await c.putManifest(repo, {
    tagOrDigest: "old",
    bytes: manifest.bytes,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
  });
  await using srv = serve({ client: c });
  const ref = `${reg.host}/boot/legacy:old`;
  assertBytes(
    (await get(`${srv.url}${layerPath(ref, "kernel")}`)).bytes,
    blobs.newKernel,
  );
  assertBytes(
    (await get(`${srv.url}${layerPath(ref, "initramfs")}`)).bytes,
    blobs.initramfs,
  );
  const json = JSON.parse(
    new TextDecoder().decode(
      (await get(`${srv.url}/v1/images/${encodeURIComponent(ref)}`)).bytes,
    ),
  );
  assert.equal(json.layers.kernel.legacy, false);
  assert.equal(json.layers.initramfs.legacy, true);
  assert.equal(json.commandLine, "root=/dev/sda");
  assert.equal(json.platform, null);
});

Deno.test("createBootHandler() serves an image that exists only in the local store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ironcore-serve-" });
  try {
    const store = await Store.open(`${dir}/store`);
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(5000),
      cmdline: "quiet",
    });
    // Nothing listens on port 9 of 127.0.0.1.
    const ref = "127.0.0.1:9/local/os:1.0";
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: files.vmlinuz },
      cmdline: files.cmdline,
    }], { tag: ref });
    await using srv = serve({
      client: client({ retries: 0 }),
      store,
      platform: AMD64,
    });
    const { res, bytes } = await get(`${srv.url}${layerPath(ref, "kernel")}`);
    assert.equal(res.status, 200);
    assertBytes(bytes, await Deno.readFile(files.vmlinuz));
    const json = JSON.parse(
      new TextDecoder().decode(
        (await get(`${srv.url}/v1/images/${encodeURIComponent(ref)}`)).bytes,
      ),
    );
    assert.equal(json.source, "store");
    assert.equal(json.commandLine, "quiet");
    const pinned = await get(json.layers.kernel.url);
    assertBytes(pinned.bytes, bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBootHandler() answers bad requests with a clear status and message", async (t) => {
  await using reg = await startRegistry();
  const image = await pushTestImage(reg.host, "boot/bad");
  await using srv = serve({ client: client({ retries: 0 }), platform: AMD64 });
  const cases: [string, string, RequestInit, number, RegExp][] = [
    [
      "an unknown layer name",
      layerPath(image.ref, "vmlinuz"),
      {},
      400,
      /Unknown layer "vmlinuz": use one of kernel, initramfs, rootfs, disk, squashfs, uki, iso, config/,
    ],
    [
      "an image without that layer",
      layerPath(image.ref, "uki", "?platform=linux/arm64"),
      {},
      404,
      /has no uki layer: it has rootfs, kernel/,
    ],
    [
      "an unknown platform",
      layerPath(image.ref, "kernel", "?platform=linux/riscv64"),
      {},
      404,
      /Platform linux\/riscv64 not found: the image has linux\/amd64, linux\/arm64/,
    ],
    [
      "a malformed platform",
      layerPath(image.ref, "kernel", "?platform=Linux!"),
      {},
      400,
      /Invalid platform/,
    ],
    [
      "a malformed reference",
      layerPath("Bad Name!", "kernel"),
      {},
      400,
      /Bad Name!/,
    ],
    [
      "a malformed percent-encoding",
      "/v1/images/%E0%A4%A/kernel",
      {},
      400,
      /percent-encoding/,
    ],
    ["a missing reference", "/v1/images/", {}, 400, /Missing image reference/],
    [
      "an image the registry lacks",
      layerPath(`${reg.host}/boot/none:1.0`, "kernel"),
      {},
      404,
      /not found/,
    ],
    [
      "an unreachable registry",
      layerPath("127.0.0.1:9/boot/os:1.0", "kernel"),
      {},
      502,
      /Cannot connect to registry 127\.0\.0\.1:9/,
    ],
    [
      "another path",
      "/v2/",
      {},
      404,
      /use \/v1\/images\/\{reference\}\/\{layer\}/,
    ],
    [
      "another method",
      layerPath(image.ref, "kernel"),
      { method: "POST", body: "x" },
      405,
      /not allowed/,
    ],
  ];
  for (const [name, path, init, status, message] of cases) {
    await t.step(`${name} gets ${status}`, async () => {
      const { res, bytes } = await get(`${srv.url}${path}`, init);
      const text = new TextDecoder().decode(bytes);
      assert.equal(res.status, status, text);
      assert.match(text, message);
      assert.ok(
        text.endsWith("\n") && !text.trimEnd().includes("\n"),
        "one line",
      );
    });
  }
});

Deno.test("createBootHandler() refuses a cache without a store", () => {
  assert.throws(
    () => createBootHandler({ client: client(), cache: true }),
    (e: unknown) =>
      e instanceof TypeError &&
      e.message ===
        "Cannot cache served blobs without a store: pass store (a Store to keep them in) with cache: true",
  );
});

/** Sends a request path exactly as written, without URL normalisation. */
async function rawGet(base: string, path: string): Promise<number> {
  const url = new URL(base);
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  await conn.write(
    new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(
    await new Response(conn.readable).arrayBuffer(),
  );
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
}

Deno.test("createBootHandler() with an allow-list answers 403 for other images without contacting their registry", async (t) => {
  await using reg = await startRegistry();
  await using proxy = startProxy(reg);
  const image = await pushTestImage(proxy.host, "boot/os");
  await using trap = startTrap();
  await using srv = serve({
    client: client({ retries: 0 }),
    platform: AMD64,
    allow: [`${proxy.host}/boot/`, "ghcr.io"],
  });
  const digest = image.build.index.digest;
  const allowed =
    `^Image (\\S+) is not served here: this server serves only images under ${
      proxy.host.replaceAll(".", "\\.")
    }/boot/, ghcr\\.io$`;

  await t.step("an allowed image is served", async () => {
    const { res, bytes } = await get(
      `${srv.url}${layerPath(image.ref, "kernel")}`,
    );
    assert.equal(res.status, 200);
    assertBytes(bytes, image.amd64.kernel);
    const slashes = await get(`${srv.url}/v1/images/${image.ref}/kernel`);
    assert.equal(slashes.res.status, 200);
  });

  const refused: [string, string, string][] = [
    [
      "another registry, URL-encoded",
      layerPath(`${trap.host}/boot/os:1.0`, "kernel"),
      `${trap.host}/boot/os:1.0`,
    ],
    [
      "another registry, with slashes",
      `/v1/images/${trap.host}/boot/os:1.0/kernel`,
      `${trap.host}/boot/os:1.0`,
    ],
    [
      "another registry, as JSON",
      `/v1/images/${trap.host}/boot/os:1.0/`,
      `${trap.host}/boot/os:1.0`,
    ],
    [
      "another registry, by digest",
      `/v1/images/${trap.host}/boot/os@${digest}/kernel`,
      `${trap.host}/boot/os@${digest}`,
    ],
    [
      "another registry, in upper case",
      `/v1/images/LOCALHOST:${trap.host.split(":")[1]}/boot/os:1.0/kernel`,
      `LOCALHOST:${trap.host.split(":")[1]}/boot/os:1.0`,
    ],
    [
      "a repository that only starts like the prefix",
      `/v1/images/${proxy.host}/bootleg/os:1.0/kernel`,
      `${proxy.host}/bootleg/os:1.0`,
    ],
    [
      "the registry outside the prefix",
      `/v1/images/${proxy.host}/os:1.0/kernel`,
      `${proxy.host}/os:1.0`,
    ],
    [
      "a Docker Hub short name",
      "/v1/images/ubuntu/kernel",
      "docker.io/library/ubuntu:latest",
    ],
  ];
  for (const [name, path, reference] of refused) {
    await t.step(`${name} gets 403`, async () => {
      const before = proxy.requests.length;
      for (const method of ["GET", "HEAD"]) {
        const { res, bytes } = await get(`${srv.url}${path}`, { method });
        assert.equal(res.status, 403);
        if (method === "GET") {
          const text = new TextDecoder().decode(bytes);
          const m = new RegExp(allowed).exec(text.trimEnd());
          assert.ok(m, text);
          assert.equal(m[1], reference);
          assert.ok(text.endsWith("\n") && !text.trimEnd().includes("\n"));
        }
      }
      assert.equal(trap.connections(), 0);
      assert.equal(proxy.requests.length, before);
    });
  }

  await t.step(
    "dot segments and encoded slashes do not lead past the list",
    async () => {
      const before = proxy.requests.length;
      for (
        const path of [
          `/v1/images/${proxy.host}/boot/../../${trap.host}/boot/os:1.0/kernel`,
          `/v1/images/${proxy.host}/boot/%2E%2E/%2e%2e/${trap.host}/boot/os:1.0/kernel`,
          `/v1/images/${
            encodeURIComponent(`${proxy.host}/boot/../../${trap.host}/os:1`)
          }/kernel`,
          `/v1/images/${proxy.host}%2Fboot%2F..%2F..%2F${trap.host}%2Fos:1/kernel`,
        ]
      ) {
        const status = await rawGet(srv.url, path);
        assert.ok(status === 403 || status === 400, `${path}: ${status}`);
      }
      assert.equal(trap.connections(), 0);
      assert.equal(proxy.requests.length, before);
    },
  );

  await t.step(
    "without the list the same request reaches the trap",
    async () => {
      const open = createBootHandler({ client: client({ retries: 0 }) });
      try {
        const res = await open(
          new Request(
            `http://localhost${
              layerPath(`${trap.host}/boot/os:1.0`, "kernel")
            }`,
          ),
        );
        await res.body?.cancel();
        assert.equal(res.status, 502);
        assert.ok(trap.connections() > 0);
      } finally {
        await open.close();
      }
    },
  );
});

Deno.test("createBootHandler() matches the allow-list against normalised references", async () => {
  const hosts: string[] = [];
  const recording: typeof fetch = (input) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    hosts.push(url.host);
    return Promise.resolve(
      new Response('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {
        status: 404,
        headers: { "content-type": "application/json" },
      }),
    );
  };
  const handler = createBootHandler({
    client: new RegistryClient({ fetch: recording, retries: 0 }),
    allow: ["index.docker.io/library/ubuntu", "GHCR.IO/org"],
  });
  try {
    const status = async (ref: string) => {
      const res = await handler(
        new Request(`http://localhost/v1/images/${ref}/kernel`),
      );
      await res.body?.cancel();
      return res.status;
    };
    // Allowed: the registry answers 404, so the request got there.
    for (
      const ref of [
        "ubuntu",
        "library/ubuntu:24.04",
        "docker.io/library/ubuntu:24.04",
        "ghcr.io/org/os:1",
        "Ghcr.Io/org/team/os:1",
      ]
    ) {
      assert.equal(await status(ref), 404, ref);
    }
    assert.deepEqual([...new Set(hosts)].sort(), [
      "ghcr.io",
      "registry-1.docker.io",
    ]);
    hosts.length = 0;
    for (
      const ref of [
        "debian",
        "ubuntu2",
        "docker.io/ubuntu/os",
        "library/ubuntu-dev",
        "ghcr.io/organisation/os:1",
        "ghcr.io/os:1",
        "ghcr.io:443/org/os:1",
      ]
    ) {
      assert.equal(await status(ref), 403, ref);
    }
    assert.deepEqual(hosts, []);
  } finally {
    await handler.close();
  }
});

Deno.test("createBootHandler() refuses a malformed or empty allow-list", () => {
  for (
    const [allow, message] of [
      [[], /^The allow-list is empty: list the registries/],
      [
        ["ubuntu"],
        /^Invalid allow-list entry "ubuntu": it names no registry: start it with one, e\.g\. ghcr\.io\/ubuntu/,
      ],
      [["ghcr.io/org/os:1.0"], /without tag or digest$/],
      [["ghcr.io/Org"], /lowercase repository prefix/],
      [["https://ghcr.io"], /use a registry such as ghcr\.io/],
      [[""], /use a registry such as ghcr\.io/],
    ] as const
  ) {
    assert.throws(
      () => createBootHandler({ client: client(), allow }),
      (e: unknown) => e instanceof TypeError && message.test(e.message),
    );
  }
});
