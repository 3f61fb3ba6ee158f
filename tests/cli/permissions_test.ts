/**
 * Every command runs with the narrow permission flags the README documents,
 * and names the missing flag when one is left out.
 */

import assert from "node:assert/strict";
import { CLI_PATH, REPO_ROOT } from "../_helpers/cli.ts";
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

async function run(
  perms: string[],
  args: string[],
  main = CLI_PATH,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", ...perms, main, ...args],
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

interface Case {
  name: string;
  perms: string[];
  args: string[];
  /** The store a transfer writes downloaded blobs into. */
  downloadsInto?: string;
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

Deno.test("each command runs with its documented permissions and names a missing one", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const pulled = `${dir}/pulled`;
    const copied = `${dir}/copied`;
    await Deno.mkdir(`${dir}/docker`);
    await Deno.mkdir(`${dir}/out`);
    const files = await writeFiles(dir, {
      vmlinuz: crypto.getRandomValues(new Uint8Array(4096)),
      cmdline: "console=ttyS0",
      "docker/config.json": "{}",
    });
    const cfg = files["docker/config.json"]!;
    const net = `--allow-net=${reg.host}`;
    const ref = `${reg.host}/perm/os:1`;
    const cases: Case[] = [
      {
        name: "build",
        perms: [`--allow-read=${dir}`, `--allow-write=${store}`],
        args: [
          "--store-path",
          store,
          "build",
          "--tag",
          ref,
          "--config",
          `arch=amd64,kernel=${files.vmlinuz},cmdline=${files.cmdline}`,
        ],
      },
      {
        name: "list",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "list"],
      },
      {
        name: "inspect",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "inspect", ref],
      },
      {
        name: "tag",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "tag", ref, `${ref}-copy`],
      },
      {
        name: "delete",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "delete", `${ref}-copy`],
      },
      {
        name: "verify",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "verify"],
      },
      {
        name: "push",
        perms: [`--allow-read=${store}`, net],
        args: [
          "--store-path",
          store,
          "--docker-config-path",
          cfg,
          "--plain-http",
          "push",
          ref,
        ],
      },
      {
        name: "pull",
        perms: [
          `--allow-read=${pulled}`,
          `--allow-write=${pulled}`,
          net,
        ],
        args: [
          "--store-path",
          pulled,
          "--docker-config-path",
          cfg,
          "--plain-http",
          WORKER_THRESHOLD,
          "pull",
          ref,
        ],
        downloadsInto: pulled,
      },
      {
        name: "copy into local:",
        perms: [
          `--allow-read=${copied}`,
          `--allow-write=${copied}`,
          net,
        ],
        args: [
          "--store-path",
          copied,
          "--docker-config-path",
          cfg,
          "--plain-http",
          WORKER_THRESHOLD,
          "copy",
          ref,
          "local:copied/os:1",
        ],
        downloadsInto: copied,
      },
      {
        name: "url",
        // An anonymous registry never asks for credentials, so the Docker
        // config is not read.
        perms: [net],
        args: [
          "--docker-config-path",
          cfg,
          "--plain-http",
          "url",
          ref,
          "--layer",
          "kernel",
        ],
      },
      {
        name: "validate",
        perms: [`--allow-read=${store}`],
        args: ["--store-path", store, "validate", ref],
      },
      {
        name: "extract",
        perms: [`--allow-read=${store},${dir}/out`, `--allow-write=${dir}/out`],
        args: [
          "--store-path",
          store,
          "extract",
          ref,
          "--layer",
          "kernel",
          "-o",
          `${dir}/out/vmlinuz`,
        ],
      },
      {
        name: "export",
        perms: [`--allow-read=${store},${dir}/out`, `--allow-write=${dir}/out`],
        args: [
          "--store-path",
          store,
          "export",
          ref,
          "-o",
          `${dir}/out/image.tar`,
        ],
      },
      {
        name: "import",
        perms: [
          `--allow-read=${dir}/out,${dir}/imported`,
          `--allow-write=${dir}/imported`,
        ],
        args: [
          "--store-path",
          `${dir}/imported`,
          WORKER_THRESHOLD,
          "import",
          `${dir}/out/image.tar`,
        ],
        downloadsInto: `${dir}/imported`,
      },
      {
        name: "prune",
        perms: [`--allow-read=${store}`, `--allow-write=${store}`],
        args: ["--store-path", store, "prune", "--dry-run"],
      },
    ];
    for (const c of cases) {
      for (let i = 0; i < c.perms.length; i++) {
        const fewer = c.perms.filter((_, j) => j !== i);
        const flag = c.perms[i]!.split("=")[0]!;
        const res = await run(fewer, c.args);
        assert.equal(
          res.code,
          1,
          `${c.name} without ${flag} should fail: ${res.stdout}`,
        );
        const lines = res.stderr.trim().split("\n");
        assert.equal(lines.length, 1, `one line: ${res.stderr}`);
        assert.match(
          lines[0]!,
          new RegExp(`^Error: Missing permission: .*run with ${flag}=`),
          `${c.name}: ${lines[0]}`,
        );
      }
      // After the refusals, which change nothing, the full set works.
      const ok = await run(c.perms, c.args);
      assert.equal(
        ok.code,
        0,
        `${c.name} with ${c.perms.join(" ")}: ${ok.stderr}`,
      );
      if (c.downloadsInto !== undefined) {
        await assertCleanTransfer(c.name, c.downloadsInto, ok.stderr);
        // Where no worker thread can start, the blob is hashed on the main
        // thread instead: same flags, same result.
        await Deno.remove(c.downloadsInto, { recursive: true });
        const fallback = await run(c.perms, c.args, CLI_WITHOUT_WORKERS);
        assert.equal(
          fallback.code,
          0,
          `${c.name} without workers: ${fallback.stderr}`,
        );
        await assertCleanTransfer(
          `${c.name} without workers`,
          c.downloadsInto,
          fallback.stderr,
        );
      }
    }

    // serve --cache writes what it serves into the store as it downloads.
    const kernel = await Deno.readFile(files.vmlinuz);
    for (const main of [CLI_PATH, CLI_WITHOUT_WORKERS]) {
      const cache = `${dir}/cache-${main === CLI_PATH ? "worker" : "main"}`;
      const served = await serveOnce(
        main,
        (listen) => [
          `--allow-read=${cache}`,
          `--allow-write=${cache}`,
          `--allow-net=${listen},${reg.host}`,
        ],
        (listen) => [
          "--store-path",
          cache,
          "--docker-config-path",
          cfg,
          "--plain-http",
          WORKER_THRESHOLD,
          "serve",
          "--cache",
          "--listen",
          listen,
          "--platform",
          "linux/amd64",
        ],
        `/v1/images/${encodeURIComponent(ref)}/kernel`,
      );
      const name = `serve --cache${
        main === CLI_PATH ? "" : " without workers"
      }`;
      assert.equal(served.status, 200, `${name}: ${served.stderr}`);
      assert.deepEqual(served.body, kernel, name);
      assert.equal(served.code, 0, `${name}: ${served.stderr}`);
      await assertCleanTransfer(name, cache, served.stderr);
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
 * SIGTERM.
 */
async function serveOnce(
  main: string,
  perms: (listen: string) => string[],
  args: (listen: string) => string[],
  path: string,
): Promise<{ status: number; body: Uint8Array; code: number; stderr: string }> {
  const listen = `127.0.0.1:${freePort()}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      ...perms(listen),
      main,
      ...args(listen),
    ],
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
  try {
    for (let i = 0; !stderr.includes("Listening on "); i++) {
      if (i === 400) throw new Error(`serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const res = await fetch(`http://${listen}${path}`);
    const body = new Uint8Array(await res.arrayBuffer());
    child.kill("SIGTERM");
    const { code } = await child.status;
    await reading;
    return { status: res.status, body, code, stderr };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await child.status;
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

Deno.test("a missing permission inside the store names the store, and that flag is enough", async () => {
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, { vmlinuz: new Uint8Array(4096) });
    for (const given of [`${dir}/store`, `${dir}//store/`]) {
      const store = given.replace(/\/+/g, "/").replace(/\/$/, "");
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
