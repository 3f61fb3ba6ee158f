import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { validateImage } from "../../src/image/validate_image.ts";
import { Store } from "../../src/store/store.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

Deno.test("validateImage() finds nothing wrong with a built image and reports broken blobs", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      vmlinuz: "kernel",
      initrd: "initramfs",
      squashfs: "squashfs",
      disk: "disk image",
      cmdline: "console=ttyS0",
    });
    const store = await Store.open(`${dir}/store`);
    const built = await buildImage(store, [
      {
        arch: "amd64",
        layers: {
          kernel: f.vmlinuz,
          initramfs: f.initrd,
          squashfs: f.squashfs,
        },
        cmdline: f.cmdline,
        variant: "metal",
      },
      { arch: "arm64", layers: { disk: f.disk }, variant: "virtualization" },
    ], { tag: "demo:1" });
    const report = await validateImage(store, "demo:1");
    assert.deepEqual(report.findings, []);
    assert.equal(report.ok, true);
    assert.equal(report.reference, "docker.io/library/demo:1");
    assert.equal(report.descriptor.digest, built.index.digest);

    // A single manifest is checked on its own.
    const arm = await validateImage(store, "demo:1-arm64");
    assert.deepEqual(arm.findings, []);

    // A config blob with other bytes of the same size is reported, as is a
    // missing manifest of the index.
    const amd = await store.readManifest(built.manifests[0]!.descriptor);
    assert.equal(amd.kind, "manifest");
    if (amd.kind !== "manifest") return;
    const config = store.blobPath(amd.manifest.config.digest);
    const size = (await Deno.stat(config)).size;
    await Deno.writeTextFile(config, `{"x":"${"y".repeat(size - 8)}"}`);
    await Deno.remove(store.blobPath(built.manifests[1]!.descriptor.digest));
    const broken = await validateImage(store, "demo:1");
    assert.equal(broken.ok, false);
    assert.deepEqual(broken.findings.map((x) => x.path), [
      "manifests[0].config",
      "index.manifests[1]",
    ]);
    assert.match(
      broken.findings[0]!.message,
      /^cannot read the config blob: Blob sha256:\w+ in store .* is corrupt: its bytes hash to sha256:\w+; verify the store with repair, then pull or build the image again$/,
    );
    assert.match(broken.findings[1]!.message, /is missing from store/);
  });
});

Deno.test("validateImage() in the store reports a missing or resized layer blob as an error", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      vmlinuz: "kernel",
      initrd: "initramfs",
      squashfs: "squashfs",
    });
    const store = await Store.open(`${dir}/store`);
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd, squashfs: f.squashfs },
      variant: "metal",
    }], { tag: "demo:1" });
    assert.deepEqual((await validateImage(store, "demo:1")).findings, []);
    const { descriptor } = await store.resolve("demo:1-amd64");
    const parsed = await store.readManifest(descriptor);
    assert.equal(parsed.kind, "manifest");
    if (parsed.kind !== "manifest") return;
    const [squashfs, initramfs] = parsed.manifest.layers;
    await Deno.remove(store.blobPath(squashfs!.digest));
    await Deno.truncate(store.blobPath(initramfs!.digest), 3);
    const report = await validateImage(store, "demo:1");
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.findings.map((x) => [x.level, x.path]),
      [
        ["error", "manifests[0].layers[0]"],
        ["error", "manifests[0].layers[1]"],
      ],
    );
    assert.match(
      report.findings[0]!.message,
      new RegExp(
        `^cannot read the layer blob: Blob ${
          squashfs!.digest
        } is missing from store .*: pull or build the image again$`,
      ),
    );
    assert.match(
      report.findings[1]!.message,
      new RegExp(
        `^cannot read the layer blob: Size mismatch for layer ${
          initramfs!.digest
        } in store .*: expected 9 bytes, got 3$`,
      ),
    );
  });
});
