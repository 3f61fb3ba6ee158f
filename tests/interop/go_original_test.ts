/**
 * Differential tests against the Go original, ironcore-dev/ironcore-image
 * (built by `.ci/setup-peers`): the same input files go through both tools,
 * each reads what the other wrote, and the outputs a script may depend on
 * (exit codes, `url`'s JSON, `inspect`'s JSON for a manifest) are compared.
 * docs/compatibility.md explains every difference asserted here.
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { LAYER_MEDIA_TYPES } from "../../src/spec/media_types.ts";
import { type CliResult, runCliProcess } from "../_helpers/cli.ts";
import {
  assertContains,
  fetchUrlJson,
  fileDigest,
  type GoLayerKind,
  writeDockerConfig,
  writeImageInputs,
} from "../_helpers/interop.ts";
import { runPeer } from "../_helpers/peers.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

const ARCHS = ["amd64", "arm64"] as const;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

interface Manifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** What `inspect` of an image manifest prints, in the fields both tools share. */
interface InspectManifest {
  descriptor: Descriptor;
  manifest: Manifest;
  config: { commandLine?: string };
}

/** Both tools, run in one directory that holds the Docker config. */
class Tools {
  readonly dir: string;
  readonly dockerConfig: string;

  constructor(dir: string) {
    this.dir = dir;
    this.dockerConfig = `${dir}/docker`;
  }

  /** The Go ironcore-image; it talks plain HTTP to loopback registries by itself. */
  go(store: string, args: string[]): Promise<CliResult> {
    return runPeer("ironcore-image", ["--store-path", store, ...args], {
      env: { HOME: this.dir, DOCKER_CONFIG: this.dockerConfig },
    });
  }

  ours(store: string, args: string[]): Promise<CliResult> {
    return runCliProcess(
      ["--store-path", store, "--plain-http", "-q", ...args],
      { env: { DOCKER_CONFIG: this.dockerConfig } },
    );
  }

  async goOk(store: string, args: string[]): Promise<string> {
    return ok("Go ironcore-image", args, await this.go(store, args));
  }

  async oursOk(store: string, args: string[]): Promise<string> {
    return ok("ironcore-image", args, await this.ours(store, args));
  }
}

function ok(tool: string, args: string[], out: CliResult): string {
  assert.equal(
    out.code,
    0,
    `${tool} ${args.join(" ")} exited with ${out.code}:\n${out.stderr}`,
  );
  return out.stdout;
}

/**
 * What `jq -c FILTER` prints for a path filter such as
 * `.manifests[].platform.architecture`: a field of an object (null when
 * absent), `[]` for every element of an array.
 */
function jq(value: unknown, filter: string): unknown[] {
  let values: unknown[] = [value];
  for (const step of filter.match(/\.\w+|\[\]/g) ?? []) {
    values = values.flatMap((v) => {
      if (step === "[]") return Array.isArray(v) ? v : [];
      const field = (v as Record<string, unknown> | null)?.[step.slice(1)];
      return [field === undefined ? null : field];
    });
  }
  return values;
}

/** Layers as a sorted list of `mediaType digest size`, for order-blind comparison. */
function layerSet(manifest: Manifest): string[] {
  return manifest.layers.map((l) => `${l.mediaType} ${l.digest} ${l.size}`)
    .sort();
}

/** The digest a store's `index.json` tags `ref` with. */
async function taggedDigest(store: string, ref: string): Promise<string> {
  const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
  const entry = (index.manifests as Descriptor[]).find((m) =>
    m.annotations?.["org.opencontainers.image.ref.name"] === ref
  );
  assert.ok(entry, `${ref} is not tagged in ${store}`);
  return entry.digest;
}

/** `list` as sorted rows of its first three columns (REPOSITORY TAG IMAGE). */
function columns(list: string): string[] {
  return list.trim().split("\n").map((line) =>
    line.trim().split(/\s+/).slice(0, 3).join(" ")
  ).sort();
}

function kindsOf(manifest: Manifest): string[] {
  const kinds = Object.entries(LAYER_MEDIA_TYPES);
  return manifest.layers.map((l) =>
    kinds.find(([, mediaType]) => mediaType === l.mediaType)?.[0] ?? "?"
  );
}

