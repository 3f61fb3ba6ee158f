/**
 * Every command runs with exactly the permission flags the table in
 * docs/permissions.md gives it, and names the missing flag when one of them,
 * or one path or host of one, is left out.
 */

import assert from "node:assert/strict";
import {
  CLI_PATH,
  type CliResult,
  REPO_ROOT,
  runProcess,
} from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** The CLI in a process where no worker thread can be started. */
const CLI_WITHOUT_WORKERS =
  `${REPO_ROOT}/tests/_helpers/cli_without_workers.ts`;

/**
 * Lowers the size from which downloads are hashed on a worker thread (512
 * MiB by default) below the test's 4 KiB kernel, so that every command that
 * writes a downloaded blob takes that path.
 */
const WORKER_THRESHOLD = "--hash-worker-threshold=1024";

/** One permission flag of the table, e.g. `--allow-read` of STORE and OUTDIR. */
interface Flag {
  name: string;
  /** Placeholders (STORE, HOST, …), in the order written. */
  values: string[];
}

/**
 * The table of docs/permissions.md: the command column (without its
 * backticks) → the flags of the second column. A cell reading "none" is no
 * flag at all.
 */
async function documentedPermissions(): Promise<Map<string, Flag[]>> {
  const text = await Deno.readTextFile(`${REPO_ROOT}/docs/permissions.md`);
  const rows = text.split("\n").filter((l) => l.startsWith("|"));
  assert.match(rows[0] ?? "", /^\|\s*Command\s*\|\s*Flags\s*\|$/);
  const table = new Map<string, Flag[]>();
  for (const row of rows.slice(2)) {
    const cells = row.split("|").slice(1, -1).map((c) => c.trim());
    assert.equal(cells.length, 2, `two columns: ${row}`);
    const command = /^`([^`]+)`$/.exec(cells[0]!)?.[1];
    assert.ok(command, `a command in backticks: ${row}`);
    const flags: Flag[] = [];
    if (cells[1] !== "none") {
      const code = /^`([^`]+)`$/.exec(cells[1]!)?.[1];
      assert.ok(code, `flags in one code span, or none: ${row}`);
      for (const flag of code.split(/\s+/)) {
        const m = /^(--allow-[a-z]+)=([A-Z_]+(?:,[A-Z_]+)*)$/.exec(flag);
        assert.ok(
          m,
          `a flag with placeholders, e.g. --allow-read=STORE: ${flag}`,
        );
        flags.push({ name: m[1]!, values: m[2]!.split(",") });
      }
    }
    assert.ok(!table.has(command), `one row per command: ${command}`);
    table.set(command, flags);
  }
  return table;
}

/** The flags with their placeholders replaced by real paths and hosts. */
function realFlags(
  flags: Flag[],
  places: Record<string, string>,
  command: string,
): string[] {
  return flags.map((f) =>
    `${f.name}=${
      f.values.map((v) => {
        const real = places[v];
        assert.ok(real !== undefined, `${command}: unknown placeholder ${v}`);
        return real;
      }).join(",")
    }`
  );
}

/**
 * Every way to leave one permission out: each flag whole, and for a flag of
 * several values each value alone. Names the flag the message must ask for,
 * and the placeholders left out, one of which the message must name.
 */
