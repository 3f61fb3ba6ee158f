import assert from "node:assert/strict";
import { InvalidImageError } from "../../src/errors.ts";
import { digestOf, isDigest } from "../../src/oci/digest.ts";
import {
  type Descriptor,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  encodeJson,
  isIndexMediaType,
  isManifestMediaType,
  MAX_DESCRIPTORS,
  MAX_MANIFEST_BYTES,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  type ParsedManifest,
  parseManifest,
  validateDescriptor,
  validateIndex,
  validateManifest,
} from "../../src/oci/manifest.ts";
import { pick, prng } from "../_helpers/fixtures.ts";

const encoder = new TextEncoder();
const digest = (c: string) => `sha256:${c.repeat(64)}` as const;

function manifest(): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: "application/vnd.ironcore.image.config.v1+json",
      digest: digest("1"),
      size: 2,
    },
    layers: [
      {
        mediaType: "application/vnd.ironcore.image.kernel",
        digest: digest("2"),
        size: 6,
        annotations: { "org.opencontainers.image.title": "vmlinuz" },
      },
      {
        mediaType: "application/vnd.ironcore.image.initramfs",
        digest: digest("3"),
        size: 0,
        urls: ["https://example.com/initrd"],
      },
    ],
    annotations: { variant: "metal" },
  };
}

function index(): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [
      {
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: digest("a"),
        size: 600,
        platform: { os: "linux", architecture: "amd64" },
      },
      {
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: digest("b"),
        size: 601,
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
      },
    ],
    annotations: { "org.opencontainers.image.created": "2024-01-01" },
  };
}

