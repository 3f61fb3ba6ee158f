import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import {
  AmbiguousReferenceError,
  DigestMismatchError,
  InvalidReferenceError,
  NotFoundError,
  SizeMismatchError,
  StoreError,
} from "../../src/errors.ts";
import { type Digest, digestHex, digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { defaultStorePath, Store } from "../../src/store/store.ts";
import { runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobStoreOf, tagIndexOf } from "../../src/store/_internal.ts";

async function buildDemo(
  store: Store,
  dir: string,
  tag: string,
  kernel = "kernel",
): Promise<BuildImageResult> {
  const f = await writeFiles(dir, { [`k-${tag.replace(/\W/g, "_")}`]: kernel });
  return await buildImage(store, [
    { arch: "amd64", layers: { kernel: Object.values(f)[0] as string } },
  ], { tag });
}

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
}

Deno.test("Store.open() on a missing directory creates nothing until the first write", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store/`);
    assert.equal(store.path, `${dir}/store`);
    assert.deepEqual(await store.tags(), []);
    assert.deepEqual(await tagIndexOf(store).entries(), []);
    assert.deepEqual(await snapshotStore(`${dir}/store`), {});
    await blobStoreOf(store).putBytes(
      new TextEncoder().encode("{}"),
      "application/json",
    );
    const snap = await snapshotStore(`${dir}/store`);
    assert.equal(
      await Deno.readTextFile(`${dir}/store/oci-layout`),
      '{"imageLayoutVersion":"1.0.0"}',
    );
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(`${dir}/store/index.json`)),
      {
        schemaVersion: 2,
        manifests: [],
      },
    );
    assert.equal(
      snap[`blobs/sha256/${digestHex(digestOf("{}"))}`]?.startsWith("2 "),
      true,
    );
  });
});

Deno.test("Store.open() accepts an empty directory and one left by an interrupted creation", async () => {
  await withTempDir(async (root) => {
    const dir = `${root}/store`;
    await Deno.mkdir(dir);
    await Store.open(dir);
    await Deno.mkdir(`${dir}/.tmp`);
    await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
    await Deno.writeTextFile(`${dir}/.lock`, "");
    const store = await Store.open(dir);
    assert.deepEqual(await store.tags(), []);
    await buildDemo(store, root, "demo:1");
    assert.equal((await store.tags()).length, 2);
  });
});

const BROKEN: [string, (dir: string) => Promise<void>, RegExp][] = [
  [
    "a file, not a directory",
    async (dir) => {
      await Deno.remove(dir, { recursive: true });
      await Deno.writeTextFile(dir, "x");
    },
    /it is not a directory/,
  ],
  [
    "a directory of other files",
    async (dir) => {
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
      await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    },
    /not an OCI image layout \(no oci-layout file\): choose an empty or new directory$/,
  ],
  [
    "a directory with a wrong oci-layout",
    (dir) =>
      Deno.writeTextFile(`${dir}/oci-layout`, '{"imageLayoutVersion":"2.0.0"}'),
    /oci-layout is not \{"imageLayoutVersion":"1.0.0"\}/,
  ],
  [
    "an oci-layout that is not JSON",
    (dir) => Deno.writeTextFile(`${dir}/oci-layout`, "1.0.0"),
    /oci-layout is not/,
  ],
  [
    "an index.json that is not JSON",
    (dir) => Deno.writeTextFile(`${dir}/index.json`, '{"schemaVersion":2,'),
    /^Store .* is not usable: index\.json is corrupt \(.*\): restore it, or move the directory away/,
  ],
  [
    "an index.json with schemaVersion 1",
    (dir) =>
      Deno.writeTextFile(
        `${dir}/index.json`,
        '{"schemaVersion":1,"manifests":[]}',
      ),
    /index\.json is corrupt \(Invalid index schemaVersion: expected 2, got 1\)/,
  ],
  [
    "an index.json whose entry has a bad digest",
    (dir) =>
      Deno.writeTextFile(
        `${dir}/index.json`,
        '{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:1","size":1}]}',
      ),
    /index\.json is corrupt \(Invalid index manifests\[0\]\.digest/,
  ],
  [
    "an index.json that is empty",
    (dir) => Deno.writeTextFile(`${dir}/index.json`, ""),
    /index\.json is corrupt/,
  ],
  [
    "an index.json that is a FIFO (it would block a read forever)",
    async (dir) => {
      await Deno.remove(`${dir}/index.json`);
      const mk = await new Deno.Command("mkfifo", {
        args: [`${dir}/index.json`],
      }).output();
      assert.ok(mk.success);
    },
    /index\.json must be a regular file, but it is a FIFO \(named pipe\): move it away/,
  ],
  [
    "a missing index.json",
    (dir) => Deno.remove(`${dir}/index.json`),
    /index\.json is missing: restore it/,
  ],
];

for (const [name, breakIt, message] of BROKEN) {
  Deno.test(`Store.open() throws StoreError for ${name}`, async () => {
    await withTempDir(async (root) => {
      const dir = `${root}/store`;
      await buildDemo(await Store.open(dir), root, "demo:1");
      await breakIt(dir);
      await assert.rejects(Store.open(dir), (e: unknown) => {
        assert.ok(e instanceof StoreError, `threw ${String(e)}`);
        assert.equal(e.path, dir);
        assert.match(e.message, message);
        assert.ok(e.message.startsWith(`Store ${dir} is not usable: `));
        return true;
      });
    });
  });
}

Deno.test("a store whose .tmp and blobs directories are gone, as other OCI tools write it, still takes builds", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/store`);
    await Deno.writeTextFile(
      `${dir}/store/oci-layout`,
      '{"imageLayoutVersion":"1.0.0"}',
    );
    await Deno.writeTextFile(
      `${dir}/store/index.json`,
      '{"schemaVersion":2,"manifests":[]}',
    );
    const store = await Store.open(`${dir}/store`);
    const result = await buildDemo(store, dir, "demo:1");
    assert.equal(
      (await store.resolve("demo:1")).descriptor.digest,
      result.index.digest,
    );
    await Deno.remove(`${dir}/store/.tmp`, { recursive: true });
    const again = await buildDemo(
      await Store.open(`${dir}/store`),
      dir,
      "demo:2",
      "other",
    );
    assert.equal(
      (await store.resolve("demo:2")).descriptor.digest,
      again.index.digest,
    );
  });
});

