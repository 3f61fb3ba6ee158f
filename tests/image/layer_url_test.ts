import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { NotFoundError } from "../../src/errors.ts";
import { type Digest, digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient, type Repository } from "../../src/registry/client.ts";
import {
  LAYER_MEDIA_TYPES,
  LEGACY_CONFIG_MEDIA_TYPE,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type LayerUrl, layerUrl } from "../../src/image/layer_url.ts";
import {
  manifestResponse,
  startFakeRegistry,
} from "../_helpers/fake_registry.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

/**
 * Fetches what `url` printed the way a plain HTTP client would: with
 * exactly the headers given, and no others.
 */
async function fetchWith(req: LayerUrl): Promise<Uint8Array> {
  const headers = new Headers();
  for (const [k, values] of Object.entries(req.headers)) {
    for (const v of values) headers.append(k, v);
  }
  const res = await fetch(req.url, { headers });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, new TextDecoder().decode(bytes));
  return bytes;
}

/** The `access` claim of a JWT, without checking its signature. */
function tokenAccess(header: string): unknown {
  const payload = header.replace(/^Bearer /, "").split(".")[1]!;
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(json).access;
}

async function uploadBytes(
  client: RegistryClient,
  repo: Repository,
  bytes: Uint8Array,
): Promise<{ digest: Digest; size: number }> {
  const d = { digest: digestOf(bytes), size: bytes.byteLength };
  await client.uploadBlob(repo, {
    ...d,
    open: () =>
      Promise.resolve(
        new ReadableStream({
          start(c) {
            c.enqueue(bytes.slice());
            c.close();
          },
        }),
      ),
  });
  return d;
}

