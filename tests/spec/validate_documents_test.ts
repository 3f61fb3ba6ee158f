import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import {
  ANNOTATION_TITLE,
  type Descriptor,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  encodeJson,
  type ImageIndex,
  type ImageManifest,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
  type LayerKind,
  LEGACY_CONFIG_MEDIA_TYPE,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import {
  type Finding,
  type ImageInput,
  type ManifestInput,
  validateDocuments,
} from "../../src/spec/validate_documents.ts";

const CONFIG = encodeJson({ commandLine: "console=ttyS0" });

function layer(kind: LayerKind, c: string, title: string | null = kind) {
  const d: Descriptor = {
    mediaType: LAYER_MEDIA_TYPES[kind],
    digest: `sha256:${c.repeat(64)}`,
    size: 10,
  };
  if (title !== null) d.annotations = { [ANNOTATION_TITLE]: title };
  return d;
}

function metalLayers(): Descriptor[] {
  return [
    layer("squashfs", "1"),
    layer("initramfs", "2"),
    layer("kernel", "3"),
  ];
}

function manifestOf(
  layers: Descriptor[],
  variant: string | null = "metal",
): ImageManifest {
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: CONFIG.digest,
      size: CONFIG.size,
    },
    layers,
  };
  if (variant !== null) m.annotations = { variant };
  return m;
}

/** A manifest input with its bytes and config, consistent with each other. */
function input(
  manifest: ImageManifest,
  config: Uint8Array = CONFIG.bytes,
): ManifestInput {
  const enc = encodeJson(manifest);
  return {
    descriptor: {
      mediaType: manifest.mediaType ?? OCI_MANIFEST_MEDIA_TYPE,
      digest: enc.digest,
      size: enc.size,
    },
    manifest,
    bytes: enc.bytes,
    config,
  };
}

/** An index over the inputs, one entry each, with the given platforms. */
function indexed(
  inputs: ManifestInput[],
  arches: (string | null)[] = ["amd64", "arm64"],
): ImageInput {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: inputs.map((m, i) => {
      const d: Descriptor = { ...m.descriptor };
      const arch = arches[i];
      if (arch) d.platform = { os: "linux", architecture: arch };
      return d;
    }),
  };
  const enc = encodeJson(index);
  return {
    index: {
      descriptor: {
        mediaType: OCI_INDEX_MEDIA_TYPE,
        digest: enc.digest,
        size: enc.size,
      },
      index,
      bytes: enc.bytes,
    },
    manifests: inputs,
  };
}

function one(findings: Finding[], path: string): Finding {
  const hits = findings.filter((f) => f.path === path);
  assert.equal(
    hits.length,
    1,
    `expected one finding at ${path}, got ${JSON.stringify(findings, null, 1)}`,
  );
  return hits[0]!;
}

function assertOnly(
  result: { ok: boolean; findings: Finding[] },
  level: Finding["level"],
  path: string,
  message: RegExp,
): void {
  assert.equal(
    result.findings.length,
    1,
    JSON.stringify(result.findings, null, 1),
  );
  const f = one(result.findings, path);
  assert.equal(f.level, level);
  assert.match(f.message, message);
  assert.equal(result.ok, level !== "error");
}

Deno.test("validateDocuments() accepts a complete two-platform metal image without findings", () => {
  const amd = input(manifestOf(metalLayers()));
  const arm = input(manifestOf([layer("uki", "4")]));
  const result = validateDocuments(indexed([amd, arm]));
  assert.deepEqual(result, { ok: true, findings: [] });
});

Deno.test("validateDocuments() accepts a single manifest and names its paths manifest.…", () => {
  const result = validateDocuments({
    manifests: [input(manifestOf([layer("iso", "5", null)]))],
  });
  assertOnly(result, "warning", "manifest.layers[0].annotations", /title/);
});

