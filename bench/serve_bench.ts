/**
 * Measures what `serve` costs over fetching a blob from the registry
 * directly: starts a registry on 127.0.0.1, pushes a kernel layer of
 * `--mib` MiB, and times `curl -o /dev/null` of the registry's blob URL
 * against `curl -o /dev/null` of the same layer through the boot handler
 * (streamed from the registry with digest verification), alternating the
 * two, `--runs` times each. Prints the medians and their ratio. With
 * `--cache`, also times the layer served from a warm local-store cache.
 *
 * Usage: deno run -A bench/serve_bench.ts [--mib 1024] [--runs 3] [--cache] [--work DIR]
 *
 * @module
 */

import { buildImage } from "../src/build/build_image.ts";
import { loadNativeSha256, Sha256 } from "../src/oci/digest.ts";
import { RegistryClient } from "../src/registry/client.ts";
import { createBootHandler } from "../src/serve/boot_handler.ts";
import { Store } from "../src/store/store.ts";
import { pushImage } from "../src/transfer/push_image.ts";
import { startRegistry } from "../tests/_helpers/registry.ts";
import { parseFlags } from "./_measure.ts";

const args = parseFlags(Deno.args);
const MIB = Number(args.mib ?? 1024);
const RUNS = Number(args.runs ?? 3);
const CACHE = args.cache === "true";
if (!Number.isInteger(MIB) || MIB < 1 || !Number.isInteger(RUNS) || RUNS < 1) {
  throw new RangeError(
    "Flags --mib and --runs take positive whole numbers, e.g. --mib 64 --runs 3",
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Wall time of one `curl -o /dev/null`, in seconds; fails unless all bytes came. */
async function curl(url: string, bytes: number): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || Number(text) !== bytes) {
    throw new Error(
      `curl ${url} failed (${out.code}, ${text} bytes): ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return seconds;
}

/** Writes `mib` MiB of random bytes in 4 MiB blocks; returns the digest. */
async function writePayload(path: string, mib: number): Promise<string> {
  const block = new Uint8Array(4 * 1024 * 1024);
  await loadNativeSha256();
  const hash = new Sha256();
  using file = await Deno.open(path, { write: true, create: true });
  for (let left = mib * 1024 * 1024; left > 0;) {
    for (let i = 0; i < block.byteLength; i += 65536) {
      crypto.getRandomValues(block.subarray(i, i + 65536));
    }
    const part = block.subarray(0, Math.min(left, block.byteLength));
    hash.update(part);
    for (let off = 0; off < part.byteLength;) {
      off += await file.write(part.subarray(off));
    }
    left -= part.byteLength;
  }
  return hash.digest();
}

const work = await Deno.makeTempDir({
  ...(args.work ? { dir: args.work } : {}),
  prefix: "ironcore-serve-bench-",
});
try {
  await using reg = await startRegistry();
  const payload = `${work}/payload`;
  const digest = await writePayload(payload, MIB);
  const source = await Store.open(`${work}/source`);
  const ref = `${reg.host}/bench/os:1.0`;
  await buildImage(source, [{ arch: "amd64", layers: { kernel: payload } }], {
    tag: ref,
  });
  await Deno.remove(payload);
  const client = new RegistryClient({ plainHttp: true });
  await pushImage(source, ref, { client: client });
  await Deno.remove(`${work}/source`, { recursive: true });
  const bytes = MIB * 1024 * 1024;

  const handler = createBootHandler({
    client,
    platform: { os: "linux", architecture: "amd64" },
  });
  const cacheStore = CACHE ? await Store.open(`${work}/cache`) : undefined;
  const cached = cacheStore
    ? createBootHandler({
      client,
      store: cacheStore,
      cache: true,
      platform: { os: "linux", architecture: "amd64" },
    })
    : undefined;
  const servers = [
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler),
    ...(cached
      ? [Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, cached)]
      : []),
  ];
  try {
    const layerPath = `/v1/images/${encodeURIComponent(ref)}/kernel`;
    const urls: [string, string][] = [
      ["registry", `${reg.url}/v2/bench/os/blobs/${digest}`],
      ["serve", `http://127.0.0.1:${servers[0]!.addr.port}${layerPath}`],
    ];
    if (cached) {
      const url = `http://127.0.0.1:${servers[1]!.addr.port}${layerPath}`;
      await curl(url, bytes); // warm the cache
      urls.push(["serve --cache (warm)", url]);
    }
    // Resolve the tag once so every timed run measures the transfer alone.
    await curl(urls[1]![1], bytes);
    const times = new Map<string, number[]>(urls.map(([name]) => [name, []]));
    for (let run = 0; run < RUNS; run++) {
      for (const [name, url] of urls) {
        times.get(name)!.push(await curl(url, bytes));
      }
    }
    const direct = median(times.get("registry")!);
    console.log(`serve benchmark: ${MIB} MiB kernel layer, median of ${RUNS}`);
    for (const [name] of urls) {
      const t = median(times.get(name)!);
      const rate = MIB / t;
      console.log(
        `  ${name.padEnd(22)} ${t.toFixed(3)} s  ${
          rate.toFixed(0)
        } MiB/s  ratio ${(t / direct).toFixed(2)}`,
      );
    }
    console.log(
      `serve/registry ratio: ${
        (median(times.get("serve")!) / direct).toFixed(2)
      }`,
    );
  } finally {
    for (const s of servers) await s.shutdown();
    await handler.close();
    await cached?.close();
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
