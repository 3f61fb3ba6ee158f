/**
 * The CLI as users run it: a real `deno run cli.ts` child process per call.
 */

import assert from "node:assert/strict";
import { buildImage } from "../../src/build/build_image.ts";
import { digestHex } from "../../src/oci/digest.ts";
import { Store } from "../../src/store/store.ts";
import {
  type CliResult,
  REPO_ROOT,
  runCliProcess,
  snapshotStore,
} from "../_helpers/cli.ts";
import { copyTree, writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { tagIndexOf } from "../../src/store/_internal.ts";
import denoConfig from "../../deno.json" with { type: "json" };
import { COMMANDS as COMMAND_TABLE } from "../../src/cli/commands/mod.ts";

const COMMANDS = ["build", "tag", "list", "inspect", "delete"];
const VERSION = denoConfig.version;

/** A store holding demo:1 (amd64 and arm64) plus input files beside it. */
async function seed(dir: string) {
  const files = await writeFiles(dir, {
    vmlinuz: "kernel",
    initrd: "initramfs",
    "cmdline.txt": "console=ttyS0\n",
    "latin1.txt": new Uint8Array([
      0x63,
      0x6f,
      0x6e,
      0x73,
      0x6f,
      0x6c,
      0x65,
      0xe9,
    ]),
    "locked": "secret kernel",
  });
  await Deno.chmod(files.locked, 0o000);
  await Deno.mkdir(`${dir}/adir`);
  const store = `${dir}/store`;
  await buildImage(await Store.open(store), [
    {
      arch: "amd64",
      layers: { kernel: files.vmlinuz, initramfs: files.initrd },
    },
    { arch: "arm64", layers: { kernel: files.vmlinuz } },
  ], { tag: "demo:1" });
  return { store, files };
}

function assertOneLineError(
  res: CliResult,
  code: number,
  message: RegExp,
): void {
  assert.equal(res.code, code, `exit code; stderr: ${res.stderr}`);
  assert.equal(res.stdout, "", "nothing on stdout");
  assert.match(res.stderr, /^Error: [^\n]+\n$/, "exactly one line on stderr");
  assert.doesNotMatch(res.stderr, /\bat .*\.ts:\d+/, "no stack trace");
  assert.match(res.stderr.slice("Error: ".length, -1), message);
}

// --- help, version and flags ------------------------------------------------

Deno.test("ironcore-image without arguments prints the help to stderr and exits 2", async () => {
  const res = await runCliProcess([]);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /^ironcore-image 0\.1\.0: /);
  assert.equal(res.stdout, "");
});

Deno.test("an empty IRONCORE_IMAGE_STORE is a usage error, not ~/.ironcore or /", async () => {
  await withTempDir(async (dir) => {
    const res = await runCliProcess(["list"], {
      env: { IRONCORE_IMAGE_STORE: "", HOME: dir },
    });
    assertOneLineError(
      res,
      2,
      /^IRONCORE_IMAGE_STORE is set but empty: set it to the store's directory, or unset it for ~\/\.ironcore$/,
    );
    assert.deepEqual(await snapshotStore(`${dir}/.ironcore`), {});
  });
});

Deno.test("ironcore-image --help, -h and help list every command and the global flags", async () => {
  const outputs = await Promise.all(
    [["--help"], ["-h"], ["help"], ["--store-path", "/x", "--help"]].map((a) =>
      runCliProcess(a)
    ),
  );
  for (const res of outputs) {
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, "");
    assert.equal(res.stdout, outputs[0]!.stdout);
    for (const name of COMMANDS) {
      assert.match(res.stdout, new RegExp(`^  ${name} +\\S`, "m"), name);
    }
    for (
      const flag of [
        "--store-path DIR",
        "--quiet",
        "--debug",
        "--version",
        "--plain-http",
      ]
    ) {
      assert.ok(res.stdout.includes(flag), flag);
    }
  }
});

Deno.test("ironcore-image --version prints the version wherever it is given", async () => {
  const outputs = await Promise.all(
    [["--version"], ["list", "--version"], ["--version", "list"], [
      "help",
      "--version",
    ]]
      .map((a) => runCliProcess(a)),
  );
  for (const res of outputs) {
    assert.deepEqual(res, {
      code: 0,
      stdout: `ironcore-image ${VERSION}\n`,
      stderr: "",
    });
  }
});

