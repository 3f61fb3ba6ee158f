/**
 * A consumer program (consumer.ts) runs against a real registry importing
 * the package only through its entry points: an import map made from
 * deno.json "exports", no config file, and the program copied out of the
 * repository so that no relative path can reach `src/`.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type CliResult, runProcess } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { importedSpecifiers, packageImportMap } from "../_helpers/package.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

const PROGRAM = new URL("./consumer.ts", import.meta.url);

Deno.test("the consumer program imports nothing but the package's entry points", async () => {
  const source = await Deno.readTextFile(PROGRAM);
  const specifiers = importedSpecifiers(source);
  const entries = Object.keys(packageImportMap().imports);
  assert.ok(specifiers.length > 0);
  for (const s of specifiers) {
    assert.ok(entries.includes(s), `${s} is not an entry point of the package`);
  }
  assert.ok(specifiers.includes("@ironcore/image"));
  assert.ok(specifiers.some((s) => s.startsWith("@ironcore/image/")));
});

Deno.test("a consumer resolves an image, streams its kernel with progress, cancels, and catches ImageError", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    // Big enough to arrive in many chunks, so the abort lands mid-stream.
    const kernel = randomBytes(8 * 1024 * 1024);
    const files = await writeFiles(dir, {
      vmlinuz: kernel,
      initrd: "initramfs",
      cmdline: "console=ttyS0",
    });
    const ref = `${reg.host}/consumer/os:1.0`;
    const store = await Store.open(`${dir}/store`);
    await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
        cmdline: files.cmdline,
      },
      { arch: "arm64", layers: { kernel: files.initrd } },
    ], { tag: ref });
    await pushImage(store, ref, { client: new RegistryClient() });

    const app = `${dir}/app`;
    await Deno.mkdir(app);
    await Deno.copyFile(PROGRAM, `${app}/consumer.ts`);
    await Deno.writeTextFile(
      `${app}/import_map.json`,
      JSON.stringify(packageImportMap()),
    );
    const consumer = (...args: string[]): Promise<CliResult> =>
      runProcess(Deno.execPath(), [
        "run",
        "--quiet",
        "--check",
        "--no-config",
        "--import-map",
        `${app}/import_map.json`,
        `--allow-net=${reg.host}`,
        `--allow-read=${app}`,
        `--allow-write=${app}`,
        `${app}/consumer.ts`,
        ...args,
      ], { cwd: app });

    const full = await consumer("stream", ref, `${app}/vmlinuz`);
    assert.equal(full.code, 0, full.stderr);
    const lines = full.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 6), [
      `resolved: ${ref}`,
      "platforms: linux/amd64, linux/arm64",
      "command line: console=ttyS0",
      `kernel: ${kernel.byteLength} bytes, ${digestOf(kernel)}`,
      `boot JSON: kernel ${digestOf(kernel)}`,
      `wrote ${kernel.byteLength} bytes`,
    ]);
    const progress = /^progress: (\d+) events, start progress done$/.exec(
      lines[6] ?? "",
    );
    assert.ok(progress, full.stdout);
    assert.ok(Number(progress[1]) > 2, full.stdout);
    assert.equal(
      digestOf(await Deno.readFile(`${app}/vmlinuz`)),
      digestOf(kernel),
    );
    await Deno.remove(`${app}/vmlinuz`);

    const cut = await consumer("abort", ref, `${app}/vmlinuz`);
    assert.equal(cut.code, 0, cut.stderr);
    const aborted = /^aborted after (\d+) of (\d+) bytes$/m.exec(cut.stdout);
    assert.ok(aborted, cut.stdout);
    assert.ok(Number(aborted[1]) > 0, cut.stdout);
    assert.ok(Number(aborted[1]) < kernel.byteLength, cut.stdout);
    assert.doesNotMatch(cut.stdout, /^wrote /m);
    // Nothing of the cancelled file is left behind, not even a partial one.
    const left: string[] = [];
    for await (const e of Deno.readDir(app)) left.push(e.name);
    assert.deepEqual(left.sort(), ["consumer.ts", "import_map.json"]);

    const missing = await consumer("missing", `${reg.host}/consumer/os:2.0`);
    assert.equal(missing.code, 0, missing.stderr);
    assert.equal(
      missing.stdout,
      `caught NotFoundError as ImageError\nmissing: ${reg.host}/consumer/os:2.0\n`,
    );
  });
});
