import assert from "node:assert/strict";
import { DigestMismatchError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { partialName } from "../../src/store/_partial_blob.ts";
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

/** Worker stand-ins: one that cannot be constructed, one that fails to load. */
const BROKEN_WORKERS = {
  "cannot be constructed": class {
    constructor() {
      throw new TypeError("Workers are not available");
    }
  },
  "fails to load": class {
    onmessage: ((e: MessageEvent) => void) | null = null;
    onerror: ((e: ErrorEvent) => void) | null = null;
    postMessage(): void {
      setTimeout(() =>
        this.onerror?.(
          new ErrorEvent("error", {
            message: "Module not found",
            cancelable: true,
          }),
        )
      );
    }
    terminate(): void {}
  },
};

for (const [label, broken] of Object.entries(BROKEN_WORKERS)) {
  Deno.test(`a large blob is hashed on the main thread when the worker ${label}`, async () => {
    const real = globalThis.Worker;
    globalThis.Worker = broken as unknown as typeof Worker;
    try {
      await withTempDir(async (dir) => {
        const store = await Store.open(`${dir}/store`, {
          hashWorkerThreshold: 1,
        });
        const data = content(5 * MIB + 3);
        const descriptor = { digest: digestOf(data), size: data.byteLength };
        // A resumed download re-hashes the bytes already there.
        await Deno.mkdir(`${dir}/store/.tmp`, { recursive: true });
        await Deno.writeFile(
          `${dir}/store/.tmp/${partialName(descriptor.digest)}`,
          data.subarray(0, MIB),
        );
        const partial = await blobStoreOf(store).beginBlob(descriptor);
        assert.ok(partial);
        try {
          assert.equal(partial.onWorker, false);
          assert.equal(partial.offset, MIB);
          await partial.append(streamOf(data.subarray(MIB)));
          await partial.commit();
        } finally {
          partial.close();
        }
        const stored = await Deno.readFile(store.blobPath(descriptor.digest));
        assert.equal(digestOf(stored), descriptor.digest);
        assert.deepEqual(
          await blobStoreOf(store).tempFiles(),
          [],
          "no partial file left",
        );
      });
    } finally {
      globalThis.Worker = real;
    }
  });
}

/** A directory made before the test, so the test can be granted only it. */
const NARROW_DIR = Deno.makeTempDirSync({ prefix: "ironcore-image-test-" });

Deno.test({
  name: "the hash worker starts with read and write access to the store alone",
  permissions: { read: [NARROW_DIR], write: [NARROW_DIR] },
  async fn() {
    try {
      const store = await Store.open(`${NARROW_DIR}/store`, {
        hashWorkerThreshold: 1,
      });
      const data = content(MIB + 1);
      const descriptor = { digest: digestOf(data), size: data.byteLength };
      const partial = await blobStoreOf(store).beginBlob(descriptor);
      assert.ok(partial);
      try {
        assert.equal(partial.onWorker, true);
        await partial.append(streamOf(data));
        await partial.commit();
      } finally {
        partial.close();
      }
      const stored = await Deno.readFile(store.blobPath(descriptor.digest));
      assert.equal(digestOf(stored), descriptor.digest);
    } finally {
      await Deno.remove(NARROW_DIR, { recursive: true });
    }
  },
});

Deno.test("downloads begun together hash on shared workers, all but the first", async () => {
  await withTempDir(async (dir) => {
    // A threshold of 8 MiB: alone, a 2 MiB blob stays on the main thread;
    // beside another download, an eighth of the threshold is enough.
    const store = await Store.open(`${dir}/store`, {
      hashWorkerThreshold: 8 * MIB,
    });
    const blobs = Array.from({ length: 6 }, (_, i) => {
      const data = content(2 * MIB + i).map((b) => b ^ i);
      return {
        data,
        descriptor: { digest: digestOf(data), size: data.length },
      };
    });
    const partials = await Promise.all(
      blobs.map((b) => blobStoreOf(store).beginBlob(b.descriptor)),
    );
    try {
      assert.deepEqual(
        partials.map((p) => p?.onWorker),
        [false, true, true, true, true, true],
      );
      // Six blobs on at most as many threads as cores: each is written
      // and hashed on its own, whichever thread serves it.
      await Promise.all(partials.map(async (p, i) => {
        await p!.append(streamOf(blobs[i]!.data));
        await p!.commit();
      }));
    } finally {
      for (const p of partials) p?.close();
    }
    for (const { data, descriptor } of blobs) {
      const stored = await Deno.readFile(store.blobPath(descriptor.digest));
      assert.deepEqual(stored, data);
    }
    // A download alone afterwards is back on the main thread.
    const data = content(2 * MIB).map((b) => b ^ 0xff);
    const alone = await blobStoreOf(store).beginBlob({
      digest: digestOf(data),
      size: data.length,
    });
    assert.equal(alone?.onWorker, false);
    alone?.close();
  });
});

Deno.test("a small blob is hashed whole once written: resumed, checked, or refused", async () => {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const data = content(5 * MIB + 9);
    const descriptor = { digest: digestOf(data), size: data.byteLength };
    const first = await blobStoreOf(store).beginBlob(descriptor);
    assert.ok(first);
    try {
      await assert.rejects(
        first.append(streamOf(data, 4 * MIB + 5)),
        /connection reset/,
      );
      // The bytes written before the break count; the rest come again.
      assert.equal(first.offset, 4 * MIB);
    } finally {
      first.close();
    }
    const second = await blobStoreOf(store).beginBlob(descriptor);
    assert.ok(second);
    try {
      await second.append(streamOf(data.subarray(second.offset)));
      await second.commit();
    } finally {
      second.close();
    }
    assert.deepEqual(
      await Deno.readFile(store.blobPath(descriptor.digest)),
      data,
    );

    // The same size under another digest: refused at the end, emptied for
    // another try, and gone once discarded.
    const other = { digest: digestOf("another blob"), size: data.byteLength };
    const wrong = await blobStoreOf(store).beginBlob(other);
    assert.ok(wrong);
    try {
      await wrong.append(streamOf(data));
      await assert.rejects(wrong.commit(), DigestMismatchError);
      const left = await blobStoreOf(store).tempFiles();
      assert.deepEqual(left.map((f) => f.size), [0]);
      await wrong.discard();
    } finally {
      wrong.close();
    }
    assert.equal(await store.hasBlob(other.digest), false);
    assert.deepEqual(await blobStoreOf(store).tempFiles(), []);
  });
});