function bytesOf(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Sets a value at a dotted path such as `layers.0.size`; `undefined` deletes. */
function edit(
  doc: Record<string, unknown>,
  path: string,
  value: unknown,
): Record<string, unknown> {
  const keys = path.split(".");
  let at = doc as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return doc;
}

Deno.test("parseManifest() accepts a valid manifest and keeps every field", () => {
  const doc = manifest();
  const parsed = parseManifest(bytesOf(doc));
  assert.equal(parsed.kind, "manifest");
  assert.deepEqual(
    (parsed as Extract<ParsedManifest, { kind: "manifest" }>).manifest,
    doc,
  );
});

Deno.test("parseManifest() accepts a valid index and keeps every field", () => {
  const doc = index();
  const parsed = parseManifest(bytesOf(doc));
  assert.equal(parsed.kind, "index");
  assert.deepEqual(
    (parsed as Extract<ParsedManifest, { kind: "index" }>).index,
    doc,
  );
});

Deno.test("parseManifest() tells manifest from index by mediaType, then the descriptor's type, then the fields", () => {
  const bare = index();
  delete bare.mediaType;
  assert.equal(parseManifest(bytesOf(bare)).kind, "index");
  const bareManifest = manifest();
  delete bareManifest.mediaType;
  assert.equal(parseManifest(bytesOf(bareManifest)).kind, "manifest");
  assert.equal(
    parseManifest(bytesOf(bareManifest), {
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
    }).kind,
    "manifest",
  );
  // The descriptor says index, the document has no mediaType and is a
  // manifest: validated as an index, so it fails naming the index.
  assert.throws(
    () =>
      parseManifest(bytesOf(bareManifest), { mediaType: OCI_INDEX_MEDIA_TYPE }),
    (e: unknown) =>
      e instanceof InvalidImageError && /^Invalid index/.test(e.message),
  );
  // Docker media types are read too.
  const docker = manifest();
  docker.mediaType = DOCKER_MANIFEST_MEDIA_TYPE;
  assert.equal(parseManifest(bytesOf(docker)).kind, "manifest");
  const list = index();
  list.mediaType = DOCKER_MANIFEST_LIST_MEDIA_TYPE;
  assert.equal(parseManifest(bytesOf(list)).kind, "index");
});

Deno.test("parseManifest() accepts exactly MAX_MANIFEST_BYTES and rejects one byte more", () => {
  const doc = manifest();
  const base = bytesOf(doc).byteLength;
  const pad = "x".repeat(MAX_MANIFEST_BYTES - base - ',"pad":""'.length);
  (doc.annotations as Record<string, string>).pad = pad;
  const exact = bytesOf(doc);
  assert.equal(exact.byteLength, MAX_MANIFEST_BYTES);
  assert.equal(parseManifest(exact).kind, "manifest");
  (doc.annotations as Record<string, string>).pad = pad + "x";
  assert.throws(
    () => parseManifest(bytesOf(doc)),
    (e: unknown) =>
      e instanceof InvalidImageError &&
      e.message ===
        `Invalid manifest: ${
          MAX_MANIFEST_BYTES + 1
        } bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`,
  );
});

interface BadCase {
  name: string;
  bytes: Uint8Array;
  /** Text the error message must contain: the bad field and the problem. */
  says: string;
}

const BAD: BadCase[] = [
  {
    name: "missing config",
    bytes: bytesOf(edit(manifest(), "config", undefined)),
    says: "Invalid manifest config: expected an object",
  },
  {
    name: "config that is a string",
    bytes: bytesOf(edit(manifest(), "config", digest("1"))),
    says: "Invalid manifest config: expected an object",
  },
  {
    name: "short config digest",
    bytes: bytesOf(edit(manifest(), "config.digest", "sha256:abc")),
    says:
      'Invalid manifest config.digest: expected sha256: and 64 lowercase hex digits, got "sha256:abc"',
  },
  {
    name: "uppercase layer digest",
    bytes: bytesOf(edit(manifest(), "layers.0.digest", digest("A"))),
    says: "Invalid manifest layers[0].digest",
  },
  {
    name: "sha512 layer digest",
    bytes: bytesOf(
      edit(manifest(), "layers.1.digest", `sha512:${"a".repeat(128)}`),
    ),
    says: "Invalid manifest layers[1].digest",
  },
  {
    name: "missing layer digest",
    bytes: bytesOf(edit(manifest(), "layers.1.digest", undefined)),
    says: "Invalid manifest layers[1].digest",
  },
  {
    name: "negative layer size",
    bytes: bytesOf(edit(manifest(), "layers.0.size", -1)),
    says:
      "Invalid manifest layers[0].size: expected a non-negative integer, got -1",
  },
  {
    name: "fractional config size",
    bytes: bytesOf(edit(manifest(), "config.size", 1.5)),
    says:
      "Invalid manifest config.size: expected a non-negative integer, got 1.5",
  },
  {
    name: "size as a string",
    bytes: bytesOf(edit(manifest(), "layers.0.size", "6")),
    says:
      'Invalid manifest layers[0].size: expected a non-negative integer, got "6"',
  },
  {
    name: "size beyond 2^53",
    bytes: encoder.encode(
      JSON.stringify(manifest()).replace('"size":6', '"size":9007199254740993'),
    ),
    says: "Invalid manifest layers[0].size",
  },
  {
    name: "non-string manifest annotation",
    bytes: bytesOf(edit(manifest(), "annotations.variant", 1)),
    says: "Invalid manifest annotations.variant: expected a string",
  },
  {
    name: "non-string layer annotation",
    bytes: bytesOf(
      edit(manifest(), "layers.0.annotations", {
        "org.opencontainers.image.title": null,
      }),
    ),
    says:
      "Invalid manifest layers[0].annotations.org.opencontainers.image.title: expected a string",
  },
  {
    name: "annotations that are an array",
    bytes: bytesOf(edit(manifest(), "annotations", ["a"])),
    says: "Invalid manifest annotations: expected an object of strings",
  },
  {
    name: "schemaVersion 1",
    bytes: bytesOf(edit(manifest(), "schemaVersion", 1)),
    says: "Invalid manifest schemaVersion: expected 2, got 1",
  },
  {
    name: 'schemaVersion "2"',
    bytes: bytesOf(edit(manifest(), "schemaVersion", "2")),
    says: 'Invalid manifest schemaVersion: expected 2, got "2"',
  },
  {
    name: "missing schemaVersion",
    bytes: bytesOf(edit(manifest(), "schemaVersion", undefined)),
    says: "Invalid manifest schemaVersion: expected 2",
  },
  {
    name: "wrong manifest mediaType",
    bytes: bytesOf(
      edit(manifest(), "mediaType", "application/vnd.oci.image.config.v1+json"),
    ),
    says:
      `Invalid manifest mediaType: expected ${OCI_MANIFEST_MEDIA_TYPE}, got application/vnd.oci.image.config.v1+json`,
  },
  {
    name: "layer mediaType that is not type/subtype",
    bytes: bytesOf(edit(manifest(), "layers.1.mediaType", "kernel")),
    says:
      'Invalid manifest layers[1].mediaType: expected a media type like type/subtype, got "kernel"',
  },
  {
    name: "layers that is an object",
    bytes: bytesOf(edit(manifest(), "layers", {})),
    says: "Invalid manifest layers: expected an array",
  },
  {
    name: "missing layers",
    bytes: bytesOf(edit(manifest(), "layers", undefined)),
    says: "Invalid manifest layers: expected an array",
  },
  {
    name: "layer that is null",
    bytes: bytesOf(edit(manifest(), "layers.1", null)),
    says: "Invalid manifest layers[1]: expected an object",
  },
  {
    name: "urls that are not strings",
    bytes: bytesOf(edit(manifest(), "layers.1.urls", [1])),
    says: "Invalid manifest layers[1].urls: expected an array of strings",
  },
  {
    name: "bad subject",
    bytes: bytesOf(edit(manifest(), "subject", { mediaType: "a/b" })),
    says: "Invalid manifest subject.digest",
  },
  {
    name: "manifest with a manifests field",
    bytes: bytesOf(edit(manifest(), "manifests", [])),
    says: "Invalid manifest: has a manifests field; it looks like an index",
  },
  {
    name: "too many layers",
    bytes: bytesOf(
      edit(
        manifest(),
        "layers",
        Array.from({ length: MAX_DESCRIPTORS + 1 }, () => ({
          mediaType: "a/b",
          digest: digest("2"),
          size: 1,
        })),
      ),
    ),
    says: `Invalid manifest layers: more than ${MAX_DESCRIPTORS} entries`,
  },
  {
    name: "too large",
    bytes: new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(0x20),
    says: `Invalid manifest: ${
      MAX_MANIFEST_BYTES + 1
    } bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`,
  },
  {
    name: "not JSON",
    bytes: encoder.encode("schemaVersion: 2"),
    says: "Invalid manifest: not valid UTF-8 JSON",
  },
  {
    name: "truncated JSON",
    bytes: bytesOf(manifest()).subarray(0, 40),
    says: "Invalid manifest: not valid UTF-8 JSON",
  },
  {
    name: "not UTF-8",
    bytes: new Uint8Array([0x7b, 0xff, 0x7d]),
    says: "Invalid manifest: not valid UTF-8 JSON",
  },
  {
    name: "empty",
    bytes: new Uint8Array(),
    says: "Invalid manifest: not valid UTF-8 JSON",
  },
  {
    name: "JSON array",
    bytes: encoder.encode("[]"),
    says: "Invalid manifest: expected a JSON object",
  },
  {
    name: "JSON null",
    bytes: encoder.encode("null"),
    says: "Invalid manifest: expected a JSON object",
  },
  {
    name: "index with layers",
    bytes: bytesOf(edit(index(), "layers", [])),
    says: "Invalid index: has layers or config; it looks like a manifest",
  },
  {
    name: "index with a config",
    bytes: bytesOf(edit(index(), "config", manifest().config)),
    says: "Invalid index: has layers or config; it looks like a manifest",
  },
  {
    name: "index with schemaVersion 1",
    bytes: bytesOf(edit(index(), "schemaVersion", 1)),
    says: "Invalid index schemaVersion: expected 2, got 1",
  },
  {
    name: "index without manifests",
    bytes: bytesOf(edit(index(), "manifests", undefined)),
    says: "Invalid index manifests: expected an array",
  },
  {
    name: "index entry with a bad digest",
    bytes: bytesOf(edit(index(), "manifests.1.digest", "sha256:")),
    says: "Invalid index manifests[1].digest",
  },
  {
    name: "index entry with a negative size",
    bytes: bytesOf(edit(index(), "manifests.0.size", -600)),
    says:
      "Invalid index manifests[0].size: expected a non-negative integer, got -600",
  },
  {
    name: "platform without os",
    bytes: bytesOf(edit(index(), "manifests.0.platform.os", undefined)),
    says: "Invalid index manifests[0].platform.os: expected a non-empty string",
  },
  {
    name: "platform with an empty architecture",
    bytes: bytesOf(edit(index(), "manifests.1.platform.architecture", "")),
    says:
      "Invalid index manifests[1].platform.architecture: expected a non-empty string",
  },
  {
    name: "platform with a numeric variant",
    bytes: bytesOf(edit(index(), "manifests.1.platform.variant", 8)),
    says: "Invalid index manifests[1].platform.variant: expected a string",
  },
  {
    name: "non-string index annotation",
    bytes: bytesOf(
      edit(index(), "annotations", { "org.opencontainers.image.created": 1 }),
    ),
    says:
      "Invalid index annotations.org.opencontainers.image.created: expected a string",
  },
  {
    name: "wrong index mediaType",
    bytes: bytesOf(edit(index(), "mediaType", "application/json")),
    says:
      `Invalid index mediaType: expected ${OCI_INDEX_MEDIA_TYPE}, got application/json`,
  },
];

for (const c of BAD) {
  Deno.test(`parseManifest() rejects a document with ${c.name}, naming the field`, () => {
    assert.throws(
      () => parseManifest(c.bytes),
      (e: unknown) => {
        assert.ok(e instanceof InvalidImageError, `threw ${String(e)}`);
        assert.equal(e.name, "InvalidImageError");
        assert.ok(
          e.message.includes(c.says),
          `message ${JSON.stringify(e.message)} does not say ${
            JSON.stringify(c.says)
          }`,
        );
        assert.ok(!e.message.includes("\n"), "message is one line");
        return true;
      },
    );
  });
}

Deno.test("validateManifest() and validateIndex() reject each other's documents", () => {
  assert.throws(() => validateManifest(index()), InvalidImageError);
  assert.throws(() => validateIndex(manifest()), InvalidImageError);
  assert.equal(validateManifest(manifest()).layers.length, 2);
  assert.equal(validateIndex(index()).manifests.length, 2);
});

Deno.test("validateDescriptor() uses the given location in its messages", () => {
  const ok = validateDescriptor(
    { mediaType: "a/b", digest: digest("c"), size: 0 },
    "config",
  );
  assert.equal(ok.size, 0);
  assert.throws(
    () =>
      validateDescriptor({ mediaType: "a/b", digest: digest("c") }, "blob X"),
    { name: "InvalidImageError", message: /^Invalid blob X\.size: / },
  );
  assert.throws(
    () =>
      validateDescriptor(
        { mediaType: "a/b", digest: digest("c"), size: 1, artifactType: "x" },
        "d",
      ),
    { name: "InvalidImageError", message: /^Invalid d\.artifactType: / },
  );
});

Deno.test("isIndexMediaType() and isManifestMediaType() know the OCI and Docker types", () => {
  assert.equal(isIndexMediaType(OCI_INDEX_MEDIA_TYPE), true);
  assert.equal(isIndexMediaType(DOCKER_MANIFEST_LIST_MEDIA_TYPE), true);
  assert.equal(isIndexMediaType(OCI_MANIFEST_MEDIA_TYPE), false);
  assert.equal(isManifestMediaType(OCI_MANIFEST_MEDIA_TYPE), true);
  assert.equal(isManifestMediaType(DOCKER_MANIFEST_MEDIA_TYPE), true);
  assert.equal(isManifestMediaType(OCI_INDEX_MEDIA_TYPE), false);
  assert.equal(isManifestMediaType("application/json"), false);
});

Deno.test("encodeJson() is compact, keeps key order, and its digest is that of its bytes", () => {
  const a = encodeJson({ b: 1, a: "x" });
  assert.equal(new TextDecoder().decode(a.bytes), '{"b":1,"a":"x"}');
  assert.equal(a.size, 15);
  assert.equal(a.digest, digestOf(a.bytes));
  const again = encodeJson({ b: 1, a: "x" });
  assert.deepEqual(again.bytes, a.bytes);
  assert.notEqual(encodeJson({ a: "x", b: 1 }).digest, a.digest);
  assert.equal(encodeJson({ s: "é" }).size, '{"s":"é"}'.length + 1);
});

// --- fuzz -----------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path (list of keys) inside a JSON value, the root excluded. */
function paths(
  value: Json,
  prefix: (string | number)[] = [],
): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([...prefix, i], ...paths(v, [...prefix, i]));
    });
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push([...prefix, k], ...paths(v, [...prefix, k]));
    }
  }
  return out;
}

