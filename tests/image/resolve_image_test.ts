import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import {
  DigestMismatchError,
  NotFoundError,
  SizeMismatchError,
} from "../../src/errors.ts";
import { resolveImage } from "../../src/image/resolve_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import {
  manifestResponse,
  notFound,
  startFakeRegistry,
} from "../_helpers/fake_registry.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

Deno.test("resolveImage() gives the same typed image from the store and from a registry", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      vmlinuz: "amd64 kernel",
      arm: "arm64 kernel!",
      initrd: "initramfs",
      cmdline: "console=ttyS0",
    });
    const store = await Store.open(`${dir}/store`);
    const ref = `${reg.host}/resolve/os:1.0`;
    const built = await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: f.vmlinuz, initramfs: f.initrd },
        cmdline: f.cmdline,
      },
      { arch: "arm64", layers: { kernel: f.arm } },
    ], { tag: ref });
    const client = new RegistryClient({ plainHttp: true });
    await pushImage(store, ref, { client });
    const arm = { os: "linux", architecture: "arm64" };
    for (const source of [store, client]) {
      const amd = await resolveImage(source, ref, {
        platform: { os: "linux", architecture: "amd64" },
      });
      assert.equal(amd.reference, ref);
      assert.equal(amd.descriptor.digest, built.index.digest);
      assert.equal(amd.manifest.digest, built.manifests[0]!.descriptor.digest);
      assert.deepEqual(amd.platform, { os: "linux", architecture: "amd64" });
      assert.deepEqual(amd.platforms.map((p) => p.architecture), [
        "amd64",
        "arm64",
      ]);
      assert.equal(amd.image.config.commandLine, "console=ttyS0");
      assert.equal(amd.image.kernel?.size, "amd64 kernel".length);
      assert.equal(amd.image.initramfs?.size, "initramfs".length);

      const resolvedArm = await resolveImage(source, ref, { platform: arm });
      assert.equal(resolvedArm.image.kernel?.size, "arm64 kernel!".length);
      assert.equal(resolvedArm.image.initramfs, undefined);

      // A single manifest has no platforms to choose from.
      const single = await resolveImage(source, `${ref}-arm64`);
      assert.equal(single.descriptor.digest, single.manifest.digest);
      assert.deepEqual(single.platforms, []);
      assert.equal(single.platform, undefined);

      await assert.rejects(
        resolveImage(source, ref, {
          platform: { os: "linux", architecture: "s390x" },
        }),
        (e: unknown) =>
          e instanceof NotFoundError && e.platform === "linux/s390x" &&
          e.reference === ref &&
          e.message ===
            `Platform linux/s390x not found in ${ref}: the image has linux/amd64, linux/arm64`,
      );
    }
  });
});

Deno.test("resolveImage() checks every document it reads against its digest", async () => {
  const config = encodeJson({ commandLine: "quiet" });
  const kernel = digestOf("kernel");
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, digest: config.digest, size: 5 },
    layers: [{ mediaType: LAYER_MEDIA_TYPES.kernel, digest: kernel, size: 6 }],
  });
  const badConfig = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: config.digest,
      size: config.size,
    },
    layers: [{ mediaType: LAYER_MEDIA_TYPES.kernel, digest: kernel, size: 6 }],
  });
  const index = (m: { digest: string; size: number }) =>
    encodeJson({
      schemaVersion: 2,
      mediaType: OCI_INDEX_MEDIA_TYPE,
      manifests: [{
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: m.digest,
        size: m.size,
        platform: { os: "linux", architecture: "amd64" },
      }],
    });
  // The index names the manifest by the digest of other bytes.
  const lying = index({ digest: digestOf("other"), size: manifest.size });
  await using fake = startFakeRegistry(async (req) => {
    const path = req.path;
    if (path.endsWith("/manifests/lying")) {
      return await manifestResponse(lying.bytes as Uint8Array<ArrayBuffer>, {
        mediaType: OCI_INDEX_MEDIA_TYPE,
      });
    }
    if (path.endsWith("/manifests/short-config")) {
      return await manifestResponse(
        index(badConfig).bytes as Uint8Array<ArrayBuffer>,
        { mediaType: OCI_INDEX_MEDIA_TYPE },
      );
    }
    if (path.endsWith(`/manifests/${digestOf("other")}`)) {
      return await manifestResponse(manifest.bytes as Uint8Array<ArrayBuffer>);
    }
    if (path.endsWith(`/manifests/${badConfig.digest}`)) {
      return await manifestResponse(
        badConfig.bytes as Uint8Array<ArrayBuffer>,
      );
    }
    if (path.endsWith(`/blobs/${config.digest}`)) {
      return new Response("{}");
    }
    return notFound();
  });
  const client = new RegistryClient({ plainHttp: true, retries: 0 });
  await assert.rejects(
    resolveImage(client, `${fake.host}/os/demo:lying`),
    DigestMismatchError,
  );
  await assert.rejects(
    resolveImage(client, `${fake.host}/os/demo:short-config`),
    SizeMismatchError,
  );
});