Deno.test("ironcore-image --version reads the version from deno.json", async () => {
  await withTempDir(async (dir) => {
    // A copy of the package whose deno.json names another version: the CLI
    // must print that one, so no second copy of the version can hide in src/.
    await copyTree(`${REPO_ROOT}/src`, `${dir}/src`);
    await Deno.copyFile(`${REPO_ROOT}/cli.ts`, `${dir}/cli.ts`);
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ ...denoConfig, version: "9.8.7-check" }),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-lock", `${dir}/cli.ts`, "--version"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    assert.equal(decoder.decode(out.stdout), "ironcore-image 9.8.7-check\n");
  });
});

for (const name of COMMANDS) {
  Deno.test(`ironcore-image ${name} --help prints its usage and flags and exits 0`, async () => {
    const [a, b, c] = await Promise.all([
      runCliProcess([name, "--help"]),
      runCliProcess(["help", name]),
      runCliProcess(["-h", name, "--store-path", "/nonexistent"]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stderr, "");
    assert.match(
      a.stdout,
      new RegExp(`^Usage: ironcore-image ${name}\\b`, "m"),
    );
    assert.match(a.stdout, /^Global flags:$/m);
    assert.deepEqual(b, a);
    assert.deepEqual(c, a);
    if (name === "build") {
      for (const flag of ["--tag REF", "--config SPEC", "--annotations"]) {
        assert.ok(a.stdout.includes(flag), flag);
      }
    }
    if (name === "list") assert.ok(a.stdout.includes("--json"));
  });
}

Deno.test("every command's usage line names each of its flags", () => {
  for (const cmd of COMMAND_TABLE) {
    for (const flag of cmd.flags.filter((f) => !f.hidden)) {
      const named = cmd.usage.includes(`--${flag.name}`) ||
        (flag.short !== undefined && cmd.usage.includes(`-${flag.short} `));
      assert.ok(named, `${cmd.name}: --${flag.name} is missing from its usage`);
    }
  }
});

Deno.test("every command's help lines up its flag descriptions in one column", async () => {
  const helps = await Promise.all(
    COMMAND_TABLE.map((cmd) => runCliProcess([cmd.name, "--help"])),
  );
  for (const [i, cmd] of COMMAND_TABLE.entries()) {
    const run = helps[i]!;
    assert.equal(run.code, 0, `${cmd.name} --help: ${run.stderr}`);
    const lines = run.stdout.split("\n");
    for (const flag of cmd.flags.filter((f) => !f.hidden)) {
      const at = lines.findIndex((l) =>
        new RegExp(`^ {2}(-\\w, | {4})--${flag.name}\\b`).test(l)
      );
      assert.ok(at >= 0, `${cmd.name}: no help row for --${flag.name}`);
      const row = lines[at]!;
      // A long flag name puts its description on the next line.
      const help = row.slice(37).startsWith(flag.help) ? row : lines[at + 1]!;
      assert.equal(
        help.slice(37, 37 + flag.help.length),
        flag.help,
        `${cmd.name} --${flag.name}: its description is not in column 38`,
      );
    }
  }
});

Deno.test("global flags work before and after the command name", async () => {
  await withTempDir(async (dir) => {
    const { store } = await seed(dir);
    const variants = [
      ["--store-path", store, "list", "--json"],
      ["list", "--json", "--store-path", store],
      [`--store-path=${store}`, "-q", "list", "--json"],
      ["-q", "list", `--store-path=${store}`, "--json=true"],
      ["--quiet=true", "--store-path", store, "--debug", "list", "--json"],
    ];
    const results = await Promise.all(variants.map((a) => runCliProcess(a)));
    for (const [i, res] of results.entries()) {
      assert.equal(res.code, 0, `${variants[i]!.join(" ")}: ${res.stderr}`);
      assert.equal(res.stdout, results[0]!.stdout);
    }
    const rows = JSON.parse(results[0]!.stdout);
    assert.deepEqual(rows.map((r: { tag: string }) => r.tag), [
      "1-amd64",
      "1-arm64",
      "1",
    ]);
  });
});

const USAGE_ERRORS: [string, string[], RegExp][] = [
  [
    "an unknown command",
    ["frobnicate"],
    /^Unknown command "frobnicate": run ironcore-image help/,
  ],
  [
    "help for an unknown command",
    ["help", "frobnicate"],
    /^Unknown command "frobnicate"/,
  ],
  [
    "an unknown flag after the command",
    ["list", "--frob"],
    /^Unknown flag --frob for list: run "ironcore-image list --help"/,
  ],
  [
    "an unknown flag before the command",
    ["--frob", "list"],
    /^Unknown flag --frob for list/,
  ],
  ["an unknown short flag", ["list", "-x"], /^Unknown flag -x for list/],
  [
    "a flag without its value",
    ["list", "--store-path"],
    /^Flag --store-path needs a value$/,
  ],
  [
    "a string flag given twice",
    ["build", "--tag", "a", "--tag", "b"],
    /^Flag --tag is given more than once$/,
  ],
  [
    "a bad --retries for a command that does not use it",
    ["--retries", "x", "list"],
    /^Flag --retries takes a number from 0 to 100, got "x"$/,
  ],
  [
    "a bad --hash-worker-threshold for a command without a store",
    ["completion", "bash", "--hash-worker-threshold", "-1"],
    /^Flag --hash-worker-threshold takes a number of bytes, got "-1"$/,
  ],
  [
    "a boolean flag with a bad value",
    ["list", "--json=maybe"],
    /^Flag --json takes true or false, got "maybe"$/,
  ],
  [
    "too few arguments",
    ["tag", "demo:1"],
    /^tag takes SOURCE and TARGET: usage: ironcore-image tag SOURCE TARGET$/,
  ],
  ["too many arguments", ["inspect", "a", "b"], /^inspect takes one REF/],
  [
    "an argument where none is taken",
    ["list", "extra"],
    /^list takes no arguments/,
  ],
  [
    "build without --config",
    ["build", "--tag", "x:1"],
    /^build needs at least one --config/,
  ],
  ["a bad --annotations entry", [
    "build",
    "--config",
    "arch=amd64,kernel=k",
    "--annotations",
    "novalue",
  ], /^Invalid --annotations entry "novalue"/],
];

for (const [name, args, message] of USAGE_ERRORS) {
  Deno.test(`ironcore-image exits 2 with one line on stderr for ${name}`, async () => {
    await withTempDir(async (dir) => {
      const { store } = await seed(dir);
      const before = await snapshotStore(store);
      const res = await runCliProcess(["--store-path", store, ...args]);
      assertOneLineError(res, 2, message);
      assert.deepEqual(await snapshotStore(store), before);
    });
  });
}

Deno.test("--debug adds the stack trace that is otherwise hidden", async () => {
  await withTempDir(async (dir) => {
    const { store } = await seed(dir);
    const plain = await runCliProcess([
      "--store-path",
      store,
      "inspect",
      "nope:1",
    ]);
    assertOneLineError(plain, 1, /^Image nope:1 not found/);
    const debug = await runCliProcess([
      "--store-path",
      store,
      "--debug",
      "inspect",
      "nope:1",
    ]);
    assert.equal(debug.code, 1);
    assert.ok(debug.stderr.startsWith(plain.stderr));
    assert.match(
      debug.stderr,
      /NotFoundError: Image nope:1 not found[^]*\n +at /,
    );
  });
});

// --- bad input leaves the store byte-for-byte unchanged ----------------------

interface Ctx {
  dir: string;
  store: string;
  files: Record<string, string>;
  prefix: string;
}

interface BadInput {
  name: string;
  code: 1 | 2;
  args: (c: Ctx) => string[];
  message: (c: Ctx) => RegExp;
  /** Breaks the store, or adds images, before the snapshot. */
  prepare?: (c: Ctx) => Promise<void>;
  ignore?: boolean;
}

const BUILD = (c: Ctx, config: string, ...more: string[]) => [
  "--store-path",
  c.store,
  "build",
  "--tag",
  "new:1",
  "--config",
  config,
  ...more,
];

/** Makes a FIFO (named pipe). */
async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** Tags more images until two index.json entries share a first hex digit. */
async function makeSharedPrefix(c: Ctx): Promise<void> {
  const store = await Store.open(c.store);
  for (let i = 0; i < 17; i++) {
    const seen = new Map<string, string>();
    for (const d of await tagIndexOf(store).entries()) {
      const first = digestHex(d.digest)[0]!;
      const other = seen.get(first);
      if (other !== undefined && other !== d.digest) {
        c.prefix = first;
        return;
      }
      seen.set(first, d.digest);
    }
    const f = await writeFiles(c.dir, { [`k${i}`]: `kernel ${i}` });
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: Object.values(f)[0]! },
    }], {
      tag: `more:${i}`,
    });
  }
  throw new Error("no two digests share a first hex digit");
}