Deno.test("build: the Go tool and ours store the same layers, config and platforms from the same files", async () => {
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    const inputs = await writeImageInputs(dir);
    const ref = "localhost/diff/os:1.0";
    const goStore = `${dir}/go`;
    const ourStore = `${dir}/ours`;
    const annotations = ["--annotations", "org.example.a=1,b=x=y"];
    const args = ["build", "--tag", ref, ...annotations, ...inputs.buildArgs];
    await tools.goOk(goStore, args);
    await tools.oursOk(ourStore, args);
    const cmdline = await Deno.readTextFile(inputs.cmdline);
    assert.ok(cmdline.endsWith("\n"));

    for (const arch of ARCHS) {
      const go: InspectManifest = JSON.parse(
        await tools.goOk(goStore, ["inspect", `${ref}-${arch}`]),
      );
      const ours: InspectManifest = JSON.parse(
        await tools.oursOk(ourStore, ["inspect", `${ref}-${arch}`]),
      );
      // The same bytes under the same media types.
      assert.deepEqual(layerSet(ours.manifest), layerSet(go.manifest));
      // Ours states the manifest's media type in the manifest, as the OCI
      // image spec recommends; the Go tool leaves it to the descriptor.
      assert.equal(go.manifest.mediaType, undefined);
      assert.equal(ours.manifest.mediaType, go.descriptor.mediaType);
      for (const [kind, path] of Object.entries(inputs.files[arch])) {
        const layer = go.manifest.layers.find((l) =>
          l.mediaType === LAYER_MEDIA_TYPES[kind as GoLayerKind]
        );
        assert.equal(layer?.digest, await fileDigest(path), `${arch} ${kind}`);
      }
      // Ours names each layer after its file; the Go tool names none.
      for (const layer of go.manifest.layers) {
        assert.equal(layer.annotations, undefined);
      }
      const files: Record<string, string> = inputs.files[arch];
      for (const [i, layer] of ours.manifest.layers.entries()) {
        const kind = kindsOf(ours.manifest)[i]!;
        assert.deepEqual(layer.annotations, {
          "org.opencontainers.image.title": basename(files[kind]!),
        });
      }
      // The layer order differs; readers go by media type.
      assert.deepEqual(
        kindsOf(go.manifest),
        arch === "amd64"
          ? ["initramfs", "kernel", "squashfs"]
          : ["rootfs", "kernel", "uki", "iso"],
      );
      assert.deepEqual(
        kindsOf(ours.manifest),
        arch === "amd64"
          ? ["squashfs", "initramfs", "kernel"]
          : ["rootfs", "kernel", "uki", "iso"],
      );
      // The Go tool keeps the file's trailing newline; ours trims it.
      assert.deepEqual(
        go.config,
        arch === "amd64" ? { commandLine: cmdline } : {},
      );
      assert.deepEqual(
        ours.config,
        arch === "amd64" ? { commandLine: cmdline.trim() } : {},
      );
    }

    // The index: one linux entry per architecture, in the order given.
    const goIndex = JSON.parse(await tools.goOk(goStore, ["inspect", ref]));
    const ours = JSON.parse(await tools.oursOk(ourStore, ["inspect", ref]));
    const platforms = (index: { manifests: Descriptor[] }) =>
      index.manifests.map((m) => m.platform);
    assert.deepEqual(platforms(ours.index), platforms(goIndex));
    assert.deepEqual(ours.index.annotations, goIndex.annotations);
    assert.deepEqual(goIndex.annotations, { "org.example.a": "1", b: "x=y" });
    assert.deepEqual(platforms(goIndex), [
      { architecture: "amd64", os: "linux" },
      { architecture: "arm64", os: "linux" },
    ]);
    // Each tool's inspect of an index: Go prints the index itself, ours
    // wraps it with the descriptor and every architecture's manifest.
    assert.equal(goIndex.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      ours.manifests.map((m: { descriptor: Descriptor }) =>
        m.descriptor.digest
      ),
      ours.index.manifests.map((m: Descriptor) => m.digest),
    );
  });
});