function withOneLeftOut(
  flags: Flag[],
): { flags: Flag[]; missing: string; left: string[] }[] {
  const out: { flags: Flag[]; missing: string; left: string[] }[] = [];
  flags.forEach((f, i) => {
    out.push({
      flags: flags.filter((_, j) => j !== i),
      missing: f.name,
      left: f.values,
    });
    if (f.values.length < 2) return;
    f.values.forEach((v, k) => {
      const fewer = { ...f, values: f.values.filter((_, j) => j !== k) };
      out.push({ flags: flags.with(i, fewer), missing: f.name, left: [v] });
    });
  });
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function run(
  perms: string[],
  args: string[],
  options: { main?: string; stdin?: string } = {},
): Promise<CliResult> {
  return runProcess(
    Deno.execPath(),
    [
      "run",
      "--no-prompt",
      "--quiet",
      ...perms,
      options.main ?? CLI_PATH,
      ...args,
    ],
    {
      env: { PATH: Deno.env.get("PATH") ?? "" },
      clearEnv: true,
      ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
    },
  );
}

/** How the test runs one command of the table. */
interface Case {
  /** The command as the table writes it. */
  command: string;
  args: string[];
  /** Placeholders that differ from the defaults, e.g. another STORE. */
  places?: Record<string, string>;
  stdin?: string;
  /** The store a transfer writes downloaded blobs into. */
  downloadsInto?: string;
  /** A server: the path fetched from it once it listens. */
  serves?: string;
}

/** Partial downloads left in a store's temporary directory. */
async function partials(store: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${store}/.tmp`)) {
      if (e.name.startsWith("partial-")) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names;
}

/** A finished transfer printed no stray error and left no partial blob. */
async function assertCleanTransfer(
  name: string,
  store: string,
  stderr: string,
): Promise<void> {
  assert.doesNotMatch(stderr, /Uncaught|error/i, `${name}: ${stderr}`);
  assert.deepEqual(await partials(store), [], `${name}: partial blobs left`);
  const blobs: string[] = [];
  for await (const e of Deno.readDir(`${store}/blobs/sha256`)) {
    blobs.push(e.name);
  }
  assert.ok(blobs.length > 0, `${name}: no blobs in ${store}`);
}

Deno.test("each command runs with the permissions docs/permissions.md gives it and names a missing one", async () => {
  const table = await documentedPermissions();
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    await Deno.mkdir(`${dir}/docker`);
    await Deno.mkdir(`${dir}/login`);
    await Deno.mkdir(`${dir}/out`);
    const files = await writeFiles(dir, {
      vmlinuz: crypto.getRandomValues(new Uint8Array(4096)),
      cmdline: "console=ttyS0",
      "docker/config.json": "{}",
    });
    const cfg = files["docker/config.json"]!;
    const port = reg.host.split(":")[1]!;
    // One registry under two names is two registries to copy between.
    const other = `localhost:${port}`;
    const listen = `127.0.0.1:${freePort()}`;
    const ref = `${reg.host}/perm/os:1`;
    const places: Record<string, string> = {
      STORE: store,
      INPUTS: `${files.vmlinuz},${files.cmdline}`,
      HOST: reg.host,
      SRC_HOST: reg.host,
      DST_HOST: other,
      OUTDIR: `${dir}/out`,
      FILE: `${dir}/out/image.tar`,
      CONFIG_DIR: `${dir}/login`,
      LISTEN: listen,
    };
    const registry = ["--docker-config-path", cfg, "--plain-http"];
    const at = (s: string) => ["--store-path", s];
    const cases: Case[] = [
      {
        command: "build",
        args: [
          ...at(store),
          "build",
          "--tag",
          ref,
          "--config",
          `arch=amd64,kernel=${files.vmlinuz},cmdline=${files.cmdline}`,
        ],
      },
      { command: "list", args: [...at(store), "list"] },
      { command: "inspect", args: [...at(store), "inspect", ref] },
      { command: "verify", args: [...at(store), "verify"] },
      {
        command: "verify --repair",
        args: [...at(store), "verify", "--repair"],
      },
      { command: "validate", args: [...at(store), "validate", ref] },
      { command: "tag", args: [...at(store), "tag", ref, `${ref}-copy`] },
      { command: "delete", args: [...at(store), "delete", `${ref}-copy`] },
      { command: "prune", args: [...at(store), "prune", "--dry-run"] },
      { command: "push", args: [...at(store), ...registry, "push", ref] },
      {
        command: "pull",
        args: [
          ...at(`${dir}/pulled`),
          ...registry,
          WORKER_THRESHOLD,
          "pull",
          ref,
        ],
        places: { STORE: `${dir}/pulled` },
        downloadsInto: `${dir}/pulled`,
      },
      // An anonymous registry never asks for credentials, so the Docker
      // config is not read.
      { command: "url", args: [...registry, "url", ref, "--layer", "kernel"] },
      {
        command: "validate --remote",
        args: [...registry, "validate", ref, "--remote"],
      },
      {
        command: "extract -o FILE",
        args: [
          ...at(store),
          "extract",
          ref,
          "--layer",
          "kernel",
          "-o",
          `${dir}/out/vmlinuz`,
        ],
      },
      {
        command: "extract --remote -o FILE",
        args: [
          ...registry,
          "extract",
          ref,
          "--remote",
          "--layer",
          "kernel",
          "-o",
          `${dir}/out/vmlinuz-remote`,
        ],
      },
      {
        command: "export -o FILE",
        args: [...at(store), "export", ref, "-o", `${dir}/out/image.tar`],
      },
      {
        command: "import FILE",
        args: [
          ...at(`${dir}/imported`),
          WORKER_THRESHOLD,
          "import",
          `${dir}/out/image.tar`,
        ],
        places: { STORE: `${dir}/imported` },
        downloadsInto: `${dir}/imported`,
      },
      {
        command: "copy SRC DST",
        args: [...registry, "copy", ref, `${other}/perm/copy:1`],
      },
      {
        command: "copy SRC local:DST",
        args: [
          ...at(`${dir}/copied`),
          ...registry,
          WORKER_THRESHOLD,
          "copy",
          ref,
          "local:copied/os:1",
        ],
        places: { STORE: `${dir}/copied` },
        downloadsInto: `${dir}/copied`,
      },
      {
        command: "copy local:SRC DST",
        args: [
          ...at(store),
          ...registry,
          "copy",
          `local:${ref}`,
          `${other}/perm/from-local:1`,
        ],
      },
      {
        command: "login",
        args: [
          "--docker-config-path",
          `${dir}/login/config.json`,
          "login",
          reg.host,
          "-u",
          "ada",
          "--password-stdin",
        ],
        stdin: "s3cret",
      },
      {
        command: "logout",
        args: [
          "--docker-config-path",
          `${dir}/login/config.json`,
          "logout",
          reg.host,
        ],
      },
      {
        command: "serve",
        args: [...at(store), ...registry, "serve", "--listen", listen],
        serves: `/v1/images/${encodeURIComponent(ref)}/kernel`,
      },
      {
        command: "serve --cache",
        args: [
          ...at(`${dir}/cache`),
          ...registry,
          WORKER_THRESHOLD,
          "serve",
          "--cache",
          "--listen",
          listen,
        ],
        places: { STORE: `${dir}/cache` },
        downloadsInto: `${dir}/cache`,
        serves: `/v1/images/${encodeURIComponent(ref)}/kernel`,
      },
      { command: "completion", args: ["completion", "bash"] },
    ];
    assert.deepEqual(
      [...table.keys()].sort(),
      cases.map((c) => c.command).sort(),
      "the table and the test name the same commands",
    );
    const kernel = await Deno.readFile(files.vmlinuz);
    for (const c of cases) {
      const flags = table.get(c.command)!;
      const real = (f: Flag[]) =>
        realFlags(f, { ...places, ...c.places }, c.command);
      for (const { flags: fewer, missing, left } of withOneLeftOut(flags)) {
        const perms = real(fewer);
        const res = c.serves === undefined
          ? await run(perms, c.args, c.stdin ? { stdin: c.stdin } : {})
          : await serveOnce(perms, c.args, listen, c.serves);
        const what = `${c.command} with only ${perms.join(" ")}`;
        if ("status" in res && res.status !== undefined) {
          // A server that started fails the requests that need what is
          // missing, and its access log says what that is.
          assert.notEqual(
            res.status,
            200,
            `${what} should fail: ${res.stderr}`,
          );
          assert.match(res.stderr, new RegExp(`the ${missing} flag`), what);
          continue;
        }
        assert.equal(res.code, 1, `${what} should fail: ${res.stderr}`);
        const lines = res.stderr.trim().split("\n");
        // It names what the table names: the store, the output directory,
        // the host, not some file inside or a name made up on the spot.
        const named = left.flatMap((p) =>
          ({ ...places, ...c.places })[p]!.split(",")
        );
        assert.match(
          lines.at(-1)!,
          new RegExp(
            `^Error: Missing permission: .*run with ${missing}=(${
              named.map(escapeRegExp).join("|")
            })$`,
          ),
          `${what}: ${res.stderr}`,
        );
        // A server that failed at start printed only the error.
        assert.equal(lines.length, 1, `${what}: one line: ${res.stderr}`);
      }
      // After the refusals, which change nothing, the full set works.
      const perms = real(flags);
      for (const main of [CLI_PATH, CLI_WITHOUT_WORKERS]) {
        if (main !== CLI_PATH && c.downloadsInto === undefined) break;
        const name = `${c.command}${
          main === CLI_PATH ? "" : " without workers"
        }`;
        if (c.downloadsInto !== undefined) {
          // Where no worker thread can start, the blob is hashed on the main
          // thread instead: same flags, same result.
          await Deno.remove(c.downloadsInto, { recursive: true }).catch(
            () => {},
          );
        }
        let stderr: string;
        if (c.serves === undefined) {
          const ok = await run(perms, c.args, {
            main,
            ...(c.stdin ? { stdin: c.stdin } : {}),
          });
          assert.equal(
            ok.code,
            0,
            `${name} with ${perms.join(" ")}: ${ok.stderr}`,
          );
          stderr = ok.stderr;
        } else {
          const served = await serveOnce(perms, c.args, listen, c.serves, main);
          assert.equal(served.status, 200, `${name}: ${served.stderr}`);
          assert.deepEqual(served.body, kernel, name);
          assert.equal(served.code, 0, `${name}: ${served.stderr}`);
          stderr = served.stderr;
        }
        if (c.downloadsInto !== undefined) {
          await assertCleanTransfer(name, c.downloadsInto, stderr);
        }
      }
    }
  });
});

/** A free port on 127.0.0.1 (closed again, for a child to listen on). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Starts `serve`, fetches one path once the server listens, and stops it with
 * SIGTERM. A server that ends before it listens answers nothing.
 */
async function serveOnce(
  perms: string[],
  args: string[],
  listen: string,
  path: string,
  main = CLI_PATH,
): Promise<
  { status?: number; body?: Uint8Array; code: number; stderr: string }
> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", ...perms, main, ...args],
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const decoder = new TextDecoder();
  const reading = child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        stderr += decoder.decode(chunk, { stream: true });
      },
    }),
  );
  let ended = false;
  const status = child.status.then((s) => {
    ended = true;
    return s;
  });
  try {
    for (let i = 0; !stderr.includes("Listening on "); i++) {
      if (ended) {
        await reading;
        return { code: (await status).code, stderr };
      }
      if (i === 400) throw new Error(`serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const res = await fetch(`http://${listen}${path}`);
    const body = new Uint8Array(await res.arrayBuffer());
    child.kill("SIGTERM");
    const { code } = await status;
    await reading;
    return { status: res.status, body, code, stderr };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await status;
    await reading.catch(() => {});
  }
}

