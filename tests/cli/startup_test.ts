/**
 * What the command line loads before a command runs: the command table and
 * argument parsing, not the library behind the commands.
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

Deno.test("the CLI loads no library implementation and no node: module at start-up", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../../cli.ts", import.meta.url).href],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: ModuleInfo[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  // Everything imported statically from cli.ts: what runs before a command.
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
  const root = new URL("../../", import.meta.url).href;
  const heavy = [...loaded].filter((s) =>
    s.startsWith("node:") ||
    /^src\/(transfer|registry|store|archive|serve|image)\//.test(
      s.slice(root.length),
    ) ||
    s.endsWith("/src/build/build_image.ts") ||
    s.endsWith("/src/oci/digest.ts")
  );
  assert.deepEqual(heavy, []);
  // And the commands still reach them, when they run.
  assert.ok(modules.has(`${root}src/transfer/pull_image.ts`));
});
