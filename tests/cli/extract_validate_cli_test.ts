import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { blobStoreOf, tagIndexOf } from "../../src/store/_internal.ts";
import { digestOf } from "../../src/oci/digest.ts";
import {
  encodeJson,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { ANNOTATION_VARIANT } from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import { CLI_PATH, snapshotStore } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

interface Run {
  code: number;
  stdout: Uint8Array;
  text: string;
  stderr: string;
}

/** Runs the CLI as a child process, keeping standard output as bytes. */
async function cli(args: readonly string[]): Promise<Run> {
  const env = Deno.env.toObject();
  delete env.DOCKER_CONFIG;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI_PATH, ...args],
    env: {
      ...env,
      NO_COLOR: "1",
      IRONCORE_IMAGE_STORE: "/dev/null/ironcore-image-test-store",
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: out.stdout,
    text: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function assertCode(run: Run, code: number): void {
  assert.equal(
    run.code,
    code,
    `exit ${run.code}\nstdout: ${
      run.text.slice(0, 2000)
    }\nstderr: ${run.stderr}`,
  );
}

/** Exit code 1 and one `Error: …` line on stderr matching `re`. */
function assertFails(run: Run, re: RegExp, code = 1): void {
  assertCode(run, code);
  const lines = run.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `not one line:\n${run.stderr}`);
  assert.match(lines[0]!, /^Error: /);
  assert.match(lines[0]!, re);
}

/**
 * Tags in a store an amd64 image annotated `variant: metal` that has no root
 * file system: invalid, so only written by hand.
 */
async function tagMetalWithoutRoot(
  storePath: string,
  reference: string,
  layers: { kernel: string; initramfs: string },
): Promise<void> {
  const store = await Store.open(storePath);
  const built = await buildImage(store, [{ arch: "amd64", layers }]);
  const parsed = await store.readManifest(built.manifests[0]!.descriptor);
  if (parsed.kind !== "manifest") throw new Error("expected a manifest");
  const manifest = encodeJson({
    ...parsed.manifest,
    annotations: { [ANNOTATION_VARIANT]: "metal" },
  });
  const m = await blobStoreOf(store).putBytes(
    manifest.bytes,
    OCI_MANIFEST_MEDIA_TYPE,
  );
  const index = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [{ ...m, platform: { architecture: "amd64", os: "linux" } }],
  });
  const descriptor = await blobStoreOf(store).putBytes(
    index.bytes,
    OCI_INDEX_MEDIA_TYPE,
  );
  await tagIndexOf(store).setTags([{ reference, descriptor }]);
}

