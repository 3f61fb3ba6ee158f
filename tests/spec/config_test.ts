import assert from "node:assert/strict";
import { InvalidImageError } from "../../src/errors.ts";
import { MAX_CONFIG_BYTES, parseConfig } from "../../src/spec/config.ts";

const encoder = new TextEncoder();

Deno.test("parseConfig() reads commandLine and keeps unknown fields", () => {
  assert.deepEqual(
    parseConfig(
      encoder.encode('{"commandLine":"console=ttyS0 root=/dev/vda"}'),
    ),
    { commandLine: "console=ttyS0 root=/dev/vda" },
  );
  assert.deepEqual(parseConfig(encoder.encode("{}")), {});
  assert.deepEqual(
    parseConfig(encoder.encode('{"commandLine":"","future":{"x":1}}')),
    { commandLine: "", future: { x: 1 } },
  );
});

Deno.test("parseConfig() accepts exactly MAX_CONFIG_BYTES", () => {
  const head = '{"commandLine":"';
  const text = head + "a".repeat(MAX_CONFIG_BYTES - head.length - 2) + '"}';
  assert.equal(text.length, MAX_CONFIG_BYTES);
  assert.equal(
    parseConfig(encoder.encode(text)).commandLine?.length,
    MAX_CONFIG_BYTES - head.length - 2,
  );
});

const BAD: [string, Uint8Array, RegExp][] = [
  [
    "one byte over the limit",
    new Uint8Array(MAX_CONFIG_BYTES + 1).fill(0x20),
    new RegExp(
      `^Invalid config: ${
        MAX_CONFIG_BYTES + 1
      } bytes is over the ${MAX_CONFIG_BYTES}-byte limit$`,
    ),
  ],
  [
    "not JSON",
    encoder.encode("commandLine=x"),
    /^Invalid config: not valid UTF-8 JSON/,
  ],
  ["empty", new Uint8Array(), /^Invalid config: not valid UTF-8 JSON/],
  [
    "not UTF-8",
    new Uint8Array([0x7b, 0xc3, 0x7d]),
    /^Invalid config: not valid UTF-8 JSON/,
  ],
  [
    "an array",
    encoder.encode("[]"),
    /^Invalid config: expected a JSON object$/,
  ],
  ["null", encoder.encode("null"), /^Invalid config: expected a JSON object$/],
  [
    "a string",
    encoder.encode('"x"'),
    /^Invalid config: expected a JSON object$/,
  ],
  [
    "a numeric commandLine",
    encoder.encode('{"commandLine":1}'),
    /^Invalid config: commandLine must be a string$/,
  ],
  [
    "a null commandLine",
    encoder.encode('{"commandLine":null}'),
    /^Invalid config: commandLine must be a string$/,
  ],
  [
    "an array commandLine",
    encoder.encode('{"commandLine":["a"]}'),
    /^Invalid config: commandLine must be a string$/,
  ],
];

for (const [name, bytes, message] of BAD) {
  Deno.test(`parseConfig() throws InvalidImageError for a config that is ${name}`, () => {
    assert.throws(
      () => parseConfig(bytes),
      (e: unknown) => e instanceof InvalidImageError && message.test(e.message),
    );
  });
}
