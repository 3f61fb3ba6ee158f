import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { NotFoundError } from "../../src/errors.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { PullCache, type PullEvent } from "../../src/transfer/pull_cache.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

function countingClient(): {
  client: RegistryClient;
  manifestGets: () => number;
} {
  let gets = 0;
  const client = new RegistryClient({
    plainHttp: true,
    retries: 0,
    fetch: (input, init) => {
      const url = new URL(String(input));
      if (
        (init?.method ?? "GET") === "GET" &&
        url.pathname.includes("/manifests/")
      ) gets++;
      return fetch(input, init);
    },
  });
  return { client, manifestGets: () => gets };
}

Deno.test("PullCache shares one pull between concurrent callers and reports its states", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, {
      vmlinuz: crypto.getRandomValues(new Uint8Array(8192)),
    });
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/cache/os:1.0`;
    await buildImage(
      source,
      [{ arch: "amd64", layers: { kernel: files.vmlinuz } }],
      { tag: ref },
    );
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });

    const { client, manifestGets } = countingClient();
    const store = await Store.open(`${dir}/store`);
    const cache = new PullCache(store, { client: client });
    const events: PullEvent[] = [];
    const unsubscribe = cache.subscribe((e) => events.push(e));
    const results = await Promise.all(
      Array.from({ length: 5 }, () => cache.pull(ref)),
    );
    unsubscribe();

    assert.equal(
      new Set(results).size,
      1,
      "every caller gets the same result object",
    );
    // One pull: the index and its one manifest.
    assert.equal(manifestGets(), 2);
    assert.deepEqual(events.map((e) => e.state.state), ["pulling", "ready"]);
    assert.equal(cache.state(ref)?.state, "ready");
    assert.ok((await store.tags()).some((t) => t.reference === ref));
  });
});

Deno.test("PullCache retries a failed pull with backoff and then reports the failure", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const { client, manifestGets } = countingClient();
    const cache = new PullCache(await Store.open(`${dir}/store`), {
      client: client,
      attempts: 3,
      retryDelay: 10,
    });
    const ref = `${reg.host}/cache/missing:1`;
    await assert.rejects(cache.pull(ref), NotFoundError);
    assert.equal(manifestGets(), 3, "one manifest request per attempt");
    const state = cache.state(ref);
    assert.equal(state?.state, "failed");
    assert.equal(state?.state === "failed" ? state.attempts : 0, 3);
  });
});

Deno.test("PullCache lets one caller give up without cancelling the shared pull", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, {
      k: crypto.getRandomValues(new Uint8Array(4096)),
    });
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/cache/abort:1`;
    await buildImage(source, [{ arch: "amd64", layers: { kernel: files.k } }], {
      tag: ref,
    });
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });
    const cache = new PullCache(await Store.open(`${dir}/store`), {
      client: new RegistryClient({ plainHttp: true }),
    });
    const controller = new AbortController();
    const quitter = cache.pull(ref, { signal: controller.signal });
    const stayer = cache.pull(ref);
    controller.abort(new Error("gave up"));
    await assert.rejects(quitter, /gave up/);
    const result = await stayer;
    assert.equal(result.reference, ref);
  });
});