async function filesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("validate and extract on the command line", async (t) => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const f = await writeFiles(dir, {
      "vmlinuz-amd64": randomBytes(200_000),
      "vmlinuz-arm64": randomBytes(150_000),
      initrd: randomBytes(5000),
      squashfs: randomBytes(20_000),
      cmdline: "console=ttyS0",
    });
    const storePath = `${dir}/store`;
    const global = ["--plain-http", "--store-path", storePath, "--quiet"];
    const good = `${reg.host}/cli/good:1`;
    const bad = `${reg.host}/cli/bad:1`;
    const config = (arch: string, extra = "") =>
      `arch=${arch},kernel=${
        f[`vmlinuz-${arch}` as "vmlinuz-amd64"]
      },initramfs=${f.initrd},cmdline=${f.cmdline},variant=metal${extra}`;
    assertCode(
      await cli([
        ...global,
        "build",
        "--tag",
        good,
        "--config",
        config("amd64", `,squashfs=${f.squashfs}`),
        "--config",
        config("arm64", `,squashfs=${f.squashfs}`),
      ]),
      0,
    );
    // Metal without a root file system, which build refuses to make.
    await tagMetalWithoutRoot(storePath, bad, {
      kernel: f["vmlinuz-amd64"],
      initramfs: f.initrd,
    });
    const pushed = await Promise.all([
      cli([...global, "push", good]),
      cli([...global, "push", bad]),
    ]);
    for (const p of pushed) assertCode(p, 0);
    const out = `${dir}/out`;
    await Deno.mkdir(out);

    await t.step(
      "validate exits 0 for a valid image, locally and remotely",
      async () => {
        const [local, remote] = await Promise.all([
          cli([...global, "validate", good]),
          cli([...global, "validate", good, "--remote", "--json"]),
        ]);
        assertCode(local, 0);
        assert.equal(local.text, `${good} is a valid IronCore image\n`);
        assertCode(remote, 0);
        assert.deepEqual(JSON.parse(remote.text), {
          reference: good,
          ok: true,
          findings: [],
        });
      },
    );

    await t.step(
      "validate exits 1 and lists the findings of an invalid image",
      async () => {
        const [local, remote] = await Promise.all([
          cli([...global, "validate", bad]),
          cli([...global, "validate", bad, "--remote", "--json"]),
        ]);
        assertCode(local, 1);
        const lines = local.text.trimEnd().split("\n");
        assert.equal(lines.length, 2, local.text);
        assert.match(
          lines[0]!,
          /^error: manifests\[0\]\.annotations\.variant: variant metal needs .* \(missing a root file system\)$/,
        );
        assert.equal(
          lines[1],
          `${bad} is not a valid IronCore image: 1 error, 0 warnings`,
        );
        assert.equal(local.stderr, "");
        assertCode(remote, 1);
        const report = JSON.parse(remote.text);
        assert.equal(report.reference, bad);
        assert.equal(report.ok, false);
        assert.deepEqual(
          report.findings.map((
            x: { level: string; path: string },
          ) => [x.level, x.path]),
          [["error", "manifests[0].annotations.variant"]],
        );
      },
    );

    await t.step("validate of an unknown image is an error", async () => {
      assertFails(
        await cli([...global, "validate", "nope:1"]),
        /not found in store/,
      );
    });

    for (const arch of ["amd64", "arm64"]) {
      const source = await Deno.readFile(
        f[`vmlinuz-${arch}` as "vmlinuz-amd64"],
      );
      await t.step(
        `extract writes the ${arch} kernel from the store and the registry`,
        async () => {
          const [local, remote] = await Promise.all([
            cli([
              ...global,
              "extract",
              good,
              "--layer",
              "kernel",
              "--platform",
              `linux/${arch}`,
              "-o",
              `${out}/local-${arch}`,
            ]),
            cli([
              ...global,
              "extract",
              good,
              "--remote",
              "--layer",
              "kernel",
              "--platform",
              `linux/${arch}`,
              "--output",
              `${out}/remote-${arch}`,
            ]),
          ]);
          assertCode(local, 0);
          assertCode(remote, 0);
          assert.deepEqual(await Deno.readFile(`${out}/local-${arch}`), source);
          assert.deepEqual(
            await Deno.readFile(`${out}/remote-${arch}`),
            source,
          );
          assert.equal(
            local.text,
            `Wrote kernel of ${good} (linux/${arch}) to ${out}/local-${arch}: ${
              digestOf(source)
            }, ${source.byteLength} bytes\n`,
          );
        },
      );
    }

    await t.step(
      "extract -o - streams the layer to standard output",
      async () => {
        const squashfs = await Deno.readFile(f.squashfs);
        const [local, remote] = await Promise.all([
          cli([
            ...global,
            "extract",
            good,
            "--layer",
            "squashfs",
            "--platform",
            "linux/arm64",
            "-o",
            "-",
          ]),
          cli([
            ...global,
            "extract",
            good,
            "--remote",
            "--layer",
            "squashfs",
            "--platform",
            "linux/amd64",
            "-o",
            "-",
          ]),
        ]);
        assertCode(local, 0);
        assertCode(remote, 0);
        assert.deepEqual(local.stdout, squashfs);
        assert.deepEqual(remote.stdout, squashfs);
      },
    );

    await t.step(
      "extract without --layer or -o, or with a bad one, is a usage error",
      async () => {
        const runs = await Promise.all([
          cli([...global, "extract", good, "-o", `${out}/x`]),
          cli([...global, "extract", good, "--layer", "kernel"]),
          cli([
            ...global,
            "extract",
            good,
            "--layer",
            "bzimage",
            "-o",
            `${out}/x`,
          ]),
          cli([
            ...global,
            "extract",
            good,
            "--layer",
            "kernel",
            "--platform",
            "linux/",
            "-o",
            `${out}/x`,
          ]),
        ]);
        assertFails(runs[0]!, /extract needs --layer/, 2);
        assertFails(runs[1]!, /extract needs -o FILE/, 2);
        assertFails(runs[2]!, /Unknown layer "bzimage"/, 2);
        assertFails(runs[3]!, /Invalid platform/, 2);
        assert.deepEqual(await filesIn(out), [
          "local-amd64",
          "local-arm64",
          "remote-amd64",
          "remote-arm64",
        ]);
      },
    );

    await t.step(
      "a missing layer kind or platform exits 1 and writes nothing",
      async () => {
        const before = await filesIn(out);
        const runs = await Promise.all([
          cli([
            ...global,
            "extract",
            good,
            "--layer",
            "iso",
            "--platform",
            "linux/amd64",
            "-o",
            `${out}/iso`,
          ]),
          cli([
            ...global,
            "extract",
            good,
            "--remote",
            "--layer",
            "uki",
            "--platform",
            "linux/arm64",
            "-o",
            `${out}/uki`,
          ]),
          cli([
            ...global,
            "extract",
            good,
            "--layer",
            "kernel",
            "--platform",
            "linux/ppc64le",
            "-o",
            `${out}/k`,
          ]),
          cli([
            ...global,
            "extract",
            good,
            "--remote",
            "--layer",
            "kernel",
            "--platform",
            "linux/ppc64le",
            "-o",
            "-",
          ]),
        ]);
        assertFails(
          runs[0]!,
          /\(linux\/amd64\) has no iso layer: it has squashfs, initramfs, kernel$/,
        );
        assertFails(
          runs[1]!,
          /\(linux\/arm64\) has no uki layer: it has squashfs, initramfs, kernel$/,
        );
        assertFails(
          runs[2]!,
          /Platform linux\/ppc64le not found in .*: the image has linux\/amd64, linux\/arm64$/,
        );
        assertFails(runs[3]!, /Platform linux\/ppc64le not found/);
        assert.equal(runs[3]!.stdout.byteLength, 0);
        assert.deepEqual(await filesIn(out), before);
      },
    );

    await t.step(
      "a corrupt blob in the store exits 1, leaves no file and the store unchanged",
      async () => {
        const store = await Store.open(storePath);
        const kernel = digestOf(await Deno.readFile(f["vmlinuz-arm64"]));
        const blob = store.blobPath(kernel);
        const original = await Deno.readFile(blob);
        await Deno.writeFile(blob, randomBytes(original.byteLength));
        try {
          const before = await filesIn(out);
          const snapshot = await snapshotStore(storePath);
          const run = await cli([
            ...global,
            "extract",
            good,
            "--layer",
            "kernel",
            "--platform",
            "linux/arm64",
            "-o",
            `${out}/corrupt`,
          ]);
          assertFails(
            run,
            new RegExp(
              `^Error: Blob ${kernel} in store .* is corrupt: its bytes hash to sha256:\\w+; run ironcore-image verify --repair, then pull or build the image again$`,
            ),
          );
          assert.deepEqual(await filesIn(out), before);
          assert.deepEqual(await snapshotStore(storePath), snapshot);
          // To standard output the bytes are gone already; the exit code says
          // they were bad.
          const piped = await cli([
            ...global,
            "extract",
            good,
            "--layer",
            "kernel",
            "--platform",
            "linux/arm64",
            "-o",
            "-",
          ]);
          assertFails(piped, /Digest mismatch/);
          // validate reports no problem with a layer: it does not read layers.
          assertCode(await cli([...global, "validate", good]), 0);
        } finally {
          await Deno.writeFile(blob, original);
        }
      },
    );
  });
});
