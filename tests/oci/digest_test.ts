import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DigestMismatchError } from "../../src/errors.ts";
import {
  assertDigest,
  digestHex,
  digestOf,
  isDigest,
  parseDigest,
  Sha256,
} from "../../src/oci/digest.ts";
import { prng } from "../_helpers/fixtures.ts";

const HEX = "0123456789abcdef".repeat(4);
// sha256 of the empty string and of "{}", from coreutils' sha256sum.
const EMPTY =
  "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const BRACES =
  "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

Deno.test("isDigest() accepts sha256 with 64 lowercase hex digits and nothing else", () => {
  assert.equal(isDigest(`sha256:${HEX}`), true);
  const bad: unknown[] = [
    `sha256:${HEX.toUpperCase()}`,
    `sha256:${HEX.slice(1)}`,
    `sha256:${HEX}0`,
    `sha512:${HEX}${HEX}`,
    `SHA256:${HEX}`,
    `sha256:${HEX.slice(1)}g`,
    ` sha256:${HEX}`,
    `sha256:${HEX}\n`,
    HEX,
    "",
    null,
    undefined,
    42,
    { digest: `sha256:${HEX}` },
  ];
  for (const value of bad) {
    assert.equal(isDigest(value), false, JSON.stringify(value));
  }
});

Deno.test("parseDigest() returns a valid digest unchanged", () => {
  assert.equal(parseDigest(`sha256:${HEX}`), `sha256:${HEX}`);
});

Deno.test("parseDigest() calls another algorithm unsupported and a malformed sha256 invalid", () => {
  assert.throws(
    () => parseDigest(`sha512:${HEX}${HEX}`),
    (e: unknown) =>
      e instanceof SyntaxError &&
      /^Unsupported digest sha512:.*only sha256 digests are supported$/.test(
        e.message,
      ),
  );
  for (
    const value of [
      "sha256:abc",
      `sha256:${HEX.toUpperCase()}`,
      `sha256:${HEX}00`,
    ]
  ) {
    assert.throws(
      () => parseDigest(value, "config digest"),
      (e: unknown) =>
        e instanceof SyntaxError &&
        e.message.startsWith(`Invalid config digest "${value}"`) &&
        e.message.includes("64 lowercase hex digits"),
      value,
    );
  }
  for (const value of [42, null, "", "nope"]) {
    assert.throws(() => parseDigest(value), SyntaxError);
  }
});

Deno.test("digestHex() strips the algorithm", () => {
  assert.equal(digestHex(`sha256:${HEX}`), HEX);
});

Deno.test("digestOf() matches known SHA-256 values for bytes and strings", () => {
  assert.equal(digestOf(""), EMPTY);
  assert.equal(digestOf(new Uint8Array()), EMPTY);
  assert.equal(digestOf("{}"), BRACES);
  assert.equal(digestOf(new TextEncoder().encode("{}")), BRACES);
  // Strings are hashed as UTF-8.
  assert.equal(digestOf("é"), digestOf(new Uint8Array([0xc3, 0xa9])));
});

Deno.test("Sha256 fed in random chunks gives the same digest and byte count as digestOf()", () => {
  const random = prng(0xd16e57);
  const data = new Uint8Array(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (random() * 256) | 0;
  const expected = digestOf(data);
  assert.equal(
    expected,
    `sha256:${createHash("sha256").update(data).digest("hex")}`,
  );
  for (let round = 0; round < 5; round++) {
    const h = new Sha256();
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, 1 + Math.floor(random() * 300_000));
      h.update(data.subarray(off, off + n));
      off += n;
      assert.equal(h.bytes, off);
    }
    h.update(new Uint8Array()); // empty chunks change nothing
    assert.equal(h.bytes, data.length);
    assert.equal(h.digest(), expected);
  }
});

Deno.test("Sha256 with no input is the digest of the empty string", () => {
  const h = new Sha256();
  assert.equal(h.bytes, 0);
  assert.equal(h.digest(), EMPTY);
});

Deno.test("assertDigest() passes on equal digests and throws DigestMismatchError naming both", () => {
  assertDigest(BRACES, BRACES);
  assert.throws(
    () => assertDigest(BRACES, EMPTY, "config"),
    (e: unknown) =>
      e instanceof DigestMismatchError && e.expected === BRACES &&
      e.actual === EMPTY && e.message.includes("config") &&
      e.message.includes(BRACES) && e.message.includes(EMPTY),
  );
});
