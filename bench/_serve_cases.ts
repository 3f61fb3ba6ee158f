/**
 * The `serve` cases of `deno task bench`, with nginx (`sendfile on`) serving
 * the same file on loopback as the reference, measured in the same run:
 *
 * - 20 clients at once download a layer from a warm cache (the blob stored
 *   and checked), against nginx; the server's peak RSS afterwards;
 * - one client alone, against nginx;
 * - the cold path (first request: fetch from the registry, verify, store,
 *   stream) against `curl BLOB | tee FILE | openssl dgst -sha256`.
 *
 * Everything lives on tmpfs under `work`; the servers run as child
 * processes (`deno run -A`: Deno wants every permission for paths under
 * /dev). Wall times are of the clients; CPU seconds are the server's own.
 * Runs alternate ours and the reference.
 *
 * @module
 */

import type { TestRegistry } from "../tests/_helpers/registry.ts";
import { median, payload, rm, sh } from "./_measure.ts";

/** One measured case. */
export interface ServeCase {
  id: string;
  label: string;
  ours: { wall: number; min: number; cpu: number; rss: number };
  ref: { wall: number; min: number; cpu: number; rss: number };
  refLabel: string;
  target: string;
  note: string;
}

/** Where and how to run the cases. */
export interface ServeBenchOptions {
  /** The Deno binary. */
  deno: string;
  /** The CLI's entry point. */
  cli: string;
  /** A directory on tmpfs for payload, stores and nginx. */
  work: string;
  /** Layer size in MiB. */
  mib: number;
  /** Runs of each case. */
  runs: number;
  /** The registry the layer is pushed to. */
  reg: TestRegistry;
  /** Cases to run, by id. */
  want: (id: string) => boolean;
}

/** The load average now, for the notes. */
export async function load(): Promise<string> {
  return (await sh("cut -d' ' -f1-3 /proc/loadavg")).trim();
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

/** CPU seconds a process and its children have used. */
async function cpuOf(pid: number): Promise<number> {
  const ticks = await sh(
    `t=0; for p in $(pgrep -P ${pid}) ${pid}; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t`,
  );
  return Number(ticks) / Number(await sh("getconf CLK_TCK"));
}

/** Peak and current RSS of a process in MiB. */
async function rssOf(pid: number): Promise<{ peak: number; now: number }> {
  const status = await sh(`cat /proc/${pid}/status`);
  const kib = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { peak: kib("VmHWM") / 1024, now: kib("VmRSS") / 1024 };
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`Nothing answers at ${url}`);
}

/**
 * Seconds for `clients` concurrent downloads of `url`; fails unless each
 * got `bytes` bytes.
 */
async function download(
  url: string,
  clients: number,
  bytes: number,
): Promise<number> {
  const script = `pids=(); for i in $(seq ${clients}); do ` +
    `curl -sf -o /dev/null -w '%{size_download}\\n' '${url}' & pids+=($!); done; ` +
    `rc=0; for p in "\${pids[@]}"; do wait $p || rc=1; done; exit $rc`;
  const t0 = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const sizes = new TextDecoder().decode(out.stdout).trim().split("\n");
  if (!out.success || sizes.some((s) => Number(s) !== bytes)) {
    throw new Error(
      `Download of ${url} failed: ${sizes.join(" ")} ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return seconds;
}

/** A server under test: a child process and where it answers. */
interface Server {
  pid: number;
  url: string;
  stop(): Promise<void>;
}

function startNginx(work: string, root: string): Promise<Server> {
  const port = freePort();
  return (async () => {
    await sh(
      `printf '%s\\n' 'daemon off; worker_processes 2; user root; pid ${work}/nginx.pid; error_log ${work}/nginx.err;' ` +
        `'events { worker_connections 1024; }' ` +
        `'http { access_log off; sendfile on; server { listen 127.0.0.1:${port}; root ${root}; } }' > '${work}/nginx.conf'`,
    );
    const child = new Deno.Command("nginx", {
      args: ["-c", `${work}/nginx.conf`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitReady(`http://127.0.0.1:${port}/`);
    return {
      pid: child.pid,
      url: `http://127.0.0.1:${port}`,
      async stop() {
        child.kill("SIGTERM");
        await child.status;
      },
    };
  })();
}

