import assert from "node:assert/strict";
import { DigestMismatchError, SizeMismatchError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { BlobHash, DigestVerifier } from "../../src/oci/digest_verifier.ts";
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

/** A stream of the chunks, that records whether it was cancelled. */
function source(chunks: Uint8Array[]): {
  stream: ReadableStream<Uint8Array>;
  cancelled: () => boolean;
} {
  let cancelled = false;
  let i = 0;
  return {
    stream: new ReadableStream({
      pull(controller) {
        if (i < chunks.length) controller.enqueue(chunks[i++]!.slice());
        else controller.close();
      },
      cancel() {
        cancelled = true;
      },
    }),
    cancelled: () => cancelled,
  };
}

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) {
    out.push(bytes.subarray(i, i + size));
  }
  return out;
}

Deno.test("DigestVerifier with holdBack keeps the last chunk until the digest checked out", async (t) => {
  const data = randomBytes(10_000);
  const expected = { digest: digestOf(data), size: data.byteLength };

  await t.step("a wrong blob reaches the consumer only in part", async () => {
    const other = data.slice();
    other[9_999]! ^= 1;
    const errors: unknown[] = [];
    const reader = source(split(other, 1000)).stream.pipeThrough(
      new DigestVerifier(expected, {
        holdBack: true,
        onError: (e) => errors.push(e),
      }),
    ).getReader();
    let received = 0;
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.byteLength;
      }
    }, DigestMismatchError);
    assert.equal(received, 9000, "every chunk but the last");
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof DigestMismatchError);
  });

  await t.step("a right blob arrives whole, once checked", async () => {
    const verifier = new DigestVerifier(expected, { holdBack: true });
    const out = await bytesOf(
      source(split(data, 1000)).stream.pipeThrough(verifier),
    );
    assert.deepEqual(out, data);
    assert.equal(verifier.digest, expected.digest);
    assert.equal(verifier.bytes, data.byteLength);
  });

  await t.step("an empty blob is checked too", async () => {
    const empty = new Uint8Array();
    const verifier = new DigestVerifier(
      { digest: digestOf(empty), size: 0 },
      { holdBack: true },
    );
    assert.equal(
      (await bytesOf(source([]).stream.pipeThrough(verifier))).length,
      0,
    );
    assert.equal(verifier.digest, digestOf(empty));
    await assert.rejects(
      bytesOf(
        source([]).stream.pipeThrough(
          new DigestVerifier({ digest: digestOf("x"), size: 0 }),
        ),
      ),
      DigestMismatchError,
    );
  });
});

Deno.test("DigestVerifier passes on a window of the blob and checks what it can", async (t) => {
  const data = randomBytes(10_000);
  const expected = { digest: digestOf(data), size: data.byteLength };

  await t.step(
    "from a stream of the whole blob, bytes before start are dropped and after end cut off",
    async () => {
      const src = source(split(data, 1000));
      const positions: number[] = [];
      const verifier = new DigestVerifier(expected, {
        start: 2500,
        end: 6500,
        onBytes: (p) => positions.push(p),
      });
      const out = await bytesOf(src.stream.pipeThrough(verifier));
      assert.deepEqual(out, data.subarray(2500, 6500));
      assert.equal(verifier.bytes, 4000);
      assert.deepEqual(positions, [3000, 4000, 5000, 6000, 6500]);
      assert.ok(src.cancelled(), "the rest of the source was cancelled");
      // A window that ends before the blob's end cannot be verified.
      assert.equal(verifier.digest, undefined);
    },
  );

  await t.step("a window to the end of the blob is verified", async () => {
    const other = data.slice();
    other[0]! ^= 1;
    const verifier = new DigestVerifier(expected, { start: 4000 });
    assert.deepEqual(
      await bytesOf(source(split(data, 1000)).stream.pipeThrough(verifier)),
      data.subarray(4000),
    );
    assert.equal(verifier.digest, expected.digest);
    // The dropped bytes count: another first byte is a mismatch.
    await assert.rejects(
      bytesOf(
        source(split(other, 1000)).stream.pipeThrough(
          new DigestVerifier(expected, { start: 4000 }),
        ),
      ),
      DigestMismatchError,
    );
  });

  await t.step(
    "a stream that starts inside the blob, alone, is checked for size only",
    async () => {
      const garbage = randomBytes(4000);
      const verifier = new DigestVerifier(expected, { offset: 6000 });
      assert.deepEqual(
        await bytesOf(source([garbage]).stream.pipeThrough(verifier)),
        garbage,
      );
      assert.equal(verifier.digest, undefined);
      await assert.rejects(
        bytesOf(
          source([randomBytes(4001)]).stream.pipeThrough(
            new DigestVerifier(expected, { offset: 6000 }),
          ),
        ),
        (e: unknown) => e instanceof SizeMismatchError && e.actual === 10_001,
      );
      await assert.rejects(
        bytesOf(
          source([randomBytes(100)]).stream.pipeThrough(
            new DigestVerifier(expected, { offset: 6000, end: 7000 }),
          ),
        ),
        (e: unknown) =>
          e instanceof SizeMismatchError && e.expected === 7000 &&
          e.actual === 6100,
      );
    },
  );
});

Deno.test("DigestVerifier checks a blob carried by several streams that share a BlobHash", async (t) => {
  const data = randomBytes(10_000);
  const expected = { digest: digestOf(data), size: data.byteLength };
  const part = (
    state: BlobHash,
    bytes: Uint8Array,
    start: number,
    end: number,
  ) =>
    bytesOf(
      source(split(bytes.subarray(start, end), 700)).stream.pipeThrough(
        new DigestVerifier(expected, { offset: start, end, state }),
      ),
    );

  await t.step("ranges in order are verified at the last byte", async () => {
    const state = new BlobHash();
    await part(state, data, 0, 4000);
    await part(state, data, 4000, 8000);
    assert.equal(state.position, 8000);
    await part(state, data, 8000, 10_000);
    assert.equal(state.verifiable, false, "finished");
  });

  await t.step("a wrong byte fails the range that ends the blob", async () => {
    const other = data.slice();
    other[100]! ^= 1;
    const state = new BlobHash();
    await part(state, other, 0, 5000);
    await assert.rejects(
      part(state, other, 5000, 10_000),
      DigestMismatchError,
    );
  });

  await t.step(
    "a range sent again from elsewhere makes the blob unverifiable until one starts at 0",
    async () => {
      const other = data.slice();
      other[100]! ^= 1;
      const state = new BlobHash();
      await part(state, other, 0, 4000);
      // Resumed from where the receiver stood, not where the hash stopped.
      await part(state, other, 3000, 6000);
      assert.equal(state.verifiable, false);
      await part(state, other, 6000, 10_000);
      // Starting over from the first byte checks the whole blob again.
      await part(state, other, 0, 5000);
      assert.equal(state.verifiable, true);
      await assert.rejects(
        part(state, other, 5000, 10_000),
        DigestMismatchError,
      );
    },
  );
});