function randomValue(random: () => number): Json {
  return pick<() => Json>(random, [
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 1.5,
    () => 2,
    () => 1e300,
    () => "",
    () => "x",
    () => "sha256:" + "0".repeat(64),
    () => "application/vnd.oci.image.index.v1+json",
    () => [],
    () => [null],
    () => ({}),
    () => ({ mediaType: "a/b", digest: digest("f"), size: 3 }),
  ])();
}

function mutate(random: () => number, doc: Json): Uint8Array {
  const mode = Math.floor(random() * 4);
  if (mode === 0) {
    // Byte flips on the serialised form.
    const bytes = bytesOf(doc);
    const flips = 1 + Math.floor(random() * 4);
    for (let i = 0; i < flips; i++) {
      const at = Math.floor(random() * bytes.length);
      bytes[at] = random() < 0.5
        ? bytes[at]! ^ (1 << Math.floor(random() * 8))
        : Math.floor(random() * 256);
    }
    return bytes;
  }
  if (mode === 3) {
    // Truncation or garbage appended.
    const bytes = bytesOf(doc);
    return random() < 0.5
      ? bytes.subarray(0, Math.floor(random() * bytes.length))
      : new Uint8Array([...bytes, Math.floor(random() * 256)]);
  }
  const copy = structuredClone(doc);
  const all = paths(copy);
  const edits = 1 + Math.floor(random() * 3);
  for (let i = 0; i < edits && all.length > 0; i++) {
    const path = pick(random, all);
    let parent = copy as Record<string | number, Json>;
    for (const k of path.slice(0, -1)) {
      const next = parent[k];
      if (next === null || typeof next !== "object") break;
      parent = next as Record<string | number, Json>;
    }
    const key = path[path.length - 1]!;
    if (mode === 1) {
      // Field deletion (for arrays: remove the element).
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
    } else {
      // Type swap.
      parent[key] = randomValue(random);
    }
  }
  // Sometimes mutate the root itself.
  if (random() < 0.02) return bytesOf(randomValue(random));
  return bytesOf(copy);
}

