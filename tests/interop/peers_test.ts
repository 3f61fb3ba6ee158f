/**
 * The interop matrix with other OCI clients: oras, crane and regctl (built by
 * `.ci/setup-peers`) against distribution v3 with token auth. Images ours
 * pushes are copied, inspected and pulled by each of them with identical
 * digests; images they push or copy are pulled and validated by ours (and
 * the Go ironcore-image).
 *
 * The registry is named `localhost:PORT` and so is its token realm: crane
 * refuses a realm at a loopback IP address on another port, and oras one
 * that resolves to loopback under another host name than the registry's.
 */
import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { type CliResult, runCliProcess } from "../_helpers/cli.ts";
import {
  fetchUrlJson,
  fileDigest,
  SAMPLE_DIR,
  writeDockerConfig,
  writeImageInputs,
} from "../_helpers/interop.ts";
import { type PeerName, peerOk } from "../_helpers/peers.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** ours and the peers, sharing a Docker config in `dir/.docker`. */
class Matrix {
  readonly dir: string;
  readonly host: string;
  readonly store: string;

  constructor(dir: string, reg: TestRegistry) {
    this.dir = dir;
    this.host = `localhost:${new URL(reg.url).port}`;
    this.store = `${dir}/store`;
  }

  async login(reg: TestRegistry): Promise<void> {
    await writeDockerConfig(
      `${this.dir}/.docker`,
      this.host,
      reg.username,
      reg.password,
    );
  }

  ours(args: string[]): Promise<CliResult> {
    return runCliProcess(
      ["--store-path", this.store, "--plain-http", "-q", ...args],
      { env: { DOCKER_CONFIG: `${this.dir}/.docker` } },
    );
  }

  async oursOk(args: string[]): Promise<string> {
    const out = await this.ours(args);
    assert.equal(
      out.code,
      0,
      `ironcore-image ${args.join(" ")}:\n${out.stderr}`,
    );
    return out.stdout;
  }

  peer(name: PeerName, args: string[]): Promise<string> {
    const tls = name === "crane"
      ? ["--insecure"]
      : name === "oras"
      ? []
      : ["--host", `reg=${this.host},tls=disabled`];
    return peerOk(name, [...args, ...tls], { env: { HOME: this.dir } });
  }
}

function startTokenRegistry(): Promise<TestRegistry> {
  return startRegistry({
    implementation: "distribution3",
    auth: "token",
    tokenRealmHostname: "localhost",
  });
}