Deno.test("validateDocuments() warns about Docker media types and errors on others", async (t) => {
  await t.step("a Docker manifest list is a warning", () => {
    const image = indexed([input(manifestOf(metalLayers()))], ["amd64"]);
    image.index!.index.mediaType = DOCKER_MANIFEST_LIST_MEDIA_TYPE;
    delete image.index!.bytes;
    assertOnly(
      validateDocuments(image),
      "warning",
      "index.mediaType",
      /Docker manifest list/,
    );
  });
  await t.step("an index without media type is a warning", () => {
    const image = indexed([input(manifestOf(metalLayers()))], ["amd64"]);
    delete image.index!.index.mediaType;
    delete image.index!.bytes;
    assertOnly(
      validateDocuments(image),
      "warning",
      "index.mediaType",
      /not set/,
    );
  });
  await t.step("another index media type is an error", () => {
    const image = indexed([input(manifestOf(metalLayers()))], ["amd64"]);
    image.index!.index.mediaType = "application/json";
    delete image.index!.bytes;
    assertOnly(
      validateDocuments(image),
      "error",
      "index.mediaType",
      /application\/json is not an image index/,
    );
  });
  await t.step("a Docker manifest is a warning, on the entry too", () => {
    const m = manifestOf(metalLayers());
    m.mediaType = DOCKER_MANIFEST_MEDIA_TYPE;
    const result = validateDocuments(indexed([input(m)], ["amd64"]));
    assert.equal(result.ok, true);
    assert.deepEqual(result.findings.map((f) => [f.level, f.path]), [
      ["warning", "index.manifests[0].mediaType"],
      ["warning", "manifests[0].mediaType"],
    ]);
  });
  await t.step("an index entry that is not a manifest is an error", () => {
    const image = indexed([input(manifestOf(metalLayers()))], ["amd64"]);
    image.index!.index.manifests[0]!.mediaType = OCI_INDEX_MEDIA_TYPE;
    delete image.index!.bytes;
    const result = validateDocuments(image);
    assert.equal(result.ok, false);
    assert.match(
      one(result.findings, "index.manifests[0].mediaType").message,
      /is not an image manifest/,
    );
    // The document disagrees with the descriptor that points to it.
    assert.match(
      one(result.findings, "manifests[0].mediaType").message,
      /the descriptor pointing to it says/,
    );
  });
});

Deno.test("validateDocuments() requires os and architecture on every index entry, once each", async (t) => {
  const amd = input(manifestOf(metalLayers()));
  const arm = input(manifestOf([layer("iso", "6")]));
  await t.step("a missing platform is an error", () => {
    assertOnly(
      validateDocuments(indexed([amd, arm], ["amd64", null])),
      "error",
      "index.manifests[1].platform",
      /platform is missing/,
    );
  });
  await t.step("a missing os or architecture is an error each", () => {
    const image = indexed([amd, arm]);
    delete image.index!.bytes;
    const entries = image.index!.index.manifests;
    entries[0]!.platform = { architecture: "amd64" } as never;
    entries[1]!.platform = { os: "linux" } as never;
    const result = validateDocuments(image);
    assert.equal(result.ok, false);
    assert.deepEqual(result.findings.map((f) => f.path), [
      "index.manifests[0].platform.os",
      "index.manifests[1].platform.architecture",
    ]);
  });
  await t.step("the same platform twice is an error", () => {
    assertOnly(
      validateDocuments(indexed([amd, arm], ["arm64", "arm64"])),
      "error",
      "index.manifests[1].platform",
      /linux\/arm64 is already listed by index.manifests\[0\]/,
    );
  });
  await t.step("an architecture not named as Go names it is an error", () => {
    for (
      const [arch, fix] of [
        [
          "AMD64",
          /^architecture "AMD64" is not a Go architecture name: use "amd64"$/,
        ],
        [
          "x86_64",
          /^architecture "x86_64" is not a Go architecture name: use "amd64"$/,
        ],
        ["aarch64", /use "arm64"$/],
        ["linux/amd64", /use the name Go gives it, such as amd64, arm64, /],
        ["amd46", /use the name Go gives it, such as amd64, arm64, /],
      ] as const
    ) {
      assertOnly(
        validateDocuments(indexed([amd, arm], ["arm64", arch])),
        "error",
        "index.manifests[1].platform.architecture",
        fix,
      );
    }
    for (
      const arch of ["386", "arm", "loong64", "ppc64le", "riscv64", "s390x"]
    ) {
      assert.equal(
        validateDocuments(indexed([amd, arm], ["amd64", arch])).ok,
        true,
      );
    }
  });
  await t.step("an index without entries is an error", () => {
    assertOnly(
      validateDocuments(indexed([], [])),
      "error",
      "index.manifests",
      /no manifests/,
    );
  });
});

