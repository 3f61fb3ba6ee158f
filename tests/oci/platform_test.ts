import assert from "node:assert/strict";
import {
  formatPlatform,
  parsePlatform,
  type Platform,
  platformMatches,
} from "../../src/oci/platform.ts";

Deno.test("parsePlatform() reads os/arch, os/arch/variant and a bare arch as linux", () => {
  assert.deepEqual(parsePlatform("linux/amd64"), {
    os: "linux",
    architecture: "amd64",
  });
  assert.deepEqual(parsePlatform("linux/arm64/v8"), {
    os: "linux",
    architecture: "arm64",
    variant: "v8",
  });
  assert.deepEqual(parsePlatform("arm64"), {
    os: "linux",
    architecture: "arm64",
  });
  assert.deepEqual(parsePlatform("windows/amd64"), {
    os: "windows",
    architecture: "amd64",
  });
  // No variant key at all, not variant: undefined.
  assert.equal("variant" in parsePlatform("linux/amd64"), false);
});

Deno.test("parsePlatform() throws SyntaxError naming the input for malformed platforms", () => {
  for (
    const text of [
      "",
      "/",
      "linux/",
      "/amd64",
      "linux//v8",
      "linux/arm64/v8/x",
      "Linux/amd64",
      "linux/AMD64",
      "linux/amd 64",
      "-linux/amd64",
      "linux:amd64",
    ]
  ) {
    assert.throws(
      () => parsePlatform(text),
      (e: unknown) =>
        e instanceof SyntaxError &&
        e.message.startsWith(`Invalid platform "${text}"`) &&
        e.message.includes("os/arch[/variant]"),
      JSON.stringify(text),
    );
  }
});

Deno.test("formatPlatform() writes os/arch[/variant] and round-trips through parsePlatform()", () => {
  assert.equal(
    formatPlatform({ os: "linux", architecture: "amd64" }),
    "linux/amd64",
  );
  assert.equal(
    formatPlatform({ os: "linux", architecture: "arm", variant: "v7" }),
    "linux/arm/v7",
  );
  assert.equal(
    formatPlatform({ os: "linux", architecture: "arm", variant: "" }),
    "linux/arm",
  );
  for (const text of ["linux/amd64", "linux/arm64/v8", "freebsd/riscv64"]) {
    assert.equal(formatPlatform(parsePlatform(text)), text);
  }
});

Deno.test("platformMatches() requires os and arch, and the variant only when one is wanted", () => {
  const arm64v8: Platform = {
    os: "linux",
    architecture: "arm64",
    variant: "v8",
  };
  const arm64: Platform = { os: "linux", architecture: "arm64" };
  assert.equal(platformMatches(arm64v8, arm64), true);
  assert.equal(platformMatches(arm64v8, arm64v8), true);
  assert.equal(platformMatches(arm64, arm64v8), false);
  assert.equal(
    platformMatches(arm64v8, { ...arm64, variant: "v9" }),
    false,
  );
  assert.equal(
    platformMatches(arm64, { os: "linux", architecture: "amd64" }),
    false,
  );
  assert.equal(
    platformMatches(arm64, { os: "windows", architecture: "arm64" }),
    false,
  );
  assert.equal(platformMatches(arm64, parsePlatform("arm64")), true);
});