Deno.test("an image the Go tool pushed is pulled, listed, inspected and resolved by ours", async () => {
  await using reg = await startRegistry({ auth: "basic" });
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    await writeDockerConfig(
      tools.dockerConfig,
      reg.host,
      reg.username,
      reg.password,
    );
    const inputs = await writeImageInputs(dir);
    const goStore = `${dir}/go`;
    const ourStore = `${dir}/ours`;
    const ref = `${reg.host}/go/os:1.0`;
    await tools.goOk(goStore, [
      "build",
      "--tag",
      ref,
      "--annotations",
      "org.example.built-by=go",
      ...inputs.buildArgs,
    ]);
    await tools.goOk(goStore, ["push", ref]);
    const goIndex = JSON.parse(await tools.goOk(goStore, ["inspect", ref]));

    await tools.oursOk(ourStore, ["pull", ref]);
    const listed = JSON.parse(await tools.oursOk(ourStore, ["list", "--json"]));
    assert.deepEqual(
      listed.map((e: { reference: string }) => e.reference),
      [ref],
    );
    assert.equal(listed[0].digest, await taggedDigest(goStore, ref));
    const ours = JSON.parse(await tools.oursOk(ourStore, ["inspect", ref]));
    assert.deepEqual(ours.index, goIndex);
    // A filter a Go user wrote for the Go tool's inspect of an index reads
    // the same values from ours.
    for (
      const filter of [
        ".schemaVersion",
        ".mediaType",
        ".annotations",
        ".manifests[].digest",
        ".manifests[].mediaType",
        ".manifests[].size",
        ".manifests[].platform",
        ".manifests[].platform.architecture",
        // The Go tool writes no annotations on index entries: null in both.
        ".manifests[].annotations",
      ]
    ) {
      const expected = jq(goIndex, filter);
      if (!filter.endsWith("[].annotations")) {
        assert.ok(expected.some((v) => v !== null), `${filter} on Go's`);
      }
      assert.deepEqual(jq(ours, filter), expected, filter);
    }
    await tools.oursOk(ourStore, ["verify"]);
    await tools.oursOk(ourStore, ["validate", ref]);

    for (const arch of ARCHS) {
      const archRef = `${ref}-${arch}`;
      const goInspect = JSON.parse(
        await tools.goOk(goStore, ["inspect", archRef]),
      );
      const platform = ["--platform", `linux/${arch}`];
      const oursArch = ours.manifests.find((m: { descriptor: Descriptor }) =>
        m.descriptor.platform?.architecture === arch
      );
      assertContains(oursArch.manifest, goInspect.manifest);
      assert.deepEqual(oursArch.config, goInspect.config);

      for (const [kind, path] of Object.entries(inputs.files[arch])) {
        const goUrl = JSON.parse(
          await tools.goOk(goStore, ["url", archRef, "--layer", kind]),
        );
        // The Go tool resolves layers of an architecture's tag only; ours
        // also picks the architecture from the index.
        const oursUrl = JSON.parse(
          await tools.oursOk(ourStore, [
            "url",
            ref,
            "--layer",
            kind,
            ...platform,
          ]),
        );
        assertContains(oursUrl, goUrl);
        assert.match(goUrl.headers.Authorization[0], /^Basic /);
        assert.equal(await fetchUrlJson(oursUrl), await fileDigest(path));
        assert.equal(await fetchUrlJson(goUrl), await fileDigest(path));
      }
    }
  });
});

