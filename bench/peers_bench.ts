/**
 * `deno task bench:peers`: push and pull of the same images with ironcore-image
 * and its peers side by side: the Go ironcore-image, oras, crane (built by
 * `.ci/setup-peers`) and skopeo. Two images: one layer of `--mib` MiB, and two
 * architectures of four layers of `--layer-mib` MiB each.
 *
 * Every tool runs as a whole process under GNU time (start-up included): wall
 * time, client CPU and peak RSS, the median of `--runs` runs after one warm-up.
 * Each push goes to a freshly started registry, so every run uploads every
 * byte; each pull goes to an empty directory. Payloads, stores and the
 * registries' storage live under `--work` (default /dev/shm, so disks do not
 * count). The Go tool and ours push from their own stores (built from the
 * same files); oras, crane and skopeo push the OCI layout `ironcore-image
 * export` writes of ours' image, the same bytes.
 *
 * Usage: deno task bench:peers [--mib 1024] [--layer-mib 128] [--runs 5] [--only REGEX] [--work DIR]
 *
 * @module
 */

import { peerPath } from "../tests/_helpers/peers.ts";
import {
  startRegistry,
  type TestRegistry,
} from "../tests/_helpers/registry.ts";
import {
  median,
  parseFlags,
  payload,
  rm,
  type Sample,
  sh,
  timed,
  TW,
} from "./_measure.ts";

