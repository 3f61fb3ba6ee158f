import assert from "node:assert/strict";
import * as errors from "../src/errors.ts";
import { digestMismatch, sizeMismatch, stalled } from "../src/_errors.ts";

Deno.test("every library error class extends ImageError and keeps its name", () => {
  const classes = Object.entries(errors).filter(([, v]) =>
    typeof v === "function" && v.prototype instanceof Error
  ) as [string, typeof errors.ImageError][];
  assert.ok(classes.length >= 12, classes.map(([n]) => n).join(", "));
  for (const [name, cls] of classes) {
    assert.ok(
      cls === errors.ImageError || cls.prototype instanceof errors.ImageError,
      name,
    );
  }
  const e = new errors.NetworkError("down", { host: "h", kind: "reset" });
  assert.equal(e.name, "NetworkError");
  assert.equal(e.status, 0);
  assert.ok(e instanceof errors.RegistryError);
});

Deno.test("the standard wordings keep their fields apart from the message", () => {
  const d = digestMismatch("sha256:aa", "sha256:bb", "blob x");
  assert.equal(
    d.message,
    "Digest mismatch for blob x: expected sha256:aa, got sha256:bb; the data is corrupt or was changed in transit",
  );
  assert.deepEqual([d.expected, d.actual], ["sha256:aa", "sha256:bb"]);
  const s = sizeMismatch(10, 11, "layer");
  assert.equal(s.message, "Size mismatch for layer: expected 10 bytes, got 11");
  const t = stalled(30_000, "registry.example");
  assert.ok(t instanceof errors.NetworkError);
  assert.deepEqual([t.kind, t.timeout, t.host], [
    "timeout",
    30_000,
    "registry.example",
  ]);
});
