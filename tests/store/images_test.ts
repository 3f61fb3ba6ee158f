import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import {
  AmbiguousReferenceError,
  DigestMismatchError,
  InvalidReferenceError,
  NotFoundError,
} from "../../src/errors.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import {
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import {
  deleteImage,
  inspectImage,
  listImages,
} from "../../src/store/images.ts";
import { Store } from "../../src/store/store.ts";
import { snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { tagIndexOf } from "../../src/store/_internal.ts";

async function twoArch(
  dir: string,
): Promise<{ store: Store; result: BuildImageResult }> {
  const f = await writeFiles(dir, {
    vmlinuz: "kernel!",
    initrd: "initramfs",
    cmdline: "console=ttyS0\n",
  });
  const store = await Store.open(`${dir}/store`);
  const result = await buildImage(store, [
    {
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd },
      cmdline: f.cmdline,
    },
    { arch: "arm64", layers: { kernel: f.vmlinuz } },
  ], { tag: "demo:1" });
  return { store, result };
}

Deno.test("Store.tag() points a normalised new tag at what the source names", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    assert.equal(
      await store.tag("demo:1", "registry.example.com/os/demo:1.0"),
      "registry.example.com/os/demo:1.0",
    );
    assert.equal(
      await store.tag("demo:1-arm64", "arm"),
      "docker.io/library/arm:latest",
    );
    const prefix = digestHex(result.manifests[0]!.descriptor.digest).slice(
      0,
      12,
    );
    assert.equal(
      await store.tag(prefix, "org/amd:x"),
      "docker.io/org/amd:x",
    );
    const tags = new Map(
      (await store.tags()).map((t) => [t.reference, t.descriptor]),
    );
    assert.equal(
      tags.get("registry.example.com/os/demo:1.0")?.digest,
      result.index.digest,
    );
    assert.equal(
      tags.get("registry.example.com/os/demo:1.0")?.mediaType,
      OCI_INDEX_MEDIA_TYPE,
    );
    assert.equal(
      tags.get("docker.io/library/arm:latest")?.digest,
      result.manifests[1]!.descriptor.digest,
    );
    const amd = tags.get("docker.io/org/amd:x");
    assert.equal(amd?.digest, result.manifests[0]!.descriptor.digest);
    assert.equal(amd?.mediaType, OCI_MANIFEST_MEDIA_TYPE);
    // A tag names a manifest; the platform belongs to the index entry only.
    assert.equal(amd?.platform, undefined);
    // Retagging moves the tag.
    await store.tag("demo:1-amd64", "arm");
    assert.equal(
      (await store.resolve("arm")).descriptor.digest,
      result.manifests[0]!.descriptor.digest,
    );
  });
});

Deno.test("Store.tag() rejects an invalid or digest-carrying target and an unknown source without writing", async () => {
  await withTempDir(async (dir) => {
    const { store } = await twoArch(dir);
    const before = await snapshotStore(store.path);
    await assert.rejects(
      store.tag("demo:1", "Demo:2"),
      InvalidReferenceError,
    );
    await assert.rejects(store.tag("demo:1", ""), InvalidReferenceError);
    await assert.rejects(
      store.tag("demo:1", `demo@sha256:${"a".repeat(64)}`),
      { name: "InvalidReferenceError", message: /a tag cannot carry a digest/ },
    );
    await assert.rejects(store.tag("missing:1", "demo:2"), NotFoundError);
    assert.deepEqual(await snapshotStore(store.path), before);
  });
});

Deno.test("listImages() gives one row per index.json entry with each blob counted once", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    const rows = await listImages(store);
    assert.deepEqual(rows.map((r) => r.reference), [
      "docker.io/library/demo:1-amd64",
      "docker.io/library/demo:1-arm64",
      "docker.io/library/demo:1",
    ]);
    const amd = result.manifests[0]!.descriptor;
    const arm = result.manifests[1]!.descriptor;
    const kernel = "kernel!".length;
    const initrd = "initramfs".length;
    const amdConfig = '{"commandLine":"console=ttyS0"}'.length;
    const armConfig = "{}".length;
    assert.equal(rows[0]!.size, amd.size + amdConfig + kernel + initrd);
    assert.equal(rows[1]!.size, arm.size + armConfig + kernel);
    // The index shares the kernel between its manifests: counted once.
    assert.equal(
      rows[2]!.size,
      result.index.size + amd.size + arm.size + amdConfig + armConfig + kernel +
        initrd,
    );
    for (const r of rows) assert.equal(r.descriptor.annotations, undefined);
    assert.equal(rows[0]!.descriptor.digest, amd.digest);
  });
});

