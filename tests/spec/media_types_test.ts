import assert from "node:assert/strict";
import {
  isLayerKind,
  LAYER_KINDS,
  LAYER_MEDIA_TYPES,
  layerKindOf,
  LEGACY_LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";

Deno.test("layerKindOf() maps every current and legacy media type back to its kind", () => {
  for (const kind of LAYER_KINDS) {
    assert.deepEqual(layerKindOf(LAYER_MEDIA_TYPES[kind]), {
      kind,
      legacy: false,
    });
    const legacy = LEGACY_LAYER_MEDIA_TYPES[kind];
    if (legacy !== undefined) {
      assert.deepEqual(layerKindOf(legacy), { kind, legacy: true });
    }
  }
  assert.deepEqual(
    layerKindOf("application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz"),
    { kind: "kernel", legacy: true },
  );
  assert.equal(
    layerKindOf("application/vnd.oci.image.layer.v1.tar"),
    undefined,
  );
  assert.equal(
    layerKindOf("application/vnd.ironcore.image.kernel+gzip"),
    undefined,
  );
});

Deno.test("every media type, current or legacy, names exactly one kind", () => {
  const all = [
    ...Object.values(LAYER_MEDIA_TYPES),
    ...Object.values(LEGACY_LAYER_MEDIA_TYPES),
  ];
  assert.equal(new Set(all).size, all.length);
  assert.equal(Object.keys(LAYER_MEDIA_TYPES).length, LAYER_KINDS.length);
});

Deno.test("isLayerKind() accepts the seven kinds only", () => {
  for (const kind of LAYER_KINDS) assert.equal(isLayerKind(kind), true);
  for (const s of ["", "vmlinuz", "Kernel", "cmdline", "arch", "toString"]) {
    assert.equal(isLayerKind(s), false, s);
  }
});
