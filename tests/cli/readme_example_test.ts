/**
 * The TypeScript examples of README.md and docs/library.md type-check and run
 * as written, against a real registry that asks for credentials, importing
 * the package only through its entry points.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type CliResult, REPO_ROOT, runProcess } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { importedSpecifiers, packageImportMap } from "../_helpers/package.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** The ```ts blocks of a markdown file. */
async function examples(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${REPO_ROOT}/${file}`);
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

function deno(
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  return runProcess(Deno.execPath(), args, options);
}

Deno.test("the examples of the README and docs/library.md run against a registry", async () => {
  const blocks = [
    ...(await examples("README.md")).map((code) => ({
      file: "README.md",
      code,
    })),
    ...(await examples("docs/library.md")).map((code) => ({
      file: "docs/library.md",
      code,
    })),
  ];
  assert.ok(
    blocks.some((b) => b.file === "README.md" && b.code.includes("openLayer(")),
    "the README shows the library streaming a kernel",
  );
  const importMap = packageImportMap();
  for (const { file, code } of blocks) {
    for (const specifier of importedSpecifiers(code)) {
      assert.ok(
        specifier in importMap.imports,
        `${file} imports ${specifier}, which is no entry point of the package`,
      );
    }
  }
  await using reg = await startRegistry({ auth: "basic" });
  await withTempDir(async (dir) => {
    const kernel = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
    const files = await writeFiles(dir, { vmlinuz: kernel, initrd: "initrd" });
    const store = await Store.open(`${dir}/store`);
    const ref = `${reg.host}/docs/os:1.0`;
    await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
      },
      { arch: "arm64", layers: { kernel: files.initrd } },
    ], { tag: ref });
    const client = new RegistryClient({
      credentials: () =>
        Promise.resolve({ username: reg.username, password: reg.password }),
    });
    await pushImage(store, ref, { client });
    // The examples read credentials the way users have them: a Docker config.
    await Deno.mkdir(`${dir}/docker`);
    await Deno.writeTextFile(
      `${dir}/docker/config.json`,
      JSON.stringify({
        auths: {
          [reg.host]: { auth: btoa(`${reg.username}:${reg.password}`) },
        },
      }),
    );
    await Deno.writeTextFile(
      `${dir}/import_map.json`,
      JSON.stringify(importMap),
    );
    // --no-config: nothing but the import map resolves the package.
    const flags = ["--no-config", "--import-map", `${dir}/import_map.json`];
    const scripts: string[] = [];
    for (const [i, block] of blocks.entries()) {
      await Deno.mkdir(`${dir}/example-${i}`);
      scripts.push(`${dir}/example-${i}/main.ts`);
      await Deno.writeTextFile(scripts[i]!, block.code);
    }
    const checked = await deno(["check", "--quiet", ...flags, ...scripts], {
      cwd: dir,
    });
    assert.equal(checked.code, 0, checked.stderr);
    for (const [i, block] of blocks.entries()) {
      const cwd = `${dir}/example-${i}`;
      const out = await deno(
        ["run", "--quiet", "--allow-all", ...flags, scripts[i]!, ref],
        { cwd, env: { DOCKER_CONFIG: `${dir}/docker` } },
      );
      const what = `${block.file} example ${i}:\n${block.code}`;
      assert.equal(out.code, 0, `${what}\n${out.stderr}`);
      if (block.code.includes("writeLayerFile(")) {
        const written = await Deno.readFile(`${cwd}/vmlinuz`);
        assert.equal(digestOf(written), digestOf(kernel), what);
        assert.match(out.stdout, /^vmlinuz: 100000 (of 100000 )?bytes/, what);
      }
      if (block.code.includes("copyImage(")) {
        const repo = { registry: reg.host, repository: "docs/os" };
        const stable = await client.headManifest(repo, "stable");
        const original = await client.headManifest(repo, "1.0");
        assert.equal(stable?.digest, original?.digest, what);
      }
      if (block.code.includes("no-such-tag")) {
        assert.match(out.stdout, /^not there: .*:no-such-tag\n$/, what);
      }
      if (block.code.includes("createBootHandler(")) {
        assert.equal(out.stdout, "200 100000\n", what);
      }
    }
  });
});
