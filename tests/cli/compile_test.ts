/**
 * `deno task compile` (`.ci/compile`) refuses, in one line and before it
 * builds anything, to go on without a runtime to embed, and a build that
 * fails leaves no empty `dist/` behind. The script runs in a
 * copy of the files it reads, so its `dist/` is the test's own.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/cli.ts";
import { copyTree } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

const TARGET = "x86_64-unknown-linux-gnu";

/** Runs `.ci/compile TARGET` in a copy of the repository's build inputs. */
async function compile(
  dir: string,
  env: Record<string, string>,
): Promise<{ code: number; stderr: string; dist: string[] | undefined }> {
  await Deno.mkdir(`${dir}/.ci`);
  await Deno.copyFile(`${REPO_ROOT}/.ci/compile`, `${dir}/.ci/compile`);
  for (const f of ["deno.json", "cli.ts"]) {
    await Deno.copyFile(`${REPO_ROOT}/${f}`, `${dir}/${f}`);
  }
  await copyTree(`${REPO_ROOT}/src`, `${dir}/src`);
  const out = await new Deno.Command("bash", {
    args: [`${dir}/.ci/compile`, TARGET],
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? dir,
      NO_COLOR: "1",
      ...env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  // undefined: there is no dist/ at all.
  let dist: string[] | undefined = [];
  try {
    for await (const e of Deno.readDir(`${dir}/dist`)) dist.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    dist = undefined;
  }
  return {
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr),
    dist,
  };
}

Deno.test("deno task compile refuses the deno CLI as DENORT_BIN and builds nothing", async () => {
  await withTempDir(async (dir) => {
    const res = await compile(dir, { DENORT_BIN: Deno.execPath() });
    assert.equal(res.code, 1, res.stderr);
    assert.equal(
      res.stderr,
      `compile: DENORT_BIN=${Deno.execPath()} is the deno CLI, not denort: point it at the denort binary of Deno ${Deno.version.deno} (the runtime that deno compile embeds)\n`,
    );
    assert.equal(res.dist, undefined);
  });
});

Deno.test("deno task compile refuses a DENORT_BIN that is not an executable file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/denort`, "not a program");
    const res = await compile(dir, { DENORT_BIN: `${dir}/denort` });
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /^compile: DENORT_BIN=\S+\/denort is not an executable file: point it at the denort binary of Deno \d+\.\d+\.\d+\n$/,
    );
    assert.equal(res.dist, undefined);
  });
});

Deno.test("deno task compile without network or DENORT_BIN says how to build offline", async () => {
  await withTempDir(async (dir) => {
    // Every request goes through a proxy where nothing listens, so the
    // download site is unreachable on any machine and nothing is fetched.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = `http://127.0.0.1:${listener.addr.port}`;
    listener.close();
    const res = await compile(dir, {
      HTTPS_PROXY: closed,
      HTTP_PROXY: closed,
      NO_PROXY: "",
    });
    assert.equal(res.code, 1, res.stderr);
    assert.equal(
      res.stderr,
      `compile: cannot reach dl.deno.land to download the Deno runtime (denort): without network, set DENORT_BIN to the denort binary of Deno ${Deno.version.deno} and name its target, e.g. DENORT_BIN=/path/to/denort .ci/compile ${Deno.build.target}\n`,
    );
    assert.equal(res.dist, undefined);
  });
});

Deno.test("deno task compile with a DENORT_BIN that is no Deno runtime fails and leaves no dist/", async () => {
  await withTempDir(async (dir) => {
    // Executable, not the deno CLI, no version to tell: only building
    // finds out.
    await Deno.writeTextFile(`${dir}/denort`, "#!/bin/sh\nexit 1\n");
    await Deno.chmod(`${dir}/denort`, 0o755);
    const res = await compile(dir, { DENORT_BIN: `${dir}/denort` });
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /\ncompile: deno compile failed for x86_64-unknown-linux-gnu \(its error is above\): check DENORT_BIN=\S+\/denort\n$/,
    );
    assert.equal(res.dist, undefined);
  });
});