Deno.test("validateDocuments() checks the config media type and JSON", async (t) => {
  await t.step("the legacy config type is a warning", () => {
    const m = manifestOf(metalLayers());
    m.config.mediaType = LEGACY_CONFIG_MEDIA_TYPE;
    assertOnly(
      validateDocuments({ manifests: [input(m)] }),
      "warning",
      "manifest.config.mediaType",
      /legacy config media type/,
    );
  });
  await t.step("another config type is an error", () => {
    const m = manifestOf(metalLayers());
    m.config.mediaType = "application/vnd.oci.image.config.v1+json";
    assertOnly(
      validateDocuments({ manifests: [input(m)] }),
      "error",
      "manifest.config.mediaType",
      /not an IronCore config/,
    );
  });
  const withConfig = (bytes: Uint8Array) => {
    const m = manifestOf(metalLayers());
    m.config.digest = digestOf(bytes);
    m.config.size = bytes.byteLength;
    return validateDocuments({ manifests: [input(m, bytes)] });
  };
  const enc = (s: string) => new TextEncoder().encode(s);
  await t.step("a config that is not JSON is an error", () => {
    assertOnly(
      withConfig(enc("commandLine=quiet")),
      "error",
      "manifest.config",
      /not UTF-8 JSON/,
    );
  });
  await t.step("a config that is not an object is an error", () => {
    assertOnly(
      withConfig(enc('["quiet"]')),
      "error",
      "manifest.config",
      /not a JSON object/,
    );
  });
  await t.step("a commandLine that is not a string is an error", () => {
    assertOnly(
      withConfig(enc('{"commandLine":42}')),
      "error",
      "manifest.config.commandLine",
      /must be a string, got a number/,
    );
  });
  await t.step("an empty config and unknown fields are fine", () => {
    assert.deepEqual(withConfig(enc("{}")).findings, []);
    assert.deepEqual(withConfig(enc('{"future":[1],"commandLine":""}')), {
      ok: true,
      findings: [],
    });
  });
  await t.step(
    "config bytes that do not match the descriptor are an error",
    () => {
      const m = manifestOf(metalLayers());
      const result = validateDocuments({
        manifests: [input(m, enc('{"commandLine":"console=ttyS1 quiet"}'))],
      });
      assert.equal(result.ok, false);
      assert.deepEqual(
        result.findings.map((f) => [f.path, f.message.split(",")[0]]),
        [
          ["manifest.config", "the config blob is 37 bytes"],
          [
            "manifest.config",
            `the config blob has digest ${
              digestOf('{"commandLine":"console=ttyS1 quiet"}')
            }`,
          ],
        ],
      );
    },
  );
  await t.step("a config the loader could not read is an error", () => {
    const i = input(manifestOf(metalLayers()));
    delete i.config;
    i.configError = "blob missing";
    assertOnly(
      validateDocuments({ manifests: [i] }),
      "error",
      "manifest.config",
      /cannot read the config blob: blob missing/,
    );
  });
});