Deno.test("listImages() of an empty or missing store is empty", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(await listImages(await Store.open(`${dir}/none`)), []);
  });
});

Deno.test("inspectImage() shows an index with each manifest and its decoded config", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    const details = await inspectImage(store, "demo:1");
    assert.equal(details.reference, "docker.io/library/demo:1");
    assert.equal(details.descriptor.digest, result.index.digest);
    assert.equal(
      (details.index as { manifests: unknown[] }).manifests.length,
      2,
    );
    assert.equal(details.manifest, undefined);
    assert.deepEqual(
      details.manifests?.map((
        m,
      ) => [
        m.descriptor.digest,
        m.descriptor.platform?.architecture,
        m.config,
      ]),
      [
        [result.manifests[0]!.descriptor.digest, "amd64", {
          commandLine: "console=ttyS0",
        }],
        [result.manifests[1]!.descriptor.digest, "arm64", {}],
      ],
    );
    // JSON output is what the CLI prints; it must serialise.
    assert.doesNotThrow(() => JSON.stringify(details));
  });
});

Deno.test("inspectImage() of an index carries the index's own fields, and each entry's", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, { vmlinuz: "kernel!" });
    const store = await Store.open(`${dir}/store`);
    await buildImage(store, [
      { arch: "amd64", layers: { kernel: f.vmlinuz } },
      { arch: "arm64", layers: { kernel: f.vmlinuz } },
    ], { tag: "demo:1", annotations: { "org.example.built-by": "test" } });
    const details = await inspectImage(store, "demo:1");
    const index = details.index as {
      schemaVersion: number;
      mediaType: string;
      annotations: Record<string, string>;
      manifests: Record<string, unknown>[];
    };
    assert.equal(details.schemaVersion, 2);
    assert.equal(details.mediaType, OCI_INDEX_MEDIA_TYPE);
    assert.deepEqual(details.annotations, { "org.example.built-by": "test" });
    // Each entry starts with exactly the index entry's fields.
    assert.deepEqual(
      details.manifests!.map((m) => {
        const { descriptor: _d, manifest: _m, config: _c, ...own } = m;
        return own;
      }),
      index.manifests,
    );
    assert.deepEqual(
      details.manifests!.map((m) => m.descriptor),
      index.manifests,
    );
  });
});

Deno.test("inspectImage() of an index with a corrupt or missing manifest fails, naming the blob and the fix", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    const arm64 = result.manifests[1]!.descriptor.digest;
    await Deno.writeTextFile(store.blobPath(arm64), "{}");
    await assert.rejects(inspectImage(store, "demo:1"), (e: unknown) => {
      assert.ok(e instanceof DigestMismatchError, String(e));
      assert.match(
        e.message,
        new RegExp(
          `^Blob ${arm64} in store .* is corrupt: its bytes hash to sha256:\\w+; verify the store with repair, then pull or build the image again$`,
        ),
      );
      return true;
    });
    await Deno.remove(store.blobPath(arm64));
    await assert.rejects(
      inspectImage(store, "demo:1"),
      new NotFoundError(
        `Blob ${arm64} is missing from store ${store.path}: pull or build the image again`,
        { digest: arm64 },
      ),
    );
  });
});

Deno.test("inspectImage() shows a single manifest and its config by tag or digest prefix", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    const digest = result.manifests[0]!.descriptor.digest;
    for (const input of ["demo:1-amd64", digestHex(digest).slice(0, 8)]) {
      const details = await inspectImage(store, input);
      assert.equal(details.descriptor.digest, digest);
      assert.deepEqual(details.config, { commandLine: "console=ttyS0" });
      const manifest = details.manifest as { layers: { digest: string }[] };
      assert.deepEqual(manifest.layers.map((l) => l.digest), [
        digestOf("initramfs"),
        digestOf("kernel!"),
      ]);
      assert.equal(details.index, undefined);
    }
    await assert.rejects(inspectImage(store, "nope:1"), NotFoundError);
  });
});

