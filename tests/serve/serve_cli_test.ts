import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { startTrap } from "../_helpers/trap.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  collect,
  listeningAt,
  reap,
  spawnServe,
  waitForValue,
} from "../_helpers/serve.ts";

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

    const child = spawnServe(dir, ["--cache", "--platform", "linux/amd64"]);
    const stderr = collect(child.stderr);
    const stdout = collect(child.stdout);
    try {
      const base = await listeningAt(stderr);
      // On loopback without --allow-registry, any registry is served.
      assert.match(stderr.text(), /; serving every registry\)\n/);
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
      await reap(child, stderr, stdout);
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

Deno.test("ironcore-image serve needs --allow-registry to listen beyond loopback", async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    // Addresses no interface has and a name that never resolves: even a
    // server that skipped the check could not end up listening beyond
    // loopback. With the check, they are refused before any attempt.
    for (const listen of ["192.0.2.1:0", "[2001:db8::1]:0", "boot.invalid:0"]) {
      const { code, stdout, stderr } = await runCliProcess([
        "serve",
        "--listen",
        listen,
        "--store-path",
        store,
      ]);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.match(
        stderr,
        /^Error: Listening on \S+, not a loopback address, needs --allow-registry: name the registries or repository prefixes to serve, e\.g\. --allow-registry ghcr\.io\/org\n$/,
      );
    }
    const bad = await runCliProcess([
      "serve",
      "--allow-registry",
      "ghcr.io,ubuntu",
      "--store-path",
      store,
    ]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /^Error: Invalid allow-list entry "ubuntu": it names no registry: .* \(in --allow-registry\)\n$/,
    );
    assert.deepEqual(await snapshotStore(store), {});
  });
});

