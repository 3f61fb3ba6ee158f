/**
 * Cross-repository mounts: the store notes where its blobs were seen, and a
 * push or copy into another repository of the same registry links them
 * from there instead of uploading them, falling back to an upload when the
 * registry declines.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { copyImage } from "../../src/transfer/copy_image.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

const client = new RegistryClient({ plainHttp: true, retryDelay: 1 });

/** Request-body bytes sent to upload sessions (PUT and PATCH). */
function uploadedBytes(proxy: FaultProxy): number {
  return proxy.records
    .filter((r) =>
      (r.method === "PUT" || r.method === "PATCH") &&
      r.pathname.includes("/blobs/uploads/")
    )
    .reduce((n, r) => n + r.requestBytes, 0);
}

/** Mount requests sent: `POST …/blobs/uploads/?mount=…`. */
function mountRequests(proxy: FaultProxy): number {
  return proxy.find("POST", /\/blobs\/uploads\/\?.*mount=/).length;
}

/** What the tests get: a store whose image was pushed to `first`. */
interface Pushed {
  dir: string;
  proxy: FaultProxy;
  store: Store;
  first: string;
}

/**
 * Runs a test against a registry behind a counting proxy, with an image
 * built and pushed to `os/first:1.0`; the proxy's records start after it.
 */
async function withPushedImage(fn: (p: Pushed) => Promise<void>) {
  await using reg = await startRegistry();
  await using proxy = startFaultProxy({ upstream: reg.host });
  await withTempDir(async (dir) => {
    const first = `${proxy.host}/os/first:1.0`;
    const store = await imageStore(dir, first);
    const pushed = await pushImage(store, first, { client });
    assert.equal(pushed.uploaded, 3, "config, kernel and initramfs");
    assert.ok(uploadedBytes(proxy) > 384 * 1024);
    proxy.reset();
    await fn({ dir, proxy, store, first });
  });
}

/** Tags the image of `from` as `to` and pushes it. */
async function pushAs(store: Store, from: string, to: string) {
  await store.tag(from, to);
  return await pushImage(store, to, { client });
}

/** Pulls an image into a fresh store: the registry serves all of it. */
async function assertServed(dir: string, reference: string) {
  const store = await Store.open(`${dir}/check-${crypto.randomUUID()}`);
  assert.equal((await pullImage(store, reference, { client })).downloaded, 3);
}

/** A store with a two-layer image tagged for `reference`. */
async function imageStore(dir: string, reference: string): Promise<Store> {
  const files = await writeFiles(dir, {
    vmlinuz: randomBytes(256 * 1024),
    initrd: randomBytes(128 * 1024),
  });
  const store = await Store.open(`${dir}/store`);
  await buildImage(store, [{
    arch: "amd64",
    layers: { kernel: files.vmlinuz, initramfs: files.initrd },
  }], { tag: reference });
  return store;
}

Deno.test("pushImage() mounts blobs it pushed before into a new repository of the registry", async () => {
  await withPushedImage(async ({ dir, proxy, store, first }) => {
    const second = `${proxy.host}/os/second:1.0`;
    const result = await pushAs(store, first, second);
    assert.equal(result.mounted, 3, "config, kernel and initramfs");
    assert.equal(result.uploaded, 0);
    assert.equal(uploadedBytes(proxy), 0, "no blob bytes went up");
    assert.equal(mountRequests(proxy), 3);
    await assertServed(dir, second);
  });
});

Deno.test("pushImage() mounts blobs the store pulled from another repository", async () => {
  await withPushedImage(async ({ dir, proxy, first }) => {
    const store = await Store.open(`${dir}/pulled`);
    await pullImage(store, first, { client });
    proxy.reset();
    const result = await pushAs(store, first, `${proxy.host}/mirror/os:1.0`);
    assert.equal(result.mounted, 3);
    assert.equal(uploadedBytes(proxy), 0);
  });
});