Deno.test("deleteImage() by tag removes only that tag and keeps the blobs", async () => {
  await withTempDir(async (dir) => {
    const { store } = await twoArch(dir);
    const blobs = Object.keys(await snapshotStore(`${store.path}/blobs`));
    assert.deepEqual(await deleteImage(store, "demo:1"), [
      "docker.io/library/demo:1",
    ]);
    assert.deepEqual((await store.tags()).map((t) => t.reference), [
      "docker.io/library/demo:1-amd64",
      "docker.io/library/demo:1-arm64",
    ]);
    assert.deepEqual(
      Object.keys(await snapshotStore(`${store.path}/blobs`)),
      blobs,
    );
  });
});

Deno.test("deleteImage() by an ID of an image with several tags refuses, and removes them all with force", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    await store.tag("demo:1", "ghcr.io/org/demo:1");
    const before = await snapshotStore(store.path);
    const hex = digestHex(result.index.digest);
    for (const id of [hex.slice(0, 1), `sha256:${hex.slice(0, 10)}`]) {
      await assert.rejects(deleteImage(store, id), (e: unknown) => {
        assert.ok(e instanceof AmbiguousReferenceError, String(e));
        assert.equal(
          e.message,
          `Image ${id} has 2 tags (docker.io/library/demo:1, ghcr.io/org/demo:1): delete one by its tag, or set force to delete them all`,
        );
        assert.deepEqual(e.candidates, [
          "docker.io/library/demo:1",
          "ghcr.io/org/demo:1",
        ]);
        return true;
      });
    }
    assert.deepEqual(await snapshotStore(store.path), before);
    const removed = await deleteImage(store, `sha256:${hex.slice(0, 10)}`, {
      force: true,
    });
    assert.deepEqual(removed.sort(), [
      "docker.io/library/demo:1",
      "ghcr.io/org/demo:1",
    ]);
    assert.equal((await store.tags()).length, 2);
  });
});

Deno.test("deleteImage() by an ID of an image with one tag removes that tag", async () => {
  await withTempDir(async (dir) => {
    const { store, result } = await twoArch(dir);
    const amd64 = result.manifests[0]!.descriptor.digest;
    assert.deepEqual(
      await deleteImage(store, `sha256:${digestHex(amd64).slice(0, 12)}`),
      ["docker.io/library/demo:1-amd64"],
    );
    assert.deepEqual((await store.tags()).map((t) => t.reference), [
      "docker.io/library/demo:1-arm64",
      "docker.io/library/demo:1",
    ]);
  });
});

Deno.test("deleteImage() of a tag that does not exist throws NotFoundError and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const { store } = await twoArch(dir);
    const before = await snapshotStore(store.path);
    await assert.rejects(deleteImage(store, "demo:2"), NotFoundError);
    await assert.rejects(deleteImage(store, "ghcr.io/org/none"), NotFoundError);
    assert.deepEqual(await snapshotStore(store.path), before);
  });
});

Deno.test("deleteImage() of a manifest only an index points at throws NotFoundError instead of claiming success", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, { k: "kernel" });
    const store = await Store.open(`${dir}/store`);
    const r = await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f.k },
    }]);
    const child = r.manifests[0]!.descriptor.digest;
    const before = await snapshotStore(store.path);
    for (const input of [child, digestHex(child).slice(0, 8)]) {
      await assert.rejects(
        deleteImage(store, input),
        (e: unknown) =>
          e instanceof NotFoundError &&
          e.message.startsWith(`No tag or store entry points at ${child}`),
      );
    }
    assert.deepEqual(await snapshotStore(store.path), before);
    // The untagged index itself can be deleted by its digest.
    assert.deepEqual(await deleteImage(store, r.index.digest), []);
    assert.deepEqual(await tagIndexOf(store).entries(), []);
  });
});
