/**
 * `completion SHELL` through the real CLI, and the scripts it prints run in
 * the real shells: bash always; zsh and fish when installed (`.ci/setup`
 * installs them); PowerShell when `pwsh` is on PATH. Without a shell, its
 * script is checked for structure only.
 */

import assert from "node:assert/strict";
import { COMMANDS } from "../../src/cli/commands/mod.ts";
import { GLOBAL_FLAGS } from "../../src/cli/run_cli.ts";
import { LAYER_KINDS } from "../../src/spec/media_types.ts";
import { CLI_PATH, REPO_ROOT, runCliProcess } from "../_helpers/cli.ts";
import { withTempDir } from "../_helpers/temp.ts";

const SHELLS = ["bash", "zsh", "fish", "powershell"];
const COMMAND_NAMES = [...COMMANDS.map((c) => c.name), "help"];

/** Every `--flag` a command accepts, globals included. */
function longFlags(command: string): string[] {
  const cmd = COMMANDS.find((c) => c.name === command)!;
  return [...GLOBAL_FLAGS, ...cmd.flags].filter((f) => !f.hidden).map((f) =>
    `--${f.name}`
  );
}

async function available(program: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(program, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.ok(
    out.success,
    `${program} ${args.join(" ")}: ${decoder.decode(out.stderr)}`,
  );
  return decoder.decode(out.stdout);
}

function shQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function sorted(words: Iterable<string>): string[] {
  return [...words].sort();
}

/**
 * A store with three tags, a file to complete, and an `ironcore-image` on
 * PATH (running this checkout's cli.ts) for the scripts' tag lookups.
 */
async function fixture(dir: string): Promise<{
  store: string;
  env: Record<string, string>;
  tags: string[];
}> {
  const store = `${dir}/store`;
  await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
  await Deno.writeTextFile(`${dir}/archive.tar`, "");
  const built = await runCliProcess([
    "--store-path",
    store,
    "-q",
    "build",
    "--tag",
    "my-os:1.0",
    "--config",
    `arch=amd64,kernel=${dir}/vmlinuz`,
  ]);
  assert.equal(built.code, 0, built.stderr);
  const tagged = await runCliProcess([
    "--store-path",
    store,
    "tag",
    "my-os:1.0",
    "ghcr.io/org/os:2",
  ]);
  assert.equal(tagged.code, 0, tagged.stderr);
  await Deno.mkdir(`${dir}/bin`);
  await Deno.writeTextFile(
    `${dir}/bin/ironcore-image`,
    `#!/bin/sh\nexec ${shQuote(Deno.execPath())} run --allow-all --quiet ${
      shQuote(CLI_PATH)
    } "$@"\n`,
  );
  await Deno.chmod(`${dir}/bin/ironcore-image`, 0o755);
  return {
    store,
    env: { PATH: `${dir}/bin:${Deno.env.get("PATH") ?? ""}` },
    tags: ["my-os:1.0-amd64", "my-os:1.0", "ghcr.io/org/os:2"],
  };
}

async function script(shell: string, dir: string): Promise<string> {
  const res = await runCliProcess(["completion", shell]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, "");
  const path = `${dir}/completion.${shell}`;
  await Deno.writeTextFile(path, res.stdout);
  return path;
}

/** What every script names: commands, flags and layer kinds. */
function assertStructure(text: string): void {
  for (const name of COMMAND_NAMES) assert.ok(text.includes(name), name);
  for (const c of COMMANDS) {
    for (const flag of longFlags(c.name)) {
      assert.ok(text.includes(flag.slice(2)), `${c.name} ${flag}`);
    }
  }
  for (const kind of LAYER_KINDS) assert.ok(text.includes(kind), kind);
  // Settings for tests stay out of completion as they stay out of help.
  for (const f of GLOBAL_FLAGS.filter((f) => f.hidden)) {
    assert.ok(!text.includes(f.name), f.name);
  }
}

Deno.test("completion bash completes commands, flags, layer kinds and local tags in bash", async () => {
  await withTempDir(async (dir) => {
    const path = await script("bash", dir);
    assertStructure(await Deno.readTextFile(path));
    const { store, env, tags } = await fixture(dir);
    // COMP_WORDS as bash fills them: split at ":" and "=" too.
    const cases: [string[], string[]][] = [
      [["ironcore-image", ""], COMMAND_NAMES],
      [["ironcore-image", "ins"], ["inspect"]],
      [["ironcore-image", "--store-path", store, "p"], [
        "push",
        "pull",
        "prune",
      ]],
      [["ironcore-image", "url", "--"], longFlags("url")],
      [["ironcore-image", "url", "--layer", ""], [...LAYER_KINDS]],
      [["ironcore-image", "url", "--layer", "=", "k"], ["kernel"]],
      [["ironcore-image", "extract", "--layer", "i"], ["initramfs", "iso"]],
      [["ironcore-image", "push", "--push-sub-manifests", "=", ""], [
        "true",
        "false",
      ]],
      [["ironcore-image", "completion", ""], SHELLS],
      [["ironcore-image", "help", "pu"], ["push", "pull"]],
      [["ironcore-image", "import", `${dir}/arch`], [`${dir}/archive.tar`]],
      [["ironcore-image", "--store-path", store, "inspect", ""], tags],
      [["ironcore-image", "--store-path", "=", store, "delete", "gh"], [
        "ghcr.io/org/os:2",
      ]],
      // After "my-os:", readline replaces only what follows the ":".
      [["ironcore-image", "--store-path", store, "tag", "my-os", ":", "1"], [
        "1.0-amd64",
        "1.0",
      ]],
    ];
    const driver = [
      `source ${shQuote(path)}`,
      "t() {",
      '  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()',
      "  _ironcore_image",
      '  local IFS=,; printf "%s\\n" "${COMPREPLY[*]}"',
      "}",
      ...cases.map(([words]) => `t ${words.map(shQuote).join(" ")}`),
    ].join("\n");
    const lines = (await run("bash", ["-c", driver], env)).split("\n");
    for (const [i, [words, want]] of cases.entries()) {
      const got = lines[i] === "" ? [] : lines[i]!.split(",");
      assert.deepEqual(sorted(got), sorted(want), words.join(" "));
    }
  });
});

Deno.test("completion fish completes commands, flags, layer kinds and local tags in fish", async () => {
  await withTempDir(async (dir) => {
    const path = await script("fish", dir);
    assertStructure(await Deno.readTextFile(path));
    assert.match(
      await Deno.readTextFile(path),
      /^complete -c ironcore-image /m,
    );
    if (!(await available("fish"))) return;
    await run("fish", ["--no-execute", path]);
    const { store, env, tags } = await fixture(dir);
    const cases: [string, string[]][] = [
      ["ironcore-image ins", ["inspect"]],
      ["ironcore-image url --layer ", [...LAYER_KINDS]],
      ["ironcore-image completion ", SHELLS],
      [`ironcore-image --store-path ${store} inspect `, tags],
    ];
    const driver = [
      `source ${shQuote(path)}`,
      ...cases.map(([line]) => `complete -C ${shQuote(line)}; echo '<END>'`),
      `complete -C 'ironcore-image inspect --'`,
    ].join("\n");
    const blocks = (await run("fish", ["-c", driver], env)).split("<END>\n");
    for (const [i, [line, want]] of cases.entries()) {
      const got = blocks[i]!.split("\n").filter((l) => l !== "").map((l) =>
        l.split("\t")[0]!
      );
      assert.deepEqual(sorted(got), sorted(want), line);
    }
    const flags = blocks.at(-1)!.split("\n").map((l) => l.split("\t")[0]);
    for (const flag of longFlags("inspect")) assert.ok(flags.includes(flag));
  });
});

Deno.test("completion zsh completes commands, flags, layer kinds and local tags in zsh", async () => {
  await withTempDir(async (dir) => {
    const path = await script("zsh", dir);
    const text = await Deno.readTextFile(path);
    assertStructure(text);
    assert.match(text, /^#compdef ironcore-image$/m);
    if (!(await available("zsh"))) return;
    await run("zsh", ["-n", path]);
    const { store, env, tags } = await fixture(dir);
    const capture = `${REPO_ROOT}/tests/_helpers/capture_completion.zsh`;
    const cases: [string, string[]][] = [
      ["ironcore-image ", COMMAND_NAMES],
      ["ironcore-image url --layer=k", ["kernel"]],
      ["ironcore-image extract --layer ", [...LAYER_KINDS]],
      ["ironcore-image inspect --", longFlags("inspect")],
      ["ironcore-image completion ", SHELLS],
      [`ironcore-image --store-path ${store} inspect `, tags],
    ];
    const outs = await Promise.all(
      cases.map(([line]) => run("zsh", ["-f", capture, path, line], env)),
    );
    for (const [i, [line, want]] of cases.entries()) {
      const got = outs[i]!.split("\n").filter((l) => l !== "");
      assert.deepEqual(sorted(new Set(got)), sorted(want), line);
    }
  });
});

Deno.test("completion powershell registers a completer with every command, flag and layer kind", async () => {
  await withTempDir(async (dir) => {
    const path = await script("powershell", dir);
    const text = await Deno.readTextFile(path);
    assertStructure(text);
    assert.match(
      text,
      /^Register-ArgumentCompleter -Native -CommandName @\('ironcore-image', 'ironcore-image\.exe'\) -ScriptBlock \{$/m,
    );
    for (const name of COMMAND_NAMES) {
      assert.match(text, new RegExp(`^ {8}'${name}' = '`, "m"), name);
    }
    assert.match(
      text,
      new RegExp(
        `'url --layer' = @\\(${LAYER_KINDS.map((k) => `'${k}'`).join(", ")}\\)`,
      ),
    );
    // Brackets balance outside strings.
    const code = text.split("\n").filter((l) => !l.startsWith("#")).join("\n")
      .replace(/'(?:[^']|'')*'/g, "''").replace(/"[^"]*"/g, '""');
    for (const [open, close] of [["{", "}"], ["(", ")"], ["[", "]"]] as const) {
      assert.equal(
        code.split(open).length,
        code.split(close).length,
        `${open}${close}`,
      );
    }
    if (await available("pwsh")) {
      await run("pwsh", [
        "-NoProfile",
        "-Command",
        `$e = $null; [void][System.Management.Automation.Language.Parser]::ParseFile('${path}', [ref]$null, [ref]$e); if ($e) { $e; exit 1 }`,
      ]);
    }
  });
});

Deno.test("completion rejects an unknown or missing shell with a usage error", async () => {
  const unknown = await runCliProcess(["completion", "tcsh"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, "");
  assert.equal(
    unknown.stderr,
    'Error: Unknown shell "tcsh": use one of bash, zsh, fish, powershell\n',
  );
  const missing = await runCliProcess(["completion"]);
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /^Error: completion takes one SHELL \(bash, zsh, fish, powershell\): usage: ironcore-image completion bash\|zsh\|fish\|powershell\n$/,
  );
});

Deno.test("inspect accepts --json and prints the same JSON", async () => {
  await withTempDir(async (dir) => {
    const { store } = await fixture(dir);
    const plain = await runCliProcess([
      "--store-path",
      store,
      "inspect",
      "my-os:1.0",
    ]);
    const json = await runCliProcess([
      "--store-path",
      store,
      "inspect",
      "my-os:1.0",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout, plain.stdout);
    assert.equal(
      JSON.parse(json.stdout).reference,
      "docker.io/library/my-os:1.0",
    );
  });
});
