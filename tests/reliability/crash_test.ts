import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { runCliProcess } from "../_helpers/cli.ts";
import { startFaultProxy } from "../_helpers/fault_proxy.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobFiles,
  MIB,
  partialSize,
  reachableDigests,
  spawnCli,
  storeTags,
  waitFor,
  writeRandomFile,
} from "./_common.ts";

const BUILD_SIZE = 256 * MIB;
const PULL_SIZE = 64 * MIB;

/** Kills a child unless it already exited, and waits for it. */
async function kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // It finished first: a kill point after the end is fine too.
  }
  await child.status;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Bytes in the store's temporary directory. */
async function tempBytes(store: string): Promise<number> {
  let total = 0;
  try {
    for await (const e of Deno.readDir(`${store}/.tmp`)) {
      total += (await Deno.stat(`${store}/.tmp/${e.name}`).catch(() => ({
        size: 0,
      }))).size;
    }
  } catch {
    // Not created yet.
  }
  return total;
}

/**
 * Asserts what a crash must never break: `verify` exits 0, `index.json`
 * parses, everything a tag reaches is present, and `blobs/` holds only
 * complete blobs named by their digest.
 */
async function assertConsistent(store: string, when: string): Promise<void> {
  const verify = await runCliProcess(["--store-path", store, "verify"]);
  assert.equal(verify.code, 0, `${when}: ${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /no problems/, when);
  let hasIndex = true;
  try {
    await Deno.stat(`${store}/index.json`);
  } catch {
    hasIndex = false;
  }
  if (!hasIndex) {
    // Killed before the store existed: nothing may name a blob yet.
    assert.equal((await blobFiles(store)).size, 0, when);
    return;
  }
  const files = await blobFiles(store);
  for (const digest of await reachableDigests(store)) {
    assert.ok(files.has(digest), `${when}: ${digest} is reachable but absent`);
  }
  for (const name of files) {
    assert.match(name, /^sha256:[0-9a-f]{64}$/, `${when}: stray ${name}`);
  }
}

Deno.test("build and pull killed with SIGKILL at any point leave a consistent store", async (t) => {
  await using reg = await startRegistry();
  await using proxy = startFaultProxy({ upstream: reg.host });
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const big = await writeRandomFile(`${dir}/rootfs.img`, BUILD_SIZE);
    const files = await writeFiles(dir, {
      vmlinuz: crypto.getRandomValues(new Uint8Array(4096)),
      cmdline: "console=ttyS0",
    });
    const config =
      `arch=amd64,kernel=${files.vmlinuz},rootfs=${dir}/rootfs.img,cmdline=${files.cmdline}`;
    const buildArgs = (tag: string) => [
      "--store-path",
      store,
      "build",
      "--tag",
      tag,
      "--config",
      config,
    ];

    await t.step(
      "build killed after 50 to 700 ms or mid-copy, then verify is clean",
      async () => {
        const kills: (number | "mid-copy")[] = [
          50,
          150,
          300,
          "mid-copy",
          500,
          700,
        ];
        for (const [i, when] of kills.entries()) {
          const child = spawnCli(buildArgs(`crash/build:${i}`));
          try {
            if (when === "mid-copy") {
              await waitFor(
                async () => await tempBytes(store) >= 64 * MIB,
                "64 MiB in .tmp",
              );
            } else await sleep(when);
          } finally {
            await kill(child);
          }
          await assertConsistent(store, `build killed at ${when}`);
        }
      },
    );

    await t.step(
      "the next build removes stale temporary files and succeeds",
      async () => {
        const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
        const stale: string[] = [];
        try {
          for await (const e of Deno.readDir(`${store}/.tmp`)) {
            const path = `${store}/.tmp/${e.name}`;
            await Deno.utime(path, old, old);
            stale.push(path);
          }
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        assert.ok(stale.length > 0, "the mid-copy kill left a temporary file");
        const res = await runCliProcess([...buildArgs("crash/build:ok")]);
        assert.equal(res.code, 0, res.stderr);
        for (const path of stale) {
          await assert.rejects(Deno.stat(path), Deno.errors.NotFound, path);
        }
        assert.ok((await blobFiles(store)).has(big));
        assert.ok(
          (await storeTags(store)).includes("docker.io/crash/build:ok"),
        );
        await assertConsistent(store, "after the build");
      },
    );

    await t.step(
      "pull killed at several points, then a pull completes and verify is clean",
      async () => {
        const layer: Digest = await writeRandomFile(
          `${dir}/disk.img`,
          PULL_SIZE,
        );
        const source = await Store.open(`${dir}/source`);
        await buildImage(source, [{
          arch: "amd64",
          layers: { kernel: files.vmlinuz, disk: `${dir}/disk.img` },
        }], { tag: `${reg.host}/crash/pull:1` });
        await pushImage(source, `${reg.host}/crash/pull:1`, {
          client: new RegistryClient({ plainHttp: true }),
        });
        const ref = `${proxy.host}/crash/pull:1`;
        const pullArgs = ["--store-path", store, "--plain-http", "pull", ref];
        // A slow link: each request for the layer stalls after 12 MiB, so
        // the kills land mid-download and four runs cannot finish the blob.
        proxy.plan((r) =>
          r.method === "GET" && r.pathname.endsWith(layer)
            ? { kind: "stall", after: 12 * MIB }
            : undefined
        );
        for (const when of [100, 400, "mid-download", 900] as const) {
          const child = spawnCli(pullArgs);
          try {
            if (when === "mid-download") {
              const start = await partialSize(store, layer);
              await waitFor(
                async () => await partialSize(store, layer) >= start + 8 * MIB,
                "8 MiB more of partial download",
              );
            } else await sleep(when);
          } finally {
            await kill(child);
          }
          await assertConsistent(store, `pull killed at ${when}`);
          assert.ok(!(await blobFiles(store)).has(layer), "no partial blob");
        }
        assert.ok(await partialSize(store, layer) > 0, "a partial download");
        proxy.plan(undefined);
        const res = await runCliProcess(["--quiet", ...pullArgs]);
        assert.equal(res.code, 0, res.stderr);
        assert.ok((await blobFiles(store)).has(layer));
        assert.equal(await partialSize(store, layer), 0);
        assert.ok((await storeTags(store)).includes(ref));
        await assertConsistent(store, "after the pull");
      },
    );
  });
});
