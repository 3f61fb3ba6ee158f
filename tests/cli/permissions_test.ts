/**
 * Every command runs with the narrow permission flags the README documents,
 * and names the missing flag when one is left out.
 */

import assert from "node:assert/strict";
import { CLI_PATH } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

async function run(
  perms: string[],
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", ...perms, CLI_PATH, ...args],
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

interface Case {
  name: string;
  perms: string[];
  args: string[];
}

Deno.test("each command runs with its documented permissions and names a missing one", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const pulled = `${dir}/pulled`;
    await Deno.mkdir(`${dir}/docker`);
    await Deno.mkdir(`${dir}/out`);
    const files = await writeFiles(dir, {
      vmlinuz: crypto.getRandomValues(new Uint8Array(4096)),
      cmdline: "console=ttyS0",
      "docker/config.json": "{}",
    });
    const cfg = files["docker/config.json"]!;
    const net = `--allow-net=${reg.host}`;
    const ref = `${reg.host}/perm/os:1`;
    const cases: Case[] = [
      {
        name: "build",
        perms: [`--allow-read=${dir}`, `--allow-write=${store}`],
        args: [
          "--store-path",
          store,
          "build",
          "--tag",
          ref,
          "--config",
          `arch=amd64,kernel=${files.vmlinuz},cmdline=${files.cmdline}`,
        ],
      },
      {
        name: "list",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "list"],
      },
      {
        name: "inspect",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "inspect", ref],
      },
      {
        name: "tag",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "tag", ref, `${ref}-copy`],
      },
      {
        name: "delete",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "delete", `${ref}-copy`],
      },
      {
        name: "verify",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "verify"],
      },
      {
        name: "push",
        perms: [`--allow-read=${store}`, net],
        args: [
          "--store-path",
          store,
          "--docker-config-path",
          cfg,
          "--plain-http",
          "push",
          ref,
        ],
      },
      {
        name: "pull",
        perms: [
          `--allow-read=${pulled}`,
          `--allow-write=${pulled}`,
          net,
        ],
        args: [
          "--store-path",
          pulled,
          "--docker-config-path",
          cfg,
          "--plain-http",
          "pull",
          ref,
        ],
      },
      {
        name: "url",
        // An anonymous registry never asks for credentials, so the Docker
        // config is not read.
        perms: [net],
        args: [
          "--docker-config-path",
          cfg,
          "--plain-http",
          "url",
          ref,
          "--layer",
          "kernel",
        ],
      },
      {
        name: "validate",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "validate", ref],
      },
      {
        name: "extract",
        perms: [`--allow-read=${store},${dir}/out`, `--allow-write=${dir}/out`],
        args: [
          "--store-path",
          store,
          "extract",
          ref,
          "--layer",
          "kernel",
          "-o",
          `${dir}/out/vmlinuz`,
        ],
      },
      {
        name: "export",
        perms: [`--allow-read=${store},${dir}/out`, `--allow-write=${dir}/out`],
        args: [
          "--store-path",
          store,
          "export",
          ref,
          "-o",
          `${dir}/out/image.tar`,
        ],
      },
      {
        name: "import",
        perms: [
          `--allow-read=${dir}/out,${dir}/imported`,
          `--allow-write=${dir}/imported`,
        ],
        args: [
          "--store-path",
          `${dir}/imported`,
          "import",
          `${dir}/out/image.tar`,
        ],
      },
      {
        name: "prune",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "prune", "--dry-run"],
      },
    ];
    for (const c of cases) {
      for (let i = 0; i < c.perms.length; i++) {
        const fewer = c.perms.filter((_, j) => j !== i);
        const flag = c.perms[i]!.split("=")[0]!;
        const res = await run(fewer, c.args);
        assert.equal(
          res.code,
          1,
          `${c.name} without ${flag} should fail: ${res.stdout}`,
        );
        const lines = res.stderr.trim().split("\n");
        assert.equal(lines.length, 1, `one line: ${res.stderr}`);
        assert.match(
          lines[0]!,
          new RegExp(`^Error: Missing permission: .*run with ${flag}=`),
          `${c.name}: ${lines[0]}`,
        );
      }
      // After the refusals, which change nothing, the full set works.
      const ok = await run(c.perms, c.args);
      assert.equal(
        ok.code,
        0,
        `${c.name} with ${c.perms.join(" ")}: ${ok.stderr}`,
      );
    }
  });
});

Deno.test("without --store-path the store location needs only HOME and IRONCORE_IMAGE_STORE", async () => {
  await withTempDir(async (dir) => {
    const env = { HOME: dir };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        `--allow-read=${dir}`,
        "--allow-env=HOME,IRONCORE_IMAGE_STORE",
        CLI_PATH,
        "list",
      ],
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const denied = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        `--allow-read=${dir}`,
        CLI_PATH,
        "list",
      ],
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(denied.code, 1);
    assert.match(
      new TextDecoder().decode(denied.stderr),
      /^Error: Missing permission: env access to "IRONCORE_IMAGE_STORE": run with --allow-env=IRONCORE_IMAGE_STORE\n$/,
    );
  });
});
