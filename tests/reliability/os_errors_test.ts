import assert from "node:assert/strict";
import { CLI_PATH, runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** Builds an image of one kernel into a store with the CLI. */
function build(store: string, tag: string, kernel: string) {
  return runCliProcess([
    "--store-path",
    store,
    "--quiet",
    "build",
    "--tag",
    tag,
    "--config",
    `arch=amd64,kernel=${kernel}`,
  ]);
}

/** Builds `demo:1` with a 3 MiB kernel (`vmlinuz`) into `${dir}/store`. */
async function buildDemo(dir: string): Promise<string> {
  const files = await writeFiles(dir, {
    vmlinuz: randomBytes(3 * 1024 * 1024),
  });
  const built = await build(`${dir}/store`, "demo:1", files.vmlinuz);
  assert.equal(built.code, 0, built.stderr);
  return `${dir}/store`;
}

/**
 * Runs the CLI with its standard output read by a reader that goes away
 * after the first bytes, as `| head -c 10` does.
 */
async function withShortReader(
  args: readonly string[],
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI_PATH, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.ok(first.value && first.value.byteLength > 0);
  await reader.cancel();
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stderr };
}

Deno.test("a reader that closes standard output early ends the command quietly with 141", async (t) => {
  await withTempDir(async (dir) => {
    const store = await buildDemo(dir);
    for (
      const args of [
        ["export", "demo:1", "-o", "-"],
        ["extract", "demo:1", "--layer", "kernel", "-o", "-"],
      ]
    ) {
      await t.step(args.join(" "), async () => {
        const { code, stderr } = await withShortReader([
          "--store-path",
          store,
          "--quiet",
          ...args,
        ]);
        assert.equal(stderr, "");
        assert.equal(code, 141);
      });
    }
  });
});

Deno.test("export to a directory names the problem and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const store = await buildDemo(dir);
    await Deno.mkdir(`${dir}/out`);
    const result = await runCliProcess([
      "--store-path",
      store,
      "export",
      "demo:1",
      "-o",
      `${dir}/out`,
    ]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr,
      `Error: Cannot write archive ${dir}/out: it is a directory, give a file name such as ${dir}/out/image.tar\n`,
    );
    assert.deepEqual(await snapshotStore(`${dir}/out`), {});
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["out", "store", "vmlinuz"],
    );
  });
});

/**
 * Mounts a 1 MiB tmpfs at `path` for the test (as root, like CI); a mount
 * that fails fails the test.
 */
async function withFullDevice(
  path: string,
  fn: () => Promise<void>,
): Promise<void> {
  await Deno.mkdir(path);
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(
    mount.code,
    0,
    `This test mounts a 1 MiB tmpfs and needs root: ${
      new TextDecoder().decode(mount.stderr)
    }`,
  );
  try {
    await fn();
  } finally {
    await new Deno.Command("umount", { args: [path] }).output();
  }
}

Deno.test("a full device is named with the fix, and nothing partial is left", async (t) => {
  await withTempDir(async (dir) => {
    const store = await buildDemo(dir);
    const full = `${dir}/full`;
    await withFullDevice(full, async () => {
      await t.step("extract -o", async () => {
        const result = await runCliProcess([
          "--store-path",
          store,
          "extract",
          "demo:1",
          "--layer",
          "kernel",
          "-o",
          `${full}/vmlinuz`,
        ]);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(
          result.stderr,
          `Error: Cannot write kernel layer to ${full}/vmlinuz: no space left on the device, free some space or write it elsewhere\n`,
        );
        assert.deepEqual(await snapshotStore(full), {});
      });

      await t.step("export -o", async () => {
        const result = await runCliProcess([
          "--store-path",
          store,
          "export",
          "demo:1",
          "-o",
          `${full}/demo.tar`,
        ]);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(
          result.stderr,
          `Error: Cannot write archive to ${full}/demo.tar: no space left on the device, free some space or write it elsewhere\n`,
        );
        assert.deepEqual(await snapshotStore(full), {});
      });

      await t.step("build into a store on it", async () => {
        const small = await writeFiles(dir, { small: randomBytes(1000) });
        const onFull = `${full}/store`;
        const first = await build(onFull, "small:1", small.small);
        assert.equal(first.code, 0, first.stderr);
        const before = await snapshotStore(onFull);
        const result = await build(onFull, "big:1", `${dir}/vmlinuz`);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(
          result.stderr,
          `Error: No space left on the device of store ${onFull}: free some space there, or use another store with --store-path\n`,
        );
        assert.deepEqual(await snapshotStore(onFull), before);
      });
    });
  });
});
