/**
 * The SHA-256 in JavaScript, which hashes small documents before the native
 * hash is loaded, against the native one.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Sha256Js } from "../../src/oci/_sha256.ts";
import { prng } from "../_helpers/fixtures.ts";

function native(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

Deno.test("Sha256Js hashes like the native SHA-256 around every block boundary", () => {
  const random = prng(42);
  const data = new Uint8Array(300).map(() => Math.floor(random() * 256));
  for (let n = 0; n <= data.length; n++) {
    const h = new Sha256Js();
    h.update(data.subarray(0, n));
    assert.equal(h.hex(), native(data.subarray(0, n)), `${n} bytes`);
  }
});

Deno.test("Sha256Js hashes a stream of odd chunks like the native SHA-256", () => {
  const random = prng(7);
  const data = new Uint8Array(3 * 1024 * 1024 + 17).map(() =>
    Math.floor(random() * 256)
  );
  const h = new Sha256Js();
  for (let off = 0; off < data.length;) {
    const n = Math.min(data.length - off, 1 + Math.floor(random() * 100_000));
    h.update(data.subarray(off, off + n));
    off += n;
  }
  assert.equal(h.hex(), native(data));
});
