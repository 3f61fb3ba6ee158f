import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import { MAX_SOURCES, SOURCES_FILE } from "../../src/store/_blob_sources.ts";
import { blobSourcesOf } from "../../src/store/_internal.ts";
import { Store } from "../../src/store/store.ts";
import { withTempDir } from "../_helpers/temp.ts";

const REGISTRY = "registry.example.com";

Deno.test("blob sources: found by registry, newest first, and kept across stores", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(dir);
    const d = digestOf("kernel");
    await blobSourcesOf(store).record([
      { digest: d, registry: REGISTRY, repository: "os/a" },
      { digest: d, registry: "other.example.com", repository: "os/b" },
    ]);
    await new Promise((r) => setTimeout(r, 5));
    await blobSourcesOf(store).record([
      { digest: d, registry: REGISTRY, repository: "os/c" },
    ]);
    const again = await Store.open(dir);
    const found = await blobSourcesOf(again).find([d, digestOf("x")], REGISTRY);
    assert.deepEqual([...found], [[d, ["os/c", "os/a"]]]);
  });
});

Deno.test("blob sources: the file stays bounded, dropping the oldest", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(dir);
    const sources = blobSourcesOf(store);
    const digests = Array.from(
      { length: MAX_SOURCES + 100 },
      (_, i) => digestOf(`blob ${i}`),
    );
    // Two batches, so the first is older.
    await sources.record(
      digests.slice(0, 200).map((digest) => ({
        digest,
        registry: REGISTRY,
        repository: "os/old",
      })),
    );
    await new Promise((r) => setTimeout(r, 5));
    await sources.record(
      digests.slice(200).map((digest) => ({
        digest,
        registry: REGISTRY,
        repository: "os/new",
      })),
    );
    const found = await sources.find(digests, REGISTRY);
    assert.equal(found.size, MAX_SOURCES);
    const old = [...found.values()].filter((r) => r[0] === "os/old");
    assert.equal(old.length, 100, "100 of the older batch went");
    for (const d of digests.slice(200)) {
      assert.deepEqual(found.get(d), ["os/new"]);
    }
    const st = await Deno.stat(`${dir}/${SOURCES_FILE}`);
    assert.ok(st.size < 1024 * 1024, `${st.size} bytes`);
  });
});

Deno.test("blob sources: a damaged file reads as empty and is replaced by the next write", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(dir);
    const d = digestOf("kernel");
    await blobSourcesOf(store).record([
      { digest: d, registry: REGISTRY, repository: "os/a" },
    ]);
    const path = `${dir}/${SOURCES_FILE}`;
    for (
      const text of [
        "{not json",
        '{"version":2,"sources":{}}',
        // Rows that would put other text into a mount URL are dropped.
        JSON.stringify({
          version: 1,
          sources: { [d]: [[REGISTRY, "os/a?x=1&from=evil", 1]] },
        }),
      ]
    ) {
      await Deno.writeTextFile(path, text);
      assert.equal((await blobSourcesOf(store).find([d], REGISTRY)).size, 0);
    }
    await blobSourcesOf(store).record([
      { digest: d, registry: REGISTRY, repository: "os/b" },
    ]);
    assert.deepEqual(
      (await blobSourcesOf(store).find([d], REGISTRY)).get(d),
      ["os/b"],
    );
    // The store is still an OCI layout its own checks accept.
    await Store.open(dir);
  });
});

Deno.test("blob sources: concurrent writers from separate store objects lose nothing", async () => {
  await withTempDir(async (dir) => {
    const stores = await Promise.all(
      Array.from({ length: 6 }, () => Store.open(dir)),
    );
    const digests = stores.map((_, i) => digestOf(`blob ${i}`));
    await Promise.all(stores.map((store, i) =>
      blobSourcesOf(store).record([
        { digest: digests[i]!, registry: REGISTRY, repository: `os/${i}` },
      ])
    ));
    const found = await blobSourcesOf(stores[0]!).find(digests, REGISTRY);
    assert.equal(found.size, digests.length);
    // Nothing was left in the temporary directory.
    const left = [];
    for await (const e of Deno.readDir(`${dir}/.tmp`)) left.push(e.name);
    assert.deepEqual(left, []);
  });
});

Deno.test("a directory holding only the store's own files opens as a new store", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/${SOURCES_FILE}`, "{}");
    const store = await Store.open(dir);
    assert.deepEqual(await store.tags(), []);
  });
});
