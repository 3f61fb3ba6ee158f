/**
 * The tar reader: formats other tools write, and malformed archives.
 */

import { InvalidImageError } from "../../src/errors.ts";
import assert from "node:assert/strict";
import { TarReader } from "../../src/archive/_tar_reader.ts";
import { withTempDir } from "../_helpers/temp.ts";
import {
  checksum,
  concat,
  END,
  fileEntry,
  header,
  padded,
  tarEntries,
} from "../_helpers/tar.ts";
import { hasTar, run } from "../_helpers/tools.ts";

const encoder = new TextEncoder();

Deno.test({
  name:
    "TarReader reads GNU long names, pax global headers and old-style archives from GNU tar",
  ignore: !hasTar,
  async fn() {
    await withTempDir(async (dir) => {
      const long = "n".repeat(150);
      await Deno.writeTextFile(`${dir}/${long}`, "long");
      await Deno.writeTextFile(`${dir}/short`, "short");
      for (const format of ["gnu", "pax", "ustar", "v7", "oldgnu"]) {
        const names = format === "ustar" || format === "v7"
          ? ["short"]
          : [long, "short"];
        await run(
          "tar",
          `--format=${format}`,
          "-C",
          dir,
          "-cf",
          `${dir}/${format}.tar`,
          ...names,
        );
        const entries = await tarEntries(`${dir}/${format}.tar`);
        assert.deepEqual([...entries.keys()], names, format);
        assert.equal(new TextDecoder().decode(entries.get("short")), "short");
      }
      // A pax global header applies to every entry after it.
      const global = encoder.encode("19 comment=ignored\n");
      const archive = concat([
        header("pax_global_header", { type: "g", size: global.length }),
        padded(global),
        fileEntry("a", encoder.encode("x")),
        END,
      ]);
      const tar = new TarReader(ReadableStream.from([archive]));
      assert.equal((await tar.next())?.name, "a");
      assert.equal(await tar.next(), null);
    });
  },
});

Deno.test("TarReader rejects bad checksums, non-octal fields, a missing end marker and a lone zero block", async () => {
  const good = fileEntry("a", encoder.encode("data"));
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "checksum",
      (() => {
        const b = concat([good, END]);
        b[0] = "b".charCodeAt(0);
        return b;
      })(),
      /header checksum is \d+, computed \d+/,
    ],
    [
      "octal",
      (() => {
        const h = header("a", { size: 4 });
        h.set(encoder.encode("00000000009"), 124);
        checksum(h);
        return concat([h, padded(encoder.encode("data")), END]);
      })(),
      /size field "00000000009\\u0000" is not octal/,
    ],
    ["no end marker", good, /ends without the end-of-archive marker/],
    [
      "lone zero block",
      concat([good, new Uint8Array(512), good]),
      /a single zero block is followed by data/,
    ],
    [
      "not a tar",
      encoder.encode("hello world\n".repeat(100)),
      /the data does not start with a tar header/,
    ],
    [
      "gzip",
      concat([new Uint8Array([0x1f, 0x8b, 8, 0]), new Uint8Array(1020)]),
      /it is gzip-compressed: decompress it first/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    const tar = new TarReader(ReadableStream.from([bytes]));
    await assert.rejects(
      (async () => {
        while (await tar.next() !== null) {
          // Read every header.
        }
      })(),
      (e: Error) => {
        assert.ok(e instanceof InvalidImageError, what);
        assert.match(e.message, re, what);
        return true;
      },
    );
  }
});

Deno.test("TarReader reads a byte stream into one buffer it uses again", async () => {
  const big = new Uint8Array(3 * 1024 * 1024 + 100).map((_, i) => i % 253);
  const tar = concat([
    fileEntry("a", encoder.encode("first")),
    fileEntry("big", big),
    END,
  ]);
  let offset = 0;
  let pulls = 0;
  const offered = new Set<number>();
  const source = new ReadableStream({
    type: "bytes",
    pull(controller: ReadableByteStreamController) {
      pulls++;
      const view = controller.byobRequest?.view;
      assert.ok(view, "a BYOB read");
      offered.add(view.byteLength);
      const n = Math.min(view.byteLength, 300 * 1024, tar.length - offset);
      if (n === 0) {
        controller.close();
        controller.byobRequest!.respond(0);
        return;
      }
      new Uint8Array(view.buffer, view.byteOffset, n).set(
        tar.subarray(offset, offset + n),
      );
      offset += n;
      controller.byobRequest!.respond(n);
    },
  });
  const reader = new TarReader(source);
  const names: string[] = [];
  const data: Uint8Array[] = [];
  for (;;) {
    const entry = await reader.next();
    if (entry === null) break;
    names.push(entry.name);
    // Each chunk is used before the next is asked for, as a consumer must.
    const parts: Uint8Array[] = [];
    for await (const chunk of reader.body()) parts.push(chunk.slice());
    data.push(concat(parts));
  }
  await reader.cancel();
  assert.deepEqual(names, ["a", "big"]);
  assert.deepEqual(data[1], big);
  assert.ok(pulls > 10);
  // Every read offered the reader's whole buffer again: one allocation,
  // however long the archive.
  assert.equal(offered.size, 1);
});