Deno.test("readBlob() returns verified bytes and refuses missing, corrupt, resized and oversized blobs", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(dir);
    const bytes = new TextEncoder().encode('{"commandLine":"x"}');
    const d = await blobStoreOf(store).putBytes(bytes, "application/json");
    assert.deepEqual(d, {
      mediaType: "application/json",
      digest: digestOf(bytes),
      size: bytes.byteLength,
    });
    assert.deepEqual(await store.readBlob(d), bytes);
    assert.equal(await store.hasBlob(d.digest), true);
    assert.equal(await store.hasBlob(d.digest, d.size + 1), false);

    await assert.rejects(store.readBlob(d, { maxBytes: 4 }), SizeMismatchError);
    const missing = { digest: digestOf("nope"), size: 4 };
    await assert.rejects(
      store.readBlob(missing),
      (e: unknown) => e instanceof NotFoundError && e.digest === missing.digest,
    );
    await assert.rejects(
      blobStoreOf(store).openBlob(missing.digest),
      NotFoundError,
    );
    await assert.rejects(
      store.readBlob({ ...d, size: d.size + 1 }),
      SizeMismatchError,
    );
    await Deno.writeTextFile(store.blobPath(d.digest), '{"commandLine":"y"}');
    await assert.rejects(
      store.readBlob(d),
      (e: unknown) =>
        e instanceof DigestMismatchError && e.expected === d.digest &&
        e.actual === digestOf('{"commandLine":"y"}'),
    );
  });
});

