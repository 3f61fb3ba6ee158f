import assert from "node:assert/strict";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { imageFromManifest } from "../../src/spec/image_from_manifest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { randomBytes } from "../_helpers/fixtures.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as a child process. Its environment is this one without any
 * Docker config location, plus `env`.
 */
async function cli(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Run> {
  const base = Deno.env.toObject();
  delete base.DOCKER_CONFIG;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI, ...args],
    env: { ...base, NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
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

/** Asserts exit code 1 and a single `Error: …` line on stderr matching `re`. */
function assertFails(run: Run, re: RegExp, code = 1): void {
  assert.equal(run.code, code, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);
  const lines = run.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `not one line:\n${run.stderr}`);
  assert.match(lines[0]!, /^Error: /);
  assert.match(lines[0]!, re);
}

async function skopeo(args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command("skopeo", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(
    out.success,
    `skopeo ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
  );
  return out.stdout;
}

/** Every file under `root` by relative path, as `"<size> <sha256 hex>"`. */
async function snapshotDir(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const key = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) {
        await walk(`${dir}/${e.name}`, key);
      } else {
        const bytes = await Deno.readFile(`${dir}/${e.name}`);
        out[key] = `${bytes.byteLength} ${digestHex(digestOf(bytes))}`;
      }
    }
  }
  await walk(root, "");
  return out;
}

/** Resolves every manifest under a stored tag as an IronCore image. */
async function resolveStored(storePath: string, ref: string) {
  const store = await Store.open(storePath);
  const { descriptor } = await store.resolve(ref);
  const top = await store.readManifest(descriptor);
  const manifests = top.kind === "index"
    ? await Promise.all(top.index.manifests.map((d) => store.readManifest(d)))
    : [top];
  return await Promise.all(manifests.map(async (m) => {
    if (m.kind !== "manifest") throw new Error("nested index");
    for (const l of m.manifest.layers) {
      assert.ok(await store.hasBlob(l.digest, l.size), `layer ${l.digest}`);
    }
    return imageFromManifest(
      m.manifest,
      await store.readBlob(m.manifest.config),
    );
  }));
}

/** Files for a two-architecture image, with fresh random content. */
async function inputFiles(dir: string) {
  const paths = {
    vmlinuz: `${dir}/vmlinuz`,
    initrd: `${dir}/initrd`,
    squashfs: `${dir}/root.squashfs`,
    cmdline: `${dir}/cmdline`,
  };
  await Deno.writeFile(paths.vmlinuz, randomBytes(5000));
  await Deno.writeFile(paths.initrd, randomBytes(3000));
  await Deno.writeFile(paths.squashfs, randomBytes(9000));
  await Deno.writeTextFile(paths.cmdline, "console=ttyS0\n");
  return paths;
}

/** Builds a two-architecture image with the CLI and returns its digests. */
async function buildImage(
  global: string[],
  ref: string,
  files: Awaited<ReturnType<typeof inputFiles>>,
): Promise<void> {
  assertOk(
    await cli([
      ...global,
      "build",
      "--tag",
      ref,
      "--config",
      `arch=amd64,kernel=${files.vmlinuz},initramfs=${files.initrd},cmdline=${files.cmdline}`,
      "--config",
      `arch=arm64,kernel=${files.vmlinuz},squashfs=${files.squashfs}`,
    ]),
    "build",
  );
}

/** A Docker config file with the registry's user and `password`. */
async function dockerConfig(
  path: string,
  reg: TestRegistry,
  password = reg.password,
): Promise<string> {
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      auths: { [reg.host]: { auth: btoa(`${reg.username}:${password}`) } },
    }),
  );
  return path;
}

/** Writes `docker-credential-<name>` into `dir` as a shell script. */
async function writeHelper(
  dir: string,
  name: string,
  script: string,
): Promise<void> {
  const path = `${dir}/docker-credential-${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${script}\n`);
  await Deno.chmod(path, 0o755);
}

/**
 * Build, push (twice), skopeo inspect and copy, pull, pull one platform and
 * url, against `reg`. Returns every run so callers can check the output.
 */
async function roundTrip(reg: TestRegistry, dir: string): Promise<Run[]> {
  const runs: Run[] = [];
  const run = async (args: string[], env?: Record<string, string>) => {
    const r = await cli(args, env);
    runs.push(r);
    return r;
  };
  const config = reg.auth === "none"
    ? `${dir}/no-config.json`
    : await dockerConfig(`${dir}/config.json`, reg);
  const global = (store: string) => [
    "--plain-http",
    "--store-path",
    store,
    "--docker-config-path",
    config,
  ];
  const files = await inputFiles(dir);
  const ref = `${reg.host}/cli/os:1.0`;
  await buildImage(global(`${dir}/a`), ref, files);
  const creds = reg.auth === "none"
    ? []
    : ["--creds", `${reg.username}:${reg.password}`];

  const pushed = await run([...global(`${dir}/a`), "push", ref]);
  assertOk(pushed, "push");
  const indexDigest = /^Pushed .*:1\.0: (sha256:[0-9a-f]{64})$/m.exec(
    pushed.stdout,
  )?.[1];
  assert.ok(indexDigest, pushed.stdout);
  assert.equal(
    pushed.stdout,
    `Pushed ${ref}-amd64\nPushed ${ref}-arm64\nPushed ${ref}: ${indexDigest}\n`,
  );
  assertOk(await run([...global(`${dir}/a`), "push", ref]), "second push");

  // skopeo reads exactly what was pushed.
  const raw = await skopeo([
    "inspect",
    "--raw",
    "--tls-verify=false",
    ...creds,
    `docker://${ref}`,
  ]);
  assert.equal(digestOf(raw), indexDigest);
  const remoteIndex = JSON.parse(new TextDecoder().decode(raw));
  const armDigest = remoteIndex.manifests.find((
    m: { platform: { architecture: string } },
  ) => m.platform.architecture === "arm64").digest;
  await skopeo([
    "copy",
    "--all",
    "--src-tls-verify=false",
    ...(creds.length ? ["--src-creds", creds[1]!] : []),
    `docker://${ref}`,
    `oci:${dir}/skopeo:copied`,
  ]);
  const layout = JSON.parse(
    await Deno.readTextFile(`${dir}/skopeo/index.json`),
  );
  assert.equal(layout.manifests[0].digest, indexDigest);
  for (const m of remoteIndex.manifests) {
    const bytes = await Deno.readFile(
      `${dir}/skopeo/blobs/sha256/${digestHex(m.digest)}`,
    );
    assert.equal(digestOf(bytes), m.digest);
  }

  // Pull everything, then one platform.
  const pulled = await run([...global(`${dir}/b`), "pull", ref]);
  assertOk(pulled, "pull");
  assert.equal(pulled.stdout, `Pulled ${ref}: ${indexDigest}\n`);
  const images = await resolveStored(`${dir}/b`, ref);
  assert.deepEqual(images.map((i) => i.config.commandLine), [
    "console=ttyS0",
    undefined,
  ]);
  const one = await run([
    ...global(`${dir}/c`),
    "pull",
    ref,
    "--platform",
    "linux/arm64",
  ]);
  assertOk(one, "pull --platform");
  assert.equal(one.stdout, `Pulled ${ref}: ${armDigest}\n`);
  const [arm] = await resolveStored(`${dir}/c`, ref);
  assert.ok(arm?.squashfs && !arm.initramfs);

  // url's output fetches the kernel.
  const url = await run([
    ...global(`${dir}/c`),
    "url",
    ref,
    "--layer",
    "kernel",
    "--platform",
    "linux/arm64",
  ]);
  assertOk(url, "url");
  // Credentials in the output are said to be there, once, on stderr.
  assert.equal(
    url.stderr,
    {
      none: "",
      basic:
        "Warning: the Authorization header carries your registry password (base64-encoded, not encrypted): keep this output out of logs and shared places\n",
      token:
        "Warning: the Authorization header carries a registry token, good until it expires: keep this output out of logs and shared places\n",
    }[reg.auth],
  );
  const printed = JSON.parse(url.stdout);
  const kernel = digestOf(await Deno.readFile(files.vmlinuz));
  assert.equal(printed.url, `${reg.url}/v2/cli/os/blobs/${kernel}`);
  const headers = new Headers();
  for (const [k, values] of Object.entries(printed.headers)) {
    for (const v of values as string[]) headers.append(k, v);
  }
  const scheme = { none: undefined, basic: "Basic", token: "Bearer" }[reg.auth];
  assert.equal(headers.get("authorization")?.split(" ")[0], scheme);
  const res = await fetch(printed.url, { headers });
  assert.equal(res.status, 200);
  assert.equal(digestOf(new Uint8Array(await res.arrayBuffer())), kernel);
  return runs;
}

function assertNoSecret(runs: Run[], secret: string): void {
  for (const r of runs) {
    assert.ok(!r.stderr.includes(secret), `secret on stderr: ${r.stderr}`);
  }
}

Deno.test("the CLI against a registry without auth", async (t) => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const global = (store: string) => [
      "--plain-http",
      "--store-path",
      store,
      "--docker-config-path",
      `${dir}/no-config.json`,
    ];

    await t.step(
      "push, pull and url round-trip, and skopeo reads what was pushed",
      async () => {
        await Deno.mkdir(`${dir}/trip`);
        await roundTrip(reg, `${dir}/trip`);
      },
    );

    await t.step(
      "an image skopeo copied from an OCI layout pulls as an IronCore image",
      async () => {
        // A layout made by hand, with a pretty-printed manifest whose exact
        // bytes (and digest) must survive.
        const layout = `${dir}/layout`;
        await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
        const put = async (bytes: Uint8Array) => {
          const digest = digestOf(bytes);
          await Deno.writeFile(
            `${layout}/blobs/sha256/${digestHex(digest)}`,
            bytes,
          );
          return { digest, size: bytes.byteLength };
        };
        const config = await put(
          new TextEncoder().encode('{"commandLine":"root=/dev/vda"}'),
        );
        const kernel = await put(randomBytes(4000));
        const initrd = await put(randomBytes(2000));
        const manifestBytes = new TextEncoder().encode(JSON.stringify(
          {
            schemaVersion: 2,
            mediaType: OCI_MANIFEST_MEDIA_TYPE,
            config: { mediaType: CONFIG_MEDIA_TYPE, ...config },
            layers: [
              { mediaType: LAYER_MEDIA_TYPES.initramfs, ...initrd },
              { mediaType: LAYER_MEDIA_TYPES.kernel, ...kernel },
            ],
          },
          null,
          3,
        ));
        const manifest = await put(manifestBytes);
        await Deno.writeTextFile(
          `${layout}/oci-layout`,
          '{"imageLayoutVersion":"1.0.0"}',
        );
        await Deno.writeTextFile(
          `${layout}/index.json`,
          JSON.stringify({
            schemaVersion: 2,
            manifests: [{
              mediaType: OCI_MANIFEST_MEDIA_TYPE,
              ...manifest,
              annotations: { [ANNOTATION_REF_NAME]: "v1" },
            }],
          }),
        );
        const ref = `${reg.host}/skopeo/handmade:v1`;
        await skopeo([
          "copy",
          "--preserve-digests",
          "--dest-tls-verify=false",
          `oci:${layout}:v1`,
          `docker://${ref}`,
        ]);
        const pulled = await cli([...global(`${dir}/hm`), "pull", ref]);
        assertOk(pulled, "pull");
        assert.equal(pulled.stdout, `Pulled ${ref}: ${manifest.digest}\n`);
        const [image] = await resolveStored(`${dir}/hm`, ref);
        assert.equal(image?.config.commandLine, "root=/dev/vda");
        assert.equal(image?.kernel?.digest, kernel.digest);
        assert.equal(image?.initramfs?.digest, initrd.digest);

        // And a store written by our build, copied with skopeo.
        const built = `${reg.host}/skopeo/built:1`;
        const local = `${reg.host}/local/os:1`;
        await Deno.mkdir(`${dir}/in`);
        await buildImage(
          global(`${dir}/built`),
          local,
          await inputFiles(`${dir}/in`),
        );
        await skopeo([
          "copy",
          "--all",
          "--preserve-digests",
          "--dest-tls-verify=false",
          `oci:${dir}/built:${local}`,
          `docker://${built}`,
        ]);
        assertOk(await cli([...global(`${dir}/hm`), "pull", built]), "pull");
        const images = await resolveStored(`${dir}/hm`, built);
        assert.equal(images.length, 2);
      },
    );

    await t.step(
      "a missing tag or repository fails with not found",
      async () => {
        assertFails(
          await cli([...global(`${dir}/b`), "pull", `${reg.host}/cli/os:nope`]),
          new RegExp(
            `^Error: Manifest cli/os:nope not found in ${reg.host} \\(MANIFEST_UNKNOWN: manifest unknown\\): check the name and tag$`,
          ),
        );
        assertFails(
          await cli([...global(`${dir}/b`), "pull", `${reg.host}/no/such:1`]),
          /not found in/,
        );
        assertFails(
          await cli([...global(`${dir}/b`), "url", `${reg.host}/no/such:1`]),
          /not found in/,
        );
      },
    );

    await t.step("push --push-sub-manifests=false tags only REF", async () => {
      const ref = `${reg.host}/cli/nosub:1`;
      await Deno.mkdir(`${dir}/nosub`);
      await buildImage(
        global(`${dir}/nosub/store`),
        ref,
        await inputFiles(`${dir}/nosub`),
      );
      const run = await cli([
        ...global(`${dir}/nosub/store`),
        "push",
        ref,
        "--push-sub-manifests=false",
      ]);
      assertOk(run, "push");
      assert.match(
        run.stdout,
        /^Pushed [^\n]*cli\/nosub:1: sha256:[0-9a-f]{64}\n$/,
      );
      const tags = JSON.parse(
        new TextDecoder().decode(
          await skopeo([
            "list-tags",
            "--tls-verify=false",
            `docker://${reg.host}/cli/nosub`,
          ]),
        ),
      );
      assert.deepEqual(tags.Tags, ["1"]);
    });

    await t.step(
      "pushing a reference that is not in the store fails with not found",
      async () => {
        assertFails(
          await cli([
            ...global(`${dir}/b`),
            "push",
            `${reg.host}/cli/absent:1`,
          ]),
          /^Error: Image .*absent:1 not found in store/,
        );
      },
    );

    await t.step(
      "a blob whose bytes do not match its digest fails the pull and leaves the store clean",
      async () => {
        const ref = `${reg.host}/cli/tampered:1`;
        await Deno.mkdir(`${dir}/t`);
        const files = await inputFiles(`${dir}/t`);
        await buildImage(global(`${dir}/t/store`), ref, files);
        assertOk(await cli([...global(`${dir}/t/store`), "push", ref]), "push");
        const squashfs = digestOf(await Deno.readFile(files.squashfs));
        const hex = digestHex(squashfs);
        const data = `${reg.dir}/data/docker/registry/v2/blobs/sha256/${
          hex.slice(0, 2)
        }/${hex}/data`;
        const bytes = await Deno.readFile(data);
        bytes[0] = bytes[0]! ^ 0xff;
        await Deno.writeFile(data, bytes);

        // A store with other images in it, which must stay as it was.
        const store = `${dir}/hm`;
        const before = await snapshotDir(store);
        const run = await cli([...global(store), "pull", ref]);
        assertFails(
          run,
          new RegExp(
            `^Error: Digest mismatch for blob ${squashfs}: expected ${squashfs}, got sha256:`,
          ),
        );
        const after = await snapshotDir(store);
        for (const [name, entry] of Object.entries(before)) {
          assert.equal(after[name], entry, `${name} changed`);
        }
        for (const [name, entry] of Object.entries(after)) {
          if (name in before) continue;
          const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name);
          assert.ok(m, `unexpected new file ${name}`);
          assert.notEqual(m[1], hex);
          assert.equal(entry.split(" ")[1], m[1]);
        }
      },
    );
  });
});

