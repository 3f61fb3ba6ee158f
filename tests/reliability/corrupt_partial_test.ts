import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { createBootHandler } from "../../src/serve/boot_handler.ts";
import { Store } from "../../src/store/store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobFiles,
  MIB,
  partialSize,
  waitFor,
  writeRandomFile,
} from "./_common.ts";

/**
 * Writes the first `length` bytes of a blob as the store's partial download
 * of it, with one byte flipped: what a disk that damaged a partial file
 * between two runs leaves.
 */
async function damagedPartial(
  store: string,
  blob: Uint8Array,
  length: number,
): Promise<void> {
  const bytes = blob.slice(0, length);
  bytes[length >> 1]! ^= 0xff;
  await Deno.mkdir(`${store}/.tmp`, { recursive: true });
  await Deno.writeFile(
    `${store}/.tmp/partial-${digestHex(digestOf(blob))}`,
    bytes,
  );
}

/** The start of each range request for a path, 0 for a request without one. */
function rangeStarts(proxy: FaultProxy, path: string): number[] {
  return proxy.find("GET", path).map((r) =>
    Number(/^bytes=(\d+)-/.exec(r.headers.get("range") ?? "")?.[1] ?? 0)
  );
}

Deno.test("a partial download damaged on disk is fetched again from its start", async (t) => {
  await using reg = await startRegistry();
  await using proxy = startFaultProxy({ upstream: reg.host });
  await withTempDir(async (dir) => {
    const rootfsPath = `${dir}/rootfs`;
    const digest = await writeRandomFile(rootfsPath, 6 * MIB);
    const rootfs = await Deno.readFile(rootfsPath);
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/os/demo:1`;
    await buildImage(source, [{
      arch: "amd64",
      layers: { rootfs: rootfsPath },
    }], { tag: ref });
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });
    const blobPath = `/blobs/${digest}`;

    await t.step("pull", async () => {
      const store = `${dir}/pull`;
      await damagedPartial(store, rootfs, 4 * MIB);
      proxy.reset();
      await pullImage(await Store.open(store), `${proxy.host}/os/demo:1`, {
        client: new RegistryClient({ plainHttp: true, retryDelay: 1 }),
        retries: 0,
      });
      assert.ok((await blobFiles(store)).has(digest));
      assert.equal(await partialSize(store, digest), 0);
      // Resumed from the damaged bytes, then the whole blob once.
      assert.deepEqual(rangeStarts(proxy, blobPath), [4 * MIB, 0]);
    });

    await t.step("the boot server's cache", async () => {
      const store = `${dir}/serve`;
      await damagedPartial(store, rootfs, 4 * MIB);
      proxy.reset();
      const handler = createBootHandler({
        client: new RegistryClient({ plainHttp: true, retryDelay: 1 }),
        store: await Store.open(store),
        cache: true,
        retries: 0,
      });
      const url = `http://boot/v1/images/${
        encodeURIComponent(`${proxy.host}/os/demo:1`)
      }/rootfs?platform=linux/amd64`;
      try {
        // The first client got the damaged bytes as they were read: its
        // transfer breaks instead of ending as a wrong file.
        const first = await handler(new Request(url));
        assert.equal(first.status, 200);
        await assert.rejects(first.arrayBuffer(), /started over/);
        await waitFor(
          async () => (await blobFiles(store)).has(digest),
          "the fill to end",
        );
        // The fill fetched the blob again and verified it.
        const second = await handler(new Request(url));
        const body = new Uint8Array(await second.arrayBuffer());
        assert.equal(digestOf(body), digest);
      } finally {
        await handler.close();
      }
      assert.ok((await blobFiles(store)).has(digest));
      assert.deepEqual(rangeStarts(proxy, blobPath), [4 * MIB, 0]);
    });
  });
});
