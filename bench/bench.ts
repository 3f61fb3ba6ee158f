/**
 * `deno task bench`: measures ironcore-image against the machine's limits and
 * its peers in one run, and prints one table.
 *
 * Starts its own registry on 127.0.0.1, makes random payloads under a work
 * directory, and times whole processes (start-up included) with GNU time for
 * CPU and peak RSS. References: `openssl dgst -sha256`, curl's monolithic
 * upload and download, and skopeo when installed.
 *
 * The serve cases (`--only serve`) serve a `--serve-mib` layer from a cache
 * on tmpfs to 20 clients and to one, against nginx with `sendfile on`
 * (`apt-get install nginx-light`; without nginx they are left out), and
 * time the cold path against `curl | tee | openssl dgst`.
 *
 * Usage: deno task bench [--mib 1024] [--runs 3] [--big-mib 0] [--serve-mib 256] [--serve-runs 5] [--only REGEX] [--work DIR]
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
import { benchServe, load } from "./_serve_cases.ts";
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
const RUNS = Number(args.runs ?? 3);
const BIG_MIB = Number(args["big-mib"] ?? 0);
const SERVE_MIB = Number(args["serve-mib"] ?? 256);
const SERVE_RUNS = Number(args["serve-runs"] ?? Math.max(5, RUNS));
const ONLY = args.only ? new RegExp(args.only) : undefined;
const WORK = args.work ?? "/tmp/ironcore-bench";
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/cli.ts`;
const DENO = Deno.execPath();

interface Row {
  id: string;
  label: string;
  ours?: Sample;
  ref?: Sample;
  refLabel?: string;
  target?: string;
  ratio?: number;
  pass?: boolean;
  note?: string;
}

const rows: Row[] = [];
let seq = 0;

/** Runs one shell command line under GNU time; returns wall, CPU and peak RSS. */
function timed(script: string): Promise<Sample> {
  return timedIn(script, `${WORK}/time-${++seq}.txt`);
}

async function bench(
  runs: number,
  prep: () => Promise<void>,
  script: () => string,
): Promise<Sample> {
  const samples: Sample[] = [];
  for (let i = 0; i < runs + 1; i++) {
    await prep();
    const s = await timed(TW + script());
    if (i > 0) samples.push(s);
  }
  return {
    wall: median(samples.map((s) => s.wall)),
    cpu: median(samples.map((s) => s.cpu)),
    rss: Math.max(...samples.map((s) => s.rss)),
  };
}

function want(id: string): boolean {
  return !ONLY || ONLY.test(id);
}

function cli(...a: string[]): string {
  const perms = [
    "--allow-read",
    `--allow-write=${WORK}`,
    "--allow-net=127.0.0.1",
    "--allow-env",
  ];
  return `tw ${DENO} run --quiet ${
    perms.join(" ")
  } ${CLI} --quiet --plain-http ${a.map((x) => `'${x}'`).join(" ")}`;
}

async function sha(path: string): Promise<string> {
  return (await sh(`openssl dgst -sha256 -r '${path}'`)).split(" ")[0]!;
}

