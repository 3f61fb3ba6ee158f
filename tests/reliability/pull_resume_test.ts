import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { formatBytes } from "../../src/cli/_output.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { verifyStore } from "../../src/store/verify_store.ts";
import { pullImage } from "../../src/transfer/pull_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  blobFiles,
  hashFile,
  MIB,
  partialSize,
  spawnCli,
  storeTags,
  waitFor,
  withDeadline,
  writeRandomFile,
} from "./_common.ts";

const SIZE = 48 * MIB;
const SMALL = 14 * MIB;

function client(): RegistryClient {
  return new RegistryClient({ plainHttp: true, retryDelay: 1 });
}

/** The `N` of each `Range: bytes=N-` header, `0` for a request without one. */
function rangeStarts(proxy: FaultProxy, path: string): number[] {
  return proxy.find("GET", path).map((r) => {
    const range = r.headers.get("range");
    if (range === null) return 0;
    const m = /^bytes=(\d+)-$/.exec(range);
    assert.ok(m, `unexpected range header ${range}`);
    return Number(m[1]);
  });
}

/** A layer of the test image and where the faults hit it. */
interface Layer {
  name: string;
  digest: Digest;
  size: number;
  /** Cut points not on a 4 MiB boundary, where the writers flush. */
  cutAfter: number;
}

async function assertComplete(
  storePath: string,
  reference: string,
  layers: readonly Layer[],
): Promise<void> {
  const store = await Store.open(storePath);
  for (const { name, digest, size } of layers) {
    assert.ok(await store.hasBlob(digest, size), `${name} is in the store`);
    assert.equal(await hashFile(store.blobPath(digest)), digest);
    assert.equal(await partialSize(storePath, digest), 0, "no partial left");
  }
  assert.ok((await storeTags(storePath)).includes(reference));
  const verified = await verifyStore(store);
  assert.deepEqual(verified.problems, []);
}

