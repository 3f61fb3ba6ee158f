import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { encodeJson, OCI_MANIFEST_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { randomBytes } from "../_helpers/fixtures.ts";
import { manifestResponse, notFound } from "../_helpers/fake_registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobFiles, MIB, withDeadline } from "./_common.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const LAYER: Bytes = randomBytes(2 * MIB);
const LAYER_DIGEST = digestOf(LAYER);
const CONFIG = encodeJson({ commandLine: "quiet" });
const MANIFEST = encodeJson({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST_MEDIA_TYPE,
  config: {
    mediaType: CONFIG_MEDIA_TYPE,
    digest: CONFIG.digest,
    size: CONFIG.size,
  },
  layers: [{
    mediaType: LAYER_MEDIA_TYPES.rootfs,
    digest: LAYER_DIGEST,
    size: LAYER.byteLength,
  }],
});

/**
 * A registry with one image on a fixed port. The first download of the
 * layer breaks off halfway, and the registry goes down with it for
 * `downtime` ms (connections to its port are refused), then comes back on
 * the same port: a rolling restart.
 */
function restartingRegistry(downtime: number) {
  let controller = new AbortController();
  let layerGets = 0;
  let port = 0;
  let back: Promise<void> | undefined;
  const handler = (req: Request): Response | Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/v2/") return Response.json({});
    if (path.endsWith("/manifests/1")) {
      return manifestResponse(MANIFEST.bytes as Bytes);
    }
    if (path.endsWith(`/blobs/${CONFIG.digest}`)) {
      return new Response(CONFIG.bytes as Bytes);
    }
    if (!path.endsWith(`/blobs/${LAYER_DIGEST}`)) return notFound();
    if (++layerGets > 1 || req.headers.has("range")) {
      const start = Number(
        /bytes=(\d+)-/.exec(req.headers.get("range") ?? "")?.[1] ?? 0,
      );
      return new Response(LAYER.slice(start), {
        status: start > 0 ? 206 : 200,
        headers: start > 0
          ? {
            "content-range": `bytes ${start}-${
              LAYER.byteLength - 1
            }/${LAYER.byteLength}`,
          }
          : {},
      });
    }
    // Half the layer, then the registry restarts.
    let sent = false;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(LAYER.slice(0, MIB));
            return;
          }
          // Going down closes the connection in the middle of the body.
          c.close();
          controller.abort();
          back = new Promise((resolve) =>
            setTimeout(() => {
              controller = new AbortController();
              start();
              resolve();
            }, downtime)
          );
        },
      }),
      { headers: { "content-length": String(LAYER.byteLength) } },
    );
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  const start = () => {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      signal: controller.signal,
      onListen() {},
    }, handler);
    port = server.addr.port;
  };
  start();
  return {
    host: `127.0.0.1:${port}`,
    get layerGets() {
      return layerGets;
    },
    async [Symbol.asyncDispose]() {
      await back;
      controller.abort();
      await server.finished;
    },
  };
}

Deno.test("pull survives a registry that restarts mid-transfer", async () => {
  await using registry = restartingRegistry(1500);
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    // Default backoff: the retries of one request span about 2 to 4 s.
    const client = new RegistryClient({ plainHttp: true });
    const result = await withDeadline(
      "pull",
      () => pullImage(store, `${registry.host}/os/demo:1`, { client }),
      30_000,
    );
    assert.equal(result.downloaded, 2);
    assert.ok((await blobFiles(`${dir}/store`)).has(LAYER_DIGEST));
    assert.ok(registry.layerGets >= 2, `${registry.layerGets} layer requests`);
  });
});

Deno.test("a registry that never answered is given up on after one retry of a refused connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const host = `127.0.0.1:${listener.addr.port}`;
  listener.close();
  let attempts = 0;
  const client = new RegistryClient({
    plainHttp: true,
    fetch: (input, init) => {
      attempts++;
      return fetch(input, init);
    },
  });
  await withTempDir(async (dir) => {
    await assert.rejects(
      pullImage(await Store.open(dir), `${host}/os/demo:1`, { client }),
      (e: unknown) => e instanceof NetworkError && e.kind === "refused",
    );
  });
  assert.equal(attempts, 2);
});
