import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import { deleteImage } from "../../src/store/images.ts";
import { Store } from "../../src/store/store.ts";
import { runCliProcess } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobFiles, reachableDigests, storeTags } from "./_common.ts";

async function sha(path: string): Promise<string> {
  return digestOf(await Deno.readFile(path));
}

/** Names and sizes under a directory, by `stat` only (reading would bump atimes). */
async function listing(root: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  async function walk(dir: string, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const key = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(`${dir}/${e.name}`, key);
      else out[key] = (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  }
  await walk(root, "");
  return out;
}

interface PruneJson {
  dryRun: boolean;
  blobs: { digest: string; size: number }[];
  temp: { path: string; size: number }[];
  freed: number;
  recent: number;
}

async function pruneCli(store: string, ...flags: string[]): Promise<PruneJson> {
  const res = await runCliProcess([
    "--store-path",
    store,
    "prune",
    "--json",
    ...flags,
  ]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout);
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

Deno.test("prune frees exactly the unreferenced blobs older than the grace period", async (t) => {
  await withTempDir(async (dir) => {
    const path = `${dir}/store`;
    const store = await Store.open(path);
    const f = await writeFiles(dir, {
      shared: randomBytes(8192),
      a: randomBytes(4096),
      b: randomBytes(4096),
      c: randomBytes(4096),
    });
    // A: an index over two archs; only the index is tagged, so its
    // manifests are reachable through it alone.
    const a = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f.shared, rootfs: f.a } },
      { arch: "arm64", layers: { kernel: f.shared } },
    ], { tag: "prune/a:1" });
    await deleteImage(store, "prune/a:1-amd64");
    await deleteImage(store, "prune/a:1-arm64");
    // B shares the kernel with A and loses its tags: garbage, except the
    // kernel.
    const b = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f.shared, rootfs: f.b } },
    ], { tag: "prune/b:1" });
    await deleteImage(store, "prune/b:1");
    await deleteImage(store, "prune/b:1-amd64");
    // Everything so far was last used an hour ago.
    const hourAgo = new Date(Date.now() - 60 * 60 * 1000);
    for (const d of await blobFiles(path)) {
      await Deno.utime(
        store.blobPath(d as `sha256:${string}`),
        hourAgo,
        hourAgo,
      );
    }
    const beforeC = await blobFiles(path);
    // C is unreferenced too, but young: a build might be about to tag it.
    const c: BuildImageResult = await buildImage(store, [
      { arch: "amd64", layers: { rootfs: f.c } },
    ], { tag: "prune/c:1" });
    await deleteImage(store, "prune/c:1");
    await deleteImage(store, "prune/c:1-amd64");
    const young = new Set(
      [...await blobFiles(path)].filter((d) => !beforeC.has(d)),
    );
    // Temporary files: two left by crashed runs long ago, one in use.
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await Deno.writeFile(`${path}/.tmp/crashed-write`, randomBytes(1000));
    await Deno.writeFile(
      `${path}/.tmp/partial-${"e".repeat(64)}`,
      randomBytes(3000),
    );
    await Deno.writeFile(`${path}/.tmp/in-use`, randomBytes(500));
    for (const name of ["crashed-write", `partial-${"e".repeat(64)}`]) {
      await Deno.utime(`${path}/.tmp/${name}`, twoHoursAgo, twoHoursAgo);
    }

    // The expected garbage, from the manifests themselves.
    const reachable = await reachableDigests(path);
    const all = await blobFiles(path);
    const unreferenced = new Set([...all].filter((d) => !reachable.has(d)));
    const garbage = [...unreferenced].filter((d) => !young.has(d));
    assert.ok(reachable.has(a.index.digest));
    for (const m of a.manifests) assert.ok(reachable.has(m.descriptor.digest));
    assert.ok(unreferenced.has(b.index.digest));
    assert.ok(young.has(c.index.digest));
    // B's index, manifest and rootfs; its config and kernel are A's too.
    assert.deepEqual(
      sorted(garbage),
      sorted([
        b.index.digest,
        b.manifests[0]!.descriptor.digest,
        await sha(f.b),
      ]),
    );
    assert.ok(young.size >= 3);

    await t.step(
      "--dry-run lists the garbage and deletes nothing",
      async () => {
        const before = await listing(path);
        const result = await pruneCli(path, "--dry-run");
        assert.equal(result.dryRun, true);
        assert.deepEqual(
          sorted(result.blobs.map((x) => x.digest)),
          sorted(garbage),
        );
        assert.deepEqual(
          sorted(result.temp.map((x) => x.path.split("/").pop()!)),
          sorted(["crashed-write", `partial-${"e".repeat(64)}`]),
        );
        assert.equal(result.recent, young.size);
        assert.deepEqual(await listing(path), before);
      },
    );

    await t.step("prune deletes exactly that and keeps the rest", async () => {
      const before = await listing(path);
      const result = await pruneCli(path);
      assert.equal(result.dryRun, false);
      assert.deepEqual(
        sorted(result.blobs.map((x) => x.digest)),
        sorted(garbage),
      );
      assert.equal(result.recent, young.size);
      const sizes = garbage.map((d) =>
        before[`blobs/sha256/${digestHex(d as `sha256:${string}`)}`]!
      );
      assert.equal(
        result.freed,
        sizes.reduce((x, y) => x + y, 0) + 1000 + 3000,
      );
      assert.deepEqual(
        sorted(await blobFiles(path)),
        sorted([...all].filter((d) => !garbage.includes(d))),
      );
      const tmp = Object.keys(await listing(`${path}/.tmp`));
      assert.deepEqual(tmp, ["in-use"]);
      assert.deepEqual(await storeTags(path), ["docker.io/prune/a:1"]);
      const verify = await runCliProcess(["--store-path", path, "verify"]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    });

    await t.step(
      "--grace 0 also frees the young unreferenced blobs",
      async () => {
        const result = await pruneCli(path, "--grace", "0");
        assert.deepEqual(
          sorted(result.blobs.map((x) => x.digest)),
          sorted(young),
        );
        assert.equal(result.recent, 0);
        assert.deepEqual(sorted(await blobFiles(path)), sorted(reachable));
      },
    );
  });
});

