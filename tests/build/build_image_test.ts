import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { InvalidReferenceError } from "../../src/errors.ts";
import { type Digest, digestOf, Sha256 } from "../../src/oci/digest.ts";
import {
  type ImageIndex,
  type ImageManifest,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import type { ProgressEvent } from "../../src/progress.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { imageFromManifest } from "../../src/spec/image_from_manifest.ts";
import { Store } from "../../src/store/store.ts";
import { snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { tagIndexOf } from "../../src/store/_internal.ts";

const decoder = new TextDecoder();

async function readJson<T>(store: Store, digest: Digest): Promise<T> {
  return JSON.parse(
    decoder.decode(await Deno.readFile(store.blobPath(digest))),
  );
}

async function inputs(dir: string) {
  return await writeFiles(dir, {
    "vmlinuz-amd64": "amd64 kernel",
    "vmlinuz-arm64": "arm64 kernel!",
    "initrd.img": "shared initramfs",
    "root.squashfs": new Uint8Array([0x68, 0x73, 0x71, 0x73, 0, 1, 2, 255]),
    "cmdline.txt": "  console=ttyS0 root=/dev/vda\n\n",
  });
}

Deno.test("buildImage() writes one manifest per architecture and an index over them", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = await Store.open(`${dir}/store`);
    const result = await buildImage(store, [
      {
        arch: "amd64",
        layers: {
          kernel: f["vmlinuz-amd64"],
          initramfs: f["initrd.img"],
          squashfs: f["root.squashfs"],
        },
        cmdline: f["cmdline.txt"],
        variant: "metal",
      },
      {
        arch: "arm64",
        layers: { kernel: f["vmlinuz-arm64"], initramfs: f["initrd.img"] },
      },
    ], { tag: "demo:1", annotations: { "org.example/built-by": "test" } });

    assert.equal(result.reference, "docker.io/library/demo:1");
    assert.deepEqual(result.manifests.map((m) => [m.arch, m.reference]), [
      ["amd64", "docker.io/library/demo:1-amd64"],
      ["arm64", "docker.io/library/demo:1-arm64"],
    ]);

    // The index lists both manifests with their platforms, in --config order.
    assert.equal(result.index.mediaType, OCI_INDEX_MEDIA_TYPE);
    const index = await readJson<ImageIndex>(store, result.index.digest);
    assert.equal(index.mediaType, OCI_INDEX_MEDIA_TYPE);
    assert.deepEqual(index.annotations, { "org.example/built-by": "test" });
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.size, m.platform]),
      result.manifests.map((m) => [
        m.descriptor.digest,
        m.descriptor.size,
        { architecture: m.arch, os: "linux" },
      ]),
    );

    // Each manifest resolves to an IronCore image with the right layers.
    const amd64 = await readJson<ImageManifest>(
      store,
      result.manifests[0]!.descriptor.digest,
    );
    assert.equal(amd64.mediaType, OCI_MANIFEST_MEDIA_TYPE);
    assert.equal(amd64.config.mediaType, CONFIG_MEDIA_TYPE);
    assert.deepEqual(amd64.annotations, { variant: "metal" });
    const config = await Deno.readFile(store.blobPath(amd64.config.digest));
    const image = imageFromManifest(amd64, config);
    assert.deepEqual(image.config, {
      commandLine: "console=ttyS0 root=/dev/vda",
    });
    assert.equal(image.variant, "metal");
    assert.equal(image.kernel?.digest, digestOf("amd64 kernel"));
    assert.equal(image.kernel?.size, "amd64 kernel".length);
    assert.equal(image.initramfs?.digest, digestOf("shared initramfs"));
    assert.equal(
      image.squashfs?.digest,
      digestOf(await Deno.readFile(f["root.squashfs"])),
    );
    assert.deepEqual(
      amd64.layers.map((l) => [
        l.mediaType,
        l.annotations?.["org.opencontainers.image.title"],
      ]),
      [
        [LAYER_MEDIA_TYPES.squashfs, "root.squashfs"],
        [LAYER_MEDIA_TYPES.initramfs, "initrd.img"],
        [LAYER_MEDIA_TYPES.kernel, "vmlinuz-amd64"],
      ],
    );
    const arm64 = await readJson<ImageManifest>(
      store,
      result.manifests[1]!.descriptor.digest,
    );
    assert.equal(arm64.annotations, undefined);
    assert.deepEqual(
      JSON.parse(decoder.decode(
        await Deno.readFile(store.blobPath(arm64.config.digest)),
      )),
      {},
    );

    // Every blob named by a descriptor is in the store with that content.
    for (
      const d of [amd64.config, ...amd64.layers, arm64.config, ...arm64.layers]
    ) {
      const bytes = await Deno.readFile(store.blobPath(d.digest));
      assert.equal(digestOf(bytes), d.digest);
      assert.equal(bytes.byteLength, d.size);
    }

    // The tags: T for the index and T-arch for each manifest.
    const tags = await store.tags();
    assert.deepEqual(
      tags.map((
        t,
      ) => [t.reference, t.descriptor.digest, t.descriptor.mediaType])
        .sort(),
      [
        ["docker.io/library/demo:1", result.index.digest, OCI_INDEX_MEDIA_TYPE],
        [
          "docker.io/library/demo:1-amd64",
          result.manifests[0]!.descriptor.digest,
          OCI_MANIFEST_MEDIA_TYPE,
        ],
        [
          "docker.io/library/demo:1-arm64",
          result.manifests[1]!.descriptor.digest,
          OCI_MANIFEST_MEDIA_TYPE,
        ],
      ],
    );
    // Nothing is left behind in the temporary directory.
    assert.deepEqual([...Deno.readDirSync(`${dir}/store/.tmp`)], []);
  });
});

