import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { CLI_PATH, runCliProcess } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** Reads a child's stderr into a string as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): {
  text: () => string;
  done: Promise<void>;
} {
  let text = "";
  const decoder = new TextDecoder();
  const done = stream.pipeTo(
    new WritableStream({
      write(chunk) {
        text += decoder.decode(chunk, { stream: true });
      },
    }),
  );
  return { text: () => text, done };
}

async function waitFor(
  what: string,
  check: () => string | undefined,
): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const hit = check();
    if (hit !== undefined) return hit;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("ironcore-image serve streams layers and finishes downloads in flight on SIGTERM", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const rootfs = randomBytes(24 * 1024 * 1024);
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(100_000),
      rootfs,
    });
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/cli/os:1.0`;
    await buildImage(source, [{
      arch: "amd64",
      layers: { kernel: files.vmlinuz, rootfs: files.rootfs },
    }], { tag: ref });
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });

    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        CLI_PATH,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--plain-http",
        "--cache",
        "--store-path",
        `${dir}/cache`,
        "--platform",
        "linux/amd64",
      ],
      env: { DOCKER_CONFIG: dir, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = collect(child.stderr);
    const stdout = collect(child.stdout);
    try {
      const base = await waitFor(
        "the listening address",
        () =>
          /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr.text())?.[1],
      );
      const health = await fetch(`${base}/healthz`);
      assert.equal(await health.text(), "ok\n");
      const kernel = await fetch(
        `${base}/v1/images/${encodeURIComponent(ref)}/kernel`,
      );
      assert.equal(kernel.status, 200);
      const kernelBytes = new Uint8Array(await kernel.arrayBuffer());
      assert.equal(
        digestOf(kernelBytes),
        digestOf(await Deno.readFile(files.vmlinuz)),
      );

      // A download in flight when SIGTERM arrives runs to its end.
      const res = await fetch(`${base}/v1/images/${ref}/rootfs`);
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const first = await reader.read();
      assert.ok(first.value);
      child.kill("SIGTERM");
      let received = first.value.byteLength;
      const body = new Uint8Array(rootfs.byteLength);
      body.set(first.value, 0);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        body.set(value, received);
        received += value.byteLength;
      }
      assert.equal(received, rootfs.byteLength);
      assert.equal(digestOf(body), digestOf(rootfs));

      const status = await child.status;
      await Promise.all([stderr.done, stdout.done]);
      assert.equal(status.code, 0, stderr.text());
      const log = stderr.text();
      assert.match(log, /GET \/healthz 200 3 /);
      assert.match(log, new RegExp(`GET /v1/images/\\S+/kernel 200 100000 `));
      assert.match(log, /Stopped/);
      assert.equal(stdout.text(), "");
      // The cache holds the verified blobs.
      const cached = await Deno.readFile(
        `${dir}/cache/blobs/sha256/${digestHex(digestOf(rootfs))}`,
      );
      assert.equal(cached.byteLength, rootfs.byteLength);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await Promise.allSettled([stderr.done, stdout.done]);
    }
  });
});

Deno.test("ironcore-image serve rejects a listen address without a host", async () => {
  await withTempDir(async (dir) => {
    const { code, stderr } = await runCliProcess([
      "serve",
      "--listen",
      ":8080",
      "--store-path",
      `${dir}/store`,
    ]);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /--listen needs a host in ":8080": write 127\.0\.0\.1:8080/,
    );
    const bad = await runCliProcess([
      "serve",
      "--resolve-interval",
      "soon",
      "--store-path",
      `${dir}/store`,
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--resolve-interval takes a duration/);
  });
});