/** Checks every blob of an OCI layout against its file name; returns the digests. */
async function layoutDigests(dir: string): Promise<string[]> {
  const digests: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/blobs/sha256`)) {
    const digest = `sha256:${entry.name}`;
    assert.equal(
      await fileDigest(`${dir}/blobs/sha256/${entry.name}`),
      digest,
    );
    digests.push(digest);
  }
  return digests.sort();
}

async function tarLayout(dir: string, file: string): Promise<void> {
  const out = await new Deno.Command("tar", {
    args: ["-C", dir, "-cf", file, "oci-layout", "index.json", "blobs"],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test("an image ours pushed is copied, inspected and pulled by crane, oras and regctl with identical digests", async () => {
  await using reg = await startTokenRegistry();
  await withTempDir(async (dir) => {
    const m = new Matrix(dir, reg);
    await m.login(reg);
    const inputs = await writeImageInputs(dir);
    const ref = `${m.host}/ours/os:1.0`;
    await m.oursOk(["build", "--tag", ref, ...inputs.buildArgs]);
    const pushed = JSON.parse(await m.oursOk(["push", ref, "--json"]));
    const digest: string = pushed.descriptor.digest;
    const inspect = JSON.parse(await m.oursOk(["inspect", ref]));
    const blobs = [
      digest,
      ...inspect.manifests.flatMap((
        a: {
          descriptor: Descriptor;
          manifest: { config: Descriptor; layers: Descriptor[] };
        },
      ) => [
        a.descriptor.digest,
        a.manifest.config.digest,
        ...a.manifest.layers.map((l) => l.digest),
      ]),
    ];
    const allBlobs = [...new Set(blobs)].sort();

    await Promise.all([
      (async () => {
        assert.equal((await m.peer("crane", ["digest", ref])).trim(), digest);
        assert.equal(
          digestOf(await m.peer("crane", ["manifest", ref])),
          digest,
        );
        await m.peer("crane", ["copy", ref, `${m.host}/crane/os:1.0`]);
        await m.peer("crane", ["pull", "--format", "oci", ref, `${dir}/crane`]);
        assert.deepEqual(await layoutDigests(`${dir}/crane`), allBlobs);
      })(),
      (async () => {
        const fetched = JSON.parse(
          await m.peer("oras", [
            "manifest",
            "fetch",
            "--plain-http",
            "--descriptor",
            ref,
          ]),
        );
        assert.equal(fetched.digest, digest);
        await m.peer("oras", [
          "cp",
          "--from-plain-http",
          "--to-plain-http",
          ref,
          `${m.host}/oras/os:1.0`,
        ]);
        // oras restores files by the title annotation ours writes.
        await m.peer("oras", [
          "pull",
          "--plain-http",
          `${ref}-arm64`,
          "-o",
          `${dir}/oras`,
        ]);
        for (const path of Object.values(inputs.files.arm64)) {
          const name = path.slice(path.lastIndexOf("/") + 1);
          assert.equal(
            await fileDigest(`${dir}/oras/${name}`),
            await fileDigest(path),
          );
        }
      })(),
      (async () => {
        assert.equal(
          (await m.peer("regctl", ["image", "digest", ref])).trim(),
          digest,
        );
        await m.peer("regctl", [
          "image",
          "copy",
          ref,
          `${m.host}/regctl/os:1.0`,
        ]);
        await m.peer("regctl", ["image", "export", ref, `${dir}/regctl.tar`]);
      })(),
    ]);

    // Each copy is the same image to ours.
    for (const peer of ["crane", "oras", "regctl"]) {
      const copy = `${m.host}/${peer}/os:1.0`;
      const pulled = JSON.parse(await m.oursOk(["pull", copy, "--json"]));
      assert.equal(pulled.descriptor.digest, digest, peer);
      await m.oursOk(["validate", copy, "--remote"]);
    }
    // What crane pulled and regctl exported imports into ours intact.
    await tarLayout(`${dir}/crane`, `${dir}/crane.tar`);
    for (const peer of ["crane", "regctl"]) {
      const imported = await m.oursOk([
        "import",
        `${dir}/${peer}.tar`,
        "--tag",
        `localhost/${peer}:1`,
      ]);
      assert.match(imported, new RegExp(digest));
    }
    await m.oursOk(["verify"]);
  });
});

Deno.test("images oras and regctl push with IronCore media types are pulled, validated and extracted by ours", async () => {
  await using reg = await startTokenRegistry();
  await withTempDir(async (dir) => {
    const m = new Matrix(dir, reg);
    await m.login(reg);
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ commandLine: "console=ttyS0" }),
    );
    const files = {
      kernel: `${SAMPLE_DIR}/vmlinuz`,
      initramfs: `${SAMPLE_DIR}/initramfs.img`,
      squashfs: `${SAMPLE_DIR}/root.squashfs`,
    };
    const orasRef = `${m.host}/oras-pushed/os:1.0`;
    const regctlRef = `${m.host}/regctl-pushed/os:1.0`;
    // oras takes paths relative to its working directory as layer titles.
    await Promise.all([
      peerOk("oras", [
        "push",
        "--plain-http",
        orasRef,
        "--config",
        `${config}:${CONFIG_MEDIA_TYPE}`,
        "--annotation",
        "variant=metal",
        ...Object.entries(files).map(([kind, path]) =>
          `${path.slice(SAMPLE_DIR.length + 1)}:${
            LAYER_MEDIA_TYPES[kind as keyof typeof files]
          }`
        ),
      ], { cwd: SAMPLE_DIR, env: { HOME: dir } }),
      m.peer("regctl", [
        "artifact",
        "put",
        "--config-type",
        CONFIG_MEDIA_TYPE,
        "--config-file",
        config,
        "--annotation",
        "variant=metal",
        ...Object.entries(files).flatMap(([kind, path]) => [
          "--file",
          path,
          "--file-media-type",
          LAYER_MEDIA_TYPES[kind as keyof typeof files],
        ]),
        regctlRef,
      ]),
    ]);
    for (const ref of [orasRef, regctlRef]) {
      await m.oursOk(["pull", ref]);
      const validated = await m.ours(["validate", ref]);
      assert.equal(validated.code, 0, validated.stderr);
      assert.doesNotMatch(validated.stderr, /warning/, validated.stderr);
      const inspect = JSON.parse(await m.oursOk(["inspect", ref]));
      assert.deepEqual(inspect.config, { commandLine: "console=ttyS0" });
      for (const [kind, path] of Object.entries(files)) {
        const out = `${dir}/${kind}.out`;
        await m.oursOk(["extract", ref, "--layer", kind, "-o", out]);
        assert.equal(
          await fileDigest(out),
          await fileDigest(path),
          `${ref} ${kind}`,
        );
        await Deno.remove(out);
      }
      // The Go original reads them too.
      await peerOk(
        "ironcore-image",
        ["--store-path", `${dir}/go`, "pull", ref],
        {
          env: { HOME: dir },
        },
      );
      const url = JSON.parse(
        await peerOk("ironcore-image", ["url", ref, "--layer", "kernel"], {
          env: { HOME: dir },
        }),
      );
      assert.equal(await fetchUrlJson(url), await fileDigest(files.kernel));
    }
  });
});