Deno.test("buildImage() of one architecture tags T and T-arch and keeps other tags", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = await Store.open(`${dir}/store`);
    const first = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"] } },
    ], { tag: "ghcr.io/org/os:v1" });
    const second = await buildImage(store, [
      { arch: "arm64", layers: { uki: f["vmlinuz-arm64"] } },
    ], { tag: "ghcr.io/org/os:v2" });
    const tags = Object.fromEntries(
      (await store.tags()).map((t) => [t.reference, t.descriptor.digest]),
    );
    assert.deepEqual(tags, {
      "ghcr.io/org/os:v1": first.index.digest,
      "ghcr.io/org/os:v1-amd64": first.manifests[0]!.descriptor.digest,
      "ghcr.io/org/os:v2": second.index.digest,
      "ghcr.io/org/os:v2-arm64": second.manifests[0]!.descriptor.digest,
    });
    // Rebuilding under an existing tag moves it instead of adding a second.
    const again = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f["vmlinuz-arm64"] } },
    ], { tag: "ghcr.io/org/os:v1" });
    const after = await store.tags();
    assert.equal(after.length, 4);
    assert.equal(
      after.find((t) => t.reference === "ghcr.io/org/os:v1")?.descriptor.digest,
      again.index.digest,
    );
    assert.notEqual(again.index.digest, first.index.digest);
  });
});

Deno.test("buildImage() without a tag adds the index to the store untagged", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = await Store.open(`${dir}/store`);
    const result = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"] } },
    ]);
    assert.equal(result.reference, undefined);
    assert.equal(result.manifests[0]!.reference, undefined);
    assert.deepEqual(await store.tags(), []);
    assert.deepEqual(await tagIndexOf(store).entries(), [result.index]);
    // Building it again does not add a second entry.
    await buildImage(store, [
      { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"] } },
    ]);
    assert.deepEqual(await tagIndexOf(store).entries(), [result.index]);
    // list shows its image ID, so resolve must find it by a prefix too.
    const prefix = result.index.digest.slice("sha256:".length, 19);
    assert.equal(
      (await store.resolve(prefix)).descriptor.digest,
      result.index.digest,
    );
  });
});

Deno.test("buildImage() reads a symbolic link to a regular file as that file", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    await Deno.symlink(f["vmlinuz-amd64"], `${dir}/kernel-link`);
    await Deno.symlink(f["cmdline.txt"], `${dir}/cmdline-link`);
    const store = await Store.open(`${dir}/store`);
    const result = await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: `${dir}/kernel-link` },
      cmdline: `${dir}/cmdline-link`,
    }], { tag: "demo:1" });
    const manifest = await readJson<ImageManifest>(
      store,
      result.manifests[0]!.descriptor.digest,
    );
    assert.equal(
      manifest.layers[0]!.digest,
      digestOf(await Deno.readFile(f["vmlinuz-amd64"])),
    );
    assert.deepEqual(await readJson(store, manifest.config.digest), {
      commandLine: "console=ttyS0 root=/dev/vda",
    });
  });
});