Deno.test("ingest() stores a verified stream and writes nothing under the digest on a mismatch", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(dir);
    const digest = digestOf("hello world");
    await blobStoreOf(store).putStream(
      { digest, size: 11 },
      streamOf("hello ", "world"),
    );
    assert.equal(
      await Deno.readTextFile(store.blobPath(digest)),
      "hello world",
    );

    const other = digestOf("HELLO WORLD");
    await assert.rejects(
      blobStoreOf(store).putStream(
        { digest: other, size: 11 },
        streamOf("hello world"),
      ),
      (e: unknown) =>
        e instanceof DigestMismatchError && e.expected === other &&
        e.actual === digest,
    );
    assert.equal(await store.hasBlob(other), false);
    await assert.rejects(
      blobStoreOf(store).putStream(
        { digest: other, size: 5 },
        streamOf("hello", " world"),
      ),
      (e: unknown) => e instanceof SizeMismatchError && e.expected === 5,
    );
    await assert.rejects(
      blobStoreOf(store).putStream(
        { digest: other, size: 12 },
        streamOf("hello world"),
      ),
      (e: unknown) =>
        e instanceof SizeMismatchError && e.expected === 12 && e.actual === 11,
    );
    assert.equal(await store.hasBlob(other), false);
    assert.deepEqual([...Deno.readDirSync(`${dir}/.tmp`)], []);
  });
});

Deno.test("resolve() finds a tag, a full digest, a sha256: prefix and a unique prefix", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const r = await buildDemo(store, dir, "demo:1");
    const index = r.index.digest;
    const child = r.manifests[0]!.descriptor.digest;

    const byTag = await store.resolve("demo:1");
    assert.equal(byTag.reference, "docker.io/library/demo:1");
    assert.equal(byTag.descriptor.digest, index);
    assert.equal(byTag.descriptor.mediaType, OCI_INDEX_MEDIA_TYPE);
    assert.equal(
      (await store.resolve("docker.io/library/demo:1")).descriptor.digest,
      index,
    );
    assert.equal(
      (await store.resolve("index.docker.io/demo:1-amd64")).descriptor.digest,
      child,
    );

    for (
      const input of [
        index,
        digestHex(index),
        digestHex(index).slice(0, 12),
        `sha256:${digestHex(index).slice(0, 7)}`,
      ]
    ) {
      const hit = await store.resolve(input);
      assert.equal(hit.descriptor.digest, index, input);
      assert.equal(hit.reference, undefined);
      assert.equal(hit.descriptor.annotations, undefined);
    }
    await assert.rejects(
      store.resolve("other:1"),
      (e: unknown) =>
        e instanceof NotFoundError && e.reference === "other:1" &&
        /^Image other:1 not found in store .*: run list to see the images, or pull it$/
          .test(e.message),
    );
    const absent = digestHex(index) === "f".repeat(64)
      ? "0".repeat(64)
      : "f".repeat(64);
    await assert.rejects(store.resolve(absent), NotFoundError);
    await assert.rejects(store.resolve("sha256:"), NotFoundError);
  });
});

Deno.test("resolve() names what is wrong with an input that is neither a tag nor a digest", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    await buildDemo(store, dir, "demo:1");
    for (
      const [input, reason] of [
        ["", "reference is empty"],
        ["Bad Ref:1", 'invalid repository path component "Bad Ref"'],
        ["Demo:1", 'must be lowercase: use "demo"'],
      ]
    ) {
      await assert.rejects(
        store.resolve(input!),
        (e: unknown) =>
          e instanceof InvalidReferenceError && e.message.includes(reason!),
        JSON.stringify(input),
      );
    }
  });
});

Deno.test("resolve() finds a manifest inside an untagged index by a digest prefix of four or more", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const f = await writeFiles(dir, { k: "kernel" });
    const r = await buildImage(store, [
      { arch: "amd64", layers: { kernel: f.k } },
      { arch: "arm64", layers: { uki: f.k } },
    ]);
    const arm = r.manifests[1]!.descriptor.digest;
    const hit = await store.resolve(digestHex(arm).slice(0, 10));
    assert.equal(hit.descriptor.digest, arm);
    assert.deepEqual(hit.descriptor.platform, {
      architecture: "arm64",
      os: "linux",
    });
    assert.equal((await store.resolve(arm)).descriptor.digest, arm);
  });
});