async function startOurs(
  o: ServeBenchOptions,
  store: string,
): Promise<Server> {
  const port = freePort();
  const child = new Deno.Command(o.deno, {
    args: [
      "run",
      "-A",
      "--quiet",
      o.cli,
      "--quiet",
      "--plain-http",
      "--store-path",
      store,
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      "--cache",
      "--platform",
      "linux/amd64",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/healthz`);
  return {
    pid: child.pid,
    url,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Runs `ours` and `ref` in turn, `runs` times, swapping who goes first. */
async function alternate(
  runs: number,
  ours: () => Promise<{ wall: number; cpu: number }>,
  ref: () => Promise<{ wall: number; cpu: number }>,
): Promise<{
  ours: { wall: number; cpu: number; min: number };
  ref: { wall: number; cpu: number; min: number };
}> {
  const a: { wall: number; cpu: number }[] = [];
  const b: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      a.push(await ours());
      b.push(await ref());
    } else {
      b.push(await ref());
      a.push(await ours());
    }
  }
  const sum = (xs: { wall: number; cpu: number }[]) => ({
    wall: median(xs.map((x) => x.wall)),
    cpu: median(xs.map((x) => x.cpu)),
    min: Math.min(...xs.map((x) => x.wall)),
  });
  return { ours: sum(a), ref: sum(b) };
}

/** Times downloads from a server, with the server's CPU seconds. */
async function timedOn(
  server: Server,
  path: string,
  clients: number,
  bytes: number,
): Promise<{ wall: number; cpu: number }> {
  const before = await cpuOf(server.pid);
  const wall = await download(`${server.url}${path}`, clients, bytes);
  return { wall, cpu: (await cpuOf(server.pid)) - before };
}

/**
 * Runs the serve cases.
 *
 * @param o Binaries, work directory, size, runs and registry.
 * @returns The measured cases.
 */
export async function benchServe(o: ServeBenchOptions): Promise<ServeCase[]> {
  const cases: ServeCase[] = [];
  const bytes = o.mib * 1024 * 1024;
  await sh(`mkdir -p '${o.work}' && chmod 755 '${o.work}'`);
  const layer = `${o.work}/layer-${o.mib}MiB.bin`;
  await payload(layer, o.mib);
  const hex = (await sh(`openssl dgst -sha256 -r '${layer}'`)).split(" ")[0]!;
  const ref = `${o.reg.host}/bench/serve:1`;
  const cli = `${o.deno} run -A --quiet ${o.cli} --quiet`;
  await rm(`${o.work}/source`);
  await sh(
    `${cli} --store-path '${o.work}/source' build --tag '${ref}' --config arch=amd64,squashfs='${layer}' && ` +
      `${cli} --plain-http --store-path '${o.work}/source' push '${ref}'`,
  );
  await rm(`${o.work}/source`);
  const path = `/v1/images/${encodeURIComponent(ref)}/squashfs`;
  const cache = `${o.work}/cache`;
  const startLoad = await load();

  if (o.want("serve-conc") || o.want("serve-one")) {
    await rm(cache);
    const ours = await startOurs(o, cache);
    // Fill the cache, then let the server check the stored blob once.
    await download(`${ours.url}${path}`, 1, bytes);
    await download(`${ours.url}${path}`, 1, bytes);
    const nginx = await startNginx(o.work, `${cache}/blobs/sha256`);
    try {
      for (
        const [id, clients] of [["serve-conc", 20], ["serve-one", 1]] as const
      ) {
        if (!o.want(id)) continue;
        const before = await load();
        const r = await alternate(
          o.runs,
          () => timedOn(ours, path, clients, bytes),
          () => timedOn(nginx, `/${hex}`, clients, bytes),
        );
        const rss = await rssOf(ours.pid);
        cases.push({
          id,
          label: `serve ${clients} × ${o.mib} MiB from the cache`,
          ours: { ...r.ours, rss: rss.peak },
          ref: { ...r.ref, rss: 0 },
          refLabel: "nginx sendfile",
          target: clients === 20 ? "<= 1.25" : "report",
          note: `server CPU ${r.ours.cpu.toFixed(2)} vs ${
            r.ref.cpu.toFixed(2)
          } s; RSS now ${
            rss.now.toFixed(0)
          } MiB; load ${before} → ${await load()}`,
        });
      }
    } finally {
      await nginx.stop();
      await ours.stop();
    }
  }

  if (o.want("serve-cold")) {
    const before = await load();
    const blobUrl = `${o.reg.url}/v2/bench/serve/blobs/sha256:${hex}`;
    let peak = 0;
    const r = await alternate(
      o.runs,
      async () => {
        await rm(cache);
        const ours = await startOurs(o, cache);
        try {
          const t = await timedOn(ours, path, 1, bytes);
          peak = Math.max(peak, (await rssOf(ours.pid)).peak);
          return t;
        } finally {
          await ours.stop();
        }
      },
      async () => {
        const t0 = performance.now();
        const sum = await sh(
          `curl -sf '${blobUrl}' | tee '${o.work}/tee.bin' | openssl dgst -sha256 -r`,
        );
        const wall = (performance.now() - t0) / 1000;
        if (!sum.startsWith(hex)) throw new Error(`curl got ${sum}`);
        await rm(`${o.work}/tee.bin`);
        return { wall, cpu: 0 };
      },
    );
    cases.push({
      id: "serve-cold",
      label: `serve ${o.mib} MiB, cold: fetch, verify, cache, stream`,
      ours: { ...r.ours, rss: peak },
      ref: { ...r.ref, rss: 0 },
      refLabel: "curl | tee | openssl",
      target: "<= 1.5",
      note: `load ${before} → ${await load()}`,
    });
  }
  console.error(`[bench] serve cases: load ${startLoad} → ${await load()}`);
  await rm(o.work);
  return cases;
}