function checkDescriptor(d: Descriptor): void {
  assert.ok(isDigest(d.digest), `accepted digest ${String(d.digest)}`);
  assert.ok(
    Number.isSafeInteger(d.size) && d.size >= 0,
    `accepted size ${String(d.size)}`,
  );
  assert.equal(typeof d.mediaType, "string");
  for (const v of Object.values(d.annotations ?? {})) {
    assert.equal(typeof v, "string");
  }
}

Deno.test("parseManifest() either returns a well-formed document or throws InvalidImageError for 1000 mutated manifests and indexes", () => {
  const random = prng(0x0c1);
  const seeds: Json[] = [manifest() as Json, index() as Json];
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 1000; i++) {
    const bytes = mutate(random, seeds[i % 2]!);
    const hint = random() < 0.3
      ? {
        mediaType: pick(random, [
          OCI_INDEX_MEDIA_TYPE,
          OCI_MANIFEST_MEDIA_TYPE,
        ]),
      }
      : {};
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(bytes, hint);
    } catch (e) {
      assert.ok(
        e instanceof InvalidImageError,
        `case ${i}: ${new TextDecoder().decode(bytes)} threw ${String(e)}`,
      );
      assert.ok(!e.message.includes("\n"), `case ${i}: multi-line message`);
      rejected++;
      continue;
    }
    accepted++;
    if (parsed.kind === "manifest") {
      assert.equal(parsed.manifest.schemaVersion, 2);
      checkDescriptor(parsed.manifest.config);
      parsed.manifest.layers.forEach(checkDescriptor);
    } else {
      assert.equal(parsed.index.schemaVersion, 2);
      parsed.index.manifests.forEach(checkDescriptor);
    }
  }
  // The mutations must exercise both outcomes, or the test proves nothing.
  assert.ok(accepted >= 50, `only ${accepted} mutated documents were accepted`);
  assert.ok(
    rejected >= 500,
    `only ${rejected} mutated documents were rejected`,
  );
});