/** Builds tagged images until two index.json entries share a first hex digit. */
async function storeWithSharedPrefix(
  store: Store,
  dir: string,
): Promise<{ prefix: string; digests: Digest[] }> {
  for (let i = 0; i < 17; i++) {
    await buildDemo(store, dir, `img:${i}`, `kernel ${i}`);
    const byFirst = new Map<string, Set<Digest>>();
    for (const d of await tagIndexOf(store).entries()) {
      const first = digestHex(d.digest)[0]!;
      byFirst.set(first, (byFirst.get(first) ?? new Set()).add(d.digest));
    }
    for (const [prefix, set] of byFirst) {
      if (set.size > 1) return { prefix, digests: [...set].sort() };
    }
  }
  throw new Error(
    "17 builds (34 digests) cannot all differ in the first of 16 hex digits",
  );
}

Deno.test("resolve() throws AmbiguousReferenceError for a prefix two images share, and a longer one resolves", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const { prefix, digests } = await storeWithSharedPrefix(store, dir);
    for (const input of [prefix, `sha256:${prefix}`]) {
      await assert.rejects(store.resolve(input), (e: unknown) => {
        assert.ok(e instanceof AmbiguousReferenceError, `threw ${String(e)}`);
        assert.equal(e.reference, input);
        assert.deepEqual([...e.candidates].sort(), digests);
        assert.equal(
          e.message,
          `Digest prefix ${input} matches ${digests.length} images: use more characters of the digest`,
        );
        return true;
      });
    }
    // The shortest prefix that is unique resolves to its own digest.
    const all = (await tagIndexOf(store).entries()).map((d) =>
      digestHex(d.digest)
    );
    for (const hex of all) {
      let n = 1;
      while (all.some((o) => o !== hex && o.startsWith(hex.slice(0, n)))) n++;
      assert.equal(
        (await store.resolve(hex.slice(0, n))).descriptor.digest,
        `sha256:${hex}`,
      );
    }
  });
});

Deno.test("setTags() from 20 parallel calls in one process lands every tag", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const r = await buildDemo(store, dir, "demo:1");
    // A second Store object on the same directory competes as well.
    const other = await Store.open(`${dir}/store`);
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          tagIndexOf(i % 2 ? other : store).setTags([{
            reference: `docker.io/library/par:${i}`,
            descriptor: r.index,
          }]),
      ),
    );
    const refs = (await store.tags()).map((t) => t.reference).sort();
    assert.deepEqual(
      refs,
      [
        "docker.io/library/demo:1",
        "docker.io/library/demo:1-amd64",
        ...Array.from({ length: 20 }, (_, i) => `docker.io/library/par:${i}`),
      ].sort(),
    );
  });
});

Deno.test("tag from 8 parallel CLI processes lands every tag", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const r = await buildDemo(store, dir, "demo:1");
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        runCliProcess([
          "--store-path",
          `${dir}/store`,
          "tag",
          "demo:1",
          `ghcr.io/org/par:${i}`,
        ])),
    );
    for (const [i, res] of results.entries()) {
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, `Tagged ghcr.io/org/par:${i}\n`);
    }
    const tags = await store.tags();
    assert.equal(tags.length, 10);
    for (let i = 0; i < 8; i++) {
      const t = tags.find((t) => t.reference === `ghcr.io/org/par:${i}`);
      assert.equal(t?.descriptor.digest, r.index.digest, `par:${i}`);
    }
    assert.deepEqual([...Deno.readDirSync(`${dir}/store/.tmp`)], []);
  });
});