Deno.test("the CLI against a registry with Basic auth", async (t) => {
  await using reg = await startRegistry({ auth: "basic" });
  await withTempDir(async (dir) => {
    const global = (config: string) => [
      "--plain-http",
      "--store-path",
      `${dir}/store`,
      "--docker-config-path",
      config,
    ];
    const ref = `${reg.host}/cli/os:1.0`;

    await t.step(
      "push, pull and url round-trip, and skopeo reads what was pushed",
      async () => {
        await Deno.mkdir(`${dir}/trip`);
        assertNoSecret(await roundTrip(reg, `${dir}/trip`), reg.password);
      },
    );

    await t.step(
      "a wrong password fails every command with one line that hides it",
      async () => {
        const password = "wrong-password-basic";
        const config = await dockerConfig(`${dir}/wrong.json`, reg, password);
        for (const cmd of [["pull", ref], ["url", ref]]) {
          const run = await cli([...global(config), ...cmd]);
          assertFails(
            run,
            new RegExp(
              `^Error: Authentication failed for ${reg.host}: the registry refused the credentials`,
            ),
          );
          assert.ok(!run.stderr.includes(password));
          assert.equal(run.stdout, "");
        }
      },
    );

    await t.step(
      "an empty --docker-config-path means the default file",
      async () => {
        await Deno.mkdir(`${dir}/docker-home`);
        await dockerConfig(`${dir}/docker-home/config.json`, reg);
        const env = { DOCKER_CONFIG: `${dir}/docker-home` };
        assertOk(await cli([...global(""), "pull", ref], env), "pull");
        assertOk(
          await cli([...global(""), "logout", reg.host], env),
          "logout",
        );
        const left = JSON.parse(
          await Deno.readTextFile(`${dir}/docker-home/config.json`),
        );
        assert.deepEqual(left.auths, {});
      },
    );

    await t.step("no credentials fails with a request to log in", async () => {
      assertFails(
        await cli([...global(`${dir}/none.json`), "pull", ref]),
        new RegExp(
          `^Error: Authentication failed for ${reg.host}: the registry requires credentials, log in first$`,
        ),
      );
    });

    await t.step(
      "a credsStore helper that is not installed is named",
      async () => {
        await Deno.writeTextFile(
          `${dir}/missing-helper.json`,
          JSON.stringify({ credsStore: "nonexistent" }),
        );
        assertFails(
          await cli([...global(`${dir}/missing-helper.json`), "pull", ref]),
          /^Error: Credential helper docker-credential-nonexistent is not installed: install it or remove credsStore\/credHelpers from /,
        );
      },
    );

    await t.step(
      "credential helpers on PATH are used, and a failing one is named",
      async () => {
        const bin = `${dir}/bin`;
        await Deno.mkdir(bin);
        await writeHelper(
          bin,
          "works",
          `read server\necho '{"ServerURL":"'"$server"'","Username":"${reg.username}","Secret":"${reg.password}"}'`,
        );
        await writeHelper(
          bin,
          "broken",
          "echo 'the keyring is locked' >&2\nexit 1",
        );
        const env = { PATH: `${bin}:${Deno.env.get("PATH") ?? ""}` };
        await Deno.writeTextFile(
          `${dir}/helper.json`,
          JSON.stringify({ credsStore: "works" }),
        );
        await Deno.writeTextFile(
          `${dir}/broken.json`,
          JSON.stringify({ credHelpers: { [reg.host]: "broken" } }),
        );
        const ok = await cli(
          [...global(`${dir}/helper.json`), "pull", ref],
          env,
        );
        assertOk(ok, "pull with a helper");
        assert.ok(!ok.stderr.includes(reg.password));
        assertFails(
          await cli([...global(`${dir}/broken.json`), "pull", ref], env),
          new RegExp(
            `^Error: Credential helper docker-credential-broken failed to get credentials for ${reg.host}: the keyring is locked$`,
          ),
        );
      },
    );
  });
});

