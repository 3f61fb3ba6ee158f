import assert from "node:assert/strict";
import { InvalidReferenceError } from "../../src/errors.ts";
import {
  familiarReference,
  formatReference,
  parseReference,
  type Reference,
  registryApiHost,
  repositoryName,
  withDigest,
  withTag,
} from "../../src/oci/reference.ts";

const SHA256 = "sha256:" + "0123456789abcdef".repeat(4);
const SHA512 = "sha512:" + "fedcba9876543210".repeat(8);

interface ValidCase {
  input: string;
  expected: Reference;
  canonical: string;
  familiar: string;
}

const VALID: ValidCase[] = [
  {
    input: "my-image",
    expected: {
      registry: "docker.io",
      repository: "library/my-image",
      tag: "latest",
    },
    canonical: "docker.io/library/my-image:latest",
    familiar: "my-image:latest",
  },
  {
    input: "org/img:v1",
    expected: { registry: "docker.io", repository: "org/img", tag: "v1" },
    canonical: "docker.io/org/img:v1",
    familiar: "org/img:v1",
  },
  {
    input: "localhost:5000/a/b:v1",
    expected: { registry: "localhost:5000", repository: "a/b", tag: "v1" },
    canonical: "localhost:5000/a/b:v1",
    familiar: "localhost:5000/a/b:v1",
  },
  {
    input: "localhost/img",
    expected: { registry: "localhost", repository: "img", tag: "latest" },
    canonical: "localhost/img:latest",
    familiar: "localhost/img:latest",
  },
  {
    input: "localhost:5000",
    expected: {
      registry: "docker.io",
      repository: "library/localhost",
      tag: "5000",
    },
    canonical: "docker.io/library/localhost:5000",
    familiar: "localhost:5000",
  },
  {
    input: `ghcr.io/org/img@${SHA256}`,
    expected: { registry: "ghcr.io", repository: "org/img", digest: SHA256 },
    canonical: `ghcr.io/org/img@${SHA256}`,
    familiar: `ghcr.io/org/img@${SHA256}`,
  },
  {
    input: `name:tag@${SHA256}`,
    expected: {
      registry: "docker.io",
      repository: "library/name",
      tag: "tag",
      digest: SHA256,
    },
    canonical: `docker.io/library/name:tag@${SHA256}`,
    familiar: `name:tag@${SHA256}`,
  },
  {
    input: `reg.example/x@${SHA512}`,
    expected: { registry: "reg.example", repository: "x", digest: SHA512 },
    canonical: `reg.example/x@${SHA512}`,
    familiar: `reg.example/x@${SHA512}`,
  },
  {
    input: "index.docker.io/busybox",
    expected: {
      registry: "docker.io",
      repository: "library/busybox",
      tag: "latest",
    },
    canonical: "docker.io/library/busybox:latest",
    familiar: "busybox:latest",
  },
  {
    input: "index.docker.io/library/busybox:1.36",
    expected: {
      registry: "docker.io",
      repository: "library/busybox",
      tag: "1.36",
    },
    canonical: "docker.io/library/busybox:1.36",
    familiar: "busybox:1.36",
  },
  {
    input: "docker.io/busybox",
    expected: {
      registry: "docker.io",
      repository: "library/busybox",
      tag: "latest",
    },
    canonical: "docker.io/library/busybox:latest",
    familiar: "busybox:latest",
  },
  {
    input: "docker.io/library/a/b",
    expected: {
      registry: "docker.io",
      repository: "library/a/b",
      tag: "latest",
    },
    canonical: "docker.io/library/a/b:latest",
    familiar: "library/a/b:latest",
  },
  {
    input: "docker.io/my.org/img",
    expected: {
      registry: "docker.io",
      repository: "my.org/img",
      tag: "latest",
    },
    canonical: "docker.io/my.org/img:latest",
    familiar: "docker.io/my.org/img:latest",
  },
  {
    input: "registry-1.docker.io/foo",
    expected: {
      registry: "registry-1.docker.io",
      repository: "foo",
      tag: "latest",
    },
    canonical: "registry-1.docker.io/foo:latest",
    familiar: "registry-1.docker.io/foo:latest",
  },
  {
    input: "[::1]:5000/img:v1",
    expected: { registry: "[::1]:5000", repository: "img", tag: "v1" },
    canonical: "[::1]:5000/img:v1",
    familiar: "[::1]:5000/img:v1",
  },
  {
    input: "[fe80::1]/os/image",
    expected: { registry: "[fe80::1]", repository: "os/image", tag: "latest" },
    canonical: "[fe80::1]/os/image:latest",
    familiar: "[fe80::1]/os/image:latest",
  },
  {
    input: "192.168.1.10:5000/x/y:1.0",
    expected: { registry: "192.168.1.10:5000", repository: "x/y", tag: "1.0" },
    canonical: "192.168.1.10:5000/x/y:1.0",
    familiar: "192.168.1.10:5000/x/y:1.0",
  },
  {
    input: "Registry.Example.COM/app",
    expected: {
      registry: "Registry.Example.COM",
      repository: "app",
      tag: "latest",
    },
    canonical: "Registry.Example.COM/app:latest",
    familiar: "Registry.Example.COM/app:latest",
  },
  {
    input: "ex-ample.com/my_repo__x/a--b.c:_Tag-1.x",
    expected: {
      registry: "ex-ample.com",
      repository: "my_repo__x/a--b.c",
      tag: "_Tag-1.x",
    },
    canonical: "ex-ample.com/my_repo__x/a--b.c:_Tag-1.x",
    familiar: "ex-ample.com/my_repo__x/a--b.c:_Tag-1.x",
  },
  {
    input: `ironcore:${"t".repeat(128)}`,
    expected: {
      registry: "docker.io",
      repository: "library/ironcore",
      tag: "t".repeat(128),
    },
    canonical: `docker.io/library/ironcore:${"t".repeat(128)}`,
    familiar: `ironcore:${"t".repeat(128)}`,
  },
  {
    // docker.io/library/ is 18 characters, so this name is exactly 255.
    input: "n".repeat(237),
    expected: {
      registry: "docker.io",
      repository: `library/${"n".repeat(237)}`,
      tag: "latest",
    },
    canonical: `docker.io/library/${"n".repeat(237)}:latest`,
    familiar: `${"n".repeat(237)}:latest`,
  },
];

