/**
 * Stores written by other tools: an `index.json` whose last image was
 * deleted by a Go program (`"manifests": null`), and tags stored without a
 * `:tag` part or as typed. Every `index.json` here is written by hand in the
 * shape Go's JSON encoder gives an OCI index.
 */

import assert from "node:assert/strict";
import { digestHex, digestOf } from "../../src/oci/digest.ts";
import {
  ANNOTATION_REF_NAME,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { Store } from "../../src/store/store.ts";
import {
  type CliResult,
  runCliProcess,
  snapshotStore,
} from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

function assertOk(run: CliResult, what: string): void {
  assert.equal(run.code, 0, `${what} failed:\n${run.stderr}`);
}

/** Writes `bytes` as a blob of the layout at `dir`. */
async function putBlob(
  dir: string,
  bytes: Uint8Array,
): Promise<{ digest: string; size: number }> {
  const digest = digestOf(bytes);
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeFile(`${dir}/blobs/sha256/${digestHex(digest)}`, bytes);
  return { digest, size: bytes.byteLength };
}

/**
 * An OCI layout with one IronCore image whose manifest is listed in
 * `index.json` once for each of `names` (written as given, like a Go
 * program that tags with the name as typed).
 */
async function goStore(
  dir: string,
  names: string[],
): Promise<{ digest: string; kernel: Uint8Array }> {
  const encoder = new TextEncoder();
  const kernel = crypto.getRandomValues(new Uint8Array(3000));
  const config = await putBlob(
    dir,
    encoder.encode('{"commandLine":"console=ttyS0"}'),
  );
  const layer = await putBlob(dir, kernel);
  const manifest = await putBlob(
    dir,
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: { mediaType: CONFIG_MEDIA_TYPE, ...config },
      layers: [{ mediaType: LAYER_MEDIA_TYPES.kernel, ...layer }],
    })),
  );
  await Deno.writeTextFile(
    `${dir}/oci-layout`,
    '{"imageLayoutVersion":"1.0.0"}',
  );
  const manifests = names.map((name) => ({
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    ...manifest,
    annotations: { [ANNOTATION_REF_NAME]: name },
  }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({ schemaVersion: 2, manifests }),
  );
  return { digest: manifest.digest, kernel };
}

/** Builds a one-layer image with `build`, its kernel a file in `dir`. */
async function buildWithCli(
  store: string,
  tag: string,
  dir: string,
): Promise<void> {
  const files = await writeFiles(dir, { vmlinuz: `kernel of ${tag}` });
  assertOk(
    await runCliProcess([
      "--store-path",
      store,
      "build",
      "--tag",
      tag,
      "--config",
      `arch=amd64,kernel=${files.vmlinuz}`,
    ]),
    "build",
  );
}

Deno.test('a store whose index.json has "manifests": null is empty, and the next write puts []', async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    await goStore(store, []);
    await Deno.writeTextFile(
      `${store}/index.json`,
      '{"schemaVersion":2,"manifests":null}',
    );
    const before = await snapshotStore(store);

    const list = await runCliProcess(["--store-path", store, "list", "--json"]);
    assertOk(list, "list");
    assert.deepEqual(JSON.parse(list.stdout), []);
    const table = await runCliProcess(["--store-path", store, "list"]);
    assertOk(table, "list");
    assert.match(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID/);
    assert.equal(table.stdout.trim().split("\n").length, 1);
    assertOk(await runCliProcess(["--store-path", store, "verify"]), "verify");
    assert.deepEqual(await snapshotStore(store), before);

    await buildWithCli(store, "my-os:1.0", dir);
    const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
    assert.ok(Array.isArray(index.manifests));
    assert.deepEqual(
      index.manifests.map((
        d: { annotations: Record<string, string> },
      ) => d.annotations[ANNOTATION_REF_NAME]),
      ["docker.io/library/my-os:1.0-amd64", "docker.io/library/my-os:1.0"],
    );
  });
});

Deno.test("a tag stored without :tag is found by its full name and its short name", async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const { digest, kernel } = await goStore(store, [
      "docker.io/library/notag",
      "my-os:1.0",
    ]);
    const global = ["--store-path", store];

    const list = await runCliProcess([...global, "list", "--json"]);
    assertOk(list, "list");
    assert.deepEqual(
      JSON.parse(list.stdout).map((r: { repository: string; tag: string }) =>
        `${r.repository} ${r.tag}`
      ),
      ["notag latest", "my-os 1.0"],
    );

    for (const name of ["notag", "docker.io/library/notag", "notag:latest"]) {
      const run = await runCliProcess([...global, "inspect", name]);
      assertOk(run, `inspect ${name}`);
      const details = JSON.parse(run.stdout);
      assert.equal(details.reference, "docker.io/library/notag");
      assert.equal(details.descriptor.digest, digest);
    }
    // A tag stored as typed is found by its full name too.
    const typed = await runCliProcess([
      ...global,
      "inspect",
      "docker.io/library/my-os:1.0",
    ]);
    assertOk(typed, "inspect");
    assert.equal(JSON.parse(typed.stdout).reference, "my-os:1.0");

    assertOk(
      await runCliProcess([...global, "validate", "notag"]),
      "validate",
    );
    const extracted = await runCliProcess([
      ...global,
      "extract",
      "notag",
      "--layer",
      "kernel",
      "-o",
      `${dir}/vmlinuz`,
    ]);
    assertOk(extracted, "extract");
    assert.deepEqual(await Deno.readFile(`${dir}/vmlinuz`), kernel);
    assertOk(
      await runCliProcess([...global, "export", "notag", "-o", `${dir}/a.tar`]),
      "export",
    );
    assertOk(
      await runCliProcess([...global, "tag", "notag", "copy:1"]),
      "tag",
    );

    const deleted = await runCliProcess([...global, "delete", "notag"]);
    assertOk(deleted, "delete");
    assert.equal(deleted.stdout, "Deleted notag\n");
    const tags = (await (await Store.open(store)).tags()).map((t) =>
      t.reference
    );
    assert.deepEqual(tags, ["my-os:1.0", "docker.io/library/copy:1"]);
    const again = await runCliProcess([...global, "delete", "notag"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^Error: Image notag not found in store/);
  });
});

Deno.test("tagging a name stored in another spelling replaces that tag", async () => {
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const { digest } = await goStore(store, ["docker.io/library/notag"]);
    await buildWithCli(store, "other:1", dir);
    assertOk(
      await runCliProcess(["--store-path", store, "tag", "other:1", "notag"]),
      "tag",
    );
    const tags = await (await Store.open(store)).tags();
    const names = tags.map((t) => t.reference);
    assert.ok(!names.includes("docker.io/library/notag"), names.join(" "));
    const latest = tags.find((t) =>
      t.reference === "docker.io/library/notag:latest"
    );
    assert.ok(latest);
    assert.notEqual(latest.descriptor.digest, digest);
  });
});

Deno.test("push finds a tag stored without :tag and pushes it as :latest", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = `${dir}/store`;
    const name = `${reg.host}/os/notag`;
    const { digest } = await goStore(store, [name]);
    const run = await runCliProcess(["--store-path", store, "push", name]);
    assertOk(run, "push");
    assert.equal(run.stdout, `Pushed ${name}:latest: ${digest}\n`);
    const res = await fetch(`${reg.url}/v2/os/notag/manifests/latest`, {
      method: "HEAD",
      headers: { accept: OCI_MANIFEST_MEDIA_TYPE },
    });
    assert.equal(res.headers.get("docker-content-digest"), digest);
  });
});
