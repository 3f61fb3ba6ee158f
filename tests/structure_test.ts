/**
 * The shape docs/architecture.md promises for the source tree.
 */

import assert from "node:assert/strict";

const SRC = new URL("../src/", import.meta.url);

async function* sourceFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sourceFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("no file in src/ is longer than 800 lines", async () => {
  const long: string[] = [];
  let files = 0;
  for await (const url of sourceFiles(SRC)) {
    files++;
    const lines = (await Deno.readTextFile(url)).split("\n").length - 1;
    if (lines > 800) long.push(`${url.pathname} (${lines} lines)`);
  }
  assert.ok(files > 50, `only ${files} files found under src/`);
  assert.deepEqual(long, []);
});