Deno.test("an image ours pushed is pulled, listed, inspected and resolved by the Go tool", async () => {
  await using reg = await startRegistry({ auth: "basic" });
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    await writeDockerConfig(
      tools.dockerConfig,
      reg.host,
      reg.username,
      reg.password,
    );
    const inputs = await writeImageInputs(dir);
    const goStore = `${dir}/go`;
    const ourStore = `${dir}/ours`;
    const ref = `${reg.host}/ours/os:1.0`;
    await tools.oursOk(ourStore, ["build", "--tag", ref, ...inputs.buildArgs]);
    await tools.oursOk(ourStore, ["push", ref]);
    const ours = JSON.parse(await tools.oursOk(ourStore, ["inspect", ref]));

    for (const arch of ARCHS) {
      const archRef = `${ref}-${arch}`;
      const oursArch = ours.manifests.find((m: { descriptor: Descriptor }) =>
        m.descriptor.platform?.architecture === arch
      );
      await tools.goOk(goStore, ["pull", archRef]);
      assert.equal(
        await taggedDigest(goStore, archRef),
        oursArch.descriptor.digest,
      );
      const goInspect = JSON.parse(
        await tools.goOk(goStore, ["inspect", archRef]),
      );
      assert.deepEqual(goInspect.manifest, oursArch.manifest);
      assert.deepEqual(goInspect.config, oursArch.config);
      for (const [kind, path] of Object.entries(inputs.files[arch])) {
        const goUrl = JSON.parse(
          await tools.goOk(goStore, ["url", archRef, "--layer", kind]),
        );
        assert.equal(await fetchUrlJson(goUrl), await fileDigest(path));
      }
    }
    // The Go tool pulls the first manifest of an index and tags it with the
    // index's reference; ours pulls the index with every architecture.
    await tools.goOk(goStore, ["pull", ref]);
    assert.equal(
      await taggedDigest(goStore, ref),
      ours.index.manifests[0].digest,
    );
    const goList = await tools.goOk(goStore, ["list"]);
    for (const m of ours.index.manifests as Descriptor[]) {
      assert.ok(goList.includes(m.digest.slice(7, 19)), goList);
    }
  });
});

Deno.test("a store the Go tool wrote is read, built into, tagged, deleted from and pruned by ours, and the Go tool still reads it", async () => {
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    const inputs = await writeImageInputs(dir);
    const store = `${dir}/store`;
    const ref = "localhost/go/os:1.0";
    await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
    await tools.goOk(store, ["tag", ref, "example.com/os/go:stable"]);

    // The first three columns of list are the Go tool's.
    assert.deepEqual(
      columns(await tools.oursOk(store, ["list"])),
      columns(await tools.goOk(store, ["list"])),
    );

    // ours reads every tag, and its inspect holds all the Go tool prints.
    const listed = JSON.parse(await tools.oursOk(store, ["list", "--json"]));
    const tagged = listed.map((e: { reference: string | null }) => e.reference)
      .filter((r: string | null) => r !== null).sort();
    assert.deepEqual(tagged, [
      "example.com/os/go:stable",
      `${ref}`,
      `${ref}-amd64`,
      `${ref}-arm64`,
    ]);
    for (const arch of ARCHS) {
      const goInspect = JSON.parse(
        await tools.goOk(store, ["inspect", `${ref}-${arch}`]),
      );
      assertContains(
        JSON.parse(await tools.oursOk(store, ["inspect", `${ref}-${arch}`])),
        goInspect,
      );
    }
    await tools.oursOk(store, ["validate", ref]);
    await tools.oursOk(store, ["verify"]);

    // ours writes into it.
    await tools.oursOk(store, [
      "build",
      "--tag",
      "localhost/ours/os:2.0",
      "--config",
      inputs.configs[1]!,
    ]);
    // An image ID (digest prefix) names an image in ours; the Go tool takes
    // it for a repository name.
    const id = (await taggedDigest(store, `${ref}-amd64`)).slice(7, 19);
    assert.equal(
      (await tools.go(store, ["tag", id, "localhost/id:1"])).code,
      1,
    );
    await tools.oursOk(store, ["tag", id, "localhost/id:1"]);
    await tools.oursOk(store, ["delete", "localhost/id:1"]);
    await tools.oursOk(store, ["tag", ref, "localhost/go/os:latest"]);
    await tools.oursOk(store, ["delete", "example.com/os/go:stable"]);
    await tools.oursOk(store, ["prune", "--grace", "0s"]);
    await tools.oursOk(store, ["verify"]);

    // The Go tool reads what ours wrote and goes on writing.
    const goList = await tools.goOk(store, ["list"]);
    assert.doesNotMatch(goList, /example\.com\/os\/go/);
    for (
      const line of ["localhost/ours/os 2.0-arm64", "localhost/go/os   latest"]
    ) {
      assert.match(goList, new RegExp(line.replace(/ +/g, " +")), goList);
    }
    const oursInspect = JSON.parse(
      await tools.oursOk(store, ["inspect", "localhost/ours/os:2.0-arm64"]),
    );
    assertContains(
      oursInspect,
      JSON.parse(
        await tools.goOk(store, ["inspect", "localhost/ours/os:2.0-arm64"]),
      ),
    );
    assert.deepEqual(
      JSON.parse(
        await tools.goOk(store, ["inspect", "localhost/go/os:latest"]),
      ),
      JSON.parse(await tools.goOk(store, ["inspect", ref])),
    );
    await tools.goOk(store, [
      "build",
      "--tag",
      "localhost/go/os:1.1",
      "--config",
      inputs.configs[0]!,
    ]);
    await tools.oursOk(store, ["inspect", "localhost/go/os:1.1-amd64"]);
    await tools.oursOk(store, ["verify"]);
  });
});