Deno.test("validateDocuments() checks layer media types, kinds and titles", async (t) => {
  await t.step(
    "an unknown layer type is an error naming the known ones",
    () => {
      const layers = [
        ...metalLayers(),
        {
          mediaType: "application/vnd.oci.image.layer.v1.tar",
          digest: `sha256:${"7".repeat(64)}`,
          size: 3,
        } as Descriptor,
      ];
      const result = validateDocuments({
        manifests: [input(manifestOf(layers))],
      });
      assert.equal(result.ok, false);
      const f = one(result.findings, "manifest.layers[3].mediaType");
      assert.equal(f.level, "error");
      assert.match(
        f.message,
        /unknown layer media type application\/vnd\.oci\.image\.layer\.v1\.tar: expected one of .*application\/vnd\.ironcore\.image\.kernel/,
      );
      // The layer also has no title.
      assert.equal(
        one(result.findings, "manifest.layers[3].annotations").level,
        "warning",
      );
    },
  );
  await t.step("two layers of one kind are an error", () => {
    const layers = [...metalLayers(), layer("kernel", "8")];
    assertOnly(
      validateDocuments({ manifests: [input(manifestOf(layers))] }),
      "error",
      "manifest.layers[3].mediaType",
      /second kernel layer \(manifest.layers\[2\] is one already\)/,
    );
  });
  await t.step(
    "one kind once current and once legacy is fine, with a warning",
    () => {
      const legacy = {
        ...layer("kernel", "9"),
        mediaType: LEGACY_LAYER_MEDIA_TYPES.kernel!,
      };
      assertOnly(
        validateDocuments({
          manifests: [input(manifestOf([...metalLayers(), legacy]))],
        }),
        "warning",
        "manifest.layers[3].mediaType",
        /legacy kernel media type .*current is application\/vnd\.ironcore\.image\.kernel/,
      );
    },
  );
  await t.step("a layer without title is a warning", () => {
    const layers = [
      layer("squashfs", "1", null),
      layer("initramfs", "2"),
      layer("kernel", "3"),
    ];
    assertOnly(
      validateDocuments({ manifests: [input(manifestOf(layers))] }),
      "warning",
      "manifest.layers[0].annotations",
      /no org.opencontainers.image.title annotation/,
    );
  });
  await t.step("a manifest without layers is an error", () => {
    const result = validateDocuments({
      manifests: [input(manifestOf([], null))],
    });
    assert.equal(result.ok, false);
    assert.equal(one(result.findings, "manifest.layers").level, "error");
  });
});

Deno.test("validateDocuments() checks the layers each variant needs", async (t) => {
  const check = (kinds: LayerKind[], variant: string | null) =>
    validateDocuments({
      manifests: [
        input(
          manifestOf(kinds.map((k, i) => layer(k, i.toString(16))), variant),
        ),
      ],
    });
  const valid: [LayerKind[], string][] = [
    [["kernel", "initramfs", "squashfs"], "metal"],
    [["kernel", "initramfs", "rootfs"], "metal"],
    [["kernel", "initramfs", "disk"], "metal"],
    [["uki"], "metal"],
    [["iso"], "metal"],
    [["disk"], "virtualization"],
    [["rootfs"], "virtualization"],
    [["squashfs", "kernel", "initramfs"], "virtualization"],
  ];
  for (const [kinds, variant] of valid) {
    await t.step(`${variant} with ${kinds.join(" + ")} is valid`, () => {
      assert.deepEqual(check(kinds, variant), { ok: true, findings: [] });
    });
  }
  await t.step(
    "metal without a root file system is an error listing what there is",
    () => {
      assertOnly(
        check(["kernel", "initramfs"], "metal"),
        "error",
        "manifest.annotations.variant",
        /variant metal needs .*: the image has initramfs, kernel \(missing a root file system\)/,
      );
    },
  );
  await t.step("metal with a root file system only is an error", () => {
    assertOnly(
      check(["squashfs"], "metal"),
      "error",
      "manifest.annotations.variant",
      /missing kernel, initramfs\)/,
    );
  });
  await t.step(
    "virtualization without disk or root file system is an error",
    () => {
      assertOnly(
        check(["kernel", "initramfs"], "virtualization"),
        "error",
        "manifest.annotations.variant",
        /variant virtualization needs a disk or a root file system/,
      );
    },
  );
  await t.step("an unknown variant is an error", () => {
    assertOnly(
      check(["kernel"], "container"),
      "error",
      "manifest.annotations.variant",
      /unknown variant "container": expected metal or virtualization/,
    );
  });
  await t.step("no variant is a warning", () => {
    const result = check(["kernel"], null);
    assert.deepEqual(result, {
      ok: true,
      findings: [{
        level: "warning",
        path: "manifest.annotations",
        message: "no variant annotation, cannot check required layers",
      }],
    });
  });
});

