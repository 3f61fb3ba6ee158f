import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
  SizeMismatchError,
} from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import {
  ANNOTATION_TITLE,
  type Descriptor,
  encodeJson,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import {
  openLayer,
  writeLayer,
  writeLayerFile,
} from "../../src/image/open_layer.ts";
import { hostPlatform } from "../../src/oci/platform.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { validateImage } from "../../src/image/validate_image.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobStoreOf, tagIndexOf } from "../../src/store/_internal.ts";

async function bytesOf(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function filesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

function registryBlobPath(reg: TestRegistry, digest: Digest): string {
  const hex = digestHex(digest);
  return `${reg.dir}/data/docker/registry/v2/blobs/sha256/${
    hex.slice(0, 2)
  }/${hex}/data`;
}

Deno.test("extract from the store and from a registry", async (t) => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      "vmlinuz-amd64": randomBytes(1024 * 1024 + 333),
      "vmlinuz-arm64": randomBytes(70_000),
      initrd: randomBytes(5000),
      squashfs: randomBytes(12_000),
      disk: randomBytes(9000),
    });
    const store = await Store.open(`${dir}/store`);
    const ref = `${reg.host}/extract/os:1.0`;
    const image: BuildImageResult = await buildImage(store, [
      {
        arch: "amd64",
        layers: {
          kernel: f["vmlinuz-amd64"],
          initramfs: f.initrd,
          squashfs: f.squashfs,
        },
        variant: "metal",
      },
      { arch: "arm64", layers: { kernel: f["vmlinuz-arm64"], disk: f.disk } },
    ], { tag: ref });
    const client = new RegistryClient({ plainHttp: true, retryDelay: 1 });
    await pushImage(store, ref, { client: client });
    const out = `${dir}/out`;
    await Deno.mkdir(out);

    for (const arch of ["amd64", "arm64"]) {
      const platform = { os: "linux", architecture: arch };
      const source = await Deno.readFile(
        f[`vmlinuz-${arch}` as "vmlinuz-amd64"],
      );
      await t.step(
        `the ${arch} kernel from the store matches its file`,
        async () => {
          const layer = await openLayer(store, {
            reference: ref,
            layer: "kernel",
            platform,
          });
          assert.equal(layer.kind, "kernel");
          assert.equal(layer.reference, ref);
          assert.deepEqual(layer.platform, platform);
          assert.equal(layer.descriptor.digest, digestOf(source));
          assert.equal(layer.path, store.blobPath(digestOf(source)));
          assert.deepEqual(await bytesOf(layer.stream), source);
        },
      );
      await t.step(
        `the ${arch} kernel from the registry matches its file`,
        async () => {
          const events: string[] = [];
          const layer = await openLayer(client, {
            reference: ref,
            layer: "kernel",
            platform,
          }, { onProgress: (e) => events.push(e.phase) });
          assert.equal(layer.path, undefined);
          const path = `${out}/vmlinuz-${arch}`;
          assert.equal(await writeLayerFile(layer, path), source.byteLength);
          assert.deepEqual(await Deno.readFile(path), source);
          assert.equal(events[0], "start");
          assert.equal(events.at(-1), "done");
        },
      );
    }

    await t.step(
      "openLayer() reads from whichever source it is given",
      async () => {
        const request = {
          reference: ref,
          layer: "disk" as const,
          platform: { os: "linux", architecture: "arm64" },
        };
        const disk = await Deno.readFile(f.disk);
        assert.deepEqual(
          await bytesOf((await openLayer(store, request)).stream),
          disk,
        );
        assert.deepEqual(
          await bytesOf((await openLayer(client, request)).stream),
          disk,
        );
      },
    );

    await t.step("an index defaults to this machine's platform", async () => {
      const host = hostPlatform().architecture;
      const layer = await openLayer(store, {
        reference: ref,
        layer: "kernel",
      });
      await layer.stream.cancel();
      if (host === "amd64" || host === "arm64") {
        assert.equal(layer.platform?.architecture, host);
      }
    });

    await t.step("a one-entry index needs no platform", async () => {
      const single = `${reg.host}/extract/single:1`;
      await buildImage(store, [{
        arch: "riscv64",
        layers: { squashfs: f.squashfs },
      }], { tag: single });
      await pushImage(store, single, { client: client });
      const squashfs = await Deno.readFile(f.squashfs);
      for (const source of [store, client]) {
        const layer = await openLayer(source, {
          reference: single,
          layer: "squashfs",
        });
        assert.equal(layer.platform?.architecture, "riscv64");
        assert.deepEqual(await bytesOf(layer.stream), squashfs);
      }
      // A single manifest, addressed by its tag, too.
      const layer = await openLayer(store, {
        reference: `${single}-riscv64`,
        layer: "squashfs",
      });
      assert.equal(layer.platform, undefined);
      assert.deepEqual(await bytesOf(layer.stream), squashfs);
    });

    await t.step(
      "a missing layer kind is NotFoundError listing the kinds there are",
      async () => {
        for (const source of [store, client]) {
          await assert.rejects(
            openLayer(source, {
              reference: ref,
              layer: "uki",
              platform: { os: "linux", architecture: "amd64" },
            }),
            (e: unknown) =>
              e instanceof NotFoundError &&
              e.message ===
                `Image ${ref} (linux/amd64) has no uki layer: it has squashfs, initramfs, kernel`,
          );
        }
      },
    );

    await t.step(
      "an unknown platform is NotFoundError listing the platforms",
      async () => {
        for (const source of [store, client]) {
          await assert.rejects(
            openLayer(source, {
              reference: ref,
              layer: "kernel",
              platform: { os: "linux", architecture: "s390x" },
            }),
            (e: unknown) =>
              e instanceof NotFoundError &&
              e.message ===
                `Platform linux/s390x not found in ${ref}: the image has linux/amd64, linux/arm64`,
          );
        }
      },
    );

    await t.step(
      "a corrupt blob in the store errors and leaves no file",
      async () => {
        const arm = image.manifests.find((m) => m.arch === "arm64")!;
        const manifest = await store.readManifest(arm.descriptor);
        if (manifest.kind !== "manifest") throw new Error("unreachable");
        const disk = manifest.manifest.layers.find((l) =>
          l.mediaType === LAYER_MEDIA_TYPES.disk
        )!;
        const blob = store.blobPath(disk.digest);
        const original = await Deno.readFile(blob);
        await Deno.writeFile(blob, randomBytes(original.byteLength));
        try {
          const before = await filesIn(out);
          const layer = await openLayer(store, {
            reference: ref,
            layer: "disk",
            platform: { os: "linux", architecture: "arm64" },
          });
          await assert.rejects(
            writeLayerFile(layer, `${out}/disk.img`),
            (e: unknown) =>
              e instanceof DigestMismatchError && e.expected === disk.digest,
          );
          assert.deepEqual(await filesIn(out), before);

          // An existing file is left as it was.
          await Deno.writeTextFile(`${out}/disk.img`, "old");
          const again = await openLayer(store, {
            reference: ref,
            layer: "disk",
            platform: { os: "linux", architecture: "arm64" },
          });
          await assert.rejects(
            writeLayerFile(again, `${out}/disk.img`),
            DigestMismatchError,
          );
          assert.equal(await Deno.readTextFile(`${out}/disk.img`), "old");
          await Deno.remove(`${out}/disk.img`);

          // A blob of the wrong size is refused before any byte is read.
          await Deno.writeFile(blob, original.subarray(1));
          await assert.rejects(
            openLayer(store, {
              reference: ref,
              layer: "disk",
              platform: { os: "linux", architecture: "arm64" },
            }),
            SizeMismatchError,
          );
        } finally {
          await Deno.writeFile(blob, original);
        }
      },
    );

    await t.step(
      "a corrupt blob in the registry errors and leaves no file",
      async () => {
        const squashfs = digestOf(await Deno.readFile(f.squashfs));
        const blob = registryBlobPath(reg, squashfs);
        const original = await Deno.readFile(blob);
        await Deno.writeFile(blob, randomBytes(original.byteLength));
        try {
          const before = await filesIn(out);
          const layer = await openLayer(client, {
            reference: ref,
            layer: "squashfs",
            platform: { os: "linux", architecture: "amd64" },
          });
          await assert.rejects(
            writeLayerFile(layer, `${out}/root.squashfs`),
            DigestMismatchError,
          );
          assert.deepEqual(await filesIn(out), before);
        } finally {
          await Deno.writeFile(blob, original);
        }
      },
    );

    await t.step(
      "writing into a missing directory is a clear error",
      async () => {
        const layer = await openLayer(store, {
          reference: ref,
          layer: "kernel",
          platform: { os: "linux", architecture: "arm64" },
        });
        await assert.rejects(
          writeLayerFile(layer, `${dir}/nope/vmlinuz`),
          (e: unknown) =>
            e instanceof Deno.errors.NotFound &&
            e.message ===
              `Cannot write kernel layer to ${dir}/nope/vmlinuz: directory ${dir}/nope does not exist`,
        );
        const again = await openLayer(store, {
          reference: ref,
          layer: "kernel",
          platform: { os: "linux", architecture: "arm64" },
        });
        await assert.rejects(writeLayerFile(again, out), /it is a directory/);
      },
    );

    await t.step(
      "validateImage() finds the pushed image valid up to a missing variant",
      async () => {
        const report = await validateImage(client, ref);
        assert.equal(report.ok, true);
        assert.equal(report.descriptor.digest, image.index.digest);
        assert.deepEqual(report.findings, [{
          level: "warning",
          path: "manifests[1].annotations",
          message: "no variant annotation, cannot check required layers",
        }]);
      },
    );
  });
});

