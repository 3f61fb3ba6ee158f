/**
 * `deno task bench`: measures ironcore-image against the machine's limits and
 * its peers in one run, and prints one table.
 *
 * Starts its own registry on 127.0.0.1, makes random payloads under a work
 * directory (on tmpfs by default, registry storage included, so no disk is
 * measured), and times whole processes (start-up included) with GNU time
 * for CPU and peak RSS. Each case runs ours and its reference in turn, run
 * after run, after one warm-up of each, and reports the median and the
 * minimum, with the machine's load (1-minute average) while it ran.
 * References: `openssl dgst -sha256`, curl's monolithic upload and download,
 * and skopeo when installed.
 *
 * The memory cases stream a layer of `--mib` through `export`, `import`,
 * `extract -o -` and `copy`, and with `--big-mib` also build, push, pull and
 * the same streams with a layer that large; their files live under
 * `--big-work` (on disk), since tmpfs holds the rest.
 *
 * The serve cases (`--only serve`) serve a `--serve-mib` layer from a cache
 * on tmpfs to 20 clients and to one, against nginx with `sendfile on`
 * (`bash .ci/setup --bench` installs it; without nginx they are left out), and
 * time the cold path against `curl | tee | openssl dgst`.
 *
 * Usage: deno task bench [--mib 1024] [--runs 5] [--big-mib 0]
 * [--serve-mib 256] [--serve-runs 5] [--only REGEX] [--work DIR]
 * [--big-work DIR]
 *
 * @module
 */

import { Store, type TagEntry } from "../mod.ts";
import { OCI_MANIFEST_MEDIA_TYPE } from "../src/oci/mod.ts";
import { encodeJson } from "../src/oci/manifest.ts";
import { CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPES } from "../src/spec/mod.ts";
import {
  startRegistry,
  type TestRegistry,
} from "../tests/_helpers/registry.ts";
import { blobStoreOf, tagIndexOf } from "../src/store/_internal.ts";
import { benchServe } from "./_serve_cases.ts";
import {
  GNU_TIME,
  median,
  parseFlags,
  payload,
  rm,
  type Sample,
  sh,
  timed as timedIn,
  TW,
} from "./_measure.ts";