Deno.test("validateDocuments() reports bytes that do not match their descriptors", async (t) => {
  await t.step("a manifest whose bytes differ from its index entry", () => {
    const amd = input(manifestOf(metalLayers()));
    const image = indexed([amd], ["amd64"]);
    amd.bytes = new TextEncoder().encode(
      " " + new TextDecoder().decode(amd.bytes),
    );
    const result = validateDocuments(image);
    assert.equal(result.ok, false);
    assert.deepEqual(result.findings.map((f) => f.path), [
      "manifests[0]",
      "manifests[0]",
    ]);
    assert.match(
      result.findings[0]!.message,
      /is \d+ bytes, its descriptor says/,
    );
    assert.match(result.findings[1]!.message, /has digest sha256:/);
  });
  await t.step("an index whose bytes differ from its descriptor", () => {
    const image = indexed([input(manifestOf(metalLayers()))], ["amd64"]);
    image.index!.descriptor.digest = digestOf("something else");
    assertOnly(
      validateDocuments(image),
      "error",
      "index",
      /the index has digest/,
    );
  });
  await t.step("an index entry whose manifest could not be loaded", () => {
    const amd = input(manifestOf(metalLayers()));
    const image = indexed([amd], ["amd64"]);
    image.manifests = [];
    image.unloaded = [{ descriptor: amd.descriptor, reason: "blob missing" }];
    assertOnly(
      validateDocuments(image),
      "error",
      "index.manifests[0]",
      new RegExp(`cannot read manifest ${amd.descriptor.digest}: blob missing`),
    );
  });
});

Deno.test("validateDocuments() lists every problem, not just the first", () => {
  const amd = manifestOf([
    layer("kernel", "1", null),
    layer("kernel", "2"),
    {
      mediaType: "text/plain",
      digest: `sha256:${"3".repeat(64)}`,
      size: 1,
      annotations: { [ANNOTATION_TITLE]: "x" },
    },
  ], "metal");
  amd.config.mediaType = LEGACY_CONFIG_MEDIA_TYPE;
  const arm = manifestOf([layer("disk", "4")], "cloud");
  const bad = new TextEncoder().encode('{"commandLine":false}');
  arm.config.digest = digestOf(bad);
  arm.config.size = bad.byteLength;
  const result = validateDocuments(
    indexed([input(amd), input(arm, bad)], ["amd64", null]),
  );
  assert.equal(result.ok, false);
  assert.deepEqual(result.findings.map((f) => [f.level, f.path]), [
    ["error", "index.manifests[1].platform"],
    ["warning", "manifests[0].config.mediaType"],
    ["warning", "manifests[0].layers[0].annotations"],
    ["error", "manifests[0].layers[1].mediaType"],
    ["error", "manifests[0].layers[2].mediaType"],
    ["error", "manifests[0].annotations.variant"],
    ["error", "manifests[1].config.commandLine"],
    ["error", "manifests[1].annotations.variant"],
  ]);
});

Deno.test("validateDocuments() passes a legacy v1alpha1 image with warnings only", () => {
  const legacy = (kind: LayerKind, c: string): Descriptor => ({
    ...layer(kind, c),
    mediaType: LEGACY_LAYER_MEDIA_TYPES[kind]!,
  });
  const m = manifestOf([
    legacy("rootfs", "1"),
    legacy("initramfs", "2"),
    legacy("kernel", "3"),
  ]);
  m.config.mediaType = LEGACY_CONFIG_MEDIA_TYPE;
  const result = validateDocuments({ manifests: [input(m)] });
  assert.equal(result.ok, true);
  assert.equal(result.findings.length, 4);
  assert.ok(result.findings.every((f) => f.level === "warning"));
  assert.ok(result.findings.every((f) => /legacy/.test(f.message)));
});
