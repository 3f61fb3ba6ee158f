/**
 * OCI archive import: archives skopeo writes, and hostile or broken archives
 * that must leave the store exactly as it was.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { DigestMismatchError } from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import { Store } from "../../src/store/store.ts";
import { importArchive } from "../../src/archive/import_archive.ts";
import { snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobsOf,
  demo,
  exportToFile,
  importFile,
  resolveAll,
} from "../_helpers/archive.ts";
import { concat, END, fileEntry, header, tarEntries } from "../_helpers/tar.ts";
import { hasSkopeo, skopeo } from "../_helpers/tools.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";

const encoder = new TextEncoder();

Deno.test({
  name:
    "importArchive() reads archives skopeo writes and the images resolve as IronCore images",
  ignore: !hasSkopeo,
  async fn() {
    await withTempDir(async (dir) => {
      const store = await Store.open(`${dir}/store`);
      const built = await demo(dir, store);
      const src = `oci:${dir}/store:docker.io/library/demo:1`;
      await skopeo(
        "copy",
        "--quiet",
        "--all",
        src,
        `oci-archive:${dir}/full.tar:docker.io/library/demo:1`,
      );
      await skopeo(
        "copy",
        "--quiet",
        "--all",
        src,
        `oci-archive:${dir}/anon.tar`,
      );

      const b = await Store.open(`${dir}/b`);
      const full = await importFile(b, `${dir}/full.tar`);
      assert.deepEqual(
        full.images.map((i) => [i.reference, i.descriptor.digest]),
        [
          ["docker.io/library/demo:1", built.index.digest],
        ],
      );
      assert.deepEqual(await resolveAll(b, "demo:1"), [
        "amd64:kernel+initramfs",
        "arm64:kernel",
      ]);
      assert.deepEqual(
        await blobsOf(`${dir}/b`),
        await blobsOf(`${dir}/store`),
      );

      const c = await Store.open(`${dir}/c`);
      await assert.rejects(
        importFile(c, `${dir}/anon.tar`),
        /has no name: set tag to name it/,
      );
      assert.deepEqual(await c.tags(), []);
      const anon = await importFile(c, `${dir}/anon.tar`, {
        tag: "registry.example.com/os/demo:2",
      });
      assert.equal(anon.images[0]!.reference, "registry.example.com/os/demo:2");
      assert.deepEqual(await resolveAll(c, "registry.example.com/os/demo:2"), [
        "amd64:kernel+initramfs",
        "arm64:kernel",
      ]);
    });
  },
});

// --- Hostile archives: rejected, store unchanged. ---

interface Fixture {
  /** Entries of a valid archive of the demo image, in archive order. */
  entries: Map<string, Uint8Array>;
  /** The demo image's kernel digest. */
  kernel: Digest;
}

