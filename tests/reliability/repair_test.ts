/**
 * A blob of the right size with one flipped byte: found by verify, and then
 * replaced by the next build, pull or import, or removed by verify --repair
 * so the next pull or build restores it. The advice in each message is
 * followed as written, by real CLI processes.
 */
import assert from "node:assert/strict";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import { type CliResult, runCliProcess } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

function ok(res: CliResult, what: string): string {
  assert.equal(res.code, 0, `${what}: ${res.stderr}`);
  return res.stdout;
}

/** Flips one byte of the blob: same size, other bytes. */
async function flipByte(store: string, digest: Digest): Promise<void> {
  const path = `${store}/blobs/sha256/${digestHex(digest)}`;
  const bytes = await Deno.readFile(path);
  bytes[100] = bytes[100]! ^ 0xff;
  await Deno.writeFile(path, bytes);
}

async function blobDigest(store: string, digest: Digest): Promise<string> {
  return digestOf(
    await Deno.readFile(`${store}/blobs/sha256/${digestHex(digest)}`),
  );
}

async function inputs(dir: string) {
  const f = await writeFiles(dir, {
    vmlinuz: randomBytes(64 * 1024),
    initrd: randomBytes(16 * 1024),
  });
  const kernel = digestOf(await Deno.readFile(f.vmlinuz));
  const config = `arch=amd64,kernel=${f.vmlinuz},initramfs=${f.initrd}`;
  return { kernel, config };
}

/** verify finds the flipped byte, names the images and the way out. */
async function verifyFinds(store: string, kernel: string): Promise<void> {
  const res = await runCliProcess(["--store-path", store, "verify"]);
  assert.equal(res.code, 1, res.stdout + res.stderr);
  assert.match(
    res.stdout,
    new RegExp(`^corrupt: Blob ${kernel} is corrupt: its bytes hash to `, "m"),
  );
  assert.match(
    res.stdout,
    /^Run ironcore-image verify --repair, then pull or build .*os:1.* again$/m,
  );
}

async function verifyClean(store: string): Promise<void> {
  const res = await runCliProcess(["--store-path", store, "verify"]);
  assert.equal(res.code, 0, res.stdout + res.stderr);
  assert.match(res.stdout, /no problems/);
}

Deno.test("a corrupt blob verify found is replaced by the next build", async () => {
  await withTempDir(async (dir) => {
    const { kernel, config } = await inputs(dir);
    const store = `${dir}/store`;
    const build = ["--store-path", store, "build", "--tag", "os:1"];
    ok(await runCliProcess([...build, "--config", config]), "build");
    await flipByte(store, kernel);
    await verifyFinds(store, kernel);
    ok(await runCliProcess([...build, "--config", config]), "build again");
    assert.equal(await blobDigest(store, kernel), kernel);
    await verifyClean(store);
  });
});

Deno.test("a corrupt blob verify found is replaced by the next pull, and by the next import", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const { kernel, config } = await inputs(dir);
    const origin = `${dir}/origin`;
    const ref = `${reg.host}/repair/os:1`;
    ok(
      await runCliProcess([
        "--store-path",
        origin,
        "build",
        "--tag",
        ref,
        "--config",
        config,
      ]),
      "build",
    );
    ok(await runCliProcess(["--store-path", origin, "push", ref]), "push");
    ok(
      await runCliProcess([
        "--store-path",
        origin,
        "export",
        ref,
        "-o",
        `${dir}/os.tar`,
      ]),
      "export",
    );

    const pulled = `${dir}/pulled`;
    ok(await runCliProcess(["--store-path", pulled, "pull", ref]), "pull");
    await flipByte(pulled, kernel);
    await verifyFinds(pulled, kernel);
    const again = await runCliProcess([
      "--store-path",
      pulled,
      "pull",
      ref,
      "--json",
    ]);
    ok(again, "pull again");
    assert.equal(JSON.parse(again.stdout).downloaded, 1);
    assert.equal(await blobDigest(pulled, kernel), kernel);
    await verifyClean(pulled);

    const imported = `${dir}/imported`;
    const importArgs = ["--store-path", imported, "import", `${dir}/os.tar`];
    ok(await runCliProcess(importArgs), "import");
    await flipByte(imported, kernel);
    await verifyFinds(imported, kernel);
    ok(await runCliProcess(importArgs), "import again");
    assert.equal(await blobDigest(imported, kernel), kernel);
    await verifyClean(imported);
  });
});

Deno.test("extract of a corrupt blob says to run verify --repair and pull: doing so restores the layer", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const { kernel, config } = await inputs(dir);
    const store = `${dir}/store`;
    const ref = `${reg.host}/repair/extract:1`;
    const at = ["--store-path", store];
    ok(
      await runCliProcess([...at, "build", "--tag", ref, "--config", config]),
      "build",
    );
    ok(await runCliProcess([...at, "push", ref]), "push");
    await flipByte(store, kernel);

    const extract = [...at, "extract", ref, "--layer", "kernel"];
    const failed = await runCliProcess([...extract, "-o", `${dir}/vmlinuz`]);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      new RegExp(
        `^Error: Blob ${kernel} in store ${store} is corrupt: its bytes hash to sha256:[0-9a-f]{64}; run ironcore-image verify --repair, then pull or build the image again\\n$`,
      ),
    );
    const streamed = await runCliProcess([...extract, "-o", "-"]);
    assert.equal(streamed.code, 1);
    assert.match(
      streamed.stderr,
      /^Error: Digest mismatch for kernel layer .* in store .* \(run ironcore-image verify --repair, then pull or build the image again\): /,
    );

    // The advice, as written.
    const repair = await runCliProcess([...at, "verify", "--repair"]);
    assert.equal(repair.code, 1, repair.stderr);
    assert.match(
      repair.stdout,
      new RegExp(`^corrupt: Blob ${kernel} is corrupt: `, "m"),
    );
    assert.match(
      repair.stdout,
      /^Removed 1 corrupt blob\(s\): pull or build .*repair\/extract:1.* again$/m,
    );
    ok(await runCliProcess([...at, "pull", ref]), "pull");
    ok(
      await runCliProcess([...extract, "-o", `${dir}/vmlinuz`]),
      "extract after the repair",
    );
    assert.equal(digestOf(await Deno.readFile(`${dir}/vmlinuz`)), kernel);
    const json = await runCliProcess([...at, "verify", "--repair", "--json"]);
    assert.deepEqual(
      [json.code, JSON.parse(json.stdout).repaired],
      [0, []],
    );
  });
});