Deno.test("ironcore-image serve --allow-registry answers 403 for other registries without connecting to them", async () => {
  await using reg = await startRegistry();
  await using trap = startTrap();
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, { vmlinuz: randomBytes(10_000) });
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/cli/os:1.0`;
    await buildImage(
      source,
      [{ arch: "amd64", layers: { kernel: files.vmlinuz } }],
      {
        tag: ref,
      },
    );
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });

    const child = spawnServe(dir, [
      "--allow-registry",
      `${reg.host}/cli,ghcr.io`,
      "--allow-registry",
      "registry.example.com:5000/os/",
    ]);
    const stderr = collect(child.stderr);
    const stdout = collect(child.stdout);
    try {
      const base = await listeningAt(stderr);
      assert.match(
        stderr.text(),
        new RegExp(
          `serving only ${reg.host}/cli, ghcr\\.io, registry\\.example\\.com:5000/os/\\)`,
        ),
      );
      const kernel = await fetch(`${base}/v1/images/${ref}/kernel`);
      assert.equal(kernel.status, 200);
      assert.equal(
        digestOf(new Uint8Array(await kernel.arrayBuffer())),
        digestOf(await Deno.readFile(files.vmlinuz)),
      );
      const refused = await fetch(
        `${base}/v1/images/${trap.host}/cli/os:1.0/kernel`,
      );
      assert.equal(refused.status, 403);
      assert.equal(
        await refused.text(),
        `Image ${trap.host}/cli/os:1.0 is not served here: this server serves only images under ${reg.host}/cli/, ghcr.io, registry.example.com:5000/os/\n`,
      );
      assert.equal(trap.connections(), 0);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await Promise.all([stderr.done, stdout.done]);
    }
  });
});

Deno.test("ironcore-image serve logs each request on one line, whatever the path decodes to", async () => {
  await withTempDir(async (dir) => {
    const child = spawnServe(dir);
    const stderr = collect(child.stderr);
    const stdout = collect(child.stdout);
    try {
      const base = await listeningAt(stderr);
      // Decoded, the reference holds a newline and what looks like a
      // log line of its own; it is refused as malformed.
      const forged =
        "a%0A2000-01-01T00:00:00.000Z 10.0.0.1 GET /v1/images/x/kernel 200 1 1ms";
      const res = await fetch(`${base}/v1/images/${forged}/kernel`);
      assert.equal(res.status, 400);
      await res.body?.cancel();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await Promise.all([stderr.done, stdout.done]);
    }
    const lines = stderr.text().trimEnd().split("\n");
    assert.match(lines[0]!, /^Listening on /);
    assert.equal(lines.at(-1), "Stopped");
    const requests = lines.slice(1, -1);
    assert.equal(requests.length, 1, stderr.text());
    assert.match(
      requests[0]!,
      /^\S+Z 127\.0\.0\.1:\d+ GET \/v1\/images\/a%0A\S+ 400 \d+ \d+ms \(Invalid reference "a\\u000a2000-01-01T.*\)$/,
    );
  });
});

Deno.test("ironcore-image serve answers 403 in its own words for a registry outside its net permission", async () => {
  await using trap = startTrap();
  const port = trap.host.split(":")[1];
  await withTempDir(async (dir) => {
    // Net access to 127.0.0.1 only: localhost is another host to Deno.
    const child = spawnServe(dir, [], {
      permissions: [
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-net=127.0.0.1",
      ],
    });
    const stderr = collect(child.stderr);
    const stdout = collect(child.stdout);
    try {
      const base = await listeningAt(stderr);
      const ref = `localhost:${port}/os/demo:1`;
      const res = await fetch(
        `${base}/v1/images/${encodeURIComponent(ref)}/kernel`,
      );
      const line =
        `This server may not connect to localhost:${port}: add that host to the --allow-net flag it runs with`;
      assert.equal(res.status, 403);
      assert.equal(await res.text(), `${line}\n`);
      await waitForValue(
        "the log line",
        () => stderr.text().includes(" 403 ") ? "" : undefined,
      );
      assert.match(
        stderr.text(),
        new RegExp(
          `GET /v1/images/\\S+/kernel 403 \\d+ \\d+ms \\(${
            line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
          }\\)\n`,
        ),
      );
      assert.equal(trap.connections(), 0);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await Promise.allSettled([stderr.done, stdout.done]);
    }
  });
});

Deno.test("ironcore-image serve --http-server direct and deno serve stored blobs without hashing them again", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const kernel = randomBytes(2 * 1024 * 1024 + 1);
    const files = await writeFiles(dir, { vmlinuz: kernel });
    const source = await Store.open(`${dir}/source`);
    const ref = `${reg.host}/cli/fast:1.0`;
    await buildImage(source, [{
      arch: "amd64",
      layers: { kernel: files.vmlinuz },
    }], { tag: ref });
    await pushImage(source, ref, {
      client: new RegistryClient({ plainHttp: true }),
    });
    for (const server of ["direct", "deno"]) {
      const child = spawnServe(dir, [
        "--cache",
        "--platform",
        "linux/amd64",
        "--http-server",
        server,
      ]);
      const stderr = collect(child.stderr);
      const stdout = collect(child.stdout);
      try {
        const base = await listeningAt(stderr);
        const url = `${base}/v1/images/${encodeURIComponent(ref)}/kernel`;
        for (let i = 0; i < 3; i++) {
          const res = await fetch(url);
          const bytes = new Uint8Array(await res.arrayBuffer());
          assert.equal(digestOf(bytes), digestOf(kernel), server);
        }
        const ranged = await fetch(url, { headers: { range: "bytes=-7" } });
        assert.equal(ranged.status, 206);
        assert.deepEqual(
          new Uint8Array(await ranged.arrayBuffer()),
          kernel.subarray(-7),
        );
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await Promise.all([stderr.done, stdout.done]);
      }
      const lines = stderr.text().split("\n").filter((l) =>
        l.includes(" GET ")
      );
      const sources = lines.map((l) => / \d+ms (\S+)$/.exec(l)?.[1]);
      // The first server fills the cache; the second one starts with the
      // blob in the store and checks it once.
      assert.deepEqual(
        sources,
        server === "direct"
          ? ["fill", "store", "store", "store"]
          : ["store-verify", "store", "store", "store"],
        stderr.text(),
      );
    }
  });
});

Deno.test("ironcore-image serve refuses an unknown --http-server", async () => {
  await withTempDir(async (dir) => {
    const { code, stderr } = await runCliProcess([
      "serve",
      "--http-server",
      "nginx",
      "--store-path",
      `${dir}/store`,
    ]);
    assert.equal(code, 2);
    assert.match(stderr, /--http-server takes direct or deno, got "nginx"/);
  });
});