const BAD_INPUTS: BadInput[] = [
  {
    name: "a missing input file",
    code: 1,
    args: (c) => BUILD(c, `arch=amd64,kernel=${c.dir}/nope`),
    message: (c) =>
      new RegExp(
        `^Cannot read kernel file ${c.dir}/nope: no such file, check the path in --config$`,
      ),
  },
  {
    name: "an unreadable input file",
    code: 1,
    // chmod 000 does not stop root, and the tests run as root in CI
    // containers; there is no portable way to make a file unreadable for
    // root, so the case only runs for other users.
    ignore: Deno.uid() === 0,
    args: (c) => BUILD(c, `arch=amd64,kernel=${c.files.locked}`),
    message: () => /^Cannot read kernel file .*locked: permission denied$/,
  },
  {
    name: "a directory where a file is expected",
    code: 1,
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},initramfs=${c.dir}/adir`),
    message: () =>
      /^Cannot read initramfs file .*adir: it is a directory, give a regular file$/,
  },
  {
    name: "a directory as the cmdline file",
    code: 1,
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},cmdline=${c.dir}/adir`),
    message: () => /^Cannot read cmdline file .*adir: it is a directory/,
  },
  {
    name: "a character device as a layer file",
    code: 1,
    args: (c) => BUILD(c, `arch=amd64,kernel=/dev/null`),
    message: () =>
      /^Cannot read kernel file \/dev\/null: it is a character device, give a regular file$/,
  },
  {
    name: "an endless device as the cmdline file",
    code: 1,
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},cmdline=/dev/zero`),
    message: () =>
      /^Cannot read cmdline file \/dev\/zero: it is a character device, give a regular file$/,
  },
  {
    name: "a FIFO as a layer file",
    code: 1,
    prepare: (c) => mkfifo(`${c.dir}/fifo`),
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},initramfs=${c.dir}/fifo`),
    message: () =>
      /^Cannot read initramfs file .*\/fifo: it is a FIFO \(named pipe\), give a regular file$/,
  },
  {
    name: "a FIFO as the cmdline file",
    code: 1,
    prepare: (c) => mkfifo(`${c.dir}/fifo`),
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},cmdline=${c.dir}/fifo`),
    message: () =>
      /^Cannot read cmdline file .*\/fifo: it is a FIFO \(named pipe\), give a regular file$/,
  },
  {
    name: "an empty --store-path",
    code: 2,
    args: () => ["--store-path", "", "list"],
    message: () =>
      /^Flag --store-path is empty: give the store's directory, or leave the flag out for the default$/,
  },
  {
    name: "a directory as the Docker config",
    code: 1,
    args: (c) => [
      "--docker-config-path",
      `${c.dir}/adir`,
      "logout",
      "localhost:5000",
    ],
    message: (c) =>
      new RegExp(
        `^Docker config ${c.dir}/adir is a directory: give the path of the file, such as ${c.dir}/adir/config\\.json$`,
      ),
  },
  {
    name: "an unknown --config key",
    code: 2,
    args: (c) => BUILD(c, `arch=amd64,kernal=${c.files.vmlinuz}`),
    message: () => /^Unknown --config key "kernal": use one of /,
  },
  {
    name: "a --config without arch",
    code: 2,
    args: (c) => BUILD(c, `kernel=${c.files.vmlinuz}`),
    message: () => /arch is missing, add arch=amd64/,
  },
  {
    name: "a --config with a key twice",
    code: 2,
    args: (c) =>
      BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},kernel=${c.files.initrd}`),
    message: () => /^Invalid --config: key kernel is given twice$/,
  },
  {
    name: "a --config with an empty value",
    code: 2,
    args: (c) => BUILD(c, `arch=amd64,kernel=`),
    message: () => /^Invalid --config: kernel has an empty value$/,
  },
  {
    name: "a --config with an unknown variant",
    code: 2,
    args: (c) => BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz},variant=cloud`),
    message: () =>
      /^Invalid --config: variant "cloud" is not one of metal, virtualization$/,
  },
  {
    name: "a --config with an uppercase arch",
    code: 2,
    args: (c) => BUILD(c, `arch=AMD64,kernel=${c.files.vmlinuz}`),
    message: () =>
      /^Invalid --config: architecture "AMD64" is not a Go architecture name: use "amd64"$/,
  },
  {
    name: "a --config lacking what its variant needs",
    code: 2,
    args: (c) =>
      BUILD(
        c,
        `arch=amd64,kernel=${c.files.vmlinuz}`,
        "--config",
        `arch=arm64,kernel=${c.files.vmlinuz},variant=metal`,
      ),
    message: () =>
      /^Invalid --config for arm64: variant metal needs kernel \+ initramfs \+ a root file system \(rootfs, squashfs or disk\), a uki, or an iso: the image has kernel \(missing initramfs, a root file system\)$/,
  },
  {
    name: "the same arch twice",
    code: 2,
    args: (c) =>
      BUILD(
        c,
        `arch=amd64,kernel=${c.files.vmlinuz}`,
        "--config",
        `arch=amd64,kernel=${c.files.initrd}`,
      ),
    message: () =>
      /^Architecture amd64 is configured twice: give one --config per architecture$/,
  },
  {
    name: "an empty --tag",
    code: 2,
    args: (
      c,
    ) => [
      "--store-path",
      c.store,
      "build",
      "--tag",
      "",
      "--config",
      `arch=amd64,kernel=${c.files.vmlinuz}`,
    ],
    message: () => /^Invalid reference "": the tag is empty/,
  },
  {
    name: "an empty --tag= form",
    code: 2,
    args: (
      c,
    ) => [
      "--store-path",
      c.store,
      "build",
      "--tag=",
      "--config",
      `arch=amd64,kernel=${c.files.vmlinuz}`,
    ],
    message: () => /^Invalid reference "": the tag is empty/,
  },
  {
    name: "an invalid --tag reference",
    code: 2,
    args: (
      c,
    ) => [
      "--store-path",
      c.store,
      "build",
      "--tag",
      "My-OS:1.0",
      "--config",
      `arch=amd64,kernel=${c.files.vmlinuz}`,
    ],
    message: () =>
      /^Invalid reference "My-OS:1\.0": repository name must be lowercase/,
  },
  {
    name: "an invalid tag target",
    code: 2,
    args: (c) => ["--store-path", c.store, "tag", "demo:1", "demo:-bad"],
    message: () => /^Invalid reference "demo:-bad": invalid tag "-bad"/,
  },
  {
    name: "a tag target with a digest",
    code: 2,
    args: (
      c,
    ) => [
      "--store-path",
      c.store,
      "tag",
      "demo:1",
      `demo@sha256:${"a".repeat(64)}`,
    ],
    message: () => /a tag cannot carry a digest/,
  },
  {
    name: "a cmdline file that is not UTF-8",
    code: 1,
    args: (c) =>
      BUILD(
        c,
        `arch=amd64,kernel=${c.files.vmlinuz},cmdline=${c.files["latin1.txt"]}`,
      ),
    message: () =>
      /^Command line file .*latin1\.txt is not UTF-8 text: give a text file/,
  },
  {
    name: "a store directory that is not an OCI layout",
    code: 1,
    prepare: async (c) => {
      c.store = `${c.dir}/adir`;
      await Deno.writeTextFile(`${c.store}/notes.txt`, "not a store");
    },
    args: (c) => BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz}`),
    message: (c) =>
      new RegExp(
        `^Store ${c.dir}/adir is not usable: the directory is not an OCI image layout \\(no oci-layout file\\)`,
      ),
  },
  {
    name: "a store path that is a file",
    code: 1,
    prepare: (c) => {
      c.store = c.files.vmlinuz!;
      return Promise.resolve();
    },
    args: (c) => ["--store-path", c.store, "list"],
    message: () => /is not usable: it is not a directory$/,
  },
  {
    name: "a corrupt index.json when building",
    code: 1,
    prepare: (c) =>
      Deno.writeTextFile(
        `${c.store}/index.json`,
        '{"schemaVersion":2,"manifests":[',
      ),
    args: (c) => BUILD(c, `arch=amd64,kernel=${c.files.vmlinuz}`),
    message: () =>
      /index\.json is corrupt \(.*\): restore it, or move the directory away/,
  },
  {
    name: "a corrupt index.json when listing",
    code: 1,
    prepare: (c) =>
      Deno.writeTextFile(
        `${c.store}/index.json`,
        '{"schemaVersion":2,"manifests":{}}',
      ),
    args: (c) => ["--store-path", c.store, "list"],
    message: () =>
      /index\.json is corrupt \(Invalid index manifests: expected an array\)/,
  },
  {
    name: "a corrupt index.json when tagging",
    code: 1,
    prepare: (c) => Deno.writeTextFile(`${c.store}/index.json`, "\u0000"),
    args: (c) => ["--store-path", c.store, "tag", "demo:1", "demo:2"],
    message: () => /index\.json is corrupt/,
  },
  {
    name: "an ambiguous digest prefix to inspect",
    code: 1,
    prepare: makeSharedPrefix,
    args: (c) => ["--store-path", c.store, "inspect", c.prefix],
    message: (c) =>
      new RegExp(
        `^Digest prefix ${c.prefix} matches \\d+ images: use more characters of the digest$`,
      ),
  },
  {
    name: "an ambiguous digest prefix to delete",
    code: 1,
    prepare: makeSharedPrefix,
    args: (c) => ["--store-path", c.store, "delete", `sha256:${c.prefix}`],
    message: (c) =>
      new RegExp(`^Digest prefix sha256:${c.prefix} matches \\d+ images`),
  },
  {
    name: "an ambiguous digest prefix to tag",
    code: 1,
    prepare: makeSharedPrefix,
    args: (c) => ["--store-path", c.store, "tag", c.prefix, "demo:2"],
    message: () => /^Digest prefix \w matches \d+ images/,
  },
  {
    name: "deleting a tag that does not exist",
    code: 1,
    args: (c) => ["--store-path", c.store, "delete", "demo:2"],
    message: (c) =>
      new RegExp(
        `^Image demo:2 not found in store ${c.store}: run list to see the images, or pull it$`,
      ),
  },
  {
    name: "inspecting a tag that does not exist",
    code: 1,
    args: (c) => ["--store-path", c.store, "inspect", "ghcr.io/org/none:1"],
    message: () => /^Image ghcr\.io\/org\/none:1 not found in store /,
  },
  {
    name: "tagging a source that does not exist",
    code: 1,
    args: (c) => ["--store-path", c.store, "tag", "none:1", "demo:2"],
    message: () => /^Image none:1 not found in store /,
  },
];