Deno.test("openLayer() prefers the current media type over the legacy one", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const config = encodeJson({});
    await blobStoreOf(store).putBytes(config.bytes, CONFIG_MEDIA_TYPE);
    const current = new TextEncoder().encode("current kernel");
    const legacy = new TextEncoder().encode("legacy kernel");
    const layers: Descriptor[] = [];
    for (
      const [bytes, mediaType] of [
        [legacy, LEGACY_LAYER_MEDIA_TYPES.kernel!],
        [current, LAYER_MEDIA_TYPES.kernel],
      ] as const
    ) {
      const d = await blobStoreOf(store).putBytes(bytes, mediaType);
      layers.push({ ...d, annotations: { [ANNOTATION_TITLE]: "vmlinuz" } });
    }
    const tag = async (name: string, l: Descriptor[]) => {
      const m = encodeJson({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        config: {
          mediaType: CONFIG_MEDIA_TYPE,
          digest: config.digest,
          size: config.size,
        },
        layers: l,
      });
      const d = await blobStoreOf(store).putBytes(
        m.bytes,
        OCI_MANIFEST_MEDIA_TYPE,
      );
      await tagIndexOf(store).setTags([{
        reference: `docker.io/library/${name}`,
        descriptor: d,
      }]);
    };
    await tag("both:1", layers);
    await tag("legacy:1", [layers[0]!]);
    await tag("twice:1", [layers[1]!, layers[1]!]);
    const read = async (reference: string) =>
      new TextDecoder().decode(
        await bytesOf(
          (await openLayer(store, { reference, layer: "kernel" })).stream,
        ),
      );
    assert.equal(await read("both:1"), "current kernel");
    assert.equal(await read("legacy:1"), "legacy kernel");
    await assert.rejects(read("twice:1"), InvalidImageError);
  });
});

