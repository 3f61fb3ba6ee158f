import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { Store } from "../../src/store/store.ts";
import { CLI_PATH, snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as a child process with `stdin` as its standard input. The
 * environment has no Docker config location and an unusable default store,
 * so every test names both.
 */
async function cli(args: readonly string[], stdin?: string): Promise<Run> {
  const env = Deno.env.toObject();
  delete env.DOCKER_CONFIG;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI_PATH, ...args],
    env: {
      ...env,
      NO_COLOR: "1",
      IRONCORE_IMAGE_STORE: "/dev/null/ironcore-image-test-store",
    },
    clearEnv: true,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function assertOk(run: Run, what: string): void {
  assert.equal(run.code, 0, `${what} failed:\n${run.stderr}`);
}

/** Asserts the exit code and a single `Error: …` line on stderr matching `re`. */
function assertFails(run: Run, re: RegExp, code = 1): void {
  assert.equal(run.code, code, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);
  const lines = run.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `not one line:\n${run.stderr}`);
  assert.match(lines[0]!, /^Error: /);
  assert.match(lines[0]!, re);
}

async function twoArchImage(
  dir: string,
  storePath: string,
  tag: string,
): Promise<BuildImageResult> {
  const store = await Store.open(storePath);
  const files = await writeFiles(dir, {
    vmlinuz: crypto.getRandomValues(new Uint8Array(4096)),
    initrd: crypto.getRandomValues(new Uint8Array(2048)),
    cmdline: "console=ttyS0",
  });
  return await buildImage(store, [
    {
      arch: "amd64",
      layers: { kernel: files.vmlinuz },
      cmdline: files.cmdline,
    },
    {
      arch: "arm64",
      layers: { kernel: files.vmlinuz, initramfs: files.initrd },
    },
  ], { tag });
}

function decodeAuth(config: unknown, host: string): string {
  const auth = (config as { auths: Record<string, { auth: string }> })
    .auths[host]?.auth;
  assert.ok(auth, `no auths entry for ${host}`);
  return atob(auth);
}

async function loginFlow(reg: TestRegistry): Promise<void> {
  await withTempDir(async (dir) => {
    const config = `${dir}/docker/config.json`;
    const store = `${dir}/store`;
    await Deno.mkdir(`${dir}/docker`);
    // An existing entry for another registry must survive.
    const existing = JSON.stringify({
      auths: { "other.example": { auth: btoa("x:y") } },
    });
    await Deno.writeTextFile(config, existing);
    const globals = ["--docker-config-path", config, "--plain-http"];

    const wrong = await cli(
      [...globals, "login", reg.host, "-u", reg.username, "--password-stdin"],
      "wrong-password-123\n",
    );
    assertFails(wrong, new RegExp(`Authentication failed for ${reg.host}`));
    assert.ok(!wrong.stderr.includes("wrong-password-123"));
    assert.equal(await Deno.readTextFile(config), existing);

    const right = await cli(
      [...globals, "login", reg.host, "-u", reg.username, "--password-stdin"],
      `${reg.password}\n`,
    );
    assertOk(right, "login");
    assert.match(right.stdout, new RegExp(`Login succeeded for ${reg.host}`));
    assert.ok(!right.stderr.includes(reg.password));
    assert.equal((await Deno.stat(config)).mode! & 0o777, 0o600);
    const saved = JSON.parse(await Deno.readTextFile(config));
    assert.equal(
      decodeAuth(saved, reg.host),
      `${reg.username}:${reg.password}`,
    );
    assert.equal(decodeAuth(saved, "other.example"), "x:y");

    // A later push finds the stored credentials.
    const ref = `${reg.host}/login/os:1.0`;
    const image = await twoArchImage(dir, store, ref);
    const pushed = await cli([
      ...globals,
      "--store-path",
      store,
      "-q",
      "push",
      ref,
      "--json",
    ]);
    assertOk(pushed, "push");
    const result = JSON.parse(pushed.stdout);
    assert.equal(result.reference, ref);
    assert.equal(result.descriptor.digest, image.index.digest);
    assert.equal(result.uploaded, 4, "kernel, initramfs, two configs");
    assert.equal(result.skipped, 0);
    assert.deepEqual(result.subTags, [`${ref}-amd64`, `${ref}-arm64`]);

    const out = await cli([...globals, "logout", reg.host]);
    assertOk(out, "logout");
    const after = JSON.parse(await Deno.readTextFile(config));
    assert.equal(after.auths[reg.host], undefined);
    assert.equal(decodeAuth(after, "other.example"), "x:y");
    assertFails(
      await cli([...globals, "logout", reg.host]),
      new RegExp(`Not logged in to ${reg.host}`),
    );
    assertFails(
      await cli([...globals, "--store-path", store, "-q", "push", ref]),
      new RegExp(`Authentication failed for ${reg.host}`),
    );
  });
}

