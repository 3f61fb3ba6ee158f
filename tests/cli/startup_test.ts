/**
 * What runs before the work starts: the command line loads the command
 * table and argument parsing, not the library behind the commands; a pull
 * or push loads no Node module until a large blob needs the native hash.
 */

import assert from "node:assert/strict";

interface Dependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}

interface ModuleInfo {
  specifier: string;
  dependencies?: Dependency[];
}

const ROOT = new URL("../../", import.meta.url).href;

/** Every module a module imports statically, itself included. */
async function staticGraph(path: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(path, ROOT).href],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: ModuleInfo[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const loaded = new Set<string>();
  const todo = [...info.roots];
  while (todo.length > 0) {
    const specifier = todo.pop()!;
    if (loaded.has(specifier)) continue;
    loaded.add(specifier);
    for (const dep of modules.get(specifier)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) todo.push(dep.code.specifier);
    }
  }
  return loaded;
}

Deno.test("the CLI loads no library implementation and no node: module at start-up", async () => {
  const heavy = [...await staticGraph("cli.ts")].filter((s) =>
    s.startsWith("node:") ||
    /^src\/(transfer|registry|store|archive|serve|image)\//.test(
      s.slice(ROOT.length),
    ) ||
    s.endsWith("/src/build/build_image.ts") ||
    s.endsWith("/src/oci/digest.ts")
  );
  assert.deepEqual(heavy, []);
});

Deno.test("pull and push load node:crypto only when a large blob needs it", async () => {
  for (const entry of ["pull_image.ts", "push_image.ts"]) {
    const graph = await staticGraph(`src/transfer/${entry}`);
    assert.ok(graph.has(`${ROOT}src/registry/client.ts`), entry);
    assert.deepEqual([...graph].filter((s) => s.startsWith("node:")), []);
  }
});