Deno.test("push --push-sub-manifests=false: a registry refuses the Go tool's index without its manifests, ours pushes them untagged", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    const inputs = await writeImageInputs(dir);
    const store = `${dir}/store`;
    const ref = `${reg.host}/nosub/os:1.0`;
    await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
    const go = await tools.go(store, [
      "push",
      "--push-sub-manifests=false",
      ref,
    ]);
    assert.equal(go.code, 1);
    assert.match(go.stderr, /400 Bad Request/);
    await tools.oursOk(store, ["push", "--push-sub-manifests=false", ref]);
    const pulled = `${dir}/pulled`;
    await tools.oursOk(pulled, ["pull", ref]);
    assert.equal(
      await taggedDigest(pulled, ref),
      await taggedDigest(store, ref),
    );
    assert.equal((await tools.ours(pulled, ["pull", `${ref}-amd64`])).code, 1);
  });
});

Deno.test("the Go tool and ours exit alike on errors, except where docs/compatibility.md says", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const tools = new Tools(dir);
    const inputs = await writeImageInputs(dir);
    const store = `${dir}/store`;
    const ref = `${reg.host}/exit/os:1.0`;
    await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
    await tools.goOk(store, ["push", ref]);
    const missing = `${reg.host}/exit/none:1.0`;
    // [arguments, Go's exit code, ours]
    const cases: [string[], number, number][] = [
      [["inspect", "localhost/none:1"], 1, 1],
      [["tag", "localhost/none:1", "localhost/x:1"], 1, 1],
      [["push", missing], 1, 1],
      [["pull", missing], 1, 1],
      [["url", missing], 1, 1],
      [["url", `${ref}-amd64`, "--layer", "uki"], 1, 1],
      [
        [
          "build",
          "--tag",
          "localhost/x:1",
          "--config",
          "arch=amd64,kernel=/nonexistent",
        ],
        1,
        1,
      ],
      // A tag that is not there: the Go tool deletes nothing and succeeds.
      [["delete", "localhost/none:1"], 0, 1],
      // Usage errors: cobra exits 1, ours 2.
      [["inspect"], 1, 2],
      [["url", `${ref}-amd64`, "--layer", "bogus"], 1, 2],
      [
        ["build", "--tag", "localhost/x:1", "--config", "arch=amd64,bogus=1"],
        1,
        2,
      ],
      [["list", "--bogus"], 1, 2],
      [["bogus"], 1, 2],
    ];
    const before = await Deno.readTextFile(`${store}/index.json`);
    for (const [args, goCode, ourCode] of cases) {
      const go = await tools.go(store, args);
      const ours = await tools.ours(store, args);
      assert.equal(go.code, goCode, `Go: ${args.join(" ")}\n${go.stderr}`);
      assert.equal(
        ours.code,
        ourCode,
        `ours: ${args.join(" ")}\n${ours.stderr}`,
      );
      assert.match(ours.stderr, /^Error: .+\n$/, ours.stderr);
    }
    assert.equal(await Deno.readTextFile(`${store}/index.json`), before);
  });
});

Deno.test({
  name:
    "ours talks plain HTTP to a loopback registry without being told, as the Go tool does",
  async fn() {
    await using reg = await startRegistry();
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      const inputs = await writeImageInputs(dir);
      const ref = `${reg.host}/loopback/os:1.0`;
      const store = `${dir}/store`;
      const ours = (args: string[]) =>
        runCliProcess(["--store-path", store, "-q", ...args], {
          env: { DOCKER_CONFIG: tools.dockerConfig },
        });
      await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
      await tools.goOk(store, ["push", ref]);
      for (
        const args of [
          ["pull", ref],
          ["push", ref],
          ["url", `${ref}-amd64`, "--layer", "kernel"],
        ]
      ) {
        const out = await ours(args);
        assert.equal(out.code, 0, `${args.join(" ")}: ${out.stderr}`);
      }
    });
  },
});

