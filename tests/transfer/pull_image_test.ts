import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import {
  DigestMismatchError,
  NotFoundError,
  SizeMismatchError,
} from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { imageFromManifest } from "../../src/spec/image_from_manifest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import {
  manifestResponse,
  notFound,
  startFakeRegistry,
} from "../_helpers/fake_registry.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";

interface Sent {
  method: string;
  url: URL;
}

function recordingClient(): { client: RegistryClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = new RegistryClient({
    plainHttp: true,
    retryDelay: 1,
    fetch: (input, init) => {
      sent.push({ method: init?.method ?? "GET", url: new URL(String(input)) });
      return fetch(input, init);
    },
  });
  return { client, sent };
}

/** Resolves every manifest of a stored tag as an IronCore image. */
async function resolveStored(store: Store, ref: string) {
  const { descriptor } = await store.resolve(ref);
  const top = await store.readManifest(descriptor);
  const manifests = top.kind === "index"
    ? await Promise.all(top.index.manifests.map((d) => store.readManifest(d)))
    : [top];
  return await Promise.all(manifests.map(async (m) => {
    assert.equal(m.kind, "manifest");
    if (m.kind !== "manifest") throw new Error("unreachable");
    for (const l of m.manifest.layers) {
      assert.ok(await store.hasBlob(l.digest, l.size), `layer ${l.digest}`);
    }
    return imageFromManifest(
      m.manifest,
      await store.readBlob(m.manifest.config),
    );
  }));
}

/** Every file under `root` by relative path, as `"<size> <sha256 hex>"`. */
async function snapshotDir(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const key = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) {
        await walk(`${dir}/${e.name}`, key);
      } else {
        const bytes = await Deno.readFile(`${dir}/${e.name}`);
        out[key] = `${bytes.byteLength} ${digestHex(digestOf(bytes))}`;
      }
    }
  }
  await walk(root, "");
  return out;
}

/**
 * Asserts that a failed pull left nothing wrong in the store: `index.json`
 * and every earlier file unchanged, no temporary files, and any new file a
 * complete blob (not `bad`) whose bytes hash to its name.
 */
async function assertStoreClean(
  path: string,
  before: Record<string, string>,
  bad: Digest,
): Promise<void> {
  const after = await snapshotDir(path);
  for (const [name, entry] of Object.entries(before)) {
    assert.equal(after[name], entry, `${name} changed`);
  }
  for (const [name, entry] of Object.entries(after)) {
    if (name in before) continue;
    const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name);
    assert.ok(m, `unexpected new file ${name}`);
    assert.notEqual(m[1], digestHex(bad), "the bad blob was stored");
    assert.equal(entry.split(" ")[1], m[1], `${name} does not match its name`);
  }
}

/** The file the registry keeps a blob's bytes in. */
function registryBlobPath(reg: TestRegistry, digest: Digest): string {
  const hex = digestHex(digest);
  return `${reg.dir}/data/docker/registry/v2/blobs/sha256/${
    hex.slice(0, 2)
  }/${hex}/data`;
}

Deno.test("pullImage() against a real registry", async (t) => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const source = await Store.open(`${dir}/source`);
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(4096),
      initrd: randomBytes(2048),
      squashfs: randomBytes(8192),
      cmdline: "console=ttyS0 quiet",
    });
    const ref = `${reg.host}/pull/os:1.0`;
    const image: BuildImageResult = await buildImage(source, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
        cmdline: files.cmdline,
      },
      {
        arch: "arm64",
        layers: { kernel: files.vmlinuz, squashfs: files.squashfs },
      },
    ], { tag: ref });
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });
    const target = await Store.open(`${dir}/target`);

    await t.step(
      "an index comes down with every blob verified and is tagged locally",
      async () => {
        const { client } = recordingClient();
        const result = await pullImage(target, ref, { client: client });
        assert.equal(result.reference, ref);
        assert.equal(result.descriptor.digest, image.index.digest);
        assert.equal(result.descriptor.mediaType, OCI_INDEX_MEDIA_TYPE);
        assert.equal(result.downloaded, 5);
        assert.equal(result.skipped, 0);
        const { descriptor } = await target.resolve(ref);
        assert.equal(descriptor.digest, image.index.digest);
        const images = await resolveStored(target, ref);
        assert.equal(images[0]!.config.commandLine, "console=ttyS0 quiet");
        assert.ok(images[0]!.initramfs);
        assert.ok(images[1]!.squashfs);
        assert.equal(images[0]!.kernel?.digest, images[1]!.kernel?.digest);
      },
    );

    await t.step(
      "blobs already in the store are not downloaded again",
      async () => {
        const { client, sent } = recordingClient();
        const result = await pullImage(target, ref, { client: client });
        assert.equal(result.downloaded, 0);
        assert.equal(result.skipped, 5);
        assert.equal(
          sent.filter((s) => s.url.pathname.includes("/blobs/")).length,
          0,
        );
      },
    );

    await t.step(
      "a platform is pulled alone as a single-arch image",
      async () => {
        const single = await Store.open(`${dir}/single`);
        const { client } = recordingClient();
        const result = await pullImage(single, ref, {
          client: client,
          platform: { os: "linux", architecture: "arm64" },
        });
        const arm = image.manifests.find((m) => m.arch === "arm64")!;
        assert.equal(result.descriptor.digest, arm.descriptor.digest);
        assert.equal(result.descriptor.mediaType, OCI_MANIFEST_MEDIA_TYPE);
        assert.equal(result.downloaded, 3);
        const { descriptor } = await single.resolve(ref);
        assert.equal(descriptor.digest, arm.descriptor.digest);
        const [resolved] = await resolveStored(single, ref);
        assert.ok(resolved?.squashfs);
        assert.equal(resolved?.initramfs, undefined);
        assert.equal(
          await single.hasBlob(digestOf(await Deno.readFile(files.initrd))),
          false,
        );
      },
    );

    await t.step(
      "a platform the index lacks is NotFoundError naming those it has",
      async () => {
        const { client } = recordingClient();
        await assert.rejects(
          pullImage(target, ref, {
            client: client,
            platform: { os: "linux", architecture: "riscv64" },
          }),
          (e: unknown) =>
            e instanceof NotFoundError &&
            e.message ===
              "Platform linux/riscv64 not found: the image has linux/amd64, linux/arm64",
        );
      },
    );

    await t.step("a missing tag or repository is NotFoundError", async () => {
      const { client } = recordingClient();
      await assert.rejects(
        pullImage(target, `${reg.host}/pull/os:nope`, { client: client }),
        /Manifest pull\/os:nope not found in/,
      );
      await assert.rejects(
        pullImage(target, `${reg.host}/pull/nothing:1`, { client: client }),
        NotFoundError,
      );
    });

    await t.step(
      "a blob whose bytes do not match its digest fails the pull and is not stored",
      async () => {
        const bad = `${reg.host}/pull/tampered:1`;
        const layerBytes = randomBytes(64 * 1024);
        const layer = digestOf(layerBytes);
        await Deno.writeFile(`${dir}/tampered-kernel`, layerBytes);
        await buildImage(source, [{
          arch: "amd64",
          layers: { kernel: `${dir}/tampered-kernel` },
          cmdline: files.cmdline,
        }], { tag: bad });
        await pushImage(source, bad, {
          client: new RegistryClient({ plainHttp: true }),
        });
        // Same size, different bytes: only the digest can tell.
        const data = registryBlobPath(reg, layer);
        const stored = await Deno.readFile(data);
        assert.equal(stored.byteLength, layerBytes.byteLength);
        stored[1000] = stored[1000]! ^ 0xff;
        await Deno.writeFile(data, stored);

        const before = await snapshotDir(target.path);
        const { client } = recordingClient();
        await assert.rejects(
          pullImage(target, bad, { client: client }),
          (e: unknown) => {
            assert.ok(e instanceof DigestMismatchError);
            assert.equal(e.expected, layer);
            return true;
          },
        );
        await assertStoreClean(target.path, before, layer);
        await assert.rejects(target.resolve(bad), NotFoundError);
      },
    );
  });
});