Deno.test("pushImage() uploads when the registry refuses mounts (404 or 405)", async () => {
  await withPushedImage(async ({ dir, proxy, store, first }) => {
    for (const status of [404, 405]) {
      proxy.reset();
      proxy.plan((req) =>
        req.method === "POST" && req.path.includes("mount=")
          ? { kind: "status", status }
          : undefined
      );
      const target = `${proxy.host}/os/refused-${status}:1.0`;
      const result = await pushAs(store, first, target);
      assert.equal(mountRequests(proxy), 3, `mounts tried (${status})`);
      assert.equal(result.mounted, 0);
      assert.equal(result.uploaded, 3);
      assert.ok(uploadedBytes(proxy) > 384 * 1024);
      proxy.plan(undefined);
      await assertServed(dir, target);
    }
  });
});

Deno.test("pushImage() goes on in the upload session a declined mount opened", async () => {
  await withPushedImage(async ({ dir, proxy, store, first }) => {
    // The store believes the blobs are in a repository that never had them:
    // the registry answers the mount with a fresh upload session (202).
    const path = `${dir}/store/.sources.json`;
    const sources = JSON.parse(await Deno.readTextFile(path));
    for (const rows of Object.values(sources.sources) as string[][][]) {
      for (const row of rows) row[1] = "os/never-pushed";
    }
    await Deno.writeTextFile(path, JSON.stringify(sources));
    const target = `${proxy.host}/os/target:1.0`;
    const result = await pushAs(store, first, target);
    assert.equal(result.mounted, 0);
    assert.equal(result.uploaded, 3);
    // One POST per blob: the mount, whose session carried the upload.
    assert.equal(mountRequests(proxy), 3);
    assert.equal(proxy.find("POST", "/blobs/uploads/").length, 3);
    assert.equal(proxy.find("DELETE", "/blobs/uploads/").length, 0);
    await assertServed(dir, target);
  });
});

Deno.test("copyImage() from a store mounts what the store saw in the destination registry", async () => {
  await withPushedImage(async ({ proxy, store, first }) => {
    const result = await copyImage(
      { store, reference: first },
      `${proxy.host}/os/copied:1.0`,
      { client },
    );
    assert.equal(result.mounted, 3);
    assert.equal(result.copied, 0);
    assert.equal(uploadedBytes(proxy), 0);
  });
});

Deno.test("copyImage() into a store notes the source, for a later push to mount from", async () => {
  await withPushedImage(async ({ dir, proxy, first }) => {
    const store = await Store.open(`${dir}/copied`);
    await copyImage(first, { store, reference: "os:local" }, { client });
    proxy.reset();
    const result = await pushAs(
      store,
      "os:local",
      `${proxy.host}/os/again:1.0`,
    );
    assert.equal(result.mounted, 3);
    assert.equal(uploadedBytes(proxy), 0);
  });
});

Deno.test("pushImage() mounts from another tag of the image in that registry when the store noted no source", async () => {
  await withPushedImage(async ({ dir, proxy, store, first }) => {
    // A store the first push could not write to (read-only, as `push`
    // needs no write access) noted nothing: its tags are the hint.
    await Deno.remove(`${dir}/store/.sources.json`);
    const second = `${proxy.host}/team/os:1.0`;
    const result = await pushAs(store, first, second);
    assert.equal(result.mounted, 3, "config, kernel and initramfs");
    assert.equal(result.uploaded, 0);
    assert.equal(uploadedBytes(proxy), 0, "no blob bytes went up");
    await assertServed(dir, second);
  });
});

Deno.test("copyImage() from a store mounts from another tag of the image in the destination registry", async () => {
  await withPushedImage(async ({ dir, proxy, store, first }) => {
    await Deno.remove(`${dir}/store/.sources.json`);
    const result = await copyImage(
      { store, reference: first },
      `${proxy.host}/team/copied:1.0`,
      { client },
    );
    assert.equal(result.mounted, 3);
    assert.equal(result.copied, 0);
    assert.equal(uploadedBytes(proxy), 0);
  });
});
