/**
 * OCI archive export: round trips through our own import and through skopeo,
 * deterministic bytes, names, and refusing incomplete images.
 */

import assert from "node:assert/strict";
import { InvalidImageError, NotFoundError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import type { ImageIndex } from "../../src/oci/manifest.ts";
import type { ProgressEvent } from "../../src/progress.ts";
import { Store } from "../../src/store/store.ts";
import { exportArchive } from "../../src/archive/export_archive.ts";
import { importArchive } from "../../src/archive/import_archive.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobsOf,
  demo,
  exportToFile,
  importFile,
  resolveAll,
} from "../_helpers/archive.ts";
import { tarEntries, tarEntry, writeTar } from "../_helpers/tar.ts";
import { hasSkopeo, skopeo } from "../_helpers/tools.ts";

const encoder = new TextEncoder();

Deno.test("exportArchive() and importArchive() move an image between stores with the same digests", async () => {
  await withTempDir(async (dir) => {
    const a = await Store.open(`${dir}/a`);
    const built = await demo(dir, a);
    const events: ProgressEvent[] = [];
    const file = await Deno.open(`${dir}/demo.tar`, {
      write: true,
      create: true,
    });
    const exported = await exportArchive(a, "demo:1", {
      writable: file.writable,
      onProgress: (e) => events.push(e),
    });
    assert.equal(exported.reference, "docker.io/library/demo:1");
    assert.equal(exported.name, "docker.io/library/demo:1");
    assert.equal(exported.descriptor.digest, built.index.digest);
    // Index, two manifests, two configs, kernel, initramfs.
    assert.equal(exported.blobs, 7);
    assert.equal(exported.bytes, (await Deno.stat(`${dir}/demo.tar`)).size);
    assert.equal(exported.bytes % 512, 0);
    assert.equal(events.filter((e) => e.phase === "done").length, 7);

    const b = await Store.open(`${dir}/b`);
    const imported = await importFile(b, `${dir}/demo.tar`);
    assert.deepEqual(imported.images, [{
      reference: "docker.io/library/demo:1",
      descriptor: built.index,
    }]);
    assert.equal(imported.ingested, 7);
    assert.equal(imported.skipped, 0);
    assert.deepEqual(await blobsOf(`${dir}/b`), await blobsOf(`${dir}/a`));
    assert.deepEqual(await resolveAll(b, "demo:1"), [
      "amd64:kernel+initramfs",
      "arm64:kernel",
    ]);

    const again = await importFile(b, `${dir}/demo.tar`, {
      tag: "example.com/os:copy",
    });
    assert.equal(again.ingested, 0);
    assert.equal(again.skipped, 7);
    assert.equal(
      (await b.resolve("example.com/os:copy")).descriptor.digest,
      built.index.digest,
    );
  });
});

Deno.test("exportArchive() writes the same bytes for the same image and streams a 64 MiB layer in bounded chunks", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const big = new Uint8Array(64 * 1024 * 1024 + 5);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const built = await demo(dir, store, big);
    let bytes = 0;
    let largest = 0;
    let chunks = 0;
    const sink = new WritableStream<Uint8Array>({
      write(chunk) {
        bytes += chunk.byteLength;
        largest = Math.max(largest, chunk.byteLength);
        chunks++;
      },
    });
    const result = await exportArchive(store, "demo:1", { writable: sink });
    assert.equal(result.bytes, bytes);
    assert.ok(bytes > big.length);
    // Chunk by chunk, never the whole layer at once.
    assert.ok(largest <= 1024 * 1024, `largest chunk ${largest}`);
    assert.ok(chunks >= 64);

    // Straight into another store through a pipe, same digests.
    const other = await Store.open(`${dir}/other`);
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const [, imported] = await Promise.all([
      exportArchive(store, built.index.digest, {
        writable: pipe.writable,
        name: "v1",
      }),
      importArchive(other, pipe.readable, { tag: "demo:copy" }),
    ]);
    assert.equal(imported.images[0]!.descriptor.digest, built.index.digest);
    assert.equal(imported.ingested, 7);
    assert.ok(await other.hasBlob(digestOf(big), big.length));

    const first = await Deno.makeTempFile({ dir });
    const second = await Deno.makeTempFile({ dir });
    await exportToFile(store, "demo:1", first);
    await exportToFile(store, "demo:1", second);
    assert.equal(
      digestOf(await Deno.readFile(first)),
      digestOf(await Deno.readFile(second)),
    );
  });
});

Deno.test("exportArchive() writes the name it is given, and importArchive() then needs a tag", async () => {
  await withTempDir(async (dir) => {
    const a = await Store.open(`${dir}/a`);
    const built = await demo(dir, a);
    await exportToFile(a, "demo:1", `${dir}/v1.tar`, "v1");
    const index: ImageIndex = JSON.parse(
      new TextDecoder().decode(await tarEntry(`${dir}/v1.tar`, "index.json")),
    );
    assert.equal(
      index.manifests[0]!.annotations?.["org.opencontainers.image.ref.name"],
      "v1",
    );
    // A bare tag names no repository; containerd's full name is there too,
    // so drop it to see the bare name alone.
    delete index.manifests[0]!.annotations!["io.containerd.image.name"];
    const entries = await tarEntries(`${dir}/v1.tar`);
    entries.set("index.json", encoder.encode(JSON.stringify(index)));
    await writeTar(`${dir}/bare.tar`, entries);

    const b = await Store.open(`${dir}/b`);
    await assert.rejects(importFile(b, `${dir}/bare.tar`), (e: Error) => {
      assert.ok(e instanceof InvalidImageError);
      assert.match(
        e.message,
        /is named "v1", which is not a full reference: set tag to name it/,
      );
      return true;
    });
    assert.deepEqual(await b.tags(), []);
    const ok = await importFile(b, `${dir}/bare.tar`, { tag: "demo:v1" });
    assert.equal(ok.images[0]!.reference, "docker.io/library/demo:v1");
    assert.equal(ok.images[0]!.descriptor.digest, built.index.digest);

    // With containerd's name present, the full reference is used.
    const c = await Store.open(`${dir}/c`);
    const named = await importFile(c, `${dir}/v1.tar`);
    assert.equal(named.images[0]!.reference, "docker.io/library/demo:1");

    await assert.rejects(
      exportToFile(a, "demo:1", `${dir}/x.tar`, "bad name"),
      /Invalid archive name "bad name"/,
    );
  });
});

