import assert from "node:assert/strict";
import { DigestMismatchError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { DigestVerifier } from "../../src/oci/digest_verifier.ts";
import {
  copyVerified,
  fileReader,
  streamReader,
} from "../../src/store/_verified_copy.ts";
import { randomBytes } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

const MIB = 1024 * 1024;

/** Copies a file through a verifier; returns what the writer saw. */
async function copyFile(
  path: string,
  expected: { digest: `sha256:${string}`; size: number },
  reuse: boolean,
) {
  const seen = new Set<ArrayBufferLike>();
  const parts: Uint8Array[] = [];
  using file = await Deno.open(path);
  let error: unknown;
  try {
    await copyVerified(
      fileReader(file),
      new DigestVerifier(expected, { holdBack: true }),
      async (chunk) => {
        seen.add(chunk.buffer);
        parts.push(chunk.slice());
        await new Promise((r) => setTimeout(r, 0));
      },
      { reuse },
    );
  } catch (e) {
    error = e;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return { buffers: seen.size, out, error };
}

Deno.test("copyVerified() sends a blob through three buffers that go round", async () => {
  await withTempDir(async (dir) => {
    const data = randomBytes(20 * MIB + 12345);
    await Deno.writeFile(`${dir}/blob`, data);
    const expected = { digest: digestOf(data), size: data.byteLength };
    const reused = await copyFile(`${dir}/blob`, expected, true);
    assert.equal(reused.error, undefined);
    assert.deepEqual(reused.out, data);
    assert.equal(reused.buffers, 3);
    // For a writer that may keep chunks, every read gets a fresh buffer.
    const fresh = await copyFile(`${dir}/blob`, expected, false);
    assert.deepEqual(fresh.out, data);
    assert.equal(fresh.buffers, 21);
  });
});

Deno.test("copyVerified() never lets the last chunk of a wrong blob out", async () => {
  await withTempDir(async (dir) => {
    const data = randomBytes(5 * MIB);
    await Deno.writeFile(`${dir}/blob`, data);
    const wrong = { digest: digestOf("something else"), size: data.byteLength };
    const result = await copyFile(`${dir}/blob`, wrong, true);
    assert.ok(result.error instanceof DigestMismatchError);
    assert.equal(result.out.byteLength, 4 * MIB, "the last MiB was held");
  });
});

Deno.test("copyVerified() stops reading when the writer fails, and reads a byte stream into its buffers", async () => {
  const data = randomBytes(8 * MIB);
  let pulls = 0;
  let byob = 0;
  const source = new ReadableStream({
    type: "bytes",
    pull(controller: ReadableByteStreamController) {
      pulls++;
      const view = controller.byobRequest?.view;
      if (!view) {
        controller.enqueue(data.slice(0, 64 * 1024));
        return;
      }
      byob++;
      const n = Math.min(view.byteLength, 256 * 1024);
      new Uint8Array(view.buffer, view.byteOffset, n).set(
        data.subarray(0, n),
      );
      controller.byobRequest!.respond(n);
    },
  });
  const reader = streamReader(source);
  let written = 0;
  await assert.rejects(
    copyVerified(
      reader.read,
      new DigestVerifier({ digest: digestOf(data), size: data.byteLength }),
      (chunk) => {
        written += chunk.byteLength;
        if (written > MIB) throw new Error("disk full");
        return Promise.resolve();
      },
      { reuse: true },
    ),
    /disk full/,
  );
  await reader.cancel();
  assert.equal(byob, pulls, "every read went into a buffer of the copy");
  assert.ok(pulls < 12, `${pulls} reads: the copy stopped`);
});
