import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { type Digest, digestHex } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { startFaultProxy } from "../_helpers/fault_proxy.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { MIB, withDeadline, writeRandomFile } from "./_common.ts";

const SIZE = 24 * MIB;
const CHUNK = 4 * MIB;

/** Asserts, asking the registry directly, that it holds the blob. */
async function assertRegistryHas(
  reg: TestRegistry,
  repository: string,
  digest: Digest,
): Promise<void> {
  const url = `${reg.url}/v2/${repository}/blobs/${digest}`;
  const head = await fetch(url, { method: "HEAD" });
  await head.body?.cancel();
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(SIZE));
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(bytes.byteLength, SIZE);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  assert.equal(`sha256:${hex}`, digest);
}

Deno.test("push resumes an upload the connection dropped", async (t) => {
  await using reg = await startRegistry();
  await using proxy = startFaultProxy({ upstream: reg.host });
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const files = await writeFiles(dir, { vmlinuz: "kernel" });

    /** Builds an image with a fresh large layer under `repo:1` via the proxy. */
    async function image(
      repo: string,
    ): Promise<{ ref: string; layer: Digest }> {
      const path = `${dir}/${repo}.img`;
      const layer = await writeRandomFile(path, SIZE);
      const ref = `${proxy.host}/rel/${repo}:1`;
      await buildImage(store, [{
        arch: "amd64",
        layers: { kernel: files.vmlinuz, disk: path },
      }], { tag: ref });
      return { ref, layer };
    }

    /**
     * Pushes `repo:1` in 4 MiB chunks with the PATCH of the layer's second
     * chunk cut after `after` body bytes; returns the records of the cut
     * PATCH and of the requests after it.
     */
    async function pushCutting(repo: string, after: number, hold = false) {
      const { ref, layer } = await image(repo);
      proxy.reset();
      let planned = false;
      // Only the large layer has a second chunk (the kernel and the config
      // may be mounted from the repositories of the earlier steps).
      proxy.plan((r) => {
        if (
          planned || r.method !== "PATCH" || !r.path.includes(`/${repo}/`) ||
          r.headers.get("content-range") !== `${CHUNK}-${2 * CHUNK - 1}`
        ) {
          return undefined;
        }
        planned = true;
        return { kind: "cut-request", after, hold };
      });
      const client = new RegistryClient({
        plainHttp: true,
        retryDelay: 1,
        forceChunked: true,
        chunkSize: CHUNK,
        releaseSentChunks: true,
      });
      await withDeadline(
        "push",
        (signal) =>
          pushImage(store, ref, { client: client, concurrency: 1, signal }),
      );
      const cut = proxy.records.filter((r) => r.faulted);
      assert.equal(cut.length, 1, "one PATCH was cut");
      assert.equal(cut[0]!.method, "PATCH");
      assert.equal(
        cut[0]!.headers.get("content-range"),
        `${CHUNK}-${2 * CHUNK - 1}`,
      );
      const later = proxy.records.filter((r) => r.id > cut[0]!.id);
      // The upload finished: the final PUT names the digest.
      assert.ok(
        later.some((r) =>
          r.method === "PUT" && r.path.includes(digestHex(layer)) &&
          r.status === 201
        ),
        "the final PUT succeeded",
      );
      await assertRegistryHas(reg, `rel/${repo}`, layer);
      return { cut: cut[0]!, later };
    }

    await t.step(
      "a PATCH cut before its body continues the same upload from the registry's Range",
      async () => {
        const { cut, later } = await pushCutting("resumed", 0);
        // The client asked where the upload stood and went on from there, in
        // the same session, without sending the first chunk again.
        const status = later.find((r) => r.method === "GET");
        assert.ok(status, "the upload's status was asked for");
        assert.ok(status.status === 204 || status.status === 202);
        const next = later.filter((r) =>
          r.method === "PATCH" && r.pathname === cut.pathname
        );
        assert.equal(
          next[0]?.headers.get("content-range"),
          cut.headers.get("content-range"),
        );
        assert.equal(next[0]?.pathname, cut.pathname, "same upload session");
        assert.ok(
          !later.some((r) => r.method === "POST" && r.id < next[0]!.id),
        );
        const ranges = next.map((r) => r.headers.get("content-range"));
        assert.equal(ranges.length, SIZE / CHUNK - 1);
        assert.ok(!ranges.includes(`0-${CHUNK - 1}`));
      },
    );

    await t.step(
      "a PATCH cut midway still completes the upload",
      async () => {
        const { later } = await pushCutting("midway", CHUNK / 2);
        // distribution 2.8 keeps the cut PATCH's bytes but then refuses the
        // session's stale offset, so the client starts a new session: the
        // push completes either way.
        assert.ok(later.some((r) => r.method === "PATCH" && r.status === 202));
        const sent = proxy.find("PATCH", "/rel/midway/").reduce(
          (n, r) => n + r.requestBytes,
          0,
        );
        assert.ok(sent < 2 * SIZE, `${sent} bytes sent for ${SIZE}`);
      },
    );

    await t.step(
      "a PATCH cut while the registry still writes its bytes completes, in the same session or a new one",
      async () => {
        // The registry says where the upload stands before it has taken the
        // bytes of the broken PATCH, then takes them: the session is no
        // longer where it said. distribution 2.8 drops the session when the
        // client goes on (404 BLOB_UPLOAD_INVALID, or a reset while the
        // chunk is still being sent); distribution 3 may keep it and refuse
        // the stale offset (416).
        const { later } = await pushCutting("late", CHUNK / 2, true);
        const patches = later.filter((r) => r.method === "PATCH");
        const sessions = new Set(patches.map((r) => r.pathname));
        if (sessions.size < 2) {
          // Same session: the stale PATCH failed, the client asked again and
          // went on from where the registry now stands, past the cut chunk's
          // start, without sending the first chunk again.
          const refused = patches.findIndex((r) => r.status !== 202);
          assert.ok(refused >= 0, "the PATCH at the stale offset failed");
          const resumed = patches[refused + 1];
          assert.ok(resumed, "the upload went on after the stale PATCH");
          const start = Number(
            resumed.headers.get("content-range")?.split("-")[0],
          );
          assert.ok(start > CHUNK, `resumed at ${start}, past ${CHUNK}`);
          assert.ok(
            later.some((r) =>
              r.method === "GET" && r.id > patches[refused]!.id &&
              r.id < resumed.id
            ),
            "the upload's status was asked for again",
          );
        }
        const sent = proxy.find("PATCH", "/rel/late/").reduce(
          (n, r) => n + r.requestBytes,
          0,
        );
        assert.ok(sent < 2 * SIZE, `${sent} bytes sent for ${SIZE}`);
      },
    );

    await t.step(
      "a monolithic PUT that is cut falls back to chunks and completes",
      async () => {
        const { ref, layer } = await image("monolithic");
        proxy.reset();
        let cut = false;
        proxy.plan((r) => {
          if (
            !cut && r.method === "PUT" &&
            r.path.includes(digestHex(layer))
          ) {
            cut = true;
            return { kind: "cut-request", after: 5 * MIB };
          }
          return undefined;
        });
        const client = new RegistryClient({
          plainHttp: true,
          retryDelay: 1,
          chunkSize: CHUNK,
          releaseSentChunks: true,
        });
        await withDeadline(
          "push",
          (signal) => pushImage(store, ref, { client: client, signal }),
        );
        const puts = proxy.find("PUT", digestHex(layer));
        assert.equal(puts[0]?.faulted, true, "the first PUT was cut");
        const patches = proxy.find("PATCH", "/blobs/uploads/");
        assert.ok(patches.length >= SIZE / CHUNK, "the fallback sent chunks");
        assert.ok(patches.every((r) => r.id > puts[0]!.id));
        assert.equal(puts.at(-1)?.status, 201);
        await assertRegistryHas(reg, "rel/monolithic", layer);
      },
    );
  });
});