/** Open file descriptors of this process whose file is under `dir`. */
async function openFilesUnder(dir: string): Promise<number> {
  const real = await Deno.realPath(dir);
  let n = 0;
  for await (const e of Deno.readDir("/proc/self/fd")) {
    const target = await Deno.readLink(`/proc/self/fd/${e.name}`).catch(
      () => "",
    );
    if (target.startsWith(`${real}/`)) n++;
  }
  return n;
}

Deno.test("openLayer() opens no file until its stream is read", async () => {
  await withTempDir(async (dir) => {
    // Larger than what the stream reads ahead (a chunk in each stage, and
    // the one held back until the digest checked out), so that the first
    // read does not reach the end of the file.
    const f = await writeFiles(dir, { vmlinuz: randomBytes(8 * 1024 * 1024) });
    const store = await Store.open(`${dir}/store`);
    await buildImage(
      store,
      [{ arch: "amd64", layers: { kernel: f.vmlinuz } }],
      {
        tag: "fds:1",
      },
    );
    const request = { reference: "fds:1", layer: "kernel" as const };
    const before = await openFilesUnder(store.path);

    // Asking only for the path, as a hypervisor attaching the disk does.
    const paths = new Set<string | undefined>();
    for (let i = 0; i < 200; i++) {
      paths.add((await openLayer(store, request)).path);
    }
    assert.deepEqual([...paths], [store.blobPath(digestOf(
      await Deno.readFile(f.vmlinuz),
    ))]);
    assert.equal(await openFilesUnder(store.path), before);

    // A stream cancelled before its first read opened nothing either.
    await (await openLayer(store, request)).stream.cancel();
    assert.equal(await openFilesUnder(store.path), before);

    // A stream being read holds the blob open, until its end or cancel.
    const reader = (await openLayer(store, request)).stream.getReader();
    assert.equal((await reader.read()).done, false);
    assert.equal(await openFilesUnder(store.path), before + 1);
    await reader.cancel();
    assert.equal(await openFilesUnder(store.path), before);
    const whole = await bytesOf((await openLayer(store, request)).stream);
    assert.deepEqual(whole, await Deno.readFile(f.vmlinuz));
    assert.equal(await openFilesUnder(store.path), before);
  });
});