Deno.test("exportArchive() refuses an image with a missing blob before writing anything", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const built = await demo(dir, store);
    const manifest = await store.readManifest(built.manifests[1]!.descriptor);
    assert.equal(manifest.kind, "manifest");
    if (manifest.kind !== "manifest") return;
    const kernel = manifest.manifest.layers[0]!.digest;
    await Deno.remove(store.blobPath(kernel));
    const chunks: Uint8Array[] = [];
    await assert.rejects(
      exportArchive(store, "demo:1", {
        writable: new WritableStream({ write: (c) => void chunks.push(c) }),
      }),
      (e: Error) => {
        assert.ok(e instanceof NotFoundError);
        assert.match(
          e.message,
          new RegExp(`Blob ${kernel} \\(layer of manifest`),
        );
        return true;
      },
    );
    assert.equal(chunks.length, 0);
    await assert.rejects(
      exportArchive(store, "nope:1", { writable: new WritableStream() }),
      NotFoundError,
    );
  });
});

Deno.test({
  name:
    "skopeo copies and inspects an archive written by exportArchive() with the same digests",
  ignore: !hasSkopeo,
  async fn() {
    await withTempDir(async (dir) => {
      const store = await Store.open(`${dir}/store`);
      const built = await demo(dir, store);
      await exportToFile(store, "demo:1", `${dir}/demo.tar`);

      const raw = await skopeo(
        "inspect",
        "--raw",
        `oci-archive:${dir}/demo.tar`,
      );
      assert.equal(digestOf(raw), built.index.digest);
      const named = await skopeo(
        "inspect",
        "--raw",
        `oci-archive:${dir}/demo.tar:docker.io/library/demo:1`,
      );
      assert.equal(digestOf(named), built.index.digest);

      await skopeo(
        "copy",
        "--quiet",
        "--all",
        `oci-archive:${dir}/demo.tar`,
        `oci:${dir}/out:x`,
      );
      const index: ImageIndex = JSON.parse(
        await Deno.readTextFile(`${dir}/out/index.json`),
      );
      assert.equal(index.manifests.length, 1);
      assert.equal(index.manifests[0]!.digest, built.index.digest);
      assert.deepEqual(
        await blobsOf(`${dir}/out`),
        await blobsOf(`${dir}/store`),
      );
    });
  },
});

Deno.test("exportArchive() to a writer writes the same archive in buffers that go round", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const big = new Uint8Array(8 * 1024 * 1024 + 5);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    await demo(dir, store, big);
    await exportToFile(store, "demo:1", `${dir}/stream.tar`);

    const buffers = new Set<ArrayBufferLike>();
    using file = await Deno.open(`${dir}/writer.tar`, {
      write: true,
      create: true,
    });
    const result = await exportArchive(store, "demo:1", {
      writer: {
        write(p) {
          if (p.byteLength >= 1024 * 1024) buffers.add(p.buffer);
          // Write half at a time: the export writes the rest itself.
          return file.write(p.subarray(0, Math.ceil(p.byteLength / 2)));
        },
      },
    });
    assert.deepEqual(
      await Deno.readFile(`${dir}/writer.tar`),
      await Deno.readFile(`${dir}/stream.tar`),
    );
    assert.equal(result.bytes, (await Deno.stat(`${dir}/writer.tar`)).size);
    assert.ok(buffers.size <= 3, `${buffers.size} buffers for 8 MiB`);
  });
});

Deno.test("exportArchive() wants exactly one destination", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    await demo(dir, store);
    await assert.rejects(
      exportArchive(store, "demo:1", {}),
      /give the archive one destination, writable or writer/,
    );
    await assert.rejects(
      exportArchive(store, "demo:1", {
        writable: new WritableStream(),
        writer: { write: (p) => Promise.resolve(p.byteLength) },
      }),
      TypeError,
    );
  });
});

Deno.test("exportArchive() to a writer never writes a damaged blob whole", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const big = new Uint8Array(3 * 1024 * 1024);
    big.fill(7);
    await demo(dir, store, big);
    // Flip a byte of the layer in place: same size, another digest.
    const path = store.blobPath(digestOf(big));
    const bytes = await Deno.readFile(path);
    bytes[100] = bytes[100]! ^ 0xff;
    await Deno.chmod(path, 0o644);
    await Deno.writeFile(path, bytes);
    let written = 0;
    let layerBytes = 0;
    await assert.rejects(
      exportArchive(store, "demo:1", {
        writer: {
          write(p) {
            written += p.byteLength;
            if (p.byteLength >= 1024 * 1024) layerBytes += p.byteLength;
            return Promise.resolve(p.byteLength);
          },
        },
      }),
      /does not match|digest/i,
    );
    assert.ok(written > 0);
    assert.ok(layerBytes < big.length, "the last chunk was held back");
  });
});
