/**
 * export and import through the real CLI process: files, pipes between two
 * processes, and the errors a user sees.
 */

import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { Store } from "../../src/store/store.ts";
import { TarWriter } from "../../src/archive/_tar_writer.ts";
import { CLI_PATH, runCliProcess, snapshotStore } from "../_helpers/cli.ts";
import { writeFiles } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

async function demo(dir: string, store: string): Promise<BuildImageResult> {
  const f = await writeFiles(dir, {
    vmlinuz: "kernel bytes",
    initrd: "initramfs bytes",
  });
  return await buildImage(await Store.open(store), [
    { arch: "amd64", layers: { kernel: f.vmlinuz, initramfs: f.initrd } },
  ], { tag: "demo:1" });
}

function spawnCli(
  args: string[],
  stdin: "piped" | "null",
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI_PATH, ...args],
    env: {
      NO_COLOR: "1",
      IRONCORE_IMAGE_STORE: "/dev/null/ironcore-image-test-store",
      PATH: Deno.env.get("PATH") ?? "",
    },
    clearEnv: true,
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("export -o FILE writes an archive that import reads into another store", async () => {
  await withTempDir(async (dir) => {
    const built = await demo(dir, `${dir}/a`);
    const exp = await runCliProcess([
      "--store-path",
      `${dir}/a`,
      "export",
      "demo:1",
      "-o",
      `${dir}/demo.tar`,
    ]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.match(
      exp.stdout,
      new RegExp(
        `^Exported demo:1 to ${dir}/demo\\.tar: ${built.index.digest}, 5 blobs, [\\d.]+ KiB\\n$`,
      ),
    );
    // Only the archive: the temporary file was renamed into place.
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.filter((n) => n.includes("demo.tar")), [
      "demo.tar",
    ]);

    const imp = await runCliProcess([
      "--store-path",
      `${dir}/b`,
      "import",
      `${dir}/demo.tar`,
      "--json",
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.deepEqual(JSON.parse(imp.stdout), {
      images: [{
        reference: "docker.io/library/demo:1",
        digest: built.index.digest,
        mediaType: built.index.mediaType,
        size: built.index.size,
      }],
      ingested: 5,
      skipped: 0,
      bytes: JSON.parse(imp.stdout).bytes,
    });
    const tags = await (await Store.open(`${dir}/b`)).tags();
    assert.deepEqual(tags.map((t) => [t.reference, t.descriptor.digest]), [
      ["docker.io/library/demo:1", built.index.digest],
    ]);

    const again = await runCliProcess([
      "--store-path",
      `${dir}/b`,
      "import",
      `${dir}/demo.tar`,
      "--tag",
      "registry.example.com/os/demo:2",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      again.stdout,
      `Imported registry.example.com/os/demo:2: ${built.index.digest}\n`,
    );
    assert.match(again.stderr, /5 already present/);
  });
});

Deno.test("export -o - piped into import - moves an image between two processes", async () => {
  await withTempDir(async (dir) => {
    const built = await demo(dir, `${dir}/a`);
    const exp = spawnCli(
      ["--store-path", `${dir}/a`, "export", "demo:1", "-o", "-"],
      "null",
    );
    const imp = spawnCli(
      ["--store-path", `${dir}/b`, "import", "-", "--tag", "copy:1"],
      "piped",
    );
    await exp.stdout.pipeTo(imp.stdin);
    const [e, i] = await Promise.all([exp.output(), imp.output()]);
    const text = new TextDecoder();
    assert.equal(e.code, 0, text.decode(e.stderr));
    assert.equal(i.code, 0, text.decode(i.stderr));
    assert.match(
      text.decode(e.stderr),
      new RegExp(`Exported demo:1: ${built.index.digest}, 5 blobs`),
    );
    assert.equal(
      text.decode(i.stdout),
      `Imported copy:1: ${built.index.digest}\n`,
    );
  });
});

Deno.test("export reports usage errors with exit code 2 and a missing image with 1, leaving no file", async () => {
  await withTempDir(async (dir) => {
    await demo(dir, `${dir}/a`);
    const noOutput = await runCliProcess([
      "--store-path",
      `${dir}/a`,
      "export",
      "demo:1",
    ]);
    assert.equal(noOutput.code, 2);
    assert.equal(
      noOutput.stderr,
      "Error: export needs -o FILE, or -o - for standard output\n",
    );
    const missing = await runCliProcess([
      "--store-path",
      `${dir}/a`,
      "export",
      "nope:1",
      "-o",
      `${dir}/out.tar`,
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^Error: Image nope:1 not found in store .*\n$/,
    );
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.ok(!names.some((n) => n.includes("out.tar")), names.join(" "));
    const noDir = await runCliProcess([
      "--store-path",
      `${dir}/a`,
      "export",
      "demo:1",
      "-o",
      `${dir}/no/such/dir.tar`,
    ]);
    assert.equal(noDir.code, 1);
    assert.match(noDir.stderr, /directory .*\/no\/such does not exist/);
  });
});

Deno.test("import refuses hostile, unnamed and missing archives with one line and exit code 1 (2 for a malformed --tag), and the store is unchanged", async () => {
  await withTempDir(async (dir) => {
    const built = await demo(dir, `${dir}/a`);
    const store = `${dir}/a`;
    // An archive with an entry that climbs out of the layout.
    const chunks: Uint8Array[] = [];
    const tar = new TarWriter({
      write: (c) => Promise.resolve(void chunks.push(c)),
    });
    const layout = new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}');
    await tar.add({ name: "oci-layout", type: "file", size: layout.length });
    await tar.write(layout);
    await tar.add({ name: "../../etc/evil", type: "file", size: 1 });
    await tar.write(new Uint8Array(1));
    await tar.finish();
    await Deno.writeFile(
      `${dir}/evil.tar`,
      await new Response(ReadableStream.from(chunks)).bytes(),
    );
    // Exported by digest with a bare name: no full reference in the archive.
    const unnamed = await runCliProcess([
      "--store-path",
      store,
      "export",
      built.index.digest,
      "--name",
      "v1",
      "-o",
      `${dir}/v1.tar`,
    ]);
    assert.equal(unnamed.code, 0, unnamed.stderr);
    await Deno.writeTextFile(`${dir}/not.tar`, "not a tar\n".repeat(100));
    const mkfifo = await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] })
      .output();
    assert.equal(mkfifo.code, 0);

    const before = await snapshotStore(store);
    // A malformed --tag is a wrong call (exit 2); the rest are bad archives.
    const cases: [string[], RegExp, number?][] = [
      [
        ["import", `${dir}/evil.tar`],
        /^Error: Refusing archive entry "\.\.\/\.\.\/etc\/evil": it has a "\.\." component; an OCI archive holds only the files of an image layout\n$/,
      ],
      [
        ["import", `${dir}/not.tar`],
        /^Error: Invalid tar archive: the data does not start with a tar header: give an uncompressed tar file, such as one written by export or skopeo copy … oci-archive:FILE\n$/,
      ],
      [
        ["import", `${dir}/missing.tar`],
        /^Error: Cannot read archive .*\/missing\.tar: no such file, check the path\n$/,
      ],
      [
        ["import", "/dev/zero"],
        /^Error: Cannot read archive \/dev\/zero: it is a character device, give a tar file \(or - for standard input\)\n$/,
      ],
      [
        ["import", `${dir}/fifo`],
        /^Error: Cannot read archive .*\/fifo: it is a FIFO \(named pipe\); to import a stream, give - and redirect it: ironcore-image import - < .*\/fifo\n$/,
      ],
      [
        ["import", dir],
        /^Error: Cannot read archive .*: it is a directory, give a tar file \(or - for standard input\)\n$/,
      ],
      [
        ["import", `${dir}/v1.tar`],
        /^Error: Archive image sha256:[a-f0-9]{64} is named "v1", which is not a full reference: give one with --tag, such as --tag registry\.example\.com\/os:1\.0\n$/,
      ],
      [
        ["import", `${dir}/v1.tar`, "--tag", "Bad:Tag"],
        /^Error: Invalid reference "Bad:Tag": repository name must be lowercase/,
        2,
      ],
    ];
    for (const [args, re, code = 1] of cases) {
      // An opened FIFO would wait for a writer: kill the child long after a
      // normal run ends.
      const res = await runCliProcess(["--store-path", store, ...args], {
        killAfter: 60_000,
      });
      assert.equal(res.code, code, args.join(" "));
      assert.match(res.stderr, re);
      assert.equal(res.stdout, "");
      assert.deepEqual(await snapshotStore(store), before, args.join(" "));
    }
    const fresh = await runCliProcess([
      "--store-path",
      `${dir}/b`,
      "import",
      `${dir}/v1.tar`,
      "--tag",
      "demo:v1",
    ]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /^Imported demo:v1: sha256:/);
  });
});
