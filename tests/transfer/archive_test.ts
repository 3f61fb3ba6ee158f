/**
 * OCI archives: round trips through our own import, through skopeo in both
 * directions, the tar reader on formats other tools write, and hostile
 * archives that must leave the store exactly as it was.
 */

import assert from "node:assert/strict";
import { build, type BuildResult } from "../../src/build/build.ts";
import {
  DigestMismatchError,
  InvalidImageError,
  NotFoundError,
} from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import type { ImageIndex } from "../../src/oci/manifest.ts";
import type { ProgressEvent } from "../../src/progress.ts";
import { resolveImage } from "../../src/spec/resolve_image.ts";
import { Store } from "../../src/store/store.ts";
import { TarReader, TarWriter } from "../../src/transfer/_tar.ts";
import { exportArchive, importArchive } from "../../src/transfer/archive.ts";
import { snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

const encoder = new TextEncoder();

async function has(name: string): Promise<boolean> {
  try {
    const { code } = await new Deno.Command(name, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0;
  } catch {
    return false;
  }
}

const hasSkopeo = await has("skopeo");
const hasTar = await has("tar");

async function run(cmd: string, ...args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(
    out.code,
    0,
    `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
  );
  return out.stdout;
}

function skopeo(...args: string[]): Promise<Uint8Array> {
  return run("skopeo", "--insecure-policy", ...args);
}

/** A two-architecture image tagged docker.io/library/demo:1. */
async function demo(
  dir: string,
  store: Store,
  kernel: string | Uint8Array = "kernel bytes",
): Promise<BuildResult> {
  const f = await writeFiles(dir, {
    vmlinuz: kernel,
    initrd: "initramfs bytes ".repeat(100),
    cmdline: "console=ttyS0",
  });
  return await build(store, [
    {
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd },
      cmdline: f.cmdline,
    },
    { arch: "arm64", layers: { kernel: f.vmlinuz } },
  ], { tag: "demo:1" });
}

async function exportToFile(
  store: Store,
  ref: string,
  path: string,
  name?: string,
): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true });
  await exportArchive(store, ref, file.writable, name ? { name } : {});
}

async function importFile(
  store: Store,
  path: string,
  options: Parameters<typeof importArchive>[2] = {},
): Promise<Awaited<ReturnType<typeof importArchive>>> {
  const file = await Deno.open(path, { read: true });
  return await importArchive(store, file.readable, options);
}

/** Digest → bytes of every blob under a layout directory. */
async function blobsOf(layout: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(`${layout}/blobs/sha256`)) {
    const bytes = await Deno.readFile(`${layout}/blobs/sha256/${e.name}`);
    assert.equal(digestOf(bytes), `sha256:${e.name}`, "blob names are honest");
    out.set(e.name, digestOf(bytes));
  }
  return out;
}

/** Resolves every architecture of a tagged index as an IronCore image. */
async function resolveAll(store: Store, ref: string): Promise<string[]> {
  const { descriptor } = await store.resolve(ref);
  const top = await store.readManifest(descriptor);
  assert.equal(top.kind, "index");
  if (top.kind !== "index") return [];
  const kinds: string[] = [];
  for (const m of top.index.manifests) {
    const child = await store.readManifest(m);
    assert.equal(child.kind, "manifest");
    if (child.kind !== "manifest") continue;
    const image = resolveImage(
      child.manifest,
      await store.readBlob(child.manifest.config),
    );
    kinds.push(
      `${m.platform?.architecture}:${image.kernel ? "kernel" : ""}${
        image.initramfs ? "+initramfs" : ""
      }`,
    );
  }
  return kinds;
}

Deno.test("exportArchive() and importArchive() move an image between stores with the same digests", async () => {
  await withTempDir(async (dir) => {
    const a = await Store.open(`${dir}/a`);
    const built = await demo(dir, a);
    const events: ProgressEvent[] = [];
    const file = await Deno.open(`${dir}/demo.tar`, {
      write: true,
      create: true,
    });
    const exported = await exportArchive(a, "demo:1", file.writable, {
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
    const result = await exportArchive(store, "demo:1", sink);
    assert.equal(result.bytes, bytes);
    assert.ok(bytes > big.length);
    // Chunk by chunk, never the whole layer at once.
    assert.ok(largest <= 1024 * 1024, `largest chunk ${largest}`);
    assert.ok(chunks >= 64);

    // Straight into another store through a pipe, same digests.
    const other = await Store.open(`${dir}/other`);
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const [, imported] = await Promise.all([
      exportArchive(store, built.index.digest, pipe.writable, {
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

Deno.test("exportArchive() names the image by --name, and importArchive() then needs a tag", async () => {
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
        /is named "v1", which is not a full reference: give one with --tag/,
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
      exportArchive(
        store,
        "demo:1",
        new WritableStream({ write: (c) => void chunks.push(c) }),
      ),
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
      exportArchive(store, "nope:1", new WritableStream()),
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
        /has no name: give one with --tag/,
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

// --- Raw tar construction for formats and hostile archives. ---

function octal(block: Uint8Array, at: number, len: number, n: number): void {
  block.set(encoder.encode(n.toString(8).padStart(len - 1, "0")), at);
}

function checksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
}

/** One raw ustar header, for entries our writer refuses to make. */
function header(
  name: string,
  options: { type?: string; size?: number; link?: string } = {},
): Uint8Array {
  const block = new Uint8Array(512);
  block.set(encoder.encode(name).subarray(0, 100), 0);
  octal(block, 100, 8, 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, options.size ?? 0);
  octal(block, 136, 12, 0);
  block[156] = (options.type ?? "0").charCodeAt(0);
  block.set(encoder.encode(options.link ?? ""), 157);
  block.set(encoder.encode("ustar\x0000"), 257);
  checksum(block);
  return block;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A regular-file entry: header, data, padding. */
function fileEntry(name: string, data: Uint8Array): Uint8Array {
  return concat([header(name, { size: data.length }), padded(data)]);
}

const END = new Uint8Array(1024);

async function tarEntries(path: string): Promise<Map<string, Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  const tar = new TarReader(file.readable);
  const out = new Map<string, Uint8Array>();
  for (let e = await tar.next(); e !== null; e = await tar.next()) {
    if (e.type === "file") out.set(e.name, await tar.readAll(1 << 26));
  }
  await tar.cancel();
  return out;
}

async function tarEntry(path: string, name: string): Promise<Uint8Array> {
  const data = (await tarEntries(path)).get(name);
  assert.ok(data, `${name} in ${path}`);
  return data;
}

async function writeTar(
  path: string,
  entries: Map<string, Uint8Array>,
): Promise<void> {
  const parts: Uint8Array[] = [];
  for (const [name, data] of entries) parts.push(fileEntry(name, data));
  parts.push(END);
  await Deno.writeFile(path, concat(parts));
}

Deno.test("TarWriter output reads back through TarReader and GNU tar, with pax records for long names and huge sizes", async () => {
  await withTempDir(async (dir) => {
    const longName = `blobs/${"d".repeat(120)}/${"f".repeat(130)}`;
    const chunks: Uint8Array[] = [];
    const writer = new TarWriter({
      write: (c) => Promise.resolve(void chunks.push(c)),
    });
    await writer.add({ name: "dir", type: "directory" });
    await writer.add({ name: longName, type: "file", size: 3 });
    await writer.write(encoder.encode("abc"));
    await writer.add({ name: "ünïcode", type: "file", size: 0 });
    await writer.finish();
    const archive = concat(chunks);
    await Deno.writeFile(`${dir}/w.tar`, archive);

    const tar = new TarReader(ReadableStream.from([archive]));
    const seen: [string, string, number][] = [];
    for (let e = await tar.next(); e !== null; e = await tar.next()) {
      seen.push([e.name, e.type, e.size]);
      if (e.name === longName) {
        assert.equal(new TextDecoder().decode(await tar.readAll(10)), "abc");
      }
    }
    assert.deepEqual(seen, [
      ["dir/", "directory", 0],
      [longName, "file", 3],
      ["ünïcode", "file", 0],
    ]);

    if (hasTar) {
      const listed = new TextDecoder().decode(
        await run("tar", "tf", `${dir}/w.tar`),
      );
      assert.deepEqual(listed.trimEnd().split("\n"), [
        "dir/",
        longName,
        "ünïcode",
      ]);
    }

    // 9 GiB: the size goes into a pax record (and a base-256 field).
    const huge = 9 * 1024 * 1024 * 1024;
    const head: Uint8Array[] = [];
    const w2 = new TarWriter({
      write: (c) => Promise.resolve(void head.push(c)),
    });
    await w2.add({ name: "blobs/sha256/big", type: "file", size: huge });
    const r2 = new TarReader(ReadableStream.from(head));
    const big = await r2.next();
    assert.equal(big?.size, huge);
    assert.equal(big?.name, "blobs/sha256/big");
    await assert.rejects(r2.next(), /ends inside entry blobs\/sha256\/big/);
    await assert.rejects(
      w2.finish(),
      /Tar entry blobs\/sha256\/big is 9663676416 bytes short/,
    );
  });
});

Deno.test({
  name:
    "TarReader reads GNU long names, pax global headers and old-style archives from GNU tar",
  ignore: !hasTar,
  async fn() {
    await withTempDir(async (dir) => {
      const long = "n".repeat(150);
      await Deno.writeTextFile(`${dir}/${long}`, "long");
      await Deno.writeTextFile(`${dir}/short`, "short");
      for (const format of ["gnu", "pax", "ustar", "v7", "oldgnu"]) {
        const names = format === "ustar" || format === "v7"
          ? ["short"]
          : [long, "short"];
        await run(
          "tar",
          `--format=${format}`,
          "-C",
          dir,
          "-cf",
          `${dir}/${format}.tar`,
          ...names,
        );
        const entries = await tarEntries(`${dir}/${format}.tar`);
        assert.deepEqual([...entries.keys()], names, format);
        assert.equal(new TextDecoder().decode(entries.get("short")), "short");
      }
      // A pax global header applies to every entry after it.
      const global = encoder.encode("19 comment=ignored\n");
      const archive = concat([
        header("pax_global_header", { type: "g", size: global.length }),
        padded(global),
        fileEntry("a", encoder.encode("x")),
        END,
      ]);
      const tar = new TarReader(ReadableStream.from([archive]));
      assert.equal((await tar.next())?.name, "a");
      assert.equal(await tar.next(), null);
    });
  },
});

Deno.test("TarReader rejects bad checksums, non-octal fields, a missing end marker and a lone zero block", async () => {
  const good = fileEntry("a", encoder.encode("data"));
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "checksum",
      (() => {
        const b = concat([good, END]);
        b[0] = "b".charCodeAt(0);
        return b;
      })(),
      /header checksum is \d+, computed \d+/,
    ],
    [
      "octal",
      (() => {
        const h = header("a", { size: 4 });
        h.set(encoder.encode("00000000009"), 124);
        checksum(h);
        return concat([h, padded(encoder.encode("data")), END]);
      })(),
      /size field "00000000009\\u0000" is not octal/,
    ],
    ["no end marker", good, /ends without the end-of-archive marker/],
    [
      "lone zero block",
      concat([good, new Uint8Array(512), good]),
      /a single zero block is followed by data/,
    ],
    [
      "not a tar",
      encoder.encode("hello world\n".repeat(100)),
      /the data does not start with a tar header/,
    ],
    [
      "gzip",
      concat([new Uint8Array([0x1f, 0x8b, 8, 0]), new Uint8Array(1020)]),
      /it is gzip-compressed: decompress it first/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    const tar = new TarReader(ReadableStream.from([bytes]));
    await assert.rejects(
      (async () => {
        while (await tar.next() !== null) {
          // Read every header.
        }
      })(),
      (e: Error) => {
        assert.ok(e instanceof SyntaxError, what);
        assert.match(e.message, re, what);
        return true;
      },
    );
  }
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
    await build(store, [{
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
    await store.putBytes(encoder.encode("{}"), "application/json");
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
