/**
 * The store is a plain OCI image layout: skopeo (containers/image) reads it
 * as `oci:<dir>:<ref.name>`, where ref.name is the full reference we store.
 */

import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import type { ImageIndex } from "../../src/oci/manifest.ts";
import { Store } from "../../src/store/store.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { hasSkopeo, skopeo } from "../_helpers/tools.ts";

async function fixture(
  dir: string,
): Promise<{ store: string; result: BuildImageResult }> {
  const f = await writeFiles(dir, {
    vmlinuz: "kernel bytes",
    initrd: "initramfs bytes",
    cmdline: "console=ttyS0",
  });
  const store = `${dir}/store`;
  const result = await buildImage(await Store.open(store), [
    {
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd },
      cmdline: f.cmdline,
    },
    { arch: "arm64", layers: { kernel: f.vmlinuz } },
  ], { tag: "demo:1" });
  return { store, result };
}

async function blobNames(layout: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${layout}/blobs/sha256`)) {
    // skopeo names blobs by digest; check the names are honest.
    const bytes = await Deno.readFile(`${layout}/blobs/sha256/${e.name}`);
    assert.equal(digestOf(bytes), `sha256:${e.name}`);
    names.push(e.name);
  }
  return names.sort();
}

Deno.test({
  name:
    "skopeo inspect --raw reads the same manifest and index bytes from the store",
  ignore: !hasSkopeo,
  async fn() {
    await withTempDir(async (dir) => {
      const { store, result } = await fixture(dir);
      const cases: [string, BuildImageResult["index"]][] = [
        ["docker.io/library/demo:1", result.index],
        ["docker.io/library/demo:1-amd64", result.manifests[0]!.descriptor],
        ["docker.io/library/demo:1-arm64", result.manifests[1]!.descriptor],
      ];
      for (const [ref, descriptor] of cases) {
        const raw = await skopeo("inspect", "--raw", `oci:${store}:${ref}`);
        assert.equal(digestOf(raw), descriptor.digest, ref);
        assert.deepEqual(
          raw,
          await Deno.readFile(
            `${store}/blobs/sha256/${descriptor.digest.slice(7)}`,
          ),
        );
      }
    });
  },
});

Deno.test({
  name:
    "skopeo copy of a per-architecture tag copies the manifest and its blobs unchanged",
  ignore: !hasSkopeo,
  async fn() {
    await withTempDir(async (dir) => {
      const { store, result } = await fixture(dir);
      await skopeo(
        "copy",
        "--quiet",
        `oci:${store}:docker.io/library/demo:1-amd64`,
        `oci:${dir}/x:y`,
      );
      const index: ImageIndex = JSON.parse(
        await Deno.readTextFile(`${dir}/x/index.json`),
      );
      const amd = result.manifests[0]!.descriptor;
      assert.equal(index.manifests.length, 1);
      assert.equal(index.manifests[0]!.digest, amd.digest);
      assert.equal(index.manifests[0]!.size, amd.size);
      assert.equal(
        index.manifests[0]!.annotations?.["org.opencontainers.image.ref.name"],
        "y",
      );
      const manifest = JSON.parse(
        await Deno.readTextFile(`${store}/blobs/sha256/${amd.digest.slice(7)}`),
      );
      const expected = [
        amd.digest,
        manifest.config.digest,
        ...manifest.layers.map((l: { digest: string }) => l.digest),
      ]
        .map((d: string) => d.slice(7)).sort();
      assert.deepEqual(await blobNames(`${dir}/x`), expected);
    });
  },
});

Deno.test({
  name:
    "skopeo copy --all of the index tag copies the index, both manifests and every blob unchanged",
  ignore: !hasSkopeo,
  async fn() {
    await withTempDir(async (dir) => {
      const { store, result } = await fixture(dir);
      await skopeo(
        "copy",
        "--quiet",
        "--all",
        `oci:${store}:docker.io/library/demo:1`,
        `oci:${dir}/x:y`,
      );
      const index: ImageIndex = JSON.parse(
        await Deno.readTextFile(`${dir}/x/index.json`),
      );
      assert.deepEqual(
        index.manifests.map((m) => [m.digest, m.mediaType]),
        [[result.index.digest, result.index.mediaType]],
      );
      // The store holds exactly this image, so every blob must have come over.
      assert.deepEqual(await blobNames(`${dir}/x`), await blobNames(store));
    });
  },
});

Deno.test({
  name:
    "skopeo copy of the index tag without --all copies this host's architecture",
  // The image has amd64 and arm64 only.
  ignore: !hasSkopeo || !["x86_64", "aarch64"].includes(Deno.build.arch),
  async fn() {
    await withTempDir(async (dir) => {
      const { store, result } = await fixture(dir);
      await skopeo(
        "copy",
        "--quiet",
        `oci:${store}:docker.io/library/demo:1`,
        `oci:${dir}/x:y`,
      );
      const index: ImageIndex = JSON.parse(
        await Deno.readTextFile(`${dir}/x/index.json`),
      );
      const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
      const want = result.manifests.find((m) => m.arch === arch)!.descriptor;
      assert.equal(index.manifests[0]!.digest, want.digest);
    });
  },
});