Deno.test("pullImage() refuses a blob longer or shorter than its descriptor says", async () => {
  const config = encodeJson({ commandLine: "x" });
  const kernel = randomBytes(1000);
  const kernelDigest = digestOf(kernel);
  const manifestFor = (size: number) =>
    encodeJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: {
        mediaType: CONFIG_MEDIA_TYPE,
        digest: config.digest,
        size: config.size,
      },
      layers: [{
        mediaType: LAYER_MEDIA_TYPES.kernel,
        digest: kernelDigest,
        size,
      }],
    });
  const manifests: Record<string, ReturnType<typeof encodeJson>> = {
    long: manifestFor(900),
    short: manifestFor(1100),
  };
  await using fake = startFakeRegistry((req) => {
    const tag = /\/manifests\/(\w+)$/.exec(req.path)?.[1];
    const m = tag ? manifests[tag] : undefined;
    if (m) return manifestResponse(m.bytes as Uint8Array<ArrayBuffer>);
    if (req.path.endsWith(`/blobs/${config.digest}`)) {
      return new Response(config.bytes as Uint8Array<ArrayBuffer>);
    }
    if (req.path.endsWith(`/blobs/${kernelDigest}`)) {
      return new Response(kernel as Uint8Array<ArrayBuffer>);
    }
    return notFound();
  });
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    // Lay the store out first, so that only the pull's effects show.
    await blobStoreOf(store).putBytes(config.bytes, CONFIG_MEDIA_TYPE);
    const before = await snapshotDir(store.path);
    const { client } = recordingClient();
    for (const [tag, size] of [["long", 900], ["short", 1100]] as const) {
      await assert.rejects(
        pullImage(store, `${fake.host}/r:${tag}`, { client: client }),
        (e: unknown) => {
          assert.ok(e instanceof SizeMismatchError, String(e));
          assert.equal(e.expected, size);
          return true;
        },
      );
      await assertStoreClean(store.path, before, kernelDigest);
    }
  });
});

Deno.test("pullImage() fetches the manifests of an index at once", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, { vmlinuz: randomBytes(1000) });
    const origin = await Store.open(`${dir}/origin`);
    const ref = `${reg.host}/pull/many:1`;
    await buildImage(
      origin,
      ["amd64", "arm64", "riscv64"].map((arch) => ({
        arch,
        layers: { kernel: f.vmlinuz },
      })),
      { tag: ref },
    );
    const plain = new RegistryClient({ plainHttp: true });
    await pushImage(origin, ref, { client: plain });
    let open = 0;
    let most = 0;
    const client = new RegistryClient({
      plainHttp: true,
      fetch: async (input, init) => {
        const byDigest = /\/manifests\/sha256:/.test(String(input));
        if (byDigest) most = Math.max(most, ++open);
        try {
          // Held a moment, so that requests made together overlap.
          if (byDigest) await new Promise((r) => setTimeout(r, 20));
          return await fetch(input, init);
        } finally {
          if (byDigest) open--;
        }
      },
    });
    const store = await Store.open(`${dir}/store`);
    await pullImage(store, ref, { client });
    assert.equal(most, 3, "the three manifests were asked for together");
  });
});