Deno.test("untag() of a tag that does not exist throws NotFoundError and keeps the other tags", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    await buildDemo(store, dir, "demo:1");
    await assert.rejects(
      store.untag("docker.io/library/demo:2"),
      (e: unknown) =>
        e instanceof NotFoundError &&
        e.reference === "docker.io/library/demo:2",
    );
    assert.equal((await store.tags()).length, 2);
    await store.untag("docker.io/library/demo:1");
    assert.deepEqual((await store.tags()).map((t) => t.reference), [
      "docker.io/library/demo:1-amd64",
    ]);
  });
});

Deno.test("findTag() prefers the exact text, then the normalised name, then another spelling of it", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const a = await buildDemo(store, dir, "a:1", "a");
    const b = await buildDemo(store, dir, "b:1", "b");
    const plain = (r: BuildImageResult) => {
      const { annotations: _a, ...d } = r.index;
      return d;
    };
    // Names as other tools store them: without a tag, or as typed.
    await tagIndexOf(store).update((index) => ({
      ...index,
      manifests: [
        ...index.manifests,
        ...[["docker.io/library/os", a], ["os:2", b]].map(([name, r]) => ({
          ...plain(r as BuildImageResult),
          annotations: {
            "org.opencontainers.image.ref.name": name as string,
          },
        })),
      ],
    }));
    const found = async (input: string) =>
      (await store.findTag(input))?.reference;
    assert.equal(await found("os"), "docker.io/library/os");
    assert.equal(await found("os:latest"), "docker.io/library/os");
    assert.equal(
      await found("docker.io/library/os:latest"),
      "docker.io/library/os",
    );
    assert.equal(await found("docker.io/library/os:2"), "os:2");
    assert.equal(await found("os:3"), undefined);
    assert.equal(await found("not a reference"), undefined);

    // The normalised name wins over another spelling.
    await tagIndexOf(store).setTags([{
      reference: "docker.io/library/os:latest",
      descriptor: plain(b),
    }]);
    assert.equal(await found("os"), "docker.io/library/os:latest");
    assert.ok(
      !(await store.tags()).some((t) => t.reference === "docker.io/library/os"),
      "the other spelling is replaced",
    );

    assert.equal(await store.untag("os:2"), "os:2");
    assert.equal(await found("os:2"), undefined);
  });
});

Deno.test("defaultStorePath() prefers IRONCORE_IMAGE_STORE, then HOME, and fails without either", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.equal(
    defaultStorePath(env({ IRONCORE_IMAGE_STORE: "/s", HOME: "/h" })),
    "/s",
  );
  assert.equal(
    defaultStorePath(env({ HOME: "/home/me/" })),
    "/home/me/.ironcore",
  );
  assert.equal(
    defaultStorePath(env({ USERPROFILE: "C:/Users/me" })),
    "C:/Users/me/.ironcore",
  );
  assert.throws(() => defaultStorePath(env({})), StoreError);
});

Deno.test("concurrent first writes to a new store create its layout once", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const index = tagIndexOf(store);
    const exclusive = index.exclusive.bind(index);
    let locked = 0;
    index.exclusive = (fn) => {
      locked++;
      return exclusive(fn);
    };
    const docs = ["a", "b", "c", "d"].map((s) => new TextEncoder().encode(s));
    await Promise.all(
      docs.map((d) => blobStoreOf(store).putBytes(d, "text/plain")),
    );
    assert.equal(locked, 1, "one creation under the lock");
    for (const d of docs) assert.ok(await store.hasBlob(digestOf(d)));
    assert.ok((await Deno.stat(`${dir}/store/oci-layout`)).isFile);
  });
});

Deno.test("an empty store path is refused: not the working directory, not /, not the default", async () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.throws(
    () => defaultStorePath(env({ IRONCORE_IMAGE_STORE: "", HOME: "/h" })),
    (e: unknown) =>
      e instanceof StoreError &&
      e.message ===
        "Store $IRONCORE_IMAGE_STORE is not usable: the variable is set but empty: set it to the store's directory, or unset it",
  );
  await assert.rejects(
    Store.open(""),
    new TypeError("Store path is empty: give the store's directory"),
  );
});
