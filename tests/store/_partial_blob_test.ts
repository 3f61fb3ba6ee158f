import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import { Store } from "../../src/store/store.ts";
import { withTempDir } from "../_helpers/temp.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";

const MIB = 1024 * 1024;

function content(size: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => (i * 2654435761) >>> 24);
}

/** A byte stream of `data` that fails after `failAt` bytes, when given. */
function streamOf(
  data: Uint8Array,
  failAt?: number,
): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const end = Math.min(
        data.byteLength,
        failAt ?? data.byteLength,
        offset + 256 * 1024,
      );
      if (offset >= (failAt ?? Infinity)) {
        controller.error(new TypeError("connection reset"));
        return;
      }
      if (offset >= data.byteLength) {
        controller.close();
        controller.byobRequest?.respond(0);
        return;
      }
      controller.enqueue(data.slice(offset, end));
      offset = end;
    },
  });
}

for (
  const [label, threshold] of [["on the main thread", undefined], [
    "on a worker",
    1,
  ]] as const
) {
  Deno.test(`a partial blob hashed ${label} resumes after a failed stream and commits the right bytes`, async () => {
    await withTempDir(async (dir) => {
      const store = await Store.open(
        `${dir}/store`,
        threshold === undefined ? {} : { hashWorkerThreshold: threshold },
      );
      const data = content(10 * MIB + 12345);
      const descriptor = { digest: digestOf(data), size: data.byteLength };
      const first = await blobStoreOf(store).beginBlob(descriptor);
      assert.ok(first);
      assert.equal(first.onWorker, threshold !== undefined);
      try {
        await assert.rejects(
          first.append(streamOf(data, 9 * MIB + 777)),
          /connection reset/,
        );
        // Only flushed bytes count: a resume never trusts bytes it lost.
        assert.ok(
          first.offset > 0 && first.offset <= 9 * MIB + 777,
          String(first.offset),
        );
        assert.equal(first.offset % (4 * MIB), 0);
      } finally {
        first.close();
      }
      // A later run continues from the same partial file.
      const second = await blobStoreOf(store).beginBlob(descriptor);
      assert.ok(second);
      try {
        const from = second.offset;
        assert.ok(from > 0);
        await second.append(streamOf(data.subarray(from)));
        await second.commit();
      } finally {
        second.close();
      }
      const stored = await Deno.readFile(store.blobPath(descriptor.digest));
      assert.equal(digestOf(stored), descriptor.digest);
      assert.equal(
        await blobStoreOf(store).beginBlob(descriptor),
        undefined,
        "complete now",
      );
      assert.deepEqual(
        (await blobStoreOf(store).tempFiles()).map((t) =>
          t.path.split("/").pop()
        ),
        [],
        "no partial file left",
      );
    });
  });
}