const INVALID: { input: string; reason: string }[] = [
  { input: "", reason: "reference is empty" },
  { input: "UPPER/case", reason: "repository name must be lowercase" },
  { input: "ghcr.io/Org/img", reason: "repository name must be lowercase" },
  // Lowercase alone would not make it valid: no "use" that fails again.
  { input: "Bad Ref:1", reason: 'invalid repository path component "Bad Ref"' },
  { input: "ghcr.io/Org/my_-img", reason: 'component "my_-img"' },
  { input: "a:b:c", reason: 'invalid tag "b:c"' },
  { input: ":tag", reason: "repository name is empty" },
  { input: "name@sha256:short", reason: "invalid digest" },
  { input: `name@${SHA256.toUpperCase()}`, reason: "invalid digest" },
  { input: `name@md5:${"a".repeat(32)}`, reason: "invalid digest" },
  { input: `name@${SHA256}@${SHA256}`, reason: "invalid digest" },
  { input: "name@", reason: "digest after" },
  { input: "name:", reason: "tag after" },
  { input: "name:.tag", reason: "invalid tag" },
  { input: "name/", reason: 'ends with "/"' },
  { input: "ghcr.io/", reason: "repository name is empty" },
  { input: "/name", reason: 'starts with "/"' },
  { input: "a//b", reason: 'contains "//"' },
  { input: `name:${"t".repeat(129)}`, reason: "tag is 129 characters long" },
  { input: "n".repeat(238), reason: "is 256 characters long" },
  { input: "http://x/y", reason: 'remove "http://"' },
  { input: "0123456789abcdef".repeat(4), reason: "image ID" },
  { input: "-name", reason: "invalid repository path component" },
  { input: "a..b", reason: "invalid repository path component" },
  { input: "a_-b", reason: "invalid repository path component" },
  { input: "a___b", reason: "invalid repository path component" },
  { input: "foo bar", reason: "invalid repository path component" },
  { input: "héllo", reason: "invalid repository path component" },
  { input: "ex_ample.com/x", reason: "invalid registry" },
  { input: "example.com:port/x", reason: "invalid registry" },
  { input: "-example.com/x", reason: "invalid registry" },
  { input: "[::1/x", reason: "invalid registry" },
  { input: "::1/x", reason: "invalid registry" },
];