Deno.test("login checks the password against a Basic-auth registry, and push then uses it", async () => {
  await using reg = await startRegistry({ auth: "basic" });
  await loginFlow(reg);
});

Deno.test("login checks the password through a token service, and push then uses it", async () => {
  await using reg = await startRegistry({ auth: "token" });
  await loginFlow(reg);
});

Deno.test("login without --password-stdin or -u is a usage error that writes nothing", async () => {
  await withTempDir(async (dir) => {
    const config = `${dir}/config.json`;
    const globals = ["--docker-config-path", config, "--plain-http"];
    assertFails(
      await cli([...globals, "login", "127.0.0.1:1", "-u", "ada"]),
      /--password-stdin/,
      2,
    );
    assertFails(
      await cli([...globals, "login", "127.0.0.1:1", "--password-stdin"], "pw"),
      /-u USER/,
      2,
    );
    assertFails(
      await cli(
        [...globals, "login", "127.0.0.1:1", "-u", "ada", "--password-stdin"],
        "\n",
      ),
      /empty/,
      2,
    );
    assert.deepEqual(await snapshotStore(config), {});
  });
});

Deno.test("copy moves images between the store and registries and prints JSON", async () => {
  await using a = await startRegistry();
  await using b = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const image = await twoArchImage(dir, store, "my-os:1.0");
    const globals = ["--store-path", store, "--plain-http", "-q"];
    const srcRef = `${a.host}/os/my-os:1.0`;
    const dstRef = `${b.host}/mirror/my-os:1.0`;

    const up = await cli([...globals, "copy", "local:my-os:1.0", srcRef]);
    assertOk(up, "copy to registry");
    assert.match(
      up.stdout,
      new RegExp(
        `Copied local:my-os:1.0 to ${srcRef}: ${image.index.digest} \\(4 copied, 0 mounted, 0 skipped\\)`,
      ),
    );
    assert.match(up.stdout, new RegExp(`Tagged ${srcRef}-amd64`));

    const across = await cli([...globals, "copy", srcRef, dstRef, "--json"]);
    assertOk(across, "copy between registries");
    const result = JSON.parse(across.stdout);
    assert.deepEqual(Object.keys(result).toSorted(), [
      "copied",
      "descriptor",
      "destination",
      "mounted",
      "skipped",
      "source",
      "subTags",
    ]);
    assert.equal(result.source, srcRef);
    assert.equal(result.destination, dstRef);
    assert.equal(result.descriptor.digest, image.index.digest);
    assert.equal(result.copied, 4);
    assert.deepEqual(result.subTags, [`${dstRef}-amd64`, `${dstRef}-arm64`]);

    const mounted = await cli([
      ...globals,
      "copy",
      srcRef,
      `${a.host}/other/my-os:1.0`,
      "--push-sub-manifests=false",
      "--json",
    ]);
    assertOk(mounted, "copy within a registry");
    const m = JSON.parse(mounted.stdout);
    assert.equal(m.mounted, 4);
    assert.equal(m.copied, 0);
    assert.deepEqual(m.subTags, []);

    const down = await cli([...globals, "copy", dstRef, "local:back:2.0"]);
    assertOk(down, "copy to the store");
    const pulled = await cli([
      ...globals,
      "pull",
      `${b.host}/mirror/my-os:1.0-arm64`,
      "--json",
    ]);
    assertOk(pulled, "pull");
    const p = JSON.parse(pulled.stdout);
    assert.equal(p.reference, `${b.host}/mirror/my-os:1.0-arm64`);
    assert.equal(
      p.descriptor.digest,
      image.manifests.find((x) => x.arch === "arm64")!.descriptor.digest,
    );
    assert.equal(typeof p.downloaded, "number");
    assert.equal(typeof p.skipped, "number");

    const listed = await cli([...globals, "list", "--json"]);
    assertOk(listed, "list");
    const rows = JSON.parse(listed.stdout) as {
      reference: string | null;
      digest: string;
    }[];
    const back = rows.find((r) => r.reference === "docker.io/library/back:2.0");
    assert.equal(back?.digest, image.index.digest);
    const inspected = await cli([...globals, "inspect", "back:2.0"]);
    assertOk(inspected, "inspect");
    assert.equal(
      JSON.parse(inspected.stdout).descriptor.digest,
      image.index.digest,
    );

    const before = await snapshotStore(`${b.dir}/data`);
    assertFails(
      await cli([...globals, "copy", `${a.host}/os/missing:1`, dstRef]),
      /not found/,
    );
    assert.deepEqual(await snapshotStore(`${b.dir}/data`), before);
    assertFails(await cli([...globals, "copy", srcRef]), /SRC and DST/, 2);
  });
});
