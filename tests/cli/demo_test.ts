import assert from "node:assert/strict";
import { withTempDir } from "../_helpers/temp.ts";

const ROOT = new URL("../../", import.meta.url);
const REF_NAME = "org.opencontainers.image.ref.name";

/** The lines `.ci/demo` printed after `$ ironcore-image <command>`. */
function section(stdout: string, command: string): string[] {
  const lines = stdout.split("\n");
  const start = lines.findIndex((l) =>
    l.startsWith(`$ ironcore-image ${command}`)
  );
  assert.notEqual(start, -1, `no "${command}" step in the demo's output`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith("$ ") || l === "");
  return end === -1 ? rest : rest.slice(0, end);
}

Deno.test("the demo builds, lists and inspects a two-architecture image", async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const execDir = Deno.execPath().replace(/\/[^/]*$/, "");
    const { code, stdout, stderr } = await new Deno.Command("bash", {
      args: [".ci/demo", store],
      cwd: ROOT,
      // The demo calls `deno`: make it the one running this test.
      env: { PATH: `${execDir}:${Deno.env.get("PATH") ?? ""}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, `.ci/demo failed:\n${out}\n${err}`);

    const rows = section(out, "list").slice(1).map((l) => l.split(/\s{3,}/));
    const tags = rows.map(([repository, tag]) => `${repository}:${tag}`);
    assert.deepEqual(tags.toSorted(), [
      "demo-os:1.0",
      "demo-os:1.0-amd64",
      "demo-os:1.0-arm64",
    ]);
    const index = rows.find(([, tag]) => tag === "1.0");
    assert.equal(index?.[3], "application/vnd.oci.image.index.v1+json");

    const inspected = JSON.parse(
      section(out, "inspect").join("\n").trim() || "null",
    );
    assert.deepEqual(
      inspected?.index?.manifests?.map((
        m: { platform?: { architecture?: string } },
      ) => m.platform?.architecture),
      ["amd64", "arm64"],
    );

    const layout = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
    const names =
      (layout.manifests as { annotations?: Record<string, string> }[])
        .map((d) => d.annotations?.[REF_NAME]);
    assert.deepEqual(names.toSorted(), [
      "docker.io/library/demo-os:1.0",
      "docker.io/library/demo-os:1.0-amd64",
      "docker.io/library/demo-os:1.0-arm64",
    ]);
  });
});