for (const bad of BAD_INPUTS) {
  Deno.test({
    name:
      `ironcore-image rejects ${bad.name} with exit ${bad.code}, one line on stderr, and an unchanged store`,
    ignore: bad.ignore ?? false,
    async fn() {
      await withTempDir(async (dir) => {
        const { store, files } = await seed(dir);
        const ctx: Ctx = { dir, store, files, prefix: "" };
        await bad.prepare?.(ctx);
        const before = await snapshotStore(ctx.store);
        const beforeAll = await snapshotStore(dir);
        // A special file that were opened or read would hang the child or
        // make it read without end: kill it long after a normal run ends.
        const res = await runCliProcess(bad.args(ctx), { killAfter: 60_000 });
        assertOneLineError(res, bad.code, bad.message(ctx));
        assert.deepEqual(await snapshotStore(ctx.store), before);
        // Nothing else around it was created or changed either.
        assert.deepEqual(await snapshotStore(dir), beforeAll);
      });
    },
  });
}

Deno.test("a failed command does not create a store that did not exist", async () => {
  await withTempDir(async (dir) => {
    const { files } = await seed(dir);
    const res = await runCliProcess([
      "--store-path",
      `${dir}/fresh`,
      "build",
      "--tag",
      "x:1",
      "--config",
      `arch=amd64,kernel=${files.vmlinuz},initramfs=${dir}/missing`,
    ]);
    assertOneLineError(res, 1, /^Cannot read initramfs file /);
    assert.deepEqual(await snapshotStore(`${dir}/fresh`), {});
  });
});
