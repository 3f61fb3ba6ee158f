/**
 * build, tag, list, inspect and delete through the real CLI process, and the
 * CLI's terminal output path in process.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { runCli } from "../../src/cli/run_cli.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import { Store } from "../../src/store/store.ts";
import { runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

async function inputs(dir: string) {
  return await writeFiles(dir, {
    vmlinuz: "kernel",
    "initrd.img": "initramfs",
    "cmdline.txt": "console=ttyS0 quiet\n",
  });
}

Deno.test("build prints each manifest and the index, and a summary on stderr unless quiet", async () => {
  await withTempDir(async (dir) => {
    await inputs(dir);
    const res = await runCliProcess([
      "build",
      "--store-path",
      "store",
      "--tag",
      "ghcr.io/org/os:1.0",
      "--config",
      "arch=amd64,kernel=vmlinuz,initramfs=initrd.img,cmdline=cmdline.txt",
      "--config",
      "arch=arm64,kernel=vmlinuz",
      "--annotations",
      "org.example/a=1,org.example/b=x=y",
    ], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.match(
      lines[0]!,
      /^Built amd64: sha256:[a-f0-9]{64} \(ghcr\.io\/org\/os:1\.0-amd64\)$/,
    );
    assert.match(
      lines[1]!,
      /^Built arm64: sha256:[a-f0-9]{64} \(ghcr\.io\/org\/os:1\.0-arm64\)$/,
    );
    assert.match(
      lines[2]!,
      /^Built index: sha256:[a-f0-9]{64} \(ghcr\.io\/org\/os:1\.0\)$/,
    );
    // Off a terminal, progress is one summary line.
    assert.match(res.stderr, /^Stored 2 blob\(s\), 15 B in [\d.]+s\n$/);

    const store = await Store.open(`${dir}/store`);
    const tags = new Map(
      (await store.tags()).map((t) => [t.reference, t.descriptor.digest]),
    );
    assert.equal(tags.get("ghcr.io/org/os:1.0"), lines[2]!.split(" ")[2]);
    assert.equal(tags.get("ghcr.io/org/os:1.0-amd64"), lines[0]!.split(" ")[2]);
    const index = JSON.parse(
      await Deno.readTextFile(store.blobPath(tags.get("ghcr.io/org/os:1.0")!)),
    );
    assert.deepEqual(index.annotations, {
      "org.example/a": "1",
      "org.example/b": "x=y",
    });

    const quiet = await runCliProcess([
      "-q",
      "build",
      "--store-path",
      `${dir}/store`,
      "--tag",
      "ghcr.io/org/os:1.1",
      "--config",
      `arch=amd64,kernel=${dir}/vmlinuz`,
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, "");
    assert.equal(quiet.stdout.split("\n").length, 3);
  });
});

Deno.test("build without --tag stores the image untagged and list shows it as <none>", async () => {
  await withTempDir(async (dir) => {
    await inputs(dir);
    const res = await runCliProcess([
      "--store-path",
      `${dir}/store`,
      "build",
      "-q",
      "--config",
      `arch=amd64,kernel=${dir}/vmlinuz`,
    ]);
    assert.equal(res.code, 0, res.stderr);
    const index = /^Built index: (sha256:[a-f0-9]{64})$/m.exec(res.stdout)![1]!;
    const list = await runCliProcess([
      "--store-path",
      `${dir}/store`,
      "list",
      "--json",
    ]);
    assert.deepEqual(
      JSON.parse(list.stdout).map((
        r: Record<string, unknown>,
      ) => [r.reference, r.repository, r.tag, r.digest]),
      [
        [null, "<none>", "<none>", index],
      ],
    );
    // The IMAGE ID list prints works as a reference.
    const id = digestHex(index as `sha256:${string}`).slice(0, 12);
    const table = await runCliProcess(["--store-path", `${dir}/store`, "list"]);
    assert.ok(table.stdout.includes(id));
    const inspect = await runCliProcess([
      "--store-path",
      `${dir}/store`,
      "inspect",
      id,
    ]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).descriptor.digest, index);
  });
});

Deno.test("tag, list, inspect and delete work on a built image", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = `${dir}/store`;
    const cli = (...args: string[]) =>
      runCliProcess(["--store-path", store, ...args]);
    const built = await cli(
      "build",
      "--tag",
      "demo:1",
      "--config",
      `arch=amd64,kernel=${f.vmlinuz},initramfs=${f["initrd.img"]},cmdline=${
        f["cmdline.txt"]
      }`,
    );
    assert.equal(built.code, 0, built.stderr);
    const amd = /^Built amd64: (sha256:\S+)/m.exec(built.stdout)![1]!;

    const tagged = await cli(
      "tag",
      "demo:1",
      "registry.example.com/os/demo:1.0",
    );
    assert.deepEqual(tagged, {
      code: 0,
      stdout: "Tagged registry.example.com/os/demo:1.0\n",
      stderr: "",
    });

    const table = await cli("list");
    assert.equal(table.code, 0, table.stderr);
    const rows = table.stdout.trimEnd().split("\n").map((l) =>
      l.split(/ {3,}/)
    );
    assert.deepEqual(rows[0], [
      "REPOSITORY",
      "TAG",
      "IMAGE ID",
      "MEDIA TYPE",
      "SIZE",
    ]);
    assert.deepEqual(rows.slice(1).map((r) => [r[0], r[1]]), [
      ["demo", "1-amd64"],
      ["demo", "1"],
      ["registry.example.com/os/demo", "1.0"],
    ]);
    assert.equal(
      rows[1]![2],
      digestHex(amd as `sha256:${string}`).slice(0, 12),
    );

    const json = JSON.parse((await cli("list", "--json")).stdout);
    assert.deepEqual(Object.keys(json[0]), [
      "reference",
      "repository",
      "tag",
      "digest",
      "mediaType",
      "size",
    ]);
    assert.equal(json[0].reference, "docker.io/library/demo:1-amd64");

    const inspect = await cli("inspect", "demo:1-amd64");
    assert.equal(inspect.code, 0, inspect.stderr);
    const details = JSON.parse(inspect.stdout);
    assert.equal(details.reference, "docker.io/library/demo:1-amd64");
    assert.equal(details.descriptor.digest, amd);
    assert.deepEqual(details.config, { commandLine: "console=ttyS0 quiet" });
    assert.deepEqual(
      details.manifest.layers.map((l: { digest: string }) => l.digest),
      [digestOf("initramfs"), digestOf("kernel")],
    );
    const byPrefix = await cli(
      "inspect",
      digestHex(amd as `sha256:${string}`).slice(0, 6),
    );
    assert.deepEqual(JSON.parse(byPrefix.stdout).descriptor.digest, amd);
    const index = JSON.parse(
      (await cli("inspect", "registry.example.com/os/demo:1.0")).stdout,
    );
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0].descriptor.platform.architecture, "amd64");

    const blobs = await snapshotStore(`${store}/blobs`);
    const deleted = await cli("delete", "demo:1");
    assert.deepEqual(deleted, {
      code: 0,
      stdout: "Deleted demo:1\n",
      stderr: "",
    });
    assert.deepEqual(
      JSON.parse((await cli("list", "--json")).stdout).map((
        r: { reference: string },
      ) => r.reference),
      ["docker.io/library/demo:1-amd64", "registry.example.com/os/demo:1.0"],
    );
    const byDigest = await cli("delete", amd);
    assert.deepEqual(byDigest, {
      code: 0,
      stdout: "Deleted demo:1-amd64\n",
      stderr: "",
    });
    // Blobs stay until pruned.
    assert.deepEqual(await snapshotStore(`${store}/blobs`), blobs);
  });
});

Deno.test("list shows a tag written by another OCI tool that is not a reference instead of failing", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const store = `${dir}/store`;
    await runCliProcess([
      "--store-path",
      store,
      "build",
      "-q",
      "--tag",
      "demo:1",
      "--config",
      `arch=amd64,kernel=${f.vmlinuz}`,
    ]);
    const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
    index.manifests[0].annotations["org.opencontainers.image.ref.name"] =
      "V1.0";
    await Deno.writeTextFile(`${store}/index.json`, JSON.stringify(index));
    const res = await runCliProcess(["--store-path", store, "list", "--json"]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(
      JSON.parse(res.stdout).map((
        r: Record<string, unknown>,
      ) => [r.reference, r.repository, r.tag]),
      [["V1.0", "V1.0", "<none>"], ["docker.io/library/demo:1", "demo", "1"]],
    );
  });
});

Deno.test("runCli() on a terminal reports an interrupt during progress output as one line and exit 130", async () => {
  await withTempDir(async (dir) => {
    // Big enough that the copy is still running when the abort lands.
    const big = new Uint8Array(32 * 1024 * 1024);
    await Deno.writeFile(`${dir}/disk.img`, big);
    const controller = new AbortController();
    const written: string[] = [];
    const decoder = new TextDecoder();
    // A slow terminal: each write takes a while, so progress redraws overlap.
    const stderr = new WritableStream<Uint8Array>({
      async write(chunk) {
        written.push(decoder.decode(chunk));
        controller.abort();
        await new Promise((r) => setTimeout(r, 20));
      },
    });
    const code = await runCli([
      "build",
      "--store-path",
      `${dir}/store`,
      "--tag",
      "big:1",
      "--config",
      `arch=amd64,disk=${dir}/disk.img`,
    ], {
      stdout: new WritableStream(),
      stderr,
      env: () => undefined,
      stderrIsTerminal: true,
      signal: controller.signal,
    });
    assert.equal(code, 130);
    assert.ok(written.length >= 2, JSON.stringify(written));
    assert.equal(written[written.length - 1], "Error: Interrupted\n");
    // The progress lines before it were drawn, not dropped.
    assert.match(written[0]!, /amd64\/disk/);
    // Nothing was tagged, and no temporary file is left.
    assert.deepEqual(await (await Store.open(`${dir}/store`)).tags(), []);
    assert.deepEqual([...Deno.readDirSync(`${dir}/store/.tmp`)], []);
  });
});

Deno.test("delete by an image ID with eleven tags refuses and lists them; --force deletes them all", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const path = `${dir}/store`;
    const store = await Store.open(path);
    const built = await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f.vmlinuz },
    }], { tag: "os:1" });
    for (let i = 2; i <= 11; i++) await store.tag("os:1", `os:${i}`);
    const hex = digestHex(built.index.digest);
    const before = await snapshotStore(path);
    for (const id of [hex.slice(0, 12), `sha256:${hex.slice(0, 12)}`]) {
      const refused = await runCliProcess(["--store-path", path, "delete", id]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.equal(refused.stdout, "");
      assert.equal(
        refused.stderr,
        `Error: Image ${id} has 11 tags (${
          Array.from(
            { length: 10 },
            (_, i) => `docker.io/library/os:${i + 1}`,
          ).join(", ")
        } and 1 more): delete one by its tag, or add --force to delete them all\n`,
      );
      assert.deepEqual(await snapshotStore(path), before);
    }
    const forced = await runCliProcess([
      "--store-path",
      path,
      "delete",
      `sha256:${hex.slice(0, 12)}`,
      "--force",
    ]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      forced.stdout.trimEnd().split("\n").sort(),
      Array.from({ length: 11 }, (_, i) => `Deleted os:${i + 1}`).sort(),
    );
    assert.deepEqual((await store.tags()).map((t) => t.reference), [
      "docker.io/library/os:1-amd64",
    ]);
  });
});

Deno.test("every command that takes a local image takes its ID, with or without sha256:", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const path = `${dir}/store`;
    const ref = `${reg.host}/ids/os:1`;
    const built = await buildImage(await Store.open(path), [{
      arch: "amd64",
      layers: { kernel: f.vmlinuz },
    }], { tag: ref });
    const hex = digestHex(built.index.digest).slice(0, 12);
    const cli = (...args: string[]) =>
      runCliProcess(["--store-path", path, ...args]);
    const ok = async (...args: string[]) => {
      const res = await cli(...args);
      assert.equal(res.code, 0, `${args.join(" ")}: ${res.stderr}`);
      return res.stdout;
    };
    for (const id of [hex, `sha256:${hex}`]) {
      const inspected = JSON.parse(await ok("inspect", id));
      assert.equal(inspected.descriptor.digest, built.index.digest);
      // The image's one tag is where it goes.
      assert.equal(
        await ok("push", id),
        `Pushed ${ref}-amd64\nPushed ${ref}: ${built.index.digest}\n`,
      );
      await ok("export", id, "-o", `${dir}/os.tar`);
      await ok("extract", id, "--layer", "kernel", "-o", `${dir}/vmlinuz`);
      assert.equal(await Deno.readTextFile(`${dir}/vmlinuz`), "kernel");
      await ok("validate", id);
      assert.match(await ok("verify", id), /no problems/);
    }
    assert.equal(
      await ok("tag", `sha256:${hex}`, `${reg.host}/ids/os:2`),
      `Tagged ${reg.host}/ids/os:2\n`,
    );
    // Two tags: which one to push to is for the user to say.
    const twice = await cli("push", `sha256:${hex}`);
    assert.equal(twice.code, 1);
    assert.equal(
      twice.stderr,
      `Error: Image sha256:${hex} has 2 tags (${ref}, ${reg.host}/ids/os:2): push one of them by its tag\n`,
    );
    assert.equal(
      await ok("delete", `sha256:${hex}`, "--force"),
      `Deleted ${ref}\nDeleted ${reg.host}/ids/os:2\n`,
    );
  });
});

Deno.test("inspect of an index with a corrupt manifest and validate of an image with a missing layer exit 1, naming the blob and the fix", async () => {
  await withTempDir(async (dir) => {
    const f = await inputs(dir);
    const path = `${dir}/store`;
    const store = await Store.open(path);
    const built = await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f["initrd.img"] },
    }], { tag: "os:1" });
    const manifest = built.manifests[0]!.descriptor.digest;
    const original = await Deno.readFile(store.blobPath(manifest));
    await Deno.writeTextFile(store.blobPath(manifest), "{}");
    const inspect = await runCliProcess([
      "--store-path",
      path,
      "inspect",
      "os:1",
    ]);
    assert.equal(inspect.code, 1);
    assert.equal(inspect.stdout, "");
    assert.match(
      inspect.stderr,
      new RegExp(
        `^Error: Blob ${manifest} in store ${path} is corrupt: its bytes hash to sha256:\\w+; run ironcore-image verify --repair, then pull or build the image again\\n$`,
      ),
    );
    await Deno.writeFile(store.blobPath(manifest), original);

    await Deno.remove(store.blobPath(digestOf("kernel")));
    const validate = await runCliProcess([
      "--store-path",
      path,
      "validate",
      "os:1",
    ]);
    assert.equal(validate.code, 1, validate.stderr);
    assert.match(
      validate.stdout,
      new RegExp(
        `^error: manifests\\[0\\]\\.layers\\[1\\]: cannot read the layer blob: Blob ${
          digestOf("kernel")
        } is missing from store ${path}: pull or build the image again$`,
        "m",
      ),
    );
    assert.match(validate.stdout, /is not a valid IronCore image: 1 error/);
  });
});
