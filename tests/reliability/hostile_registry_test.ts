import assert from "node:assert/strict";
import {
  InvalidImageError,
  RegistryError,
  SizeMismatchError,
} from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  MAX_DESCRIPTORS,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import {
  type FakeRequest,
  manifestResponse,
  notFound,
  startFakeRegistry,
} from "../_helpers/fake_registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobFiles, MIB, storeTags } from "./_common.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const CONFIG = encodeJson({ commandLine: "quiet" });

function manifest(
  layers: { mediaType: string; digest: string; size: number }[],
): ReturnType<typeof encodeJson> {
  return encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: CONFIG.digest,
      size: CONFIG.size,
    },
    layers,
  });
}

function index(
  manifests: { mediaType: string; digest: string; size: number }[],
): ReturnType<typeof encodeJson> {
  return encodeJson({
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests,
  });
}

function client(): RegistryClient {
  return new RegistryClient({ plainHttp: true, retryDelay: 1, retries: 1 });
}

/** Every file under a directory, by `stat` (empty when it does not exist). */
function filesUnder(root: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else {
        try {
          out.push({ path, size: Deno.statSync(path).size });
        } catch {
          // Renamed or removed meanwhile.
        }
      }
    }
  };
  walk(root);
  return out;
}

Deno.test("pullImage() withstands a hostile registry", async (t) => {
  // Documents served by path suffix; the handler changes per step.
  let serve: (req: FakeRequest) => Response | Promise<Response> = () =>
    notFound();
  await using fake = startFakeRegistry((req) => serve(req));
  const docs = new Map<string, { bytes: Uint8Array; mediaType: string }>();
  const serveDocs = (req: FakeRequest) => {
    for (const [suffix, doc] of docs) {
      if (req.path.endsWith(suffix)) {
        return manifestResponse(doc.bytes as Bytes, {
          mediaType: doc.mediaType,
        });
      }
    }
    if (req.path.endsWith(`/blobs/${CONFIG.digest}`)) {
      return new Response(CONFIG.bytes as Bytes);
    }
    return notFound();
  };

  await withTempDir(async (dir) => {
    await t.step(
      "a redirect loop on a blob is cut off after a bounded number of hops",
      async () => {
        const layer = {
          mediaType: LAYER_MEDIA_TYPES.kernel,
          digest: digestOf("k"),
          size: 1,
        };
        const m = manifest([layer]);
        docs.clear();
        docs.set("/manifests/loop", {
          bytes: m.bytes,
          mediaType: OCI_MANIFEST_MEDIA_TYPE,
        });
        serve = (req) =>
          req.path.includes("/blobs/")
            ? new Response(null, {
              status: 302,
              headers: { location: `${req.path}?hop=${fake.requests.length}` },
            })
            : serveDocs(req);
        const store = await Store.open(`${dir}/loop`);
        await assert.rejects(
          pullImage(store, `${fake.host}/os/demo:loop`, {
            client: client(),
            retries: 1,
          }),
          (e: unknown) => {
            assert.ok(e instanceof RegistryError, String(e));
            assert.match(e.message, /redirected more than \d+ times/);
            return true;
          },
        );
        // At most 11 requests per attempt, two attempts per blob.
        const hops = fake.count("GET", `/v2/os/demo/blobs/${layer.digest}`);
        assert.ok(hops >= 11 && hops <= 22, `${hops} requests`);
        assert.deepEqual(await storeTags(`${dir}/loop`).catch(() => []), []);
      },
    );

    await t.step(
      `a manifest with more than ${MAX_DESCRIPTORS} layers is rejected before any download`,
      async () => {
        const layers = Array.from({ length: MAX_DESCRIPTORS + 1 }, (_, i) => ({
          mediaType: LAYER_MEDIA_TYPES.rootfs,
          digest: digestOf(String(i)),
          size: 1,
        }));
        const m = manifest(layers);
        docs.clear();
        docs.set("/manifests/huge", {
          bytes: m.bytes,
          mediaType: OCI_MANIFEST_MEDIA_TYPE,
        });
        serve = serveDocs;
        const before = fake.requests.length;
        const store = await Store.open(`${dir}/huge`);
        await assert.rejects(
          pullImage(store, `${fake.host}/os/demo:huge`, { client: client() }),
          (e: unknown) => {
            assert.ok(e instanceof InvalidImageError, String(e));
            assert.match(e.message, /more than \d+ entries/);
            return true;
          },
        );
        const blobRequests = fake.requests.slice(before).filter((r) =>
          r.path.includes("/blobs/")
        );
        assert.equal(blobRequests.length, 0);
        assert.deepEqual(filesUnder(`${dir}/huge`), []);
      },
    );

    await t.step("an index that nests an index is rejected", async () => {
      const leaf = manifest([]);
      const inner = index([{
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: leaf.digest,
        size: leaf.size,
      }]);
      // Declared as an index.
      const outer = index([{
        mediaType: OCI_INDEX_MEDIA_TYPE,
        digest: inner.digest,
        size: inner.size,
      }]);
      // Declared as a manifest, but the bytes are an index.
      const disguised = index([{
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: inner.digest,
        size: inner.size,
      }]);
      docs.clear();
      for (
        const [suffix, doc, mediaType] of [
          ["/manifests/nested", outer, OCI_INDEX_MEDIA_TYPE],
          ["/manifests/disguised", disguised, OCI_INDEX_MEDIA_TYPE],
          [`/manifests/${inner.digest}`, inner, OCI_INDEX_MEDIA_TYPE],
          [`/manifests/${leaf.digest}`, leaf, OCI_MANIFEST_MEDIA_TYPE],
        ] as const
      ) {
        docs.set(suffix, { bytes: doc.bytes, mediaType });
      }
      serve = serveDocs;
      for (const tag of ["nested", "disguised"]) {
        const path = `${dir}/${tag}`;
        await assert.rejects(
          pullImage(await Store.open(path), `${fake.host}/os/demo:${tag}`, {
            client: client(),
          }),
          (e: unknown) => {
            assert.ok(e instanceof InvalidImageError, String(e));
            assert.match(
              e.message,
              new RegExp(
                `${inner.digest}.*(expected an image manifest|itself an index)`,
              ),
            );
            return true;
          },
        );
        assert.deepEqual(filesUnder(path), []);
      }
    });

    await t.step(
      "a blob longer than its descriptor is refused with no more than the declared size on disk",
      async () => {
        const declared = 6 * MIB + 123;
        const layer = {
          mediaType: LAYER_MEDIA_TYPES.rootfs,
          digest: digestOf("whatever"),
          size: declared,
        };
        const m = manifest([layer]);
        docs.clear();
        docs.set("/manifests/long", {
          bytes: m.bytes,
          mediaType: OCI_MANIFEST_MEDIA_TYPE,
        });
        const path = `${dir}/long`;
        let produced = 0;
        let largest = 0;
        const chunk = new Uint8Array(64 * 1024).fill(7);
        serve = (req) => {
          if (!req.path.endsWith(`/blobs/${layer.digest}`)) {
            return serveDocs(req);
          }
          // 256 MiB, made on demand; every chunk checks what is on disk.
          return new Response(
            new ReadableStream<Uint8Array>({
              pull(controller) {
                for (const f of filesUnder(path)) {
                  largest = Math.max(largest, f.size);
                }
                if (produced >= 256 * MIB) return controller.close();
                produced += chunk.byteLength;
                controller.enqueue(chunk.slice());
              },
            }),
          );
        };
        const store = await Store.open(path);
        await assert.rejects(
          pullImage(store, `${fake.host}/os/demo:long`, { client: client() }),
          (e: unknown) => {
            assert.ok(e instanceof SizeMismatchError, String(e));
            assert.equal(e.expected, declared);
            return true;
          },
        );
        assert.ok(largest > 0, "the download reached the disk");
        assert.ok(largest <= declared, `${largest} bytes on disk`);
        assert.ok(produced < 64 * MIB, `the client read ${produced} bytes`);
        assert.ok(!(await blobFiles(path)).has(layer.digest));
        assert.deepEqual(
          filesUnder(`${path}/.tmp`),
          [],
          "the partial download was discarded",
        );
        assert.deepEqual(await storeTags(path).catch(() => []), []);
      },
    );
  });
});