Deno.test("parseReference() normalises valid references like Docker", () => {
  for (const { input, expected } of VALID) {
    assert.deepEqual(parseReference(input), expected, input);
  }
});

Deno.test("formatReference() gives the canonical form with the registry", () => {
  for (const { input, canonical } of VALID) {
    assert.equal(formatReference(parseReference(input)), canonical, input);
  }
});

Deno.test("familiarReference() gives Docker's short form for display", () => {
  for (const { input, familiar } of VALID) {
    assert.equal(familiarReference(parseReference(input)), familiar, input);
  }
});

Deno.test("parseReference() reads back what formatReference() and familiarReference() write", () => {
  for (const { input } of VALID) {
    for (const options of [{}, { defaultTag: false as const }]) {
      const ref = parseReference(input, options);
      assert.deepEqual(parseReference(formatReference(ref), options), ref);
      assert.deepEqual(parseReference(familiarReference(ref), options), ref);
    }
  }
});

Deno.test("parseReference() rejects malformed references with InvalidReferenceError", () => {
  for (const { input, reason } of INVALID) {
    assert.throws(
      () => parseReference(input),
      (err: unknown) => {
        assert.ok(err instanceof InvalidReferenceError, input);
        assert.equal(err.reference, input);
        assert.ok(
          err.message.includes(reason),
          `${JSON.stringify(input)}: expected "${reason}" in "${err.message}"`,
        );
        return true;
      },
    );
  }
});

Deno.test("parseReference() applies the default tag only without tag and digest", () => {
  assert.equal(parseReference("img", { defaultTag: "main" }).tag, "main");
  assert.equal(parseReference("img:v1", { defaultTag: "main" }).tag, "v1");
  assert.equal(parseReference(`img@${SHA256}`).tag, undefined);
  assert.deepEqual(parseReference("img", { defaultTag: false }), {
    registry: "docker.io",
    repository: "library/img",
  });
  assert.ok(!("tag" in parseReference("img", { defaultTag: false })));
  assert.throws(
    () => parseReference("img", { defaultTag: ".bad" }),
    TypeError,
  );
});

Deno.test("repositoryName() joins registry and repository", () => {
  assert.equal(
    repositoryName(parseReference("img:v1")),
    "docker.io/library/img",
  );
  assert.equal(
    repositoryName(parseReference(`[::1]:5000/a/b@${SHA256}`)),
    "[::1]:5000/a/b",
  );
});

Deno.test("withTag() replaces the tag and drops the digest", () => {
  const ref = parseReference(`ghcr.io/org/img:v1@${SHA256}`);
  const retagged = withTag(ref, "v2");
  assert.deepEqual(retagged, {
    registry: "ghcr.io",
    repository: "org/img",
    tag: "v2",
  });
  assert.equal(ref.tag, "v1");
  assert.throws(() => withTag(ref, "bad tag"), InvalidReferenceError);
  assert.throws(() => withTag(ref, ""), InvalidReferenceError);
});

Deno.test("withDigest() sets the digest and drops the tag", () => {
  const ref = parseReference("ghcr.io/org/img:v1");
  assert.deepEqual(withDigest(ref, SHA512), {
    registry: "ghcr.io",
    repository: "org/img",
    digest: SHA512,
  });
  assert.equal(ref.digest, undefined);
  assert.throws(() => withDigest(ref, "sha256:abc"), InvalidReferenceError);
});

Deno.test("registryApiHost() maps Docker Hub to its API host", () => {
  assert.equal(registryApiHost("docker.io"), "registry-1.docker.io");
  assert.equal(registryApiHost("index.docker.io"), "registry-1.docker.io");
  assert.equal(registryApiHost("ghcr.io"), "ghcr.io");
  assert.equal(registryApiHost("localhost:5000"), "localhost:5000");
});