Deno.test("verify and verify REF report each kind of damage with exit 1 and the digest", async () => {
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      kernel: randomBytes(4096),
      rootfs: randomBytes(64 * 1024),
      cmdline: "quiet",
    });
    const pristine = `${dir}/pristine`;
    const image = await buildImage(await Store.open(pristine), [{
      arch: "amd64",
      layers: { kernel: f.kernel, rootfs: f.rootfs },
      cmdline: f.cmdline,
    }], { tag: "verify/os:1" });
    const store = await Store.open(pristine);
    const manifest = image.manifests[0]!.descriptor;
    const parsed = await store.readManifest(manifest);
    assert.equal(parsed.kind, "manifest");
    if (parsed.kind !== "manifest") return;
    const [kernel, rootfs] = parsed.manifest.layers;
    assert.ok(kernel && rootfs);
    const blob = (root: string, d: string) =>
      `${root}/blobs/sha256/${d.slice("sha256:".length)}`;

    const damages: {
      name: string;
      digest: string;
      kind: string;
      apply: (root: string) => Promise<void>;
    }[] = [
      {
        name: "a corrupt blob",
        digest: rootfs.digest,
        kind: "corrupt",
        apply: async (root) => {
          const bytes = await Deno.readFile(blob(root, rootfs.digest));
          bytes[100] = bytes[100]! ^ 0xff;
          await Deno.writeFile(blob(root, rootfs.digest), bytes);
        },
      },
      {
        name: "a missing blob",
        digest: kernel.digest,
        kind: "missing",
        apply: (root) => Deno.remove(blob(root, kernel.digest)),
      },
      {
        name: "a truncated blob",
        digest: rootfs.digest,
        kind: "size",
        apply: (root) => Deno.truncate(blob(root, rootfs.digest), 1000),
      },
      {
        name: "a manifest that does not parse",
        digest: manifest.digest,
        kind: "invalid",
        apply: (root) =>
          Deno.writeTextFile(blob(root, manifest.digest), "{not json"),
      },
    ];
    const runs = damages.flatMap((damage, i) => {
      const root = `${dir}/damaged-${i}`;
      return [[], ["verify/os:1"]].map((args) => ({ damage, root, args }));
    });
    for (const [i, damage] of damages.entries()) {
      const root = `${dir}/damaged-${i}`;
      const cp = await new Deno.Command("cp", { args: ["-a", pristine, root] })
        .output();
      assert.ok(cp.success);
      await damage.apply(root);
    }
    const results = await Promise.all(
      runs.map((r) =>
        runCliProcess(["--store-path", r.root, "verify", ...r.args])
      ),
    );
    for (const [i, res] of results.entries()) {
      const { damage, args } = runs[i]!;
      const what = `verify ${args.join(" ")} on ${damage.name}`;
      assert.equal(res.code, 1, `${what}: ${res.stdout}${res.stderr}`);
      const lines = res.stdout.split("\n").filter((l) =>
        l.startsWith(`${damage.kind}: `) && l.includes(damage.digest)
      );
      assert.ok(
        lines.length >= 1,
        `${what} names ${damage.digest}:\n${res.stdout}`,
      );
    }
    const clean = await runCliProcess(["--store-path", pristine, "verify"]);
    assert.equal(clean.code, 0, clean.stdout);
  });
});
