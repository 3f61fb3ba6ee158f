/**
 * Runs the registry tests a second time, against distribution v3 instead of
 * Debian's distribution 2.8: the same test files, with every registry they
 * start switched by `IRONCORE_TEST_REGISTRY`.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/cli.ts";
import { peerPath } from "../_helpers/peers.ts";
import { REGISTRY_IMPLEMENTATION_ENV } from "../_helpers/registry.ts";

/** Push, pull, copy, mounts, chunked and resumed uploads, url, auth, login. */
const TEST_FILES = [
  "tests/_helpers/registry_test.ts",
  "tests/registry/client_test.ts",
  "tests/registry/_auth_test.ts",
  "tests/transfer/push_image_test.ts",
  "tests/transfer/pull_image_test.ts",
  "tests/transfer/copy_image_test.ts",
  "tests/transfer/mount_test.ts",
  "tests/image/layer_url_test.ts",
  "tests/reliability/push_resume_test.ts",
  "tests/reliability/pull_resume_test.ts",
  "tests/cli/copy_login_cli_test.ts",
];

Deno.test("the registry tests pass against distribution v3", async () => {
  // Fails here, with the fix, when the binary is missing.
  peerPath("distribution-registry");
  for (const file of TEST_FILES) {
    const found = await Deno.stat(`${REPO_ROOT}/${file}`).catch(() => null);
    assert.ok(found?.isFile, `${file} is gone: update TEST_FILES`);
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--parallel", "--quiet", ...TEST_FILES],
    cwd: REPO_ROOT,
    env: { [REGISTRY_IMPLEMENTATION_ENV]: "distribution3", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(out.stdout);
  assert.equal(
    out.code,
    0,
    `deno test against distribution v3 failed:\n${stdout}\n${
      decoder.decode(out.stderr)
    }`,
  );
  // Every file ran: the summary counts no failure and more than one test.
  assert.match(stdout, /ok \| \d{2,} passed .*\| 0 failed/);
});