Deno.test("without --store-path the store location needs only HOME and IRONCORE_IMAGE_STORE", async () => {
  await withTempDir(async (dir) => {
    const env = { HOME: dir };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        `--allow-read=${dir}`,
        "--allow-env=HOME,IRONCORE_IMAGE_STORE",
        CLI_PATH,
        "list",
      ],
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const denied = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        `--allow-read=${dir}`,
        CLI_PATH,
        "list",
      ],
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(denied.code, 1);
    assert.match(
      new TextDecoder().decode(denied.stderr),
      /^Error: Missing permission: env access to "IRONCORE_IMAGE_STORE": run with --allow-env=IRONCORE_IMAGE_STORE\n$/,
    );
  });
});

Deno.test("a missing permission for the output of export and extract names its directory, and that flag is enough", async () => {
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, { vmlinuz: new Uint8Array(4096) });
    const store = `${dir}/store`;
    const built = await run([`--allow-read=${dir}`, `--allow-write=${store}`], [
      "--store-path",
      store,
      "build",
      "--tag",
      "os:1",
      "--config",
      `arch=amd64,kernel=${files.vmlinuz}`,
    ]);
    assert.equal(built.code, 0, built.stderr);
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    for (
      const args of [
        ["export", "os:1", "-o", `${out}/os.tar`],
        ["extract", "os:1", "--layer", "kernel", "-o", `${out}/vmlinuz`],
      ]
    ) {
      const denied = await run([`--allow-read=${dir}`], [
        "--store-path",
        store,
        ...args,
      ]);
      assert.equal(denied.code, 1, denied.stderr);
      assert.equal(
        denied.stderr,
        `Error: Missing permission: write access to "${out}": run with --allow-write=${out}\n`,
      );
      const ok = await run([`--allow-read=${dir}`, `--allow-write=${out}`], [
        "--store-path",
        store,
        ...args,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
    }
  });
});

Deno.test("a missing permission inside the store names the store, and that flag is enough", async () => {
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, { vmlinuz: new Uint8Array(4096) });
    // Written plainly, with extra slashes, and through a directory and
    // `..` (which the runtime resolves in its message).
    await Deno.mkdir(`${dir}/sub`);
    for (
      const given of [`${dir}/store`, `${dir}//store/`, `${dir}/sub/../store`]
    ) {
      const store = `${dir}/store`;
      const args = [
        "--store-path",
        given,
        "build",
        "--tag",
        "os:1",
        "--config",
        `arch=amd64,kernel=${files.vmlinuz}`,
      ];
      const denied = await run([`--allow-read=${dir}`], args);
      assert.equal(denied.code, 1, denied.stderr);
      assert.equal(
        denied.stderr,
        `Error: Missing permission: write access to "${store}": run with --allow-write=${store}\n`,
      );
      // What the message says to add is all the command needs.
      const ok = await run(
        [`--allow-read=${dir}`, `--allow-write=${store}`],
        args,
      );
      assert.equal(ok.code, 0, ok.stderr);
      await Deno.remove(store, { recursive: true });
    }
  });
});