Deno.test("buildImage() gives the same digests for the same inputs in two stores", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const configs = [
      {
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"], rootfs: f["root.squashfs"] },
        cmdline: f["cmdline.txt"],
      },
      {
        arch: "arm64",
        layers: { kernel: f["vmlinuz-arm64"], disk: f["root.squashfs"] },
        variant: "virtualization" as const,
      },
    ];
    const a = await buildImage(await Store.open(`${dir}/a`), configs, {
      tag: "x:1",
    });
    const b = await buildImage(await Store.open(`${dir}/b`), configs, {
      tag: "x:1",
    });
    assert.deepEqual(a, b);
    const blobs = async (s: string) => {
      const snap = await snapshotStore(`${dir}/${s}`);
      return Object.fromEntries(
        Object.entries(snap).filter(([k]) => k.startsWith("blobs/")),
      );
    };
    assert.deepEqual(await blobs("a"), await blobs("b"));
    assert.deepEqual(
      await Deno.readFile(`${dir}/a/index.json`),
      await Deno.readFile(`${dir}/b/index.json`),
    );
  });
});

Deno.test("buildImage() does not rewrite a blob that is already in the store", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = await Store.open(`${dir}/store`);
    const configs = [{
      arch: "amd64",
      layers: { kernel: f["vmlinuz-amd64"], initramfs: f["initrd.img"] },
      cmdline: f["cmdline.txt"],
    }];
    await buildImage(store, configs, { tag: "demo:1" });
    const stats = new Map<string, Deno.FileInfo>();
    for await (const e of Deno.readDir(`${dir}/store/blobs/sha256`)) {
      stats.set(e.name, await Deno.stat(`${dir}/store/blobs/sha256/${e.name}`));
    }
    assert.equal(stats.size, 5); // kernel, initramfs, config, manifest, index
    await new Promise((r) => setTimeout(r, 20));
    await buildImage(store, configs, { tag: "demo:2" });
    await buildImage(await Store.open(`${dir}/store`), configs, {
      tag: "demo:3",
    });
    for (const [name, before] of stats) {
      const after = await Deno.stat(`${dir}/store/blobs/sha256/${name}`);
      assert.equal(after.ino, before.ino, `${name} was replaced`);
      assert.equal(
        after.mtime?.getTime(),
        before.mtime?.getTime(),
        `${name} was rewritten`,
      );
    }
    assert.equal([...Deno.readDirSync(`${dir}/store/blobs/sha256`)].length, 5);
    assert.deepEqual([...Deno.readDirSync(`${dir}/store/.tmp`)], []);
  });
});

Deno.test("buildImage() streams a 64 MiB file into the store with its exact digest and progress", async () => {
  await withTempDir(async (dir) => {
    const size = 64 * 1024 * 1024;
    const path = `${dir}/disk.img`;
    const expected = new Sha256();
    {
      using file = await Deno.open(path, { write: true, create: true });
      const chunk = new Uint8Array(1024 * 1024);
      for (let written = 0; written < size; written += chunk.length) {
        for (let i = 0; i < chunk.length; i += 65536) {
          crypto.getRandomValues(chunk.subarray(i, i + 65536));
        }
        expected.update(chunk);
        let off = 0;
        while (off < chunk.length) off += await file.write(chunk.subarray(off));
      }
    }
    const events: ProgressEvent[] = [];
    const store = await Store.open(`${dir}/store`);
    const result = await buildImage(store, [
      { arch: "amd64", layers: { disk: path } },
    ], { tag: "big:1", onProgress: (e) => events.push({ ...e }) });
    const digest = expected.digest();
    const manifest = await readJson<ImageManifest>(
      store,
      result.manifests[0]!.descriptor.digest,
    );
    assert.deepEqual(
      [manifest.layers[0]!.digest, manifest.layers[0]!.size],
      [digest, size],
    );
    const blob = await Deno.stat(store.blobPath(digest));
    assert.equal(blob.size, size);
    // Hash the stored blob independently, streaming.
    const check = new Sha256();
    {
      using file = await Deno.open(store.blobPath(digest));
      for await (const chunk of file.readable) check.update(chunk);
    }
    assert.equal(check.digest(), digest);

    assert.equal(events[0]?.phase, "start");
    assert.equal(events[0]?.total, size);
    const last = events[events.length - 1]!;
    assert.deepEqual(
      [last.phase, last.done, last.total, last.digest, last.name],
      ["done", size, size, digest, "amd64/disk"],
    );
    const progress = events.filter((e) => e.phase === "progress");
    assert.ok(progress.length >= 2, `${progress.length} progress events`);
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i]!.done >= progress[i - 1]!.done);
    }
  });
});

