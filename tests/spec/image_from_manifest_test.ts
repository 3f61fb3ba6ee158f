import assert from "node:assert/strict";
import { InvalidImageError } from "../../src/errors.ts";
import {
  ANNOTATION_TITLE,
  type Descriptor,
  encodeJson,
  type ImageManifest,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  LEGACY_CONFIG_MEDIA_TYPE,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import {
  imageFromManifest,
  layerKinds,
} from "../../src/spec/image_from_manifest.ts";

const CONFIG = encodeJson({ commandLine: "console=ttyS0" });

function layer(mediaType: string, c: string, size = 10): Descriptor {
  return { mediaType, digest: `sha256:${c.repeat(64)}`, size };
}

function manifestWith(
  layers: Descriptor[],
  extra: Partial<ImageManifest> = {},
): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: CONFIG.digest,
      size: CONFIG.size,
    },
    layers,
    ...extra,
  };
}

Deno.test("imageFromManifest() puts each current layer under its kind and decodes the config", () => {
  const layers = LAYER_KINDS.map((kind, i) =>
    layer(LAYER_MEDIA_TYPES[kind], i.toString(16), i)
  );
  const image = imageFromManifest(manifestWith(layers), CONFIG.bytes);
  assert.deepEqual(image.config, { commandLine: "console=ttyS0" });
  assert.equal(image.configDescriptor.digest, CONFIG.digest);
  LAYER_KINDS.forEach((kind, i) => assert.deepEqual(image[kind], layers[i]));
  assert.deepEqual(image.legacy, []);
  assert.deepEqual(layerKinds(image), [...LAYER_KINDS]);
  assert.equal(image.variant, undefined);
  assert.equal(image.title, undefined);
});

Deno.test("imageFromManifest() reads legacy v1alpha1 layers and config and lists the kinds as legacy", () => {
  const manifest = manifestWith([
    layer(LEGACY_LAYER_MEDIA_TYPES.kernel!, "1"),
    layer(LEGACY_LAYER_MEDIA_TYPES.initramfs!, "2"),
    layer(LEGACY_LAYER_MEDIA_TYPES.squashfs!, "3"),
  ]);
  manifest.config.mediaType = LEGACY_CONFIG_MEDIA_TYPE;
  const image = imageFromManifest(manifest, CONFIG.bytes);
  assert.equal(image.kernel?.digest, `sha256:${"1".repeat(64)}`);
  assert.equal(image.initramfs?.digest, `sha256:${"2".repeat(64)}`);
  assert.equal(image.squashfs?.digest, `sha256:${"3".repeat(64)}`);
  assert.deepEqual(
    [...image.legacy].sort(),
    ["initramfs", "kernel", "squashfs"],
  );
  assert.deepEqual(layerKinds(image), ["squashfs", "initramfs", "kernel"]);
});

Deno.test("imageFromManifest() prefers the current media type when a kind has both, in either order", () => {
  const legacy = layer(LEGACY_LAYER_MEDIA_TYPES.kernel!, "a");
  const current = layer(LAYER_MEDIA_TYPES.kernel, "b");
  for (const layers of [[legacy, current], [current, legacy]]) {
    const image = imageFromManifest(manifestWith(layers), CONFIG.bytes);
    assert.deepEqual(image.kernel, current);
    assert.deepEqual(image.legacy, []);
  }
  // A kind with only a legacy layer next to a current one of another kind.
  const image = imageFromManifest(
    manifestWith([current, layer(LEGACY_LAYER_MEDIA_TYPES.rootfs!, "c")]),
    CONFIG.bytes,
  );
  assert.deepEqual(image.legacy, ["rootfs"]);
});

Deno.test("imageFromManifest() rejects a layer with an unknown media type, naming its position", () => {
  assert.throws(
    () =>
      imageFromManifest(
        manifestWith([
          layer(LAYER_MEDIA_TYPES.kernel, "1"),
          layer("application/vnd.oci.image.layer.v1.tar+gzip", "2"),
        ]),
        CONFIG.bytes,
      ),
    (e: unknown) =>
      e instanceof InvalidImageError &&
      e.message ===
        "Not an IronCore image: layers[1] has unknown media type application/vnd.oci.image.layer.v1.tar+gzip",
  );
});

Deno.test("imageFromManifest() rejects two layers of the same kind and generation", () => {
  const cases: [string, string][] = [
    [LAYER_MEDIA_TYPES.kernel, "kernel"],
    [LEGACY_LAYER_MEDIA_TYPES.initramfs!, "initramfs"],
    [LAYER_MEDIA_TYPES.disk, "disk"],
  ];
  for (const [mediaType, kind] of cases) {
    assert.throws(
      () =>
        imageFromManifest(
          manifestWith([layer(mediaType, "1"), layer(mediaType, "2")]),
          CONFIG.bytes,
        ),
      (e: unknown) =>
        e instanceof InvalidImageError &&
        e.message.startsWith(
          `Invalid IronCore image: more than one ${kind} layer`,
        ),
      kind,
    );
  }
});

Deno.test("imageFromManifest() rejects a config media type that is not IronCore's", () => {
  for (
    const mediaType of [
      "application/vnd.oci.image.config.v1+json",
      "application/vnd.ironcore.image.config.v2+json",
      "application/json",
    ]
  ) {
    const manifest = manifestWith([layer(LAYER_MEDIA_TYPES.kernel, "1")]);
    manifest.config.mediaType = mediaType;
    assert.throws(
      () => imageFromManifest(manifest, CONFIG.bytes),
      (e: unknown) =>
        e instanceof InvalidImageError &&
        e.message ===
          `Not an IronCore image: config media type is ${mediaType}, expected ${CONFIG_MEDIA_TYPE}`,
    );
  }
});

Deno.test("imageFromManifest() passes config errors through as InvalidImageError", () => {
  const manifest = manifestWith([layer(LAYER_MEDIA_TYPES.kernel, "1")]);
  assert.throws(
    () =>
      imageFromManifest(
        manifest,
        new TextEncoder().encode('{"commandLine":7}'),
      ),
    { name: "InvalidImageError", message: /commandLine must be a string/ },
  );
  assert.throws(
    () => imageFromManifest(manifest, new TextEncoder().encode("not json")),
    { name: "InvalidImageError", message: /^Invalid config: not valid/ },
  );
});

Deno.test("imageFromManifest() reads the variant and title annotations and ignores an unknown variant", () => {
  const layers = [layer(LAYER_MEDIA_TYPES.uki, "1")];
  for (const variant of ["metal", "virtualization"] as const) {
    const image = imageFromManifest(
      manifestWith(layers, {
        annotations: { variant, [ANNOTATION_TITLE]: "My OS" },
      }),
      CONFIG.bytes,
    );
    assert.equal(image.variant, variant);
    assert.equal(image.title, "My OS");
    assert.deepEqual(layerKinds(image), ["uki"]);
  }
  const odd = imageFromManifest(
    manifestWith(layers, { annotations: { variant: "container" } }),
    CONFIG.bytes,
  );
  assert.equal(odd.variant, undefined);
  assert.equal("variant" in odd, false);
  assert.equal("title" in odd, false);
});

Deno.test("imageFromManifest() accepts a manifest without layers", () => {
  const image = imageFromManifest(
    manifestWith([]),
    new TextEncoder().encode("{}"),
  );
  assert.deepEqual(layerKinds(image), []);
  assert.deepEqual(image.config, {});
});