// An independent oracle for the fuzz test: Docker's splitDockerDomain plus one
// anchored regular expression for the whole grammar, as distribution/reference
// does it, instead of the parser's step-by-step checks.
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN =
  `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const ANCHORED_REFERENCE = new RegExp(
  `^(${DOMAIN})/(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)` +
    `(?::([\\w][\\w.-]{0,127}))?` +
    `(?:@(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$`,
);

function oracle(input: string): Reference | undefined {
  if (/^[a-f0-9]{64}$/.test(input)) return undefined;
  const slash = input.indexOf("/");
  const first = input.slice(0, slash);
  let domain = "docker.io";
  let remainder = input;
  if (slash !== -1 && (/[.:]/.test(first) || first === "localhost")) {
    domain = first;
    remainder = input.slice(slash + 1);
  }
  if (domain === "index.docker.io") domain = "docker.io";
  if (domain === "docker.io" && !remainder.includes("/")) {
    remainder = "library/" + remainder;
  }
  const match = ANCHORED_REFERENCE.exec(`${domain}/${remainder}`);
  if (match === null) return undefined;
  const [, registry = "", repository = "", tag, digest] = match;
  if (registry.length + 1 + repository.length > 255) return undefined;
  const ref: {
    registry: string;
    repository: string;
    tag?: string;
    digest?: string;
  } = {
    registry,
    repository,
  };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = "latest";
  return ref;
}

// mulberry32: small, fast and deterministic, so a failure reproduces.
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FUZZ_CHARS = [
  ..."/:@.-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  ..."/:@.-_abcdef0123456789", // weight the separators and hex digits
  "[",
  "]",
  " ",
  "\u0000",
  "é",
  "ß",
  "İ",
  "Ω",
  "😀",
  "\u200b",
];

const FUZZ_SEEDS = [
  ...VALID.map((c) => c.input),
  "a/b/c:v1",
  `localhost:5000/x@${SHA256}`,
  "docker.io/library/ubuntu:22.04",
];

function randomString(random: () => number): string {
  const length = Math.floor(random() * 40);
  let text = "";
  for (let i = 0; i < length; i++) {
    text += FUZZ_CHARS[Math.floor(random() * FUZZ_CHARS.length)];
  }
  return text;
}

function mutate(random: () => number): string {
  const chars = [
    ...(FUZZ_SEEDS[Math.floor(random() * FUZZ_SEEDS.length)] ?? ""),
  ];
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (chars.length + 1));
    const char = FUZZ_CHARS[Math.floor(random() * FUZZ_CHARS.length)] ?? "";
    switch (Math.floor(random() * 5)) {
      case 0:
        chars.splice(at, 0, char);
        break;
      case 1:
        chars.splice(at, 1);
        break;
      case 2:
        chars.splice(at, 1, char);
        break;
      case 3:
        chars.splice(at, 0, ...chars.slice(at, at + 5));
        break;
      default:
        chars.splice(at, 1, (chars[at] ?? "").toUpperCase());
    }
  }
  return chars.join("");
}

Deno.test("parseReference() either parses or throws InvalidReferenceError for 2000 fuzzed strings", () => {
  const random = prng(0x1c0e);
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 2000; i++) {
    const input = i % 2 === 0 ? randomString(random) : mutate(random);
    let ref: Reference;
    try {
      ref = parseReference(input);
    } catch (err) {
      assert.ok(
        err instanceof InvalidReferenceError,
        `${JSON.stringify(input)} threw ${String(err)}`,
      );
      assert.equal(oracle(input), undefined, JSON.stringify(input));
      rejected++;
      continue;
    }
    parsed++;
    assert.deepEqual(ref, oracle(input), JSON.stringify(input));
    assert.deepEqual(parseReference(formatReference(ref)), ref);
    assert.deepEqual(parseReference(familiarReference(ref)), ref);
  }
  // Both outcomes must be exercised for the test to mean anything.
  assert.ok(parsed >= 200, `only ${parsed} fuzzed strings parsed`);
  assert.ok(rejected >= 200, `only ${rejected} fuzzed strings were rejected`);
});