Deno.test("buildImage() with an aborted signal throws and leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = await Store.open(`${dir}/store`);
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f["vmlinuz-amd64"] },
    }], {
      tag: "demo:1",
    });
    const before = await snapshotStore(`${dir}/store`);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      buildImage(store, [{
        arch: "amd64",
        layers: { kernel: f["initrd.img"] },
      }], {
        tag: "demo:2",
        signal: controller.signal,
      }),
      { name: "AbortError" },
    );
    assert.deepEqual(await snapshotStore(`${dir}/store`), before);
  });
});

interface BadBuild {
  name: string;
  run: (
    store: Store,
    f: Record<string, string>,
    dir: string,
  ) => Promise<unknown>;
  error: new (...args: never[]) => Error;
  message: RegExp;
}

const BAD: BadBuild[] = [
  {
    name: "no configuration",
    run: (s) => buildImage(s, [], { tag: "x:1" }),
    error: TypeError,
    message: /^Nothing to build/,
  },
  {
    name: "a missing input file",
    run: (s, _f, dir) =>
      buildImage(s, [{ arch: "amd64", layers: { kernel: `${dir}/nope` } }], {
        tag: "x:1",
      }),
    error: Deno.errors.NotFound,
    message: /^Cannot read kernel file .*\/nope: no such file, check the path$/,
  },
  {
    name: "a missing file in the second architecture",
    run: (s, f, dir) =>
      buildImage(s, [
        { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"]! } },
        { arch: "arm64", layers: { initramfs: `${dir}/nope` } },
      ], { tag: "x:1" }),
    error: Deno.errors.NotFound,
    message: /^Cannot read initramfs file /,
  },
  {
    name: "a directory where a file is expected",
    run: (s, _f, dir) =>
      buildImage(s, [{ arch: "amd64", layers: { rootfs: dir } }], {
        tag: "x:1",
      }),
    error: TypeError,
    message:
      /^Cannot read rootfs file .*: it is a directory, give a regular file$/,
  },
  {
    name: "a character device as a layer file",
    run: (s) =>
      buildImage(s, [{ arch: "amd64", layers: { kernel: "/dev/null" } }], {
        tag: "x:1",
      }),
    error: TypeError,
    message:
      /^Cannot read kernel file \/dev\/null: it is a character device, give a regular file$/,
  },
  {
    name: "a cmdline file whose size stat does not tell, over 64 KiB",
    // A regular file whose stat size is 0 while it reads as megabytes.
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        cmdline: "/proc/kallsyms",
      }], { tag: "x:1" }),
    error: RangeError,
    message:
      /^Command line file \/proc\/kallsyms is larger than 64 KiB: a kernel command line fits in 64 KiB$/,
  },
  {
    name: "a missing cmdline file",
    run: (s, f, dir) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        cmdline: `${dir}/nope`,
      }], { tag: "x:1" }),
    error: Deno.errors.NotFound,
    message: /^Cannot read cmdline file /,
  },
  {
    name: "the same architecture twice",
    run: (s, f) =>
      buildImage(s, [
        { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"]! } },
        { arch: "amd64", layers: { kernel: f["vmlinuz-arm64"]! } },
      ], { tag: "x:1" }),
    error: TypeError,
    message: /^Architecture amd64 is configured twice/,
  },
  {
    name: "an uppercase architecture",
    run: (s, f) =>
      buildImage(s, [{
        arch: "AMD64",
        layers: { kernel: f["vmlinuz-amd64"]! },
      }], {
        tag: "x:1",
      }),
    error: TypeError,
    message:
      /^Cannot build AMD64: architecture "AMD64" is not a Go architecture name: use "amd64"$/,
  },
  {
    name: "an empty architecture",
    run: (s, f) =>
      buildImage(s, [
        { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"]! } },
        { arch: "", layers: { kernel: f["vmlinuz-arm64"]! } },
      ], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build configuration 2 of 2: its architecture is missing, set arch to the target's, such as amd64$/,
  },
  {
    name: "an unknown architecture in the second configuration",
    run: (s, f) =>
      buildImage(s, [
        { arch: "amd64", layers: { kernel: f["vmlinuz-amd64"]! } },
        { arch: "amd46", layers: { kernel: f["vmlinuz-arm64"]! } },
      ], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build amd46: architecture "amd46" is not a Go architecture name: use the name Go gives it, such as amd64, arm64, /,
  },
  {
    name: "no layers",
    run: (s) => buildImage(s, [{ arch: "amd64", layers: {} }], { tag: "x:1" }),
    error: TypeError,
    message: /^Cannot build amd64: the manifest has no layers: /,
  },
  {
    name: "no layers for a variant",
    run: (s) =>
      buildImage(s, [{ arch: "amd64", layers: {}, variant: "metal" }], {
        tag: "x:1",
      }),
    error: TypeError,
    message:
      /^Cannot build amd64: the manifest has no layers: .* \(and 1 more problem\)$/,
  },
  {
    name: "an unknown layer kind",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: {
          kernel: f["vmlinuz-amd64"]!,
          vmlinuz: f["vmlinuz-amd64"]!,
        } as never,
      }], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build amd64: unknown layer kind "vmlinuz": use rootfs, disk, squashfs, initramfs, kernel, uki or iso$/,
  },
  {
    name: "a metal image without initramfs and root file system",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        variant: "metal",
      }], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build amd64: variant metal needs kernel \+ initramfs \+ a root file system .*\(missing initramfs, a root file system\)$/,
  },
  {
    name: "a virtualization image without disk or root file system",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        variant: "virtualization",
      }], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build amd64: variant virtualization needs a disk or a root file system/,
  },
  {
    name: "an unknown variant",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        variant: "cloud" as never,
      }], { tag: "x:1" }),
    error: TypeError,
    message:
      /^Cannot build amd64: unknown variant "cloud": expected metal or virtualization$/,
  },
  {
    name: "an empty tag",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
      }], {
        tag: "",
      }),
    error: InvalidReferenceError,
    message: /the tag is empty/,
  },
  {
    name: "an invalid tag",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
      }], {
        tag: "Demo:1",
      }),
    error: InvalidReferenceError,
    message: /^Invalid reference "Demo:1"/,
  },
  {
    name: "a tag with a digest",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
      }], {
        tag: `demo@sha256:${"a".repeat(64)}`,
      }),
    error: InvalidReferenceError,
    message: /a tag cannot carry a digest/,
  },
  {
    name: "a tag too long for the -arch suffix",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
      }], {
        tag: `demo:${"t".repeat(128)}`,
      }),
    error: InvalidReferenceError,
    message: /the limit is 128/,
  },
  {
    name: "a cmdline file that is not UTF-8",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        cmdline: f["latin1.txt"]!,
      }], { tag: "x:1" }),
    error: TypeError,
    message: /^Command line file .*latin1\.txt is not UTF-8 text/,
  },
  {
    name: "a cmdline file with a NUL byte",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        cmdline: f["nul.txt"]!,
      }], { tag: "x:1" }),
    error: TypeError,
    message: /contains NUL bytes/,
  },
  {
    name: "a cmdline file over 64 KiB",
    run: (s, f) =>
      buildImage(s, [{
        arch: "amd64",
        layers: { kernel: f["vmlinuz-amd64"]! },
        cmdline: f["huge.txt"]!,
      }], { tag: "x:1" }),
    error: RangeError,
    message: /fits in 64 KiB/,
  },
];

for (const c of BAD) {
  Deno.test(`buildImage() rejects ${c.name} and leaves the store unchanged`, async () => {
    await withTempDir(async (dir) => {
      const f = {
        ...await inputs(dir),
        ...await writeFiles(dir, {
          "latin1.txt": new Uint8Array([0x63, 0x6f, 0x6e, 0xe9]),
          "nul.txt": "console=ttyS0\0",
          "huge.txt": "x".repeat(64 * 1024 + 1),
        }),
      };
      const store = await Store.open(`${dir}/store`);
      await buildImage(store, [{
        arch: "amd64",
        layers: { kernel: f["initrd.img"] },
      }], {
        tag: "existing:1",
      });
      const before = await snapshotStore(`${dir}/store`);
      await assert.rejects(c.run(store, f, dir), (e: unknown) => {
        assert.ok(e instanceof c.error, `threw ${String(e)}`);
        assert.match((e as Error).message, c.message);
        return true;
      });
      assert.deepEqual(await snapshotStore(`${dir}/store`), before);
      // A store that did not exist is not created either.
      await assert.rejects(c.run(await Store.open(`${dir}/fresh`), f, dir));
      assert.deepEqual(await snapshotStore(`${dir}/fresh`), {});
    });
  });
}