Deno.test("the CLI against a registry with token auth", async (t) => {
  await using reg = await startRegistry({ auth: "token" });
  await withTempDir(async (dir) => {
    const ref = `${reg.host}/cli/os:1.0`;

    await t.step(
      "push, pull and url round-trip, and only url prints a token, on stdout",
      async () => {
        await Deno.mkdir(`${dir}/trip`);
        const runs = await roundTrip(reg, `${dir}/trip`);
        assertNoSecret(runs, reg.password);
        const url = runs.at(-1)!;
        assert.match(url.stdout, /"Bearer [\w-]+\.[\w-]+\.[\w-]+"/);
        for (const r of runs.slice(0, -1)) {
          assert.doesNotMatch(r.stdout + r.stderr, /Bearer|eyJ/);
        }
      },
    );

    await t.step(
      "a wrong password fails fast, with a few token requests and one line that hides it",
      async () => {
        const password = "wrong-password-token";
        const config = await dockerConfig(`${dir}/wrong.json`, reg, password);
        await Deno.mkdir(`${dir}/in`);
        const files = await inputFiles(`${dir}/in`);
        const global = [
          "--plain-http",
          "--store-path",
          `${dir}/store`,
          "--docker-config-path",
          config,
        ];
        await buildImage(global, ref, files);
        for (const cmd of [["push", ref], ["pull", ref], ["url", ref]]) {
          const before = reg.tokenRequests;
          const run = await cli([...global, ...cmd]);
          assertFails(
            run,
            new RegExp(
              `^Error: Authentication failed for ${reg.host}: the registry refused the credentials`,
            ),
          );
          assert.ok(!run.stderr.includes(password));
          assert.ok(
            reg.tokenRequests - before <= 2,
            `${cmd[0]}: ${reg.tokenRequests - before} token requests`,
          );
        }
      },
    );
  });
});

