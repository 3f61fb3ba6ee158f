/**
 * `deno install -g` with the README's narrow permissions gives a working
 * `ironcore-image` command.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/cli.ts";
import { withTempDir } from "../_helpers/temp.ts";

Deno.test("deno install -g with narrow permissions installs a working ironcore-image", async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const install = await new Deno.Command(Deno.execPath(), {
      args: [
        "install",
        "-g",
        "--root",
        dir,
        "--name",
        "ironcore-image",
        "--config",
        `${REPO_ROOT}/deno.json`,
        "--no-prompt",
        "--allow-read",
        `--allow-write=${store}`,
        "--allow-net",
        "--allow-env=HOME,USERPROFILE,IRONCORE_IMAGE_STORE,DOCKER_CONFIG",
        `${REPO_ROOT}/cli.ts`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const bin = `${dir}/bin/ironcore-image`;
    // On a terminal, Deno would otherwise ask for a missing permission
    // instead of failing with the one-line message.
    assert.match(await Deno.readTextFile(bin), /--no-prompt/);
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(bin, {
        args,
        env: { HOME: dir, IRONCORE_IMAGE_STORE: store },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const d = new TextDecoder();
      return {
        code: out.code,
        stdout: d.decode(out.stdout),
        stderr: d.decode(out.stderr),
      };
    };
    const version = await run("--version");
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^ironcore-image \d+\.\d+\.\d+\n$/);
    await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
    const built = await run(
      "-q",
      "build",
      "--tag",
      "demo:1",
      "--config",
      `arch=amd64,kernel=${dir}/vmlinuz`,
    );
    assert.equal(built.code, 0, built.stderr);
    const listed = await run("list");
    assert.match(listed.stdout, /demo\s+1\s/);
    // Outside the granted store, writing is refused with the flag to add.
    const denied = await run(
      "--store-path",
      `${dir}/elsewhere`,
      "-q",
      "build",
      "--tag",
      "demo:2",
      "--config",
      `arch=amd64,kernel=${dir}/vmlinuz`,
    );
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      /^Error: Missing permission: write access to .*run with --allow-write=/,
    );
  });
});
