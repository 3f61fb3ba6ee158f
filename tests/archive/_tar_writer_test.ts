/**
 * The tar writer: what it writes reads back through our reader and GNU tar.
 */

import assert from "node:assert/strict";
import { TarReader } from "../../src/archive/_tar_reader.ts";
import { TarWriter } from "../../src/archive/_tar_writer.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { concat } from "../_helpers/tar.ts";
import { hasTar, run } from "../_helpers/tools.ts";

const encoder = new TextEncoder();

Deno.test("TarWriter output reads back through TarReader and GNU tar, with pax records for long names and huge sizes", async () => {
  await withTempDir(async (dir) => {
    const longName = `blobs/${"d".repeat(120)}/${"f".repeat(130)}`;
    const chunks: Uint8Array[] = [];
    const writer = new TarWriter({
      write: (c) => Promise.resolve(void chunks.push(c)),
    });
    await writer.add({ name: "dir", type: "directory" });
    await writer.add({ name: longName, type: "file", size: 3 });
    await writer.write(encoder.encode("abc"));
    await writer.add({ name: "ünïcode", type: "file", size: 0 });
    await writer.finish();
    const archive = concat(chunks);
    await Deno.writeFile(`${dir}/w.tar`, archive);

    const tar = new TarReader(ReadableStream.from([archive]));
    const seen: [string, string, number][] = [];
    for (let e = await tar.next(); e !== null; e = await tar.next()) {
      seen.push([e.name, e.type, e.size]);
      if (e.name === longName) {
        assert.equal(new TextDecoder().decode(await tar.readAll(10)), "abc");
      }
    }
    assert.deepEqual(seen, [
      ["dir/", "directory", 0],
      [longName, "file", 3],
      ["ünïcode", "file", 0],
    ]);

    if (hasTar) {
      const listed = new TextDecoder().decode(
        await run("tar", "tf", `${dir}/w.tar`),
      );
      assert.deepEqual(listed.trimEnd().split("\n"), [
        "dir/",
        longName,
        "ünïcode",
      ]);
    }

    // 9 GiB: the size goes into a pax record (and a base-256 field).
    const huge = 9 * 1024 * 1024 * 1024;
    const head: Uint8Array[] = [];
    const w2 = new TarWriter({
      write: (c) => Promise.resolve(void head.push(c)),
    });
    await w2.add({ name: "blobs/sha256/big", type: "file", size: huge });
    const r2 = new TarReader(ReadableStream.from(head));
    const big = await r2.next();
    assert.equal(big?.size, huge);
    assert.equal(big?.name, "blobs/sha256/big");
    await assert.rejects(r2.next(), /ends inside entry blobs\/sha256\/big/);
    await assert.rejects(
      w2.finish(),
      /Tar entry blobs\/sha256\/big is 9663676416 bytes short/,
    );
  });
});