Deno.test("pull resumes a large blob after drops, stalls and 503s", async (t) => {
  await using reg = await startRegistry();
  await using proxy = startFaultProxy({ upstream: reg.host });
  await withTempDir(async (dir) => {
    // A large rootfs, which pull hashes on a worker thread, and a smaller
    // initramfs, which it hashes inline: both writers get cut.
    const layers: Layer[] = [
      {
        name: "rootfs",
        digest: await writeRandomFile(`${dir}/rootfs`, SIZE),
        size: SIZE,
        cutAfter: SIZE / 4 + 12345,
      },
      {
        name: "initramfs",
        digest: await writeRandomFile(`${dir}/initramfs`, SMALL),
        size: SMALL,
        cutAfter: 5 * MIB + 777,
      },
    ];
    const [big] = layers as [Layer, Layer];
    const files = await writeFiles(dir, { vmlinuz: "kernel", cmd: "quiet" });
    const source = await Store.open(`${dir}/source`);
    await buildImage(source, [{
      arch: "amd64",
      layers: {
        kernel: files.vmlinuz,
        rootfs: `${dir}/rootfs`,
        initramfs: `${dir}/initramfs`,
      },
      cmdline: files.cmd,
    }], { tag: `${reg.host}/rel/big:1` });
    await pushImage(source, `${reg.host}/rel/big:1`, { client: client() });
    // The same repository through the proxy: the image's digests are the
    // same, and the local tag names the proxy.
    const ref = `${proxy.host}/rel/big:1`;
    const blobPath = (l: Layer) => `/blobs/${l.digest}`;
    const layerOf = (r: { method: string; pathname: string }) =>
      r.method === "GET"
        ? layers.find((l) => r.pathname.endsWith(blobPath(l)))
        : undefined;

    await t.step(
      "pullImage() within one run survives three cuts per blob and fetches each about once",
      async () => {
        proxy.reset();
        const cuts = new Map<Layer, number>();
        proxy.plan((r) => {
          const l = layerOf(r);
          if (!l) return undefined;
          cuts.set(l, (cuts.get(l) ?? 0) + 1);
          return cuts.get(l)! <= 3
            ? { kind: "cut-response", after: l.cutAfter }
            : undefined;
        });
        const store = await Store.open(`${dir}/one-run`);
        const result = await withDeadline(
          "pull",
          (signal) => pullImage(store, ref, { client: client(), signal }),
        );
        assert.equal(result.reference, ref);
        for (const l of layers) {
          const gets = proxy.find("GET", blobPath(l));
          assert.equal(gets.filter((r) => r.faulted).length, 3, l.name);
          const starts = rangeStarts(proxy, blobPath(l));
          assert.equal(starts.length, 4, l.name);
          assert.equal(starts[0], 0);
          for (let i = 1; i < starts.length; i++) {
            assert.ok(
              starts[i]! > starts[i - 1]!,
              `${l.name}: range ${i} moves forward (${starts})`,
            );
          }
          const total = proxy.responseBytes("GET", blobPath(l));
          assert.ok(
            total < 1.5 * l.size,
            `${l.name}: ${total} bytes for a ${l.size}-byte blob`,
          );
        }
        await assertComplete(`${dir}/one-run`, ref, layers);
      },
    );

    await t.step(
      "a pull killed with SIGKILL is continued by the next run with a range request",
      async () => {
        proxy.reset();
        proxy.plan((r, n) =>
          layerOf(r) === big && n === 0
            ? { kind: "stall", after: 20 * MIB }
            : undefined
        );
        const storePath = `${dir}/killed`;
        const child = spawnCli([
          "--store-path",
          storePath,
          "--plain-http",
          "pull",
          ref,
        ]);
        try {
          await waitFor(
            async () => await partialSize(storePath, big.digest) >= 16 * MIB,
            "16 MiB of partial download",
          );
        } finally {
          child.kill("SIGKILL");
          await child.status;
        }
        const kept = await partialSize(storePath, big.digest);
        assert.ok(kept >= 16 * MIB);
        // What the next run has to move: the blobs not complete yet, less
        // what their partial files hold.
        const killed = await Store.open(storePath);
        const manifest = await source.readManifest(
          (await source.resolve(`${reg.host}/rel/big:1-amd64`)).descriptor,
        );
        assert.equal(manifest.kind, "manifest");
        if (manifest.kind !== "manifest") return;
        let moved = 0;
        let bytes = 0;
        let present = 0;
        for (
          const d of [manifest.manifest.config, ...manifest.manifest.layers]
        ) {
          if (await killed.hasBlob(d.digest, d.size)) present++;
          else {
            moved++;
            bytes += d.size - await partialSize(storePath, d.digest);
          }
        }
        proxy.plan(undefined);
        const second = await runCliProcess([
          "--store-path",
          storePath,
          "--plain-http",
          "pull",
          ref,
        ]);
        assert.equal(second.code, 0, second.stderr);
        // The summary counts what this run moved.
        assert.match(
          second.stderr,
          new RegExp(
            `^Transferred ${moved} blob\\(s\\), ${
              formatBytes(bytes).replace(".", "\\.")
            } in \\S+${present ? `, ${present} already present` : ""}\n$`,
          ),
        );
        assert.deepEqual(rangeStarts(proxy, blobPath(big)), [0, kept]);
        const total = proxy.responseBytes("GET", blobPath(big));
        assert.ok(total < 1.5 * SIZE, `${total} bytes for a ${SIZE}-byte blob`);
        const verify = await runCliProcess([
          "--store-path",
          storePath,
          "verify",
        ]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, /no problems/);
        await assertComplete(storePath, ref, layers);
      },
    );

    await t.step(
      "a stalled body is abandoned after stallTimeout and resumed",
      async () => {
        proxy.reset();
        // The proxy would hold the stalled socket open for two minutes; the
        // pull must give up on it by itself long before.
        proxy.plan((r, n) => {
          const l = layerOf(r);
          return l && n === 0
            ? { kind: "stall", after: l.cutAfter, timeout: 120_000 }
            : undefined;
        });
        const store = await Store.open(`${dir}/stall`);
        await withDeadline(
          "pull with a stalled body",
          (signal) =>
            pullImage(store, ref, {
              client: client(),
              stallTimeout: 1000,
              signal,
            }),
        );
        for (const l of layers) {
          const gets = proxy.find("GET", blobPath(l));
          assert.equal(gets[0]?.faulted, true, `${l.name}: stalled`);
          const starts = rangeStarts(proxy, blobPath(l));
          assert.ok(starts.length >= 2);
          assert.ok(starts[1]! > 0, `${l.name}: the retry asked for a range`);
        }
        await assertComplete(`${dir}/stall`, ref, layers);
      },
    );

    await t.step(
      "503 and 429 answers are retried and the pull completes",
      async () => {
        proxy.reset();
        proxy.plan((r, n) => {
          if (r.method === "GET" && r.pathname.endsWith("/manifests/1")) {
            return n < 2 ? { kind: "status", status: 503 } : undefined;
          }
          if (layerOf(r) === big && n < 2) {
            return { kind: "status", status: n === 0 ? 429 : 503 };
          }
          return undefined;
        });
        const store = await Store.open(`${dir}/busy`);
        await withDeadline(
          "pull",
          (signal) => pullImage(store, ref, { client: client(), signal }),
        );
        const manifestGets = proxy.find("GET", /\/manifests\/1$/);
        assert.deepEqual(manifestGets.map((r) => r.status), [503, 503, 200]);
        assert.deepEqual(
          proxy.find("GET", blobPath(big)).map((r) => r.status),
          [429, 503, 200],
        );
        await assertComplete(`${dir}/busy`, ref, layers);
      },
    );

    await t.step(
      "pull --retries 0 against a persistent 503 fails once, clearly, and changes no tag",
      async () => {
        proxy.reset();
        proxy.plan((r) =>
          layerOf(r) === big ? { kind: "status", status: 503 } : undefined
        );
        const storePath = `${dir}/unavailable`;
        const small = await writeFiles(dir, { k2: "other kernel" });
        await buildImage(await Store.open(storePath), [{
          arch: "amd64",
          layers: { kernel: small.k2 },
        }], { tag: "local/other:1" });
        const before = await snapshotStore(storePath);
        const res = await runCliProcess([
          "--store-path",
          storePath,
          "--plain-http",
          "--retries",
          "0",
          "--quiet",
          "pull",
          ref,
        ]);
        assert.equal(res.code, 1, res.stderr);
        assert.equal(res.stdout, "");
        const lines = res.stderr.trim().split("\n");
        assert.equal(lines.length, 1, res.stderr);
        assert.match(lines[0]!, /^Error: .*503/);
        assert.equal(proxy.find("GET", blobPath(big)).length, 1, "no retry");
        const after = await snapshotStore(storePath);
        assert.equal(after["index.json"], before["index.json"]);
        assert.ok(!(await blobFiles(storePath)).has(big.digest));
        assert.deepEqual(await storeTags(storePath), [
          "docker.io/local/other:1",
          "docker.io/local/other:1-amd64",
        ]);
        const verify = await runCliProcess([
          "--store-path",
          storePath,
          "verify",
        ]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      },
    );
  });
});
