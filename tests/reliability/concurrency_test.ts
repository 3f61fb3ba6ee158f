import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type CliResult, runCliProcess } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobFiles,
  MIB,
  reachableDigests,
  storeTags,
  writeRandomFile,
} from "./_common.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";

Deno.test("13 processes building, tagging, pulling and deleting on one store all land", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const files = await writeFiles(dir, {
      k1: crypto.getRandomValues(new Uint8Array(64 * 1024)),
      k2: crypto.getRandomValues(new Uint8Array(64 * 1024)),
      cmdline: "quiet",
    });
    await writeRandomFile(`${dir}/r1`, 8 * MIB);
    await writeRandomFile(`${dir}/r2`, 8 * MIB);
    await writeRandomFile(`${dir}/remote`, 16 * MIB);

    // The registry holds an image that several processes pull at once.
    const source = await Store.open(`${dir}/source`);
    const remote = `${reg.host}/conc/remote:1`;
    await buildImage(source, [{
      arch: "amd64",
      layers: { kernel: files.k1, disk: `${dir}/remote` },
    }], { tag: remote });
    await pushImage(source, remote, {
      client: new RegistryClient({ plainHttp: true }),
    });

    // The store starts with a base image and three tags to delete.
    const local = await Store.open(store);
    await buildImage(local, [{
      arch: "amd64",
      layers: { kernel: files.k2 },
    }], { tag: "conc/base:1" });
    for (let i = 0; i < 3; i++) {
      await local.tag("conc/base:1", `conc/doomed:${i}`);
    }

    const cfg = (kernel: string, rootfs: string) =>
      `arch=amd64,kernel=${kernel},rootfs=${rootfs},cmdline=${files.cmdline}`;
    const jobs: { name: string; args: string[] }[] = [
      // Two pairs of builds with identical inputs, under different tags.
      ...[["a", files.k1, "r1"], ["b", files.k1, "r1"], [
        "c",
        files.k2,
        "r2",
      ], ["d", files.k2, "r2"]].map(([tag, kernel, rootfs]) => ({
        name: `build ${tag}`,
        args: [
          "build",
          "--tag",
          `conc/${tag}:1`,
          "--config",
          cfg(kernel!, `${dir}/${rootfs}`),
        ],
      })),
      ...[0, 1, 2].map((i) => ({
        name: `tag ${i}`,
        args: ["tag", "conc/base:1", `conc/copy:${i}`],
      })),
      ...[0, 1, 2].map((i) => ({
        name: `pull ${i}`,
        args: ["--plain-http", "pull", remote],
      })),
      ...[0, 1, 2].map((i) => ({
        name: `delete ${i}`,
        args: ["delete", `conc/doomed:${i}`],
      })),
    ];
    const results: CliResult[] = await Promise.all(
      jobs.map((j) =>
        runCliProcess(["--store-path", store, "--quiet", ...j.args])
      ),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, `${jobs[i]!.name}: ${r.stderr}`);
    }

    const expected = [
      "docker.io/conc/a:1",
      "docker.io/conc/a:1-amd64",
      "docker.io/conc/b:1",
      "docker.io/conc/b:1-amd64",
      "docker.io/conc/base:1",
      "docker.io/conc/base:1-amd64",
      "docker.io/conc/c:1",
      "docker.io/conc/c:1-amd64",
      "docker.io/conc/copy:0",
      "docker.io/conc/copy:1",
      "docker.io/conc/copy:2",
      "docker.io/conc/d:1",
      "docker.io/conc/d:1-amd64",
      remote,
    ].sort();
    assert.deepEqual(await storeTags(store), expected);

    // Identical inputs gave identical images.
    const opened = await Store.open(store);
    const digestOf = async (ref: string) =>
      (await opened.resolve(ref)).descriptor.digest;
    assert.equal(await digestOf("conc/a:1"), await digestOf("conc/b:1"));
    assert.equal(await digestOf("conc/c:1"), await digestOf("conc/d:1"));
    assert.notEqual(await digestOf("conc/a:1"), await digestOf("conc/c:1"));
    assert.equal(
      await digestOf(remote),
      (await source.resolve(remote)).descriptor.digest,
    );

    const present = await blobFiles(store);
    for (const d of await reachableDigests(store)) {
      assert.ok(present.has(d), `${d} is reachable but absent`);
    }
    const verify = await runCliProcess(["--store-path", store, "verify"]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /no problems/);
    // Nothing is left half-done in the temporary directory.
    const temp = await blobStoreOf(opened).tempFiles();
    assert.deepEqual(temp.map((t) => t.path), []);
  });
});
