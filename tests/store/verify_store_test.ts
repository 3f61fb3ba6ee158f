import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { DigestMismatchError } from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";
import { Store } from "../../src/store/store.ts";
import { verifyStore } from "../../src/store/verify_store.ts";
import { snapshotStore } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** Flips one byte of a blob: same size, other digest. */
async function flipByte(store: Store, digest: Digest): Promise<void> {
  const path = store.blobPath(digest);
  const bytes = await Deno.readFile(path);
  bytes[7] = bytes[7]! ^ 0xff;
  await Deno.writeFile(path, bytes);
}

async function builtImage(dir: string) {
  const f = await writeFiles(dir, {
    vmlinuz: randomBytes(8192),
    initrd: randomBytes(4096),
  });
  const store = await Store.open(`${dir}/store`);
  const build = () =>
    buildImage(store, [{
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd },
    }], { tag: "example.com/os:1" });
  await build();
  const kernel = digestOf(await Deno.readFile(f.vmlinuz));
  return { store, build, kernel };
}

Deno.test("verifyStore() marks a corrupt blob, and the next build replaces it instead of skipping it", async () => {
  await withTempDir(async (dir) => {
    const { store, build, kernel } = await builtImage(dir);
    await flipByte(store, kernel);
    const found = await verifyStore(store);
    assert.equal(found.ok, false);
    assert.deepEqual(found.problems.map((p) => [p.kind, p.digest]), [
      ["corrupt", kernel],
    ]);
    assert.deepEqual(found.problems[0]!.images!.sort(), [
      "example.com/os:1",
      "example.com/os:1-amd64",
    ]);
    assert.deepEqual(found.repaired, []);
    assert.equal(await blobStoreOf(store).isSuspect(kernel), true);
    // The bad file stays until good bytes replace it.
    assert.notEqual(
      digestOf(await Deno.readFile(store.blobPath(kernel))),
      kernel,
    );

    await build();
    assert.equal(digestOf(await Deno.readFile(store.blobPath(kernel))), kernel);
    assert.equal(await blobStoreOf(store).isSuspect(kernel), false);
    assert.equal((await verifyStore(store)).ok, true);
  });
});

Deno.test("verifyStore() with repair removes only the corrupt blob, and a build restores it", async () => {
  await withTempDir(async (dir) => {
    const { store, build, kernel } = await builtImage(dir);
    const others = (await blobStoreOf(store).blobs())
      .map((b) => b.digest)
      .filter((d) => d !== kernel);
    await flipByte(store, kernel);
    const repaired = await verifyStore(store, { repair: true });
    assert.equal(repaired.ok, false);
    assert.deepEqual(repaired.repaired, [kernel]);
    assert.equal(await store.hasBlob(kernel), false);
    assert.equal(await blobStoreOf(store).isSuspect(kernel), false);
    for (const d of others) assert.equal(await store.hasBlob(d), true);
    // What is left is complete but for the removed blob.
    const after = await verifyStore(store);
    assert.deepEqual(after.problems.map((p) => [p.kind, p.digest]), [
      ["missing", kernel],
    ]);

    await build();
    const clean = await verifyStore(store, { repair: true });
    assert.deepEqual([clean.ok, clean.repaired], [true, []]);
  });
});

Deno.test("readBlob() of a corrupt manifest marks it, names the repair, and the next build replaces it", async () => {
  await withTempDir(async (dir) => {
    const { store, build } = await builtImage(dir);
    const { descriptor } = await store.resolve("example.com/os:1-amd64");
    const path = store.blobPath(descriptor.digest);
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(path, text.replace("vnd", "VND"));
    await assert.rejects(store.readManifest(descriptor), (e: unknown) => {
      assert.ok(e instanceof DigestMismatchError);
      assert.match(
        e.message,
        new RegExp(
          `^Blob ${descriptor.digest} in store .* is corrupt: its bytes hash to sha256:[0-9a-f]{64}; verify the store with repair, then pull or build the image again$`,
        ),
      );
      return true;
    });
    assert.equal(await blobStoreOf(store).isSuspect(descriptor.digest), true);
    await build();
    assert.equal(await Deno.readTextFile(path), text);
    assert.equal((await verifyStore(store)).ok, true);
  });
});

Deno.test("verifyStore() without write access checks and marks nothing; with repair it fails before hashing", async () => {
  await withTempDir(async (dir) => {
    const { store, kernel } = await builtImage(dir);
    await flipByte(store, kernel);
    const before = await snapshotStore(store.path);
    // A child process that may read the store but not write it.
    const script = `${dir}/verify.ts`;
    await Deno.writeTextFile(
      script,
      `import { Store } from ${
        JSON.stringify(import.meta.resolve("../../src/store/store.ts"))
      };
import { verifyStore } from ${
        JSON.stringify(import.meta.resolve("../../src/store/verify_store.ts"))
      };
const store = await Store.open(Deno.args[0]);
const checked = await verifyStore(store);
console.log(JSON.stringify(checked.problems.map((p) => p.kind)));
try {
  await verifyStore(store, { repair: true, onProgress: () => { throw new Error("hashed"); } });
} catch (e) {
  console.log(e.name, e.message);
}
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        `--allow-read=${dir}`,
        script,
        store.path,
      ],
    }).output();
    const [kinds, failure] = new TextDecoder().decode(out.stdout).trim().split(
      "\n",
    );
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(kinds, '["corrupt"]');
    assert.match(failure!, /^NotCapable Requires write access to /);
    assert.deepEqual(await snapshotStore(store.path), before);
    assert.equal(
      (await Array.fromAsync(Deno.readDir(`${store.path}/.tmp`)))
        .some((e) => e.name.includes(digestHex(kernel))),
      false,
    );
  });
});