const args = parseFlags(Deno.args);
const MIB = Number(args.mib ?? 1024);
const LAYER_MIB = Number(args["layer-mib"] ?? 128);
const RUNS = Number(args.runs ?? 5);
const ONLY = args.only ? new RegExp(args.only) : undefined;
const WORK = args.work ?? "/dev/shm/ironcore-peers-bench";
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/cli.ts`;
const DENO = Deno.execPath();

const TOOLS = ["ours", "go", "oras", "crane", "skopeo"] as const;
type Tool = typeof TOOLS[number];

interface Row {
  image: string;
  op: "push" | "pull";
  tool: Tool;
  sample: Sample;
  note?: string;
}

let seq = 0;

/** Median of `RUNS` measured runs after one warm-up; `prep` runs untimed before each. */
async function bench(
  prep: () => Promise<void>,
  script: () => string,
): Promise<Sample> {
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    await prep();
    // Right after a large delete on tmpfs, the kernel's reclaim can triple
    // the next writer's system time, whichever tool it is: let it settle.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const s = await timed(TW + script(), `${WORK}/time-${++seq}.txt`);
    if (i > 0) samples.push(s);
  }
  return {
    wall: median(samples.map((s) => s.wall)),
    cpu: median(samples.map((s) => s.cpu)),
    rss: Math.max(...samples.map((s) => s.rss)),
  };
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Deno asks for --allow-all to write under /dev (such as /dev/shm). */
function ours(...a: string[]): string {
  return `${DENO} run --quiet --allow-all ${CLI} --quiet --plain-http ${
    a.map(q).join(" ")
  }`;
}

interface Image {
  name: string;
  label: string;
  /** `--config` values for `build`. */
  configs: string[];
  /** Architectures, for the Go tool's per-architecture pulls. */
  archs: string[];
}

/** Where each tool's copy of an image lives, and how it is named there. */
interface Sources {
  ourStore: string;
  goStore: string;
  /** OCI layout written by `export`, and the digest of the image in it. */
  layout: string;
  digest: string;
  /** The name the image has in the stores and the layout. */
  local: string;
}

async function prepare(image: Image): Promise<Sources> {
  const local = `localhost/bench/${image.name}:1`;
  const ourStore = `${WORK}/${image.name}-ours-store`;
  const goStore = `${WORK}/${image.name}-go-store`;
  const layout = `${WORK}/${image.name}-layout`;
  for (const d of [ourStore, goStore, layout]) await rm(d);
  const configArgs = image.configs.flatMap((c) => ["--config", c]);
  await sh(
    ours("--store-path", ourStore, "build", "--tag", local, ...configArgs),
  );
  await sh(
    `${q(peerPath("ironcore-image"))} --store-path ${q(goStore)} build --tag ${
      q(local)
    } ${configArgs.map(q).join(" ")} > /dev/null`,
  );
  await sh(
    ours("--store-path", ourStore, "export", local, "-o", `${layout}.tar`),
  );
  await Deno.mkdir(layout);
  await sh(
    `tar -C ${q(layout)} -xf ${q(`${layout}.tar`)} && rm ${q(`${layout}.tar`)}`,
  );
  const index = JSON.parse(await Deno.readTextFile(`${layout}/index.json`));
  return {
    ourStore,
    goStore,
    layout,
    digest: index.manifests[0].digest,
    local,
  };
}

function skopeoEnv(): string {
  const home = `${WORK}/skopeo`;
  return `env _CONTAINERS_ROOTLESS_UID=65534 XDG_DATA_HOME=${home}/data XDG_CONFIG_HOME=${home}/cfg XDG_RUNTIME_DIR=${home}/run HOME=${home}/home TMPDIR=${home}/tmp`;
}

function pushScript(tool: Tool, src: Sources, ref: string): string {
  switch (tool) {
    case "ours":
      return `tw ${ours("--store-path", src.ourStore, "push", ref)}`;
    case "go":
      return `tw ${q(peerPath("ironcore-image"))} --store-path ${
        q(src.goStore)
      } push ${q(ref)} > /dev/null`;
    case "oras":
      return `tw ${q(peerPath("oras"))} cp --from-oci-layout ${
        q(`${src.layout}@${src.digest}`)
      } --to-plain-http ${q(ref)} > /dev/null`;
    case "crane":
      return `tw ${q(peerPath("crane"))} push --insecure ${q(src.layout)} ${
        q(ref)
      } > /dev/null 2>&1`;
    case "skopeo":
      return `tw ${skopeoEnv()} skopeo copy -q --all --preserve-digests --dest-tls-verify=false ${
        q(`oci:${src.layout}:${src.local}`)
      } ${q(`docker://${ref}`)}`;
  }
}

function pullScript(
  tool: Tool,
  image: Image,
  ref: string,
  dst: string,
): string {
  switch (tool) {
    case "ours":
      return `tw ${ours("--store-path", dst, "pull", ref)}`;
    case "go": {
      // The Go tool pulls one manifest per run: one run per architecture.
      const refs = image.archs.length > 1
        ? image.archs.map((a) => `${ref}-${a}`)
        : [ref];
      return refs.map((r) =>
        `tw ${q(peerPath("ironcore-image"))} --store-path ${q(dst)} pull ${
          q(r)
        } > /dev/null`
      ).join(" && ");
    }
    case "oras":
      return `tw ${q(peerPath("oras"))} cp --from-plain-http ${
        q(ref)
      } --to-oci-layout ${q(`${dst}:x`)} > /dev/null`;
    case "crane":
      return `tw ${q(peerPath("crane"))} pull --insecure --format oci ${
        q(ref)
      } ${q(dst)} 2> /dev/null`;
    case "skopeo":
      return `tw ${skopeoEnv()} skopeo copy -q --all --preserve-digests --src-tls-verify=false ${
        q(`docker://${ref}`)
      } ${q(`oci:${dst}:x`)}`;
  }
}

async function main(): Promise<void> {
  await Deno.mkdir(`${WORK}/skopeo/tmp`, { recursive: true });
  await Deno.mkdir(`${WORK}/skopeo/run`, { recursive: true });
  await Deno.mkdir(`${WORK}/skopeo/home`, { recursive: true });
  // The registries' storage goes under WORK too.
  Deno.env.set("TMPDIR", WORK);
  for (const t of TOOLS) {
    if (t !== "ours" && t !== "skopeo") {
      peerPath(t === "go" ? "ironcore-image" : t);
    }
  }

  const big = `${WORK}/big-${MIB}MiB.bin`;
  await payload(big, MIB);
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) {
    parts.push(`${WORK}/part${i}-${LAYER_MIB}MiB.bin`);
    await payload(parts[i]!, LAYER_MIB);
  }
  const layerConfig = (arch: string, o: number) =>
    `arch=${arch},kernel=${parts[o]},initramfs=${parts[o + 1]},squashfs=${
      parts[o + 2]
    },rootfs=${parts[o + 3]}`;
  const images: Image[] = [
    {
      name: "big",
      label: `1 layer of ${MIB} MiB`,
      configs: [`arch=amd64,rootfs=${big}`],
      archs: ["amd64"],
    },
    {
      name: "multi",
      label: `2 arch × 4 layers of ${LAYER_MIB} MiB`,
      configs: [layerConfig("amd64", 0), layerConfig("arm64", 4)],
      archs: ["amd64", "arm64"],
    },
  ];

  const rows: Row[] = [];
  for (const image of images) {
    if (ONLY && !ONLY.test(image.name)) continue;
    const src = await prepare(image);

    // ---- push: a fresh registry for every run.
    let reg: TestRegistry | undefined;
    const ref = () => `${reg!.host}/bench/${image.name}:1`;
    for (const tool of TOOLS) {
      const sample = await bench(async () => {
        await reg?.stop();
        reg = await startRegistry();
        if (tool === "ours") {
          await sh(ours("--store-path", src.ourStore, "tag", src.local, ref()));
        } else if (tool === "go") {
          await sh(
            `${q(peerPath("ironcore-image"))} --store-path ${
              q(src.goStore)
            } tag ${q(src.local)} ${q(ref())} > /dev/null`,
          );
        }
      }, () => pushScript(tool, src, ref()));
      rows.push({ image: image.label, op: "push", tool, sample });
      console.error(`[bench] push ${image.name} ${tool}: ${fmt(sample)}`);
    }
    await reg?.stop();

    // ---- pull: one registry that ours pushed the image to.
    await using pullReg = await startRegistry();
    const pullRef = `${pullReg.host}/bench/${image.name}:1`;
    await sh(ours("--store-path", src.ourStore, "tag", src.local, pullRef));
    await sh(ours("--store-path", src.ourStore, "push", pullRef));
    const dst = `${WORK}/pulled`;
    for (const tool of TOOLS) {
      const sample = await bench(
        () => rm(dst),
        () => pullScript(tool, image, pullRef, dst),
      );
      rows.push({
        image: image.label,
        op: "pull",
        tool,
        sample,
        ...(tool === "go" && image.archs.length > 1
          ? { note: "one run per architecture" }
          : {}),
      });
      console.error(`[bench] pull ${image.name} ${tool}: ${fmt(sample)}`);
    }
    await rm(dst);
    for (const d of [src.ourStore, src.goStore, src.layout]) await rm(d);
  }
  console.log(await report(rows));
}

function fmt(s: Sample): string {
  return `${s.wall.toFixed(2)} s wall, ${s.cpu.toFixed(2)} s CPU, ${
    s.rss.toFixed(0)
  } MiB`;
}

async function version(cmd: string): Promise<string> {
  return await sh(cmd).catch(() => "?");
}

async function report(rows: Row[]): Promise<string> {
  const versions = [
    `deno ${Deno.version.deno}`,
    `Go ironcore-image ${await version(
      `$(command -v go || echo /usr/local/go/bin/go) version -m ${
        q(peerPath("ironcore-image"))
      } 2>/dev/null | awk '$1=="mod"{print $3}'`,
    )}`,
    `oras ${await version(
      `${q(peerPath("oras"))} version | awk 'NR==1{print $2}'`,
    )}`,
    `crane ${await version(`${q(peerPath("crane"))} version`)}`,
    `skopeo ${await version("skopeo --version | awk '{print $3}'")}`,
    `docker-registry ${await version(
      "docker-registry --version | awk '{print $3}'",
    )}`,
  ];
  const machine = await version(
    "echo \"$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)\"",
  );
  const lines = [
    `ironcore-image vs peers  ${
      new Date().toISOString().slice(0, 16)
    }Z  ${machine}`,
    versions.join(", "),
    `median of ${RUNS} runs after 1 warm-up; whole processes; payloads, stores and registry storage on ${WORK}`,
    "",
    "| image | op | tool | wall (s) | client CPU (s) | peak RSS (MiB) | wall vs ours |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const base = rows.find((x) =>
      x.image === r.image && x.op === r.op && x.tool === "ours"
    )!.sample;
    const best = (k: "wall" | "cpu") =>
      Math.min(
          ...rows.filter((x) =>
            x.image === r.image && x.op === r.op
          ).map((x) => x.sample[k]),
        ) === r.sample[k]
        ? " *"
        : "";
    lines.push(
      `| ${r.image} | ${r.op} | ${r.tool}${r.note ? ` (${r.note})` : ""} | ${
        r.sample.wall.toFixed(2)
      }${best("wall")} | ${r.sample.cpu.toFixed(2)}${best("cpu")} | ${
        r.sample.rss.toFixed(0)
      } | ${(r.sample.wall / base.wall).toFixed(2)} |`,
    );
  }
  lines.push("", "`*`: the lowest of the row's image and operation.");
  return lines.join("\n");
}

if (import.meta.main) {
  await main();
}