Deno.test({
  name:
    'a Go store whose index.json says "manifests": null is read and written by ours',
  async fn() {
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      const inputs = await writeImageInputs(dir);
      const store = `${dir}/store`;
      await tools.goOk(store, [
        "build",
        "--tag",
        "localhost/null/os:1.0",
        "--config",
        inputs.configs[0]!,
      ]);
      // Deleting by digest removes every entry; Go then writes `null`.
      const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
      for (
        const d of new Set(index.manifests.map((m: Descriptor) => m.digest))
      ) {
        await tools.goOk(store, ["delete", d as string]);
      }
      assert.match(
        await Deno.readTextFile(`${store}/index.json`),
        /"manifests":null/,
      );
      assert.deepEqual(
        JSON.parse(await tools.oursOk(store, ["list", "--json"])),
        [],
      );
      await tools.oursOk(store, [
        "build",
        "--tag",
        "localhost/null/os:2.0",
        "--config",
        inputs.configs[0]!,
      ]);
      await tools.goOk(store, ["inspect", "localhost/null/os:2.0-amd64"]);
    });
  },
});

Deno.test({
  name: "a tag the Go tool wrote without :tag is found by the same name",
  async fn() {
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      const inputs = await writeImageInputs(dir);
      const store = `${dir}/store`;
      const ref = "localhost/go/os:1.0";
      await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
      await tools.goOk(store, [
        "tag",
        `${ref}-amd64`,
        "example.com/os/untagged",
      ]);
      const inspect = JSON.parse(
        await tools.oursOk(store, ["inspect", "example.com/os/untagged"]),
      );
      assert.equal(
        inspect.descriptor.digest,
        await taggedDigest(store, `${ref}-amd64`),
      );
      await tools.oursOk(store, ["delete", "example.com/os/untagged"]);
      assert.doesNotMatch(
        await tools.goOk(store, ["list"]),
        /example\.com\/os\/untagged/,
      );
    });
  },
});

Deno.test({
  name:
    '--docker-config-path "" means the default Docker config, as for the Go tool',
  async fn() {
    await using reg = await startRegistry({ auth: "basic" });
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      await writeDockerConfig(
        tools.dockerConfig,
        reg.host,
        reg.username,
        reg.password,
      );
      const inputs = await writeImageInputs(dir);
      const store = `${dir}/store`;
      const ref = `${reg.host}/config/os:1.0`;
      await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
      await tools.goOk(store, ["--docker-config-path", "", "push", ref]);
      await tools.oursOk(store, ["--docker-config-path", "", "pull", ref]);
    });
  },
});

Deno.test({
  name: "inspect --json prints what inspect prints",
  async fn() {
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      const inputs = await writeImageInputs(dir);
      const store = `${dir}/store`;
      const ref = "localhost/json/os:1.0";
      await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
      assert.equal(
        await tools.oursOk(store, ["inspect", "--json", `${ref}-amd64`]),
        await tools.oursOk(store, ["inspect", `${ref}-amd64`]),
      );
    });
  },
});

Deno.test({
  name:
    "url of a manifest gives the headers that fetch it, as the Go tool's does",
  async fn() {
    await using reg = await startRegistry({ auth: "basic" });
    await withTempDir(async (dir) => {
      const tools = new Tools(dir);
      await writeDockerConfig(
        tools.dockerConfig,
        reg.host,
        reg.username,
        reg.password,
      );
      const inputs = await writeImageInputs(dir);
      const store = `${dir}/store`;
      const ref = `${reg.host}/manifest/os:1.0`;
      await tools.goOk(store, ["build", "--tag", ref, ...inputs.buildArgs]);
      await tools.goOk(store, ["push", ref]);
      const goUrl = JSON.parse(
        await tools.goOk(store, ["url", `${ref}-amd64`]),
      );
      const oursUrl = JSON.parse(
        await tools.oursOk(store, ["url", `${ref}-amd64`]),
      );
      const digest = await taggedDigest(store, `${ref}-amd64`);
      assert.equal(await fetchUrlJson(goUrl), digest);
      assert.equal(await fetchUrlJson(oursUrl), digest);
    });
  },
});