async function fixture(dir: string): Promise<Fixture> {
  const src = await Store.open(`${dir}/src`);
  const big = new Uint8Array(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
  await demo(dir, src, big);
  await exportToFile(src, "demo:1", `${dir}/good.tar`);
  return {
    entries: await tarEntries(`${dir}/good.tar`),
    kernel: digestOf(big),
  };
}

Deno.test("importArchive() rejects hostile and broken archives and leaves the store exactly as it was", async () => {
  await withTempDir(async (dir) => {
    const { entries, kernel } = await fixture(dir);
    const good = await Deno.readFile(`${dir}/good.tar`);
    // The target store holds another image, so blobs an import adds show.
    const store = await Store.open(`${dir}/store`);
    await buildImage(store, [{
      arch: "amd64",
      layers: {
        kernel: (await writeFiles(dir, { other: "other kernel" })).other,
      },
    }], { tag: "other:1" });
    const before = await snapshotStore(`${dir}/store`);

    const valid = [...entries].map(([n, d]) => fileEntry(n, d));
    const rebuilt = concat([...valid, END]);
    const kernelName = `blobs/sha256/${digestHex(kernel)}`;
    const kernelAt = [...entries.keys()].indexOf(kernelName);
    const kernelOffset = concat(valid.slice(0, kernelAt)).length;
    const badBlob = new Uint8Array(entries.get(kernelName)!);
    badBlob[1000] = badBlob[1000]! ^ 1;
    const noIndexLayout = new Map(entries);
    noIndexLayout.delete("oci-layout");
    const noIndex = new Map(entries);
    noIndex.delete("index.json");
    const missingLayer = new Map(entries);
    missingLayer.delete(kernelName);
    const corruptHeader = new Uint8Array(rebuilt);
    corruptHeader[kernelOffset + 20] = corruptHeader[kernelOffset + 20]! ^ 1;

    const cases: [string, Uint8Array, RegExp][] = [
      [
        "../ entry",
        concat([...valid, fileEntry("../evil", encoder.encode("x")), END]),
        /Refusing archive entry "\.\.\/evil": it has a "\.\." component/,
      ],
      [
        "nested ../ entry",
        concat([
          fileEntry("blobs/../../evil", encoder.encode("x")),
          ...valid,
          END,
        ]),
        /it has a "\.\." component/,
      ],
      [
        "absolute path",
        concat([...valid, fileEntry("/etc/evil", encoder.encode("x")), END]),
        /Refusing archive entry "\/etc\/evil": it is an absolute path/,
      ],
      [
        "symlink",
        concat([
          ...valid,
          header("blobs/sha256/evil", { type: "2", link: "/etc/passwd" }),
          END,
        ]),
        /Refusing archive entry "blobs\/sha256\/evil": it is a symbolic link/,
      ],
      [
        "hard link",
        concat([
          header("oci-layout", { type: "1", link: "/etc/passwd" }),
          ...valid,
          END,
        ]),
        /it is a hard link/,
      ],
      [
        "device",
        concat([
          ...valid.slice(0, 3),
          header("dev", { type: "3" }),
          ...valid.slice(3),
          END,
        ]),
        /it is a character device/,
      ],
      [
        "truncated in a blob",
        rebuilt.subarray(0, kernelOffset + 512 + 100_000),
        /ends inside entry blobs\/sha256\/[a-f0-9]{64}.*truncated/,
      ],
      [
        "blob that does not match its name",
        concat([
          ...valid.slice(0, kernelAt),
          fileEntry(kernelName, badBlob),
          ...valid.slice(kernelAt + 1),
          END,
        ]),
        new RegExp(`Digest mismatch for archive entry ${kernelName}`),
      ],
      [
        "no oci-layout",
        concat([...[...noIndexLayout].map(([n, d]) => fileEntry(n, d)), END]),
        /Not an OCI archive: it has no oci-layout file/,
      ],
      [
        "no index.json",
        concat([...[...noIndex].map(([n, d]) => fileEntry(n, d)), END]),
        /it has no index\.json/,
      ],
      [
        "a layer missing",
        concat([...[...missingLayer].map(([n, d]) => fileEntry(n, d)), END]),
        new RegExp(`Incomplete archive: blob ${kernel} \\(layer of manifest`),
      ],
      [
        "bad oci-layout",
        concat([
          fileEntry(
            "oci-layout",
            encoder.encode('{"imageLayoutVersion":"2.0.0"}'),
          ),
          ...valid.slice(1),
          END,
        ]),
        /oci-layout gives imageLayoutVersion "2\.0\.0"/,
      ],
      [
        "corrupted header checksum",
        corruptHeader,
        /header checksum is/,
      ],
    ];
    for (const [what, bytes, re] of cases) {
      await assert.rejects(
        importArchive(store, ReadableStream.from([bytes])),
        (e: Error) => {
          assert.match(e.message, re, what);
          if (what.startsWith("blob that")) {
            assert.ok(e instanceof DigestMismatchError);
          }
          return true;
        },
        what,
      );
      assert.deepEqual(await snapshotStore(`${dir}/store`), before, what);
    }

    // The same archive intact goes in.
    const ok = await importArchive(store, ReadableStream.from([good]));
    assert.equal(ok.images[0]!.reference, "docker.io/library/demo:1");
  });
});

Deno.test("importArchive() stops on abort and removes the blobs it added", async () => {
  await withTempDir(async (dir) => {
    await fixture(dir);
    const store = await Store.open(`${dir}/store`);
    await blobStoreOf(store).putBytes(encoder.encode("{}"), "application/json");
    const before = await snapshotStore(`${dir}/store`);
    const controller = new AbortController();
    let done = 0;
    const file = await Deno.open(`${dir}/good.tar`, { read: true });
    await assert.rejects(
      importArchive(store, file.readable, {
        signal: controller.signal,
        onProgress: (e) => {
          if (e.phase === "done" && ++done === 3) controller.abort();
        },
      }),
      (e: Error) => e.name === "AbortError",
    );
    assert.deepEqual(await snapshotStore(`${dir}/store`), before);
  });
});