Deno.test("openLayer() reports a blob removed before the first read", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, { vmlinuz: randomBytes(5000) });
    const store = await Store.open(`${dir}/store`);
    await buildImage(
      store,
      [{ arch: "amd64", layers: { kernel: f.vmlinuz } }],
      {
        tag: "gone:1",
      },
    );
    const layer = await openLayer(store, {
      reference: "gone:1",
      layer: "kernel",
    });
    await Deno.remove(layer.path!);
    await assert.rejects(
      bytesOf(layer.stream),
      (e: unknown) =>
        e instanceof NotFoundError &&
        e.message.startsWith(`Blob ${layer.descriptor.digest} is missing`),
    );
  });
});

/** A writer that keeps copies of what it gets, and the buffers it saw. */
function collector() {
  const parts: Uint8Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  return {
    buffers,
    bytes: () => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) out.set(p, (off += p.length) - p.length);
      return out;
    },
    write(p: Uint8Array): Promise<number> {
      if (p.byteLength >= 512 * 1024) buffers.add(p.buffer);
      parts.push(p.slice());
      return Promise.resolve(p.byteLength);
    },
  };
}

Deno.test("writeLayer() writes a layer from the store or a registry in buffers that go round, and never a damaged one whole", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const kernel = randomBytes(6 * 1024 * 1024 + 77);
    const f = await writeFiles(dir, { vmlinuz: kernel });
    const store = await Store.open(`${dir}/store`);
    const ref = `${reg.host}/write/os:1.0`;
    await buildImage(
      store,
      [{ arch: "amd64", layers: { kernel: f.vmlinuz } }],
      {
        tag: ref,
      },
    );
    const client = new RegistryClient({ plainHttp: true, retryDelay: 1 });
    await pushImage(store, ref, { client });
    const request = { reference: `${ref}-amd64`, layer: "kernel" as const };
    for (const source of [store, client]) {
      const out = collector();
      const layer = await openLayer(source, request);
      assert.equal(await writeLayer(layer, out), kernel.byteLength);
      assert.deepEqual(out.bytes(), kernel);
      assert.ok(out.buffers.size <= 3, `${out.buffers.size} buffers`);
    }
    // Damage the blob in both places: same size, another digest.
    const digest = digestOf(kernel);
    const damaged = kernel.slice();
    damaged[42] = damaged[42]! ^ 1;
    for (
      const path of [store.blobPath(digest), registryBlobPath(reg, digest)]
    ) {
      await Deno.chmod(path, 0o644);
      await Deno.writeFile(path, damaged);
    }
    for (const source of [store, client]) {
      const out = collector();
      const layer = await openLayer(source, request);
      await assert.rejects(writeLayer(layer, out), DigestMismatchError);
      assert.ok(out.bytes().length < kernel.byteLength, "the end was held");
    }
  });
});