Deno.test("the CLI names a registry that is down", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const host = `127.0.0.1:${listener.addr.port}`;
  listener.close();
  await withTempDir(async (dir) => {
    for (const cmd of ["pull", "url"]) {
      assertFails(
        await cli([
          "--plain-http",
          "--store-path",
          `${dir}/store`,
          "--docker-config-path",
          `${dir}/none.json`,
          cmd,
          `${host}/os:1`,
        ]),
        new RegExp(
          `^Error: Cannot connect to registry ${host}: connection refused`,
        ),
      );
    }
  });
});

Deno.test("the CLI rejects bad registry command lines with exit code 2", async () => {
  await withTempDir(async (dir) => {
    const global = ["--store-path", `${dir}/store`];
    const cases: [string[], RegExp][] = [
      [["pull"], /REF/],
      [["push", "a:1", "b:1"], /REF/],
      [
        ["url", "localhost:5000/os:1", "--layer", "bogus"],
        /Unknown layer "bogus"/,
      ],
      [
        ["pull", "localhost:5000/os:1", "--platform", "a/b/c/d"],
        /Invalid platform/,
      ],
      [["push", "localhost:5000/os:1", "--concurrency", "0"], /--concurrency/],
    ];
    const runs = await Promise.all(
      cases.map(([args]) => cli([...global, ...args])),
    );
    runs.forEach((run, i) => assertFails(run, cases[i]![1], 2));
  });
});

Deno.test("an image without this machine's platform gets the --platform hint", async () => {
  await withTempDir(async (dir) => {
    const store = ["--store-path", `${dir}/store`];
    await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
    const config = (arch: string) => `arch=${arch},kernel=${dir}/vmlinuz`;
    assertOk(
      await cli([
        ...store,
        "build",
        "--tag",
        "exotic:1",
        "--config",
        config("riscv64"),
        "--config",
        config("s390x"),
      ]),
      "build",
    );
    assertFails(
      await cli([
        ...store,
        "extract",
        "exotic:1",
        "--layer",
        "kernel",
        "-o",
        "-",
      ]),
      /: it has linux\/riscv64, linux\/s390x; choose one with --platform$/,
    );
  });
});