function record(row: Row): void {
  if (row.ours && row.ref) row.ratio = row.ours.wall / row.ref.wall;
  rows.push(row);
  console.error(
    `[bench] ${row.id} ${row.label}: ours ${
      row.ours?.wall.toFixed(3) ?? "-"
    } s` +
      (row.ref
        ? `, ${row.refLabel} ${row.ref.wall.toFixed(3)} s, ratio ${
          row.ratio?.toFixed(2)
        }`
        : "") +
      (row.ours ? `, peak ${row.ours.rss.toFixed(1)} MiB` : "") +
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

async function main(): Promise<void> {
  await Deno.mkdir(WORK, { recursive: true });
  for (const t of ["openssl", "curl", GNU_TIME, "docker-registry"]) {
    if (!(await hasTool(t))) {
      throw new Error(`The benchmark needs ${t}: run bash .ci/setup`);
    }
  }
  const haveSkopeo = await hasTool("skopeo");
  const big = `${WORK}/big-${MIB}MiB.bin`;
  await payload(big, MIB);
  const bigHex = await sha(big);
  const smalls = [1, 2, 3].map((i) => `${WORK}/small${i}.bin`);
  for (const s of smalls) await payload(s, 4);
  console.error(
    `[bench] payload ${MIB} MiB sha256:${bigHex.slice(0, 12)}, runs ${RUNS}`,
  );

  await using reg = await startRegistry({ auth: "none" });
  const host = reg.host;
  const store = `${WORK}/store`;
  const skHome = `${WORK}/skopeo`;
  const skEnv = (cache: string) =>
    `env _CONTAINERS_ROOTLESS_UID=65534 XDG_DATA_HOME='${cache}' XDG_CONFIG_HOME='${skHome}/cfg' XDG_RUNTIME_DIR='${skHome}/run' HOME='${skHome}/home' TMPDIR='${skHome}/tmp'`;
  await Deno.mkdir(`${skHome}/tmp`, { recursive: true });
  await Deno.mkdir(`${skHome}/run`, { recursive: true });
  await Deno.mkdir(`${skHome}/home`, { recursive: true });

  // ---- build
  if (want("build")) {
    const ref = await bench(
      RUNS,
      () => Promise.resolve(),
      () => `tw openssl dgst -sha256 '${big}'`,
    );
    const first = await bench(
      RUNS,
      () => rm(store),
      () =>
        cli(
          "--store-path",
          store,
          "build",
          "--tag",
          "bench:1",
          "--config",
          `arch=amd64,disk=${big}`,
        ),
    );
    record({
      id: "build",
      label: `build ${MIB} MiB layer (new store)`,
      ours: first,
      ref,
      refLabel: "openssl dgst",
      target: "<= 1.25",
    });
    const again = await bench(
      RUNS,
      () => Promise.resolve(),
      () =>
        cli(
          "--store-path",
          store,
          "build",
          "--tag",
          "bench:1",
          "--config",
          `arch=amd64,disk=${big}`,
        ),
    );
    record({
      id: "rebuild",
      label: "rebuild, unchanged input",
      ours: again,
      ref,
      refLabel: "openssl dgst",
      target: "<= 1.10",
    });
  }
  // ---- progress bars on a terminal (a pseudo-terminal from script(1))
  if (want("progress") && await hasTool("script")) {
    const pstore = `${WORK}/progress-store`;
    const buildCmd = (quiet: boolean) =>
      `tw script -qec "${DENO} run --quiet --allow-read --allow-write=${WORK} --allow-env ${CLI} ${
        quiet ? "--quiet " : ""
      }--store-path ${pstore} build --tag bench:1 --config arch=amd64,disk=${big}" /dev/null > /dev/null`;
    const quiet = await bench(RUNS, () => rm(pstore), () => buildCmd(true));
    const bars = await bench(RUNS, () => rm(pstore), () => buildCmd(false));
    record({
      id: "progress",
      label: "build with progress bars on a terminal vs --quiet",
      ours: bars,
      ref: quiet,
      refLabel: "same build, --quiet",
      target: "<= 1.02",
    });
    await rm(pstore);
  }

  // A store holding the big image, for push.
  await rm(store);
  await sh(
    `${DENO} run -A ${CLI} --quiet --store-path '${store}' build --tag '${host}/bench/big:1' --config arch=amd64,disk='${big}'`,
  );
  await sh(
    `${DENO} run -A ${CLI} --quiet --store-path '${store}' tag '${host}/bench/big:1-amd64' '${host}/bench/single:1'`,
  );

  await sh(
    `${DENO} run -A ${CLI} --quiet --plain-http --store-path '${store}' push '${host}/bench/big:1'`,
  );
  await sh(
    `${DENO} run -A ${CLI} --quiet --plain-http --store-path '${store}' push '${host}/bench/single:1'`,
  );

  // ---- push
  if (want("push")) {
    let repo = "";
    const fresh = () => {
      repo = `bench/fresh-${++seq}`;
      return Promise.resolve();
    };
    const ref = await bench(
      RUNS,
      fresh,
      () => curlUpload(reg, repo, big, bigHex),
    );
    const ours = await bench(RUNS, async () => {
      await fresh();
      await sh(
        `${DENO} run -A ${CLI} --quiet --store-path '${store}' tag '${host}/bench/single:1' '${host}/${repo}:1'`,
      );
    }, () => cli("--store-path", store, "push", `${host}/${repo}:1`));
    record({
      id: "push",
      label: `push ${MIB} MiB layer (new repo)`,
      ours,
      ref,
      refLabel: "curl POST+PUT",
      target: "<= 1.05",
    });
    if (haveSkopeo) {
      const sk = await bench(
        RUNS,
        async () => {
          await fresh();
          await rm(`${skHome}/cold`);
        },
        () =>
          `tw ${
            skEnv(`${skHome}/cold`)
          } skopeo copy -q --preserve-digests --dest-tls-verify=false 'oci:${store}:${host}/bench/single:1' 'docker://${host}/${repo}:1'`,
      );
      record({
        id: "push-cpu",
        label: "push client CPU vs skopeo's",
        ours: { ...ours, wall: ours.cpu },
        ref: { ...sk, wall: sk.cpu },
        refLabel: "skopeo copy CPU",
        target: "<= 0.50",
        note: `skopeo wall ${sk.wall.toFixed(2)} s`,
      });
    }
    const again = await bench(
      RUNS,
      () => Promise.resolve(),
      () => cli("--store-path", store, "push", `${host}/bench/big:1`),
    );
    record({
      id: "repush",
      label: "re-push, registry has every blob (s)",
      ours: again,
      target: "<= 0.15 s",
      pass: again.wall <= 0.15,
    });
  }

  // ---- pull
  if (want("pull")) {
    const dst = `${WORK}/pulled`;
    const ref = await bench(
      RUNS,
      () => Promise.resolve(),
      () =>
        `tw bash -c "curl -sS -f '${reg.url}/v2/bench/big/blobs/sha256:${bigHex}' | openssl dgst -sha256 -r"`,
    );
    const ours = await bench(
      RUNS,
      () => rm(dst),
      () => cli("--store-path", dst, "pull", `${host}/bench/single:1`),
    );
    record({
      id: "pull",
      label: `pull ${MIB} MiB layer (new store)`,
      ours,
      ref,
      refLabel: "curl | openssl",
      target: "<= 1.10",
    });
    if (haveSkopeo) {
      const sk = await bench(
        RUNS,
        async () => {
          await rm(`${WORK}/skopeo-pull`);
          await rm(`${skHome}/cold`);
        },
        () =>
          `tw ${
            skEnv(`${skHome}/cold`)
          } skopeo copy -q --preserve-digests --src-tls-verify=false 'docker://${host}/bench/single:1' 'oci:${WORK}/skopeo-pull:x'`,
      );
      record({
        id: "pull-skopeo",
        label: "pull vs skopeo pull",
        ours,
        ref: sk,
        refLabel: "skopeo copy",
        target: "<= 0.40",
      });
    }
    await rm(dst);
  }

  // ---- small images
  if (want("small") && haveSkopeo) {
    const sstore = `${WORK}/small-store`;
    await rm(sstore);
    await sh(
      `${DENO} run -A ${CLI} --quiet --store-path '${sstore}' build --tag '${host}/bench/small:1' --config arch=amd64,kernel='${
        smalls[0]
      }',initramfs='${smalls[1]}',squashfs='${smalls[2]}'`,
    );
    await sh(
      `${DENO} run -A ${CLI} --quiet --store-path '${sstore}' tag '${host}/bench/small:1-amd64' '${host}/bench/smallone:1'`,
    );
    let repo = "";
    const ours = await bench(RUNS * 3, async () => {
      repo = `bench/s-${++seq}`;
      await sh(
        `${DENO} run -A ${CLI} --quiet --store-path '${sstore}' tag '${host}/bench/smallone:1' '${host}/${repo}:1'`,
      );
    }, () => cli("--store-path", sstore, "push", `${host}/${repo}:1`));
    const sk = await bench(
      RUNS * 3,
      async () => {
        repo = `bench/k-${++seq}`;
        await rm(`${skHome}/cold`);
      },
      () =>
        `tw ${
          skEnv(`${skHome}/cold`)
        } skopeo copy -q --preserve-digests --dest-tls-verify=false 'oci:${sstore}:${host}/bench/smallone:1' 'docker://${host}/${repo}:1'`,
    );
    record({
      id: "small-push",
      label: "push 3 x 4 MiB",
      ours,
      ref: sk,
      refLabel: "skopeo copy",
      target: "< 1.00",
    });
    await sh(
      `${DENO} run -A ${CLI} --quiet --plain-http --store-path '${sstore}' push '${host}/bench/smallone:1'`,
    );
    const dst = `${WORK}/small-pulled`;
    const oursPull = await bench(
      RUNS * 3,
      () => rm(dst),
      () => cli("--store-path", dst, "pull", `${host}/bench/smallone:1`),
    );
    const skPull = await bench(
      RUNS * 3,
      async () => {
        await rm(`${WORK}/sk-small`);
        await rm(`${skHome}/cold`);
      },
      () =>
        `tw ${
          skEnv(`${skHome}/cold`)
        } skopeo copy -q --preserve-digests --src-tls-verify=false 'docker://${host}/bench/smallone:1' 'oci:${WORK}/sk-small:x'`,
    );
    record({
      id: "small-pull",
      label: "pull 3 x 4 MiB",
      ours: oursPull,
      ref: skPull,
      refLabel: "skopeo copy",
      target: "< 1.00",
    });
    await rm(dst);
  }

  // ---- multi-arch concurrency: 2 arches x 4 layers of MIB/4
  if (want("multi")) {
    const quarter = Math.max(1, Math.floor(MIB / 4));
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
    await sh(
      `${DENO} run -A ${CLI} --quiet --store-path '${mstore}' build --tag '${host}/bench/multi:1' --config '${
        cfg("amd64", 0)
      }' --config '${cfg("arm64", 4)}'`,
    );
    await sh(
      `${DENO} run -A ${CLI} --quiet --store-path '${mstore}' build --tag '${host}/bench/one:1' --config 'arch=amd64,disk=${
        parts[0]
      }'`,
    );
    for (const ref of [`${host}/bench/multi:1`, `${host}/bench/one:1-amd64`]) {
      await sh(
        `${DENO} run -A ${CLI} --quiet --plain-http --store-path '${mstore}' push '${ref}'`,
      );
    }
    let repo = "";
    const tagFresh = async (src: string) => {
      repo = `bench/m-${++seq}`;
      await sh(
        `${DENO} run -A ${CLI} --quiet --store-path '${mstore}' tag '${src}' '${host}/${repo}:1'`,
      );
    };
    const one = await bench(
      RUNS,
      () => tagFresh(`${host}/bench/one:1-amd64`),
      () => cli("--store-path", mstore, "push", `${host}/${repo}:1`),
    );
    const all = await bench(
      RUNS,
      () => tagFresh(`${host}/bench/multi:1`),
      () => cli("--store-path", mstore, "push", `${host}/${repo}:1`),
    );
    record({
      id: "multi-push",
      label: `push 2 arch x 4 layers of ${quarter} MiB vs one layer`,
      ours: all,
      ref: one,
      refLabel: "push of the largest blob",
      target: "close to 1 (serial would be 8)",
    });
    const dst = `${WORK}/multi-pulled`;
    const pullAll = await bench(
      RUNS,
      () => rm(dst),
      () => cli("--store-path", dst, "pull", `${host}/bench/multi:1`),
    );
    const pullOne = await bench(
      RUNS,
      () => rm(dst),
      () => cli("--store-path", dst, "pull", `${host}/bench/one:1-amd64`),
    );
    record({
      id: "multi-pull",
      label: "pull the same index vs one layer",
      ours: pullAll,
      ref: pullOne,
      refLabel: "pull of the largest blob",
      target: "close to 1 (serial would be 8)",
    });
    await rm(dst);
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
    const list = await bench(
      RUNS,
      () => Promise.resolve(),
      () => cli("--store-path", tstore, "list") + " > /dev/null",
    );
    record({
      id: "tags-list",
      label: "list with 10,000 tags (s)",
      ours: list,
      target: "< 0.3 s",
      pass: list.wall < 0.3,
    });
    const tag = await bench(
      RUNS,
      () => Promise.resolve(),
      () =>
        cli("--store-path", tstore, "tag", "bench/t:5000", `bench/u:${++seq}`),
    );
    record({
      id: "tags-tag",
      label: "tag with 10,000 tags (s)",
      ours: tag,
      target: "< 0.3 s",
      pass: tag.wall < 0.3,
    });
    const insp = await bench(
      RUNS,
      () => Promise.resolve(),
      () =>
        cli("--store-path", tstore, "inspect", "bench/t:9999") + " > /dev/null",
    );
    record({
      id: "tags-inspect",
      label: "inspect with 10,000 tags (s)",
      ours: insp,
      target: "< 0.3 s",
      pass: insp.wall < 0.3,
    });
    await rm(tstore);
  }

  // ---- memory flatness
  if (BIG_MIB > 0 && want("memory")) {
    const huge = `${WORK}/huge-${BIG_MIB}MiB.bin`;
    await payload(huge, BIG_MIB);
    const hstore = `${WORK}/huge-store`;
    await rm(hstore);
    const b = await bench(
      1,
      () => rm(hstore),
      () =>
        cli(
          "--store-path",
          hstore,
          "build",
          "--tag",
          `${host}/bench/huge:1`,
          "--config",
          `arch=amd64,disk=${huge}`,
        ),
    );
    // A fresh repository each run, so every run uploads all bytes.
    let hugeRepo = "";
    const p = await bench(1, async () => {
      hugeRepo = `${host}/bench/huge-${++seq}:1`;
      await sh(
        `${DENO} run -A ${CLI} --quiet --store-path '${hstore}' tag '${host}/bench/huge:1' '${hugeRepo}'`,
      );
    }, () => cli("--store-path", hstore, "push", hugeRepo));
    const dst = `${WORK}/huge-pulled`;
    const q = await bench(
      1,
      () => rm(dst),
      () => cli("--store-path", dst, "pull", hugeRepo),
    );
    for (const [id, s] of [["build", b], ["push", p], ["pull", q]] as const) {
      record({
        id: `rss-${id}`,
        label: `${id} ${BIG_MIB} MiB: peak RSS (MiB)`,
        ours: s,
        target: "<= 100 MiB, flat",
        pass: s.rss <= 100,
      });
    }
    await rm(dst);
    await rm(hstore);
    await rm(huge);
  }

  // ---- serve: from the cache against nginx, and the cold path
  if (want("serve")) {
    if (!(await hasTool("nginx"))) {
      console.error(
        "[bench] serve cases left out: they need nginx as the reference (apt-get install -y nginx-light)",
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
    `ironcore-image bench  ${
      new Date().toISOString().slice(0, 16)
    }Z  ${info}  load ${await load()}`,
    `payload ${MIB} MiB random; median of ${RUNS} runs after 1 warm-up; whole processes, start-up included`,
    "",
    "| case | ours (s) | reference | ref (s) | ratio | target | peak RSS (MiB) |",
    "| --- | ---: | --- | ---: | ---: | --- | ---: |",
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
        r.refLabel?.replaceAll("|", "\\|") ?? "-"
      } | ${r.ref?.wall.toFixed(3) ?? "-"} | ${r.ratio?.toFixed(2) ?? "-"} | ${
        r.target ?? "-"
      }${met === undefined ? "" : met ? " ✓" : " ✗"} | ${
        r.ours?.rss.toFixed(1) ?? "-"
      } |`,
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