Deno.test("layerUrl() against a registry with token auth", async (t) => {
  await using reg = await startRegistry({ auth: "token" });
  const client = new RegistryClient({
    plainHttp: true,
    credentials: () =>
      Promise.resolve({ username: reg.username, password: reg.password }),
  });
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(4096),
      initrd: randomBytes(2048),
      squashfs: randomBytes(8192),
    });
    const ref = `${reg.host}/url/os:1.0`;
    const image: BuildImageResult = await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
      },
      {
        arch: "arm64",
        layers: { kernel: files.vmlinuz, squashfs: files.squashfs },
      },
    ], { tag: ref });
    await pushImage(store, ref, { client: client });

    await t.step(
      "the manifest URL and its Bearer header fetch the index",
      async () => {
        // A fresh client, as the CLI has: it must go through the auth flow.
        const fresh = new RegistryClient({
          plainHttp: true,
          credentials: () =>
            Promise.resolve({ username: reg.username, password: reg.password }),
        });
        const req = await layerUrl(fresh, { reference: ref });
        assert.equal(
          req.url,
          `${reg.url}/v2/url/os/manifests/${image.index.digest}`,
        );
        assert.deepEqual(req.headers.Accept, [OCI_INDEX_MEDIA_TYPE]);
        const auth = req.headers.Authorization;
        assert.equal(auth?.length, 1);
        assert.match(auth[0]!, /^Bearer \S+$/);
        assert.deepEqual(tokenAccess(auth[0]!), [
          { type: "repository", name: "url/os", actions: ["pull"] },
        ]);
        assert.equal(digestOf(await fetchWith(req)), image.index.digest);
      },
    );

    await t.step(
      "a layer URL for a platform fetches that layer's bytes",
      async () => {
        const req = await layerUrl(client, {
          reference: ref,
          layer: "squashfs",
          platform: { os: "linux", architecture: "arm64" },
        });
        assert.equal(req.headers.Accept, undefined);
        const bytes = await fetchWith(req);
        assert.deepEqual(bytes, await Deno.readFile(files.squashfs));
        assert.match(req.url, /\/v2\/url\/os\/blobs\/sha256:[0-9a-f]{64}$/);
      },
    );

    await t.step(
      "a platform without a layer points at that platform's manifest",
      async () => {
        const req = await layerUrl(client, {
          reference: ref,
          platform: { os: "linux", architecture: "amd64" },
        });
        const amd = image.manifests.find((m) => m.arch === "amd64")!;
        assert.deepEqual(req.headers.Accept, [OCI_MANIFEST_MEDIA_TYPE]);
        assert.equal(digestOf(await fetchWith(req)), amd.descriptor.digest);
      },
    );

    await t.step(
      "a layer the image lacks is NotFoundError naming the layers it has",
      async () => {
        await assert.rejects(
          layerUrl(client, {
            reference: ref,
            layer: "uki",
            platform: { os: "linux", architecture: "arm64" },
          }),
          (e: unknown) =>
            e instanceof NotFoundError &&
            e.message ===
              `Image ${ref} has no uki layer: it has squashfs, kernel`,
        );
      },
    );

    await t.step("legacy layer media types are found", async () => {
      const repo = { registry: reg.host, repository: "url/legacy" };
      const config = encodeJson({ commandLine: "console=tty0" });
      await uploadBytes(client, repo, config.bytes);
      const kernel = await uploadBytes(client, repo, randomBytes(3000));
      const initrd = await uploadBytes(client, repo, randomBytes(1500));
      const manifest = encodeJson({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        config: {
          mediaType: LEGACY_CONFIG_MEDIA_TYPE,
          digest: config.digest,
          size: config.size,
        },
        layers: [
          { mediaType: LEGACY_LAYER_MEDIA_TYPES.kernel!, ...kernel },
          { mediaType: LEGACY_LAYER_MEDIA_TYPES.initramfs!, ...initrd },
        ],
      });
      await client.putManifest(repo, {
        tagOrDigest: "old",
        bytes: manifest.bytes,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
      });
      const legacyRef = `${reg.host}/url/legacy:old`;
      for (
        const [layer, want] of [["kernel", kernel], [
          "initramfs",
          initrd,
        ]] as const
      ) {
        const req = await layerUrl(client, { reference: legacyRef, layer });
        assert.equal(req.url, client.blobUrl(repo, want.digest));
        assert.equal(digestOf(await fetchWith(req)), want.digest);
      }
    });

    await t.step("a current media type wins over a legacy one", async () => {
      const repo = { registry: reg.host, repository: "url/legacy" };
      const config = encodeJson({ commandLine: "console=tty0" });
      const old = await uploadBytes(client, repo, randomBytes(100));
      const current = await uploadBytes(client, repo, randomBytes(100));
      const manifest = encodeJson({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        config: {
          mediaType: LEGACY_CONFIG_MEDIA_TYPE,
          digest: config.digest,
          size: config.size,
        },
        layers: [
          { mediaType: LEGACY_LAYER_MEDIA_TYPES.kernel!, ...old },
          { mediaType: LAYER_MEDIA_TYPES.kernel, ...current },
        ],
      });
      await client.putManifest(repo, {
        tagOrDigest: "mixed",
        bytes: manifest.bytes,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
      });
      const req = await layerUrl(client, {
        reference: `${reg.host}/url/legacy:mixed`,
        layer: "kernel",
      });
      assert.equal(digestOf(await fetchWith(req)), current.digest);
    });
  });
});

Deno.test("layerUrl() on an anonymous registry gives only Accept for a manifest", async () => {
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: LEGACY_CONFIG_MEDIA_TYPE,
      digest: digestOf("{}"),
      size: 2,
    },
    layers: [],
  });
  await using fake = startFakeRegistry((req) =>
    manifestResponse(manifest.bytes as Uint8Array<ArrayBuffer>, {
      head: req.method === "HEAD",
    })
  );
  const req = await layerUrl(new RegistryClient({ plainHttp: true }), {
    reference: `${fake.host}/r:1`,
  });
  assert.deepEqual(req, {
    url: `${fake.url}/v2/r/manifests/${manifest.digest}`,
    headers: { Accept: [OCI_MANIFEST_MEDIA_TYPE] },
  });
});
