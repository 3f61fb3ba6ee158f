import assert from "node:assert/strict";
import { DigestMismatchError, SizeMismatchError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { DigestVerifier } from "../../src/oci/digest_verifier.ts";
import { randomBytes } from "../_helpers/fixtures.ts";

async function bytesOf(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A stream of the bytes cut into chunks of the given sizes, in turn. */
function chunked(
  bytes: Uint8Array,
  sizes: number[],
): ReadableStream<Uint8Array> {
  let off = 0;
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.byteLength) return controller.close();
      const n = sizes[i++ % sizes.length]!;
      controller.enqueue(bytes.slice(off, off + n));
      off += n;
    },
  });
}

Deno.test("DigestVerifier passes bytes through and checks digest and size", async (t) => {
  // Over 1 MiB, so that both the batched and the direct hashing paths run.
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const expected = { digest: digestOf(data), size: data.byteLength };

  await t.step(
    "small and large chunks in any mix give the same bytes",
    async () => {
      for (const sizes of [[1, 7, 4096], [2 * 1024 * 1024, 5], [65536]]) {
        const seen: number[] = [];
        const verifier = new DigestVerifier(expected, {
          onBytes: (n) => seen.push(n),
        });
        const out = await bytesOf(chunked(data, sizes).pipeThrough(verifier));
        assert.deepEqual(out, data);
        assert.equal(verifier.digest, expected.digest);
        assert.equal(verifier.bytes, data.byteLength);
        assert.equal(seen.at(-1), data.byteLength);
      }
    },
  );

  await t.step("other bytes of the same size error at the end", async () => {
    const other = data.slice();
    other[other.length - 1]! ^= 1;
    const verifier = new DigestVerifier(expected, { what: "test blob" });
    await assert.rejects(
      bytesOf(chunked(other, [1000]).pipeThrough(verifier)),
      (e: unknown) =>
        e instanceof DigestMismatchError && e.expected === expected.digest &&
        /test blob/.test(e.message),
    );
    assert.equal(verifier.digest, undefined);
  });

  await t.step("too few bytes error at the end", async () => {
    await assert.rejects(
      bytesOf(
        chunked(data.subarray(0, 100), [10]).pipeThrough(
          new DigestVerifier(expected),
        ),
      ),
      (e: unknown) => e instanceof SizeMismatchError && e.actual === 100,
    );
  });

  await t.step("too many bytes error as soon as they arrive", async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1000));
      },
    });
    await assert.rejects(
      bytesOf(
        endless.pipeThrough(new DigestVerifier({ ...expected, size: 2500 })),
      ),
      (e: unknown) => e instanceof SizeMismatchError && e.actual === 3000,
    );
    assert.ok(pulled < 10);
  });
});