const args = parseFlags(Deno.args);
const MIB = Number(args.mib ?? 1024);
const RUNS = Number(args.runs ?? 5);
const BIG_MIB = Number(args["big-mib"] ?? 0);
const SERVE_MIB = Number(args["serve-mib"] ?? 256);
const SERVE_RUNS = Number(args["serve-runs"] ?? Math.max(5, RUNS));
const ONLY = args.only ? new RegExp(args.only) : undefined;
const WORK = args.work ?? "/dev/shm/ironcore-bench";
const BIG_WORK = args["big-work"] ?? "/tmp/ironcore-bench-big";
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/cli.ts`;
const DENO = Deno.execPath();
const ORAS = "/opt/ironcore-image-peers/bin/oras";

/** Medians and minima of one side of a case. */
interface Measured extends Sample {
  /** The fastest run's wall time, in seconds. */
  min: number;
}

interface Row {
  id: string;
  label: string;
  ours?: Measured;
  ref?: Measured;
  refLabel?: string;
  target?: string;
  ratio?: number;
  pass?: boolean;
  /** 1-minute load average while the case ran. */
  load: number;
  /** What else the case measured, printed under the table. */
  note?: string;
}

const rows: Row[] = [];
let seq = 0;

/** Runs one shell command line under GNU time; returns wall, CPU and peak RSS. */
function timed(script: string): Promise<Sample> {
  return timedIn(script, `${WORK}/time-${++seq}.txt`);
}

async function loadAverage(): Promise<number> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "0");
  return Number(text.split(" ")[0]);
}

/** One side of a case: what to do before each run, and the run. */
interface Side {
  prep?: () => Promise<void>;
  script: () => string;
}

function summary(samples: Sample[]): Measured {
  return {
    wall: median(samples.map((s) => s.wall)),
    min: Math.min(...samples.map((s) => s.wall)),
    cpu: median(samples.map((s) => s.cpu)),
    rss: Math.max(...samples.map((s) => s.rss)),
  };
}

/**
 * Runs ours and the reference in turn, `runs` times each after a warm-up
 * of each.
 */
async function compare(
  runs: number,
  ours: Side,
  ref?: Side,
): Promise<{ ours: Measured; ref?: Measured; load: number }> {
  const a: Sample[] = [];
  const b: Sample[] = [];
  const loads: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    loads.push(await loadAverage());
    await ours.prep?.();
    const s = await timed(TW + ours.script());
    if (i > 0) a.push(s);
    if (ref) {
      await ref.prep?.();
      const r = await timed(TW + ref.script());
      if (i > 0) b.push(r);
    }
  }
  const out: { ours: Measured; ref?: Measured; load: number } = {
    ours: summary(a),
    load: median(loads),
  };
  if (ref) out.ref = summary(b);
  return out;
}

/** One run without a warm-up: for the memory cases, and long ones. */
async function once(side: Side): Promise<{ ours: Measured; load: number }> {
  const load = await loadAverage();
  await side.prep?.();
  return { ours: summary([await timed(TW + side.script())]), load };
}

function want(id: string): boolean {
  return !ONLY || ONLY.test(id);
}

function q(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Our CLI as a measured command, with the narrowest permissions that work. */
function cli(...a: string[]): string {
  // Deno grants paths under /dev only with --allow-all.
  const perms = WORK.startsWith("/dev/") || BIG_WORK.startsWith("/dev/")
    ? ["--allow-all"]
    : [
      "--allow-read",
      `--allow-write=${WORK},${BIG_WORK}`,
      "--allow-net=127.0.0.1,localhost",
      "--allow-env",
    ];
  return `tw ${DENO} run --quiet ${
    perms.join(" ")
  } ${CLI} --quiet --plain-http ${a.map(q).join(" ")}`;
}

/** Our CLI, unmeasured (setting up). */
function setup(...a: string[]): Promise<string> {
  return sh(`${DENO} run -A ${CLI} --quiet --plain-http ${a.map(q).join(" ")}`);
}

async function sha(path: string): Promise<string> {
  return (await sh(`openssl dgst -sha256 -r '${path}'`)).split(" ")[0]!;
}

function record(row: Omit<Row, "ratio">): void {
  const full: Row = { ...row };
  if (row.ours && row.ref) full.ratio = row.ours.wall / row.ref.wall;
  rows.push(full);
  console.error(
    `[bench] ${row.id} ${row.label}: ours ${
      row.ours?.wall.toFixed(3) ?? "-"
    } s` +
      (row.ref
        ? `, ${row.refLabel} ${row.ref.wall.toFixed(3)} s, ratio ${
          full.ratio?.toFixed(2)
        }`
        : "") +
      (row.ours ? `, peak ${row.ours.rss.toFixed(1)} MiB` : "") +
      `, load ${row.load.toFixed(2)}` +
      (row.note ? ` (${row.note})` : ""),
  );
}

function curlUpload(
  reg: TestRegistry,
  repo: string,
  file: string,
  hex: string,
): string {
  return `loc=$(tw curl -sS -f -X POST -o /dev/null -w '%header{location}' '${reg.url}/v2/${repo}/blobs/uploads/'); ` +
    `case $loc in http*) ;; *) loc='${reg.url}'$loc ;; esac; sep='?'; case $loc in *\\?*) sep='&' ;; esac; ` +
    `tw curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T '${file}' "$loc\${sep}digest=sha256:${hex}"`;
}

function hasTool(name: string): Promise<boolean> {
  return new Deno.Command("bash", {
    args: ["-c", `command -v ${name}`],
    stdout: "null",
    stderr: "null",
  })
    .output().then((o) => o.success);
}

/** skopeo with its own home; `cache` holds its blob-info cache. */
function skopeo(cache: string, ...a: string[]): string {
  const home = `${WORK}/skopeo`;
  return `tw env _CONTAINERS_ROOTLESS_UID=65534 XDG_DATA_HOME=${
    q(cache)
  } XDG_CONFIG_HOME=${home}/cfg XDG_RUNTIME_DIR=${home}/run HOME=${home}/home TMPDIR=${home}/tmp skopeo copy -q --preserve-digests ${
    a.map(q).join(" ")
  }`;
}

/**
 * Forgets where the store saw its blobs, so that a push to a new
 * repository uploads every byte instead of mounting them.
 */
function forgetSources(store: string): Promise<void> {
  return rm(`${store}/.sources.json`);
}

/** The memory cases: every JavaScript-streamed path with one large layer. */
async function memoryCases(
  reg: TestRegistry,
  image: { store: string; local: string; remote: string; layer: string },
  label: string,
): Promise<void> {
  const { store, local, remote, layer } = image;
  const one = (script: () => string) => once({ script });
  const target = "<= 100 MiB";
  const rssRow = (
    id: string,
    what: string,
    r: { ours: Measured; load: number },
  ) =>
    record({
      id,
      label: `${what}, ${label}: peak RSS (MiB)`,
      ours: r.ours,
      target,
      pass: r.ours.rss <= 100,
      load: r.load,
    });
  rssRow(
    "mem-export",
    "export -o -",
    await one(() =>
      `${cli("--store-path", store, "export", local, "-o", "-")} > /dev/null`
    ),
  );
  const other = `${store}-imported`;
  await rm(other);
  rssRow(
    "mem-import",
    "import - (piped from export)",
    await one(() =>
      `${DENO} run -A ${CLI} --quiet --store-path ${q(store)} export ${
        q(local)
      } -o - | ${cli("--store-path", other, "import", "-")}`
    ),
  );
  await rm(other);
  rssRow(
    "mem-extract",
    "extract -o -",
    await one(() =>
      `${
        cli(
          "--store-path",
          store,
          "extract",
          local,
          "--layer",
          layer,
          "-o",
          "-",
        )
      } > /dev/null`
    ),
  );
  // Another name for the same registry, so nothing is mounted.
  const alias = reg.host.replace("127.0.0.1", "localhost");
  rssRow(
    "mem-copy",
    "copy between registries",
    await one(() => cli("copy", remote, `${alias}/bench/copied-${++seq}:1`)),
  );
}

async function main(): Promise<void> {
  await Deno.mkdir(WORK, { recursive: true });
  for (const t of ["openssl", "curl", GNU_TIME, "docker-registry"]) {
    if (!(await hasTool(t))) {
      throw new Error(`The benchmark needs ${t}: run bash .ci/setup`);
    }
  }
  const haveSkopeo = await hasTool("skopeo");
  const haveOras = await Deno.stat(ORAS).then(() => true, () => false);
  const big = `${WORK}/big-${MIB}MiB.bin`;
  await payload(big, MIB);
  const bigHex = await sha(big);
  const smalls = [1, 2, 3].map((i) => `${WORK}/small${i}.bin`);
  for (const s of smalls) await payload(s, 4);
  const quarter = Math.max(1, Math.floor(MIB / 4));
  console.error(
    `[bench] payload ${MIB} MiB sha256:${bigHex.slice(0, 12)}, runs ${RUNS}`,
  );

  // The registry keeps its storage under the work directory too.
  Deno.env.set("TMPDIR", WORK);
  await using reg = await startRegistry({ auth: "none" });
  const host = reg.host;
  const store = `${WORK}/store`;
  const skHome = `${WORK}/skopeo`;
  const cold = `${skHome}/cold`;
  for (const d of ["tmp", "run", "home"]) {
    await Deno.mkdir(`${skHome}/${d}`, { recursive: true });
  }

  // ---- build
  if (want("build")) {
    const build = () =>
      cli(
        "--store-path",
        store,
        "build",
        "--tag",
        "bench:1",
        "--config",
        `arch=amd64,disk=${big}`,
      );
    const first = await compare(
      RUNS,
      { prep: () => rm(store), script: build },
      { script: () => `tw openssl dgst -sha256 '${big}'` },
    );
    record({
      id: "build",
      label: `build ${MIB} MiB layer (new store)`,
      ...first,
      refLabel: "openssl dgst",
      target: "<= 1.25",
    });
    const again = await compare(
      RUNS,
      { script: build },
      { script: () => `tw openssl dgst -sha256 '${big}'` },
    );
    record({
      id: "rebuild",
      label: "rebuild, unchanged input",
      ...again,
      refLabel: "openssl dgst",
      target: "<= 1.10",
    });
  }
  // ---- progress bars on a terminal (a pseudo-terminal from script(1))
  if (want("progress") && await hasTool("script")) {
    const pstore = `${WORK}/progress-store`;
    const buildCmd = (quiet: boolean) =>
      `tw script -qec "${DENO} run --quiet --allow-all ${CLI} ${
        quiet ? "--quiet " : ""
      }--store-path ${pstore} build --tag bench:1 --config arch=amd64,disk=${big}" /dev/null > /dev/null`;
    const r = await compare(
      RUNS,
      { prep: () => rm(pstore), script: () => buildCmd(false) },
      { prep: () => rm(pstore), script: () => buildCmd(true) },
    );
    record({
      id: "progress",
      label: "build with progress bars on a terminal vs --quiet",
      ...r,
      refLabel: "same build, --quiet",
      target: "<= 1.02",
    });
    await rm(pstore);
  }

  // A store holding the big image, for push.
  await rm(store);
  await setup(
    "--store-path",
    store,
    "build",
    "--tag",
    `${host}/bench/big:1`,
    "--config",
    `arch=amd64,disk=${big}`,
  );
  await setup(
    "--store-path",
    store,
    "tag",
    `${host}/bench/big:1-amd64`,
    `${host}/bench/single:1`,
  );
  await setup("--store-path", store, "push", `${host}/bench/big:1`);
  await setup("--store-path", store, "push", `${host}/bench/single:1`);

  // ---- push
  if (want("push")) {
    // A store of its own, where the image's one tag moves to each new
    // repository: with no other tag of it in the registry and no record of
    // where its blobs were seen, a push uploads every byte instead of
    // mounting them.
    const pushStore = `${WORK}/push-store`;
    await rm(pushStore);
    let tagged = `${host}/bench/push-0:1`;
    await setup(
      "--store-path",
      pushStore,
      "build",
      "--tag",
      tagged,
      "--config",
      `arch=amd64,disk=${big}`,
    );
    let repo = "";
    const fresh = () => {
      repo = `bench/fresh-${++seq}`;
      return Promise.resolve();
    };
    const oursPush: Side = {
      prep: async () => {
        await fresh();
        await forgetSources(pushStore);
        const next = `${host}/${repo}:1`;
        await setup("--store-path", pushStore, "tag", tagged, next);
        await setup("--store-path", pushStore, "delete", tagged);
        tagged = next;
      },
      script: () => cli("--store-path", pushStore, "push", tagged),
    };
    const r = await compare(RUNS, oursPush, {
      prep: fresh,
      script: () => curlUpload(reg, repo, big, bigHex),
    });
    record({
      id: "push",
      label: `push ${MIB} MiB layer (new repo)`,
      ...r,
      refLabel: "curl POST+PUT",
      target: "<= 1.05",
    });
    if (haveSkopeo) {
      const sk = await compare(RUNS, oursPush, {
        prep: async () => {
          await fresh();
          await rm(cold);
        },
        script: () =>
          skopeo(
            cold,
            "--dest-tls-verify=false",
            `oci:${pushStore}:${tagged}`,
            `docker://${host}/${repo}:1`,
          ),
      });
      record({
        id: "push-cpu",
        label: "push client CPU vs skopeo's (s)",
        ours: { ...sk.ours, wall: sk.ours.cpu, min: sk.ours.cpu },
        ref: { ...sk.ref!, wall: sk.ref!.cpu, min: sk.ref!.cpu },
        refLabel: "skopeo copy CPU",
        target: "<= 0.50",
        load: sk.load,
      });
    }
    const again = await compare(RUNS, {
      script: () => cli("--store-path", store, "push", `${host}/bench/big:1`),
    });
    record({
      id: "repush",
      label: "re-push, registry has every blob (s)",
      ...again,
      target: "<= 0.15 s",
      pass: again.ours.wall <= 0.15,
    });
    await rm(pushStore);
  }

  // ---- pull
  if (want("pull")) {
    const dst = `${WORK}/pulled`;
    const oursPull: Side = {
      prep: () => rm(dst),
      script: () => cli("--store-path", dst, "pull", `${host}/bench/single:1`),
    };
    const r = await compare(RUNS, oursPull, {
      script: () =>
        `tw bash -c "curl -sS -f '${reg.url}/v2/bench/big/blobs/sha256:${bigHex}' | openssl dgst -sha256 -r"`,
    });
    record({
      id: "pull",
      label: `pull ${MIB} MiB layer (new store)`,
      ...r,
      refLabel: "curl | openssl",
      target: "<= 1.10",
    });
    if (haveSkopeo) {
      const sk = await compare(RUNS, oursPull, {
        prep: async () => {
          await rm(`${WORK}/skopeo-pull`);
          await rm(cold);
        },
        script: () =>
          skopeo(
            cold,
            "--src-tls-verify=false",
            `docker://${host}/bench/single:1`,
            `oci:${WORK}/skopeo-pull:x`,
          ),
      });
      record({
        id: "pull-skopeo",
        label: "pull vs skopeo pull",
        ...sk,
        refLabel: "skopeo copy",
        target: "<= 0.40",
      });
    }
    await rm(dst);
  }

  // ---- small images: 3 x 4 MiB, where start-up counts
  const sstore = `${WORK}/small-store`;
  if ((want("small") || want("mount")) && haveSkopeo) {
    await rm(sstore);
    await setup(
      "--store-path",
      sstore,
      "build",
      "--tag",
      `${host}/bench/small:1`,
      "--config",
      `arch=amd64,kernel=${smalls[0]},initramfs=${smalls[1]},squashfs=${
        smalls[2]
      }`,
    );
    await setup(
      "--store-path",
      sstore,
      "tag",
      `${host}/bench/small:1-amd64`,
      `${host}/bench/smallone:1`,
    );
  }
  if (want("small") && haveSkopeo) {
    let repo = "";
    const r = await compare(RUNS * 3, {
      prep: async () => {
        repo = `bench/s-${++seq}`;
        await forgetSources(sstore);
        await setup(
          "--store-path",
          sstore,
          "tag",
          `${host}/bench/smallone:1`,
          `${host}/${repo}:1`,
        );
      },
      script: () => cli("--store-path", sstore, "push", `${host}/${repo}:1`),
    }, {
      prep: async () => {
        repo = `bench/k-${++seq}`;
        await rm(cold);
      },
      script: () =>
        skopeo(
          cold,
          "--dest-tls-verify=false",
          `oci:${sstore}:${host}/bench/smallone:1`,
          `docker://${host}/${repo}:1`,
        ),
    });
    record({
      id: "small-push",
      label: "push 3 x 4 MiB (new repo)",
      ...r,
      refLabel: "skopeo copy",
      target: "<= 1.00",
    });
    await setup("--store-path", sstore, "push", `${host}/bench/smallone:1`);
    const dst = `${WORK}/small-pulled`;
    const p = await compare(RUNS * 3, {
      prep: () => rm(dst),
      script: () =>
        cli("--store-path", dst, "pull", `${host}/bench/smallone:1`),
    }, {
      prep: async () => {
        await rm(`${WORK}/sk-small`);
        await rm(cold);
      },
      script: () =>
        skopeo(
          cold,
          "--src-tls-verify=false",
          `docker://${host}/bench/smallone:1`,
          `oci:${WORK}/sk-small:x`,
        ),
    });
    record({
      id: "small-pull",
      label: "pull 3 x 4 MiB (new store)",
      ...p,
      refLabel: "skopeo copy",
      target: "<= 1.00",
    });
    await rm(dst);
  }

  // ---- an image the registry has, pushed to a new repository: mounts
  if (want("mount") && haveSkopeo) {
    const part = `${WORK}/mount-disk.bin`;
    await payload(part, quarter);
    await setup(
      "--store-path",
      sstore,
      "build",
      "--tag",
      `${host}/bench/mount:1`,
      "--config",
      `arch=amd64,kernel=${smalls[0]},initramfs=${smalls[1]},squashfs=${
        smalls[2]
      },disk=${part}`,
    );
    const origin = `${host}/bench/mount:1-amd64`;
    await forgetSources(sstore);
    await setup("--store-path", sstore, "push", origin);
    // skopeo learns where the blobs are in its blob-info cache.
    const warm = `${skHome}/warm`;
    await rm(warm);
    await sh(
      skopeo(
        warm,
        "--dest-tls-verify=false",
        `oci:${sstore}:${origin}`,
        `docker://${host}/bench/kmount-origin:1`,
      ).replace(/^tw /, ""),
    );
    let repo = "";
    const r = await compare(RUNS, {
      prep: async () => {
        repo = `bench/m-${++seq}`;
        await setup("--store-path", sstore, "tag", origin, `${host}/${repo}:1`);
      },
      script: () => cli("--store-path", sstore, "push", `${host}/${repo}:1`),
    }, {
      prep: () => {
        repo = `bench/km-${++seq}`;
        return Promise.resolve();
      },
      script: () =>
        skopeo(
          warm,
          "--dest-tls-verify=false",
          `oci:${sstore}:${origin}`,
          `docker://${host}/${repo}:1`,
        ),
    });
    record({
      id: "mount-push",
      label: `push ${quarter + 12} MiB again, to a new repository (s)`,
      ...r,
      refLabel: "skopeo copy, blob-info cache",
      target: "< 0.5 s",
      pass: r.ours.wall < 0.5,
    });
  }

  // ---- multi-arch: 2 arches x 4 layers of MIB/4, against skopeo --all
  if (want("multi") && haveSkopeo) {
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) {
      parts.push(`${WORK}/part${i}.bin`);
      await payload(parts[i]!, quarter);
    }
    const mstore = `${WORK}/multi-store`;
    await rm(mstore);
    const cfg = (a: string, o: number) =>
      `arch=${a},kernel=${parts[o]},initramfs=${parts[o + 1]},squashfs=${
        parts[o + 2]
      },disk=${parts[o + 3]}`;
    const multi = `${host}/bench/multi:1`;
    await setup(
      "--store-path",
      mstore,
      "build",
      "--tag",
      multi,
      "--config",
      cfg("amd64", 0),
      "--config",
      cfg("arm64", 4),
    );
    let repo = "";
    const r = await compare(RUNS, {
      prep: async () => {
        repo = `bench/m-${++seq}`;
        await forgetSources(mstore);
        await setup("--store-path", mstore, "tag", multi, `${host}/${repo}:1`);
      },
      script: () => cli("--store-path", mstore, "push", `${host}/${repo}:1`),
    }, {
      prep: async () => {
        repo = `bench/km-${++seq}`;
        await rm(cold);
      },
      script: () =>
        skopeo(
          cold,
          "--all",
          "--dest-tls-verify=false",
          `oci:${mstore}:${multi}`,
          `docker://${host}/${repo}:1`,
        ),
    });
    record({
      id: "multi-push",
      label: `push 2 arch x 4 layers of ${quarter} MiB (new repo)`,
      ...r,
      refLabel: "skopeo copy --all",
      target: "<= 1.00",
    });
    await setup("--store-path", mstore, "push", multi);
    const dst = `${WORK}/multi-pulled`;
    const oursPull: Side = {
      prep: () => rm(dst),
      script: () => cli("--store-path", dst, "pull", multi),
    };
    const p = await compare(RUNS, oursPull, {
      prep: async () => {
        await rm(`${WORK}/sk-multi`);
        await rm(cold);
      },
      script: () =>
        skopeo(
          cold,
          "--all",
          "--src-tls-verify=false",
          `docker://${multi}`,
          `oci:${WORK}/sk-multi:x`,
        ),
    });
    record({
      id: "multi-pull",
      label: `pull 2 arch x 4 layers of ${quarter} MiB (new store)`,
      ...p,
      refLabel: "skopeo copy --all",
      target: "<= 1.00",
    });
    if (haveOras) {
      const o = await compare(RUNS, oursPull, {
        prep: () => rm(`${WORK}/oras-multi`),
        script: () =>
          `tw ${ORAS} cp --from-plain-http ${q(multi)} --to-oci-layout ${
            q(`${WORK}/oras-multi:x`)
          } > /dev/null`,
      });
      record({
        id: "multi-pull-oras",
        label: "pull the same index vs oras",
        ...o,
        refLabel: "oras cp",
        target: "<= 1.00",
      });
      await rm(`${WORK}/oras-multi`);
    }
    await rm(dst);
    await rm(`${WORK}/sk-multi`);
    await rm(mstore);
  }

  // ---- many tags: 10,000 distinct images, each with its own tag
  if (want("tags")) {
    const tstore = `${WORK}/tags-store`;
    await rm(tstore);
    const store = await Store.open(tstore);
    const cfg = encodeJson({ commandLine: "console=ttyS0" });
    await blobStoreOf(store).putBytes(cfg.bytes, CONFIG_MEDIA_TYPE);
    const kernel = encodeJson({ kernel: true });
    await blobStoreOf(store).putBytes(kernel.bytes, LAYER_MEDIA_TYPES.kernel);
    const entries: TagEntry[] = [];
    for (let i = 0; i < 10_000; i++) {
      const m = encodeJson({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        config: {
          mediaType: CONFIG_MEDIA_TYPE,
          digest: cfg.digest,
          size: cfg.size,
        },
        layers: [{
          mediaType: LAYER_MEDIA_TYPES.kernel,
          digest: kernel.digest,
          size: kernel.size,
        }],
        annotations: { "org.opencontainers.image.title": `image ${i}` },
      });
      const descriptor = await blobStoreOf(store).putBytes(
        m.bytes,
        OCI_MANIFEST_MEDIA_TYPE,
      );
      entries.push({ reference: `docker.io/bench/t:${i}`, descriptor });
    }
    await tagIndexOf(store).setTags(entries);
    const list = await compare(RUNS, {
      script: () => cli("--store-path", tstore, "list") + " > /dev/null",
    });
    record({
      id: "tags-list",
      label: "list with 10,000 tags (s)",
      ...list,
      target: "< 0.3 s",
      pass: list.ours.wall < 0.3,
    });
    const tag = await compare(RUNS, {
      script: () =>
        cli("--store-path", tstore, "tag", "bench/t:5000", `bench/u:${++seq}`),
    });
    record({
      id: "tags-tag",
      label: "tag with 10,000 tags (s)",
      ...tag,
      target: "< 0.3 s",
      pass: tag.ours.wall < 0.3,
    });
    const insp = await compare(RUNS, {
      script: () =>
        cli("--store-path", tstore, "inspect", "bench/t:9999") + " > /dev/null",
    });
    record({
      id: "tags-inspect",
      label: "inspect with 10,000 tags (s)",
      ...insp,
      target: "< 0.3 s",
      pass: insp.ours.wall < 0.3,
    });
    await rm(tstore);
  }

  // ---- memory of the JavaScript-streamed paths, with a layer of MIB
  if (want("memory")) {
    const single = `${host}/bench/single:1`;
    await memoryCases(
      reg,
      { store, local: single, remote: single, layer: "disk" },
      `${MIB} MiB`,
    );
  }

  // ---- memory flatness with a layer of BIG_MIB, on disk
  if (BIG_MIB > 0 && want("memory")) {
    await Deno.mkdir(BIG_WORK, { recursive: true });
    Deno.env.set("TMPDIR", BIG_WORK);
    await using bigReg = await startRegistry({ auth: "none" });
    const huge = `${BIG_WORK}/huge-${BIG_MIB}MiB.bin`;
    await payload(huge, BIG_MIB);
    const hstore = `${BIG_WORK}/huge-store`;
    await rm(hstore);
    const hugeRef = `${bigReg.host}/bench/huge:1`;
    const b = await once({
      prep: () => rm(hstore),
      script: () =>
        cli(
          "--store-path",
          hstore,
          "build",
          "--tag",
          hugeRef,
          "--config",
          `arch=amd64,disk=${huge}`,
        ),
    });
    // A fresh repository each run, so every run uploads all bytes.
    let hugeRepo = "";
    const p = await once({
      prep: async () => {
        hugeRepo = `${bigReg.host}/bench/huge-${++seq}:1`;
        await forgetSources(hstore);
        await setup("--store-path", hstore, "tag", hugeRef, hugeRepo);
      },
      script: () => cli("--store-path", hstore, "push", hugeRepo),
    });
    const dst = `${BIG_WORK}/huge-pulled`;
    const pl = await once({
      prep: () => rm(dst),
      script: () => cli("--store-path", dst, "pull", hugeRepo),
    });
    await rm(dst);
    for (const [id, r] of [["build", b], ["push", p], ["pull", pl]] as const) {
      record({
        id: `rss-${id}`,
        label: `${id} ${BIG_MIB} MiB: peak RSS (MiB)`,
        ...r,
        target: "<= 100 MiB, flat",
        pass: r.ours.rss <= 100,
      });
    }
    await memoryCases(bigReg, {
      store: hstore,
      local: `${hugeRef}-amd64`,
      remote: hugeRepo,
      layer: "disk",
    }, `${BIG_MIB} MiB`);
    await rm(hstore);
    await rm(huge);
  }

  // ---- serve: from the cache against nginx, and the cold path
  if (want("serve")) {
    if (!(await hasTool("nginx"))) {
      console.error(
        "[bench] serve cases left out: they need nginx as the reference (bash .ci/setup --bench installs it)",
      );
    } else {
      const shm = await Deno.stat("/dev/shm").then(() => true, () => false);
      const cases = await benchServe({
        deno: DENO,
        cli: CLI,
        work: `${shm ? "/dev/shm" : WORK}/ironcore-bench-serve`,
        mib: SERVE_MIB,
        runs: SERVE_RUNS,
        reg,
        want,
      });
      for (const c of cases) {
        // 20 clients: the time against nginx and the server's memory.
        const pass = c.id === "serve-conc"
          ? c.ours.wall / c.ref.wall <= 1.25 && c.ours.rss <= 150
          : undefined;
        record({
          ...c,
          load: await loadAverage(),
          ...(pass === undefined ? {} : {
            target: "<= 1.25, RSS <= 150 MiB",
            pass,
          }),
        });
      }
    }
  }

  // ---- report
  const info =
    `${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, deno ${Deno.version.deno}`;
  const lines = [
    `ironcore-image bench  ${new Date().toISOString().slice(0, 16)}Z  ${info}`,
    `payload ${MIB} MiB random; median (and min) of ${RUNS} runs (x3 for 3 x 4 MiB) after 1 warm-up, ours and the reference in turn; whole processes, start-up included; work directory ${WORK}`,
    "",
    "| case | ours (s) | ours min | reference | ref (s) | ref min | ratio | target | peak RSS (MiB) | load |",
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |",
  ];
  for (const r of rows) {
    const met = r.pass ??
      (r.ratio !== undefined && r.target?.startsWith("<")
        ? r.ratio <=
          Number(r.target.replace(/[^\d.]/g, "")) +
            (r.target.startsWith("<=") ? 0 : -1e-9)
        : undefined);
    lines.push(
      `| ${r.label} | ${r.ours?.wall.toFixed(3) ?? "-"} | ${
        r.ours?.min.toFixed(3) ?? "-"
      } | ${r.refLabel?.replaceAll("|", "\\|") ?? "-"} | ${
        r.ref?.wall.toFixed(3) ?? "-"
      } | ${r.ref?.min.toFixed(3) ?? "-"} | ${r.ratio?.toFixed(2) ?? "-"} | ${
        r.target ?? "-"
      }${met === undefined ? "" : met ? " ✓" : " ✗"} | ${
        r.ours?.rss.toFixed(1) ?? "-"
      } | ${r.load.toFixed(2)} |`,
    );
  }
  const notes = rows.filter((r) => r.note);
  if (notes.length > 0) lines.push("");
  for (const r of notes) lines.push(`- ${r.label}: ${r.note}`);
  console.log(lines.join("\n"));
}

if (import.meta.main) {
  await main();
}
