/**
 * The README's library example (resolve an image in a registry and stream
 * its kernel to a file) runs as written against a real registry.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { REPO_ROOT } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

Deno.test("the README's registry example streams a kernel to a file", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) =>
    m[1]!
  );
  const example = blocks.find((b) => b.includes("openLayer(client"));
  assert.ok(example, "README has the registry example");
  await using reg = await startRegistry({ auth: "basic" });
  await withTempDir(async (dir) => {
    const kernel = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
    const files = await writeFiles(dir, { vmlinuz: kernel, initrd: "initrd" });
    const store = await Store.open(`${dir}/store`);
    const ref = `${reg.host}/readme/os:1.0`;
    await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
      },
      { arch: "arm64", layers: { kernel: files.initrd } },
    ], { tag: ref });
    await pushImage(store, ref, {
      client: new RegistryClient({
        plainHttp: true,
        credentials: () =>
          Promise.resolve({ username: reg.username, password: reg.password }),
      }),
    });
    // The example reads credentials the way users have them: a Docker config.
    await Deno.mkdir(`${dir}/docker`);
    await Deno.writeTextFile(
      `${dir}/docker/config.json`,
      JSON.stringify({
        auths: {
          [reg.host]: { auth: btoa(`${reg.username}:${reg.password}`) },
        },
      }),
    );
    const script = `${dir}/example.ts`;
    await Deno.writeTextFile(
      script,
      // The README imports the published package; run it against this tree.
      example.replace(
        JSON.stringify(["jsr", "@ironcore/image"].join(":")),
        JSON.stringify(`${REPO_ROOT}/mod.ts`),
      ),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", script, ref],
      cwd: dir,
      env: { DOCKER_CONFIG: `${dir}/docker` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const written = await Deno.readFile(`${dir}/vmlinuz`);
    assert.equal(digestOf(written), digestOf(kernel));
    assert.match(
      new TextDecoder().decode(out.stdout),
      /^vmlinuz: 100000 bytes, sha256:/,
    );
  });
});
