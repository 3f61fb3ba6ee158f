import assert from "node:assert/strict";
import {
  DigestMismatchError,
  NetworkError,
  RegistryError,
  SizeMismatchError,
  StallError,
} from "../../src/errors.ts";
import { type Digest, digestOf } from "../../src/oci/digest.ts";
import { blobStoreOf } from "../../src/store/_internal.ts";
import type { PartialBlob } from "../../src/store/_partial_blob.ts";
import { Store } from "../../src/store/store.ts";
import {
  fillPartial,
  type ResumeOptions,
  type ResumeSource,
} from "../../src/transfer/_resume.ts";
import { randomBytes } from "../_helpers/fixtures.ts";
import { withTempDir } from "../_helpers/temp.ts";

const HOST = "registry.example";
const DATA = randomBytes(300_000);
const BLOB = { digest: digestOf(DATA), size: DATA.byteLength };

/** What one answer of a scripted source does. */
interface Answer {
  /** Status: 206 (default past offset 0), 200 (the whole blob), … */
  status?: number;
  /** Content-Range start to announce instead of the offset. */
  rangeStart?: number;
  /** Bytes to send before the body breaks (TypeError), ends or stalls. */
  cut?: number;
  /** What happens after `cut` bytes: a break (default), a clean end, a stall. */
  then?: "break" | "end" | "stall";
  /** The bytes to serve instead of DATA. */
  data?: Uint8Array;
}

/**
 * A source answering with the script's entries in turn (then whole, honest
 * answers), recording the offsets asked for.
 */
function scripted(script: Answer[]): ResumeSource & { offsets: number[] } {
  const offsets: number[] = [];
  return {
    host: HOST,
    offsets,
    open(offset, signal) {
      offsets.push(offset);
      const a = script.shift() ?? {};
      const data = a.data ?? DATA;
      const status = a.status ?? (offset > 0 ? 206 : 200);
      const from = status === 206 ? a.rangeStart ?? offset : 0;
      let bytes = data.subarray(from);
      if (a.cut !== undefined) bytes = bytes.subarray(0, a.cut);
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (!sent) {
            sent = true;
            if (bytes.byteLength > 0) controller.enqueue(bytes.slice());
            return;
          }
          if (a.cut === undefined || a.then === "end") {
            controller.close();
          } else if (a.then === "stall") {
            // No data until the reader gives up; then the body fails with
            // the abort's reason, as a fetch body does.
            return new Promise<void>((resolve) => {
              signal.addEventListener("abort", () => {
                controller.error(signal.reason);
                resolve();
              }, { once: true });
            });
          } else {
            controller.error(
              new TypeError("error reading a body from connection"),
            );
          }
        },
      });
      const headers: Record<string, string> = {};
      if (status === 206) {
        headers["content-range"] = `bytes ${from}-${
          data.byteLength - 1
        }/${data.byteLength}`;
      }
      return Promise.resolve(new Response(body, { status, headers }));
    },
  };
}

/** Runs `fn` with a partial blob of BLOB in a fresh store. */
async function withPartial(
  fn: (partial: PartialBlob, store: Store) => Promise<void>,
  blob: { digest: Digest; size: number } = BLOB,
): Promise<void> {
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const partial = (await blobStoreOf(store).beginBlob(blob))!;
    try {
      await fn(partial, store);
    } finally {
      partial.close();
    }
  });
}

/** Bytes of a blob's partial file that a new fill would resume from. */
async function keptBytes(store: Store): Promise<number> {
  const partial = await blobStoreOf(store).beginBlob(BLOB);
  if (!partial) return BLOB.size;
  try {
    return partial.offset;
  } finally {
    partial.close();
  }
}

function options(extra: Partial<ResumeOptions> = {}): ResumeOptions {
  return {
    retryDelay: 1,
    failure: ({ retries, stalled }) =>
      stalled === undefined
        ? `test fill failed after ${retries} retries`
        : `test fill stalled for ${stalled} ms`,
    ...extra,
  };
}

Deno.test("fillPartial() fills a blob and commits it to the store", async () => {
  await withPartial(async (partial, store) => {
    const source = scripted([]);
    const seen: number[] = [];
    let started = 0;
    await fillPartial(
      partial,
      source,
      options({ onStart: () => started++, onBytes: (n) => seen.push(n) }),
    );
    assert.deepEqual(source.offsets, [0]);
    assert.equal(started, 1);
    assert.equal(seen.at(-1), BLOB.size);
    assert.ok(await store.hasBlob(BLOB.digest, BLOB.size));
  });
});

Deno.test("fillPartial() resumes a body that broke off with a range from the bytes on disk", async () => {
  await withPartial(async (partial, store) => {
    const source = scripted([{ cut: 100_000 }, { cut: 50_000 }]);
    await fillPartial(partial, source, options());
    assert.deepEqual(source.offsets, [0, 100_000, 150_000]);
    assert.ok(await store.hasBlob(BLOB.digest, BLOB.size));
  });
});

Deno.test("fillPartial() starts over when the server ignores the range or sends another", async (t) => {
  for (
    const [name, answer] of [
      ["200 with the whole blob", { status: 200 }],
      ["206 from another offset", { rangeStart: 7 }],
    ] as const
  ) {
    await t.step(name, async () => {
      await withPartial(async (partial, store) => {
        const source = scripted([{ cut: 100_000 }, answer]);
        const resets: number[] = [];
        await fillPartial(
          partial,
          source,
          options({ onReset: (n) => resets.push(n) }),
        );
        assert.deepEqual(
          source.offsets,
          answer.status === 200 ? [0, 100_000] : [0, 100_000, 0],
        );
        assert.deepEqual(resets, [0]);
        assert.ok(await store.hasBlob(BLOB.digest, BLOB.size));
      });
    });
  }
});

Deno.test("fillPartial() abandons a stalled attempt and resumes it", async () => {
  await withPartial(async (partial, store) => {
    const source = scripted([{ cut: 120_000, then: "stall" }]);
    await fillPartial(partial, source, options({ stallTimeout: 50 }));
    assert.deepEqual(source.offsets, [0, 120_000]);
    assert.ok(await store.hasBlob(BLOB.digest, BLOB.size));
  });
});

Deno.test("fillPartial() ends with a NetworkError in the caller's words when retries run out, keeping the bytes", async () => {
  await withPartial(async (partial, store) => {
    const source = scripted(
      Array.from({ length: 3 }, () => ({ cut: 10_000 })),
    );
    await assert.rejects(
      fillPartial(partial, source, options({ retries: 2 })),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError, String(e));
        assert.ok(!(e instanceof StallError));
        assert.equal(e.message, "test fill failed after 2 retries");
        assert.equal(e.host, HOST);
        assert.equal(e.kind, "reset");
        assert.ok(e.cause instanceof NetworkError);
        return true;
      },
    );
    assert.deepEqual(source.offsets, [0, 10_000, 20_000]);
    partial.close();
    assert.equal(await keptBytes(store), 30_000);
  });
});

Deno.test("fillPartial() ends with a StallError in the caller's words when every attempt stalls", async () => {
  await withPartial(async (partial) => {
    const source = scripted([
      { cut: 10, then: "stall" },
      { cut: 10, then: "stall" },
    ]);
    await assert.rejects(
      fillPartial(partial, source, options({ retries: 1, stallTimeout: 20 })),
      (e: unknown) => {
        assert.ok(e instanceof StallError, String(e));
        assert.equal(e.message, "test fill stalled for 20 ms");
        assert.equal(e.timeout, 20);
        assert.ok(e.cause instanceof StallError);
        return true;
      },
    );
  });
});

Deno.test("fillPartial() leaves a request that got no answer to the source's own retries", async () => {
  await withPartial(async (partial) => {
    let calls = 0;
    const busy = new RegistryError("Registry answered HTTP 503", {
      host: HOST,
      status: 503,
    });
    await assert.rejects(
      fillPartial(partial, {
        host: HOST,
        open: () => {
          calls++;
          return Promise.reject(busy);
        },
      }, options()),
      (e: unknown) => e === busy,
    );
    assert.equal(calls, 1);
  });
});

Deno.test("fillPartial() refuses wrong content at once and deletes its bytes", async (t) => {
  await t.step("a body longer than the blob", async () => {
    const long = new Uint8Array(BLOB.size + 10);
    long.set(DATA);
    await withPartial(async (partial, store) => {
      const source = scripted([{ data: long }]);
      await assert.rejects(
        fillPartial(partial, source, options()),
        SizeMismatchError,
      );
      assert.deepEqual(source.offsets, [0]);
      partial.close();
      assert.equal(await keptBytes(store), 0);
    });
  });
  await t.step("another blob of the same size", async () => {
    const other = DATA.slice();
    other[0]! ^= 1;
    await withPartial(async (partial, store) => {
      const source = scripted([{ data: other }]);
      await assert.rejects(
        fillPartial(partial, source, options()),
        DigestMismatchError,
      );
      assert.deepEqual(source.offsets, [0]);
      assert.equal(await keptBytes(store), 0);
    });
  });
  await t.step(
    "a body that ends short once more without bringing anything",
    async () => {
      await withPartial(async (partial, store) => {
        // The first answer ends cleanly short (it brought bytes: resumed);
        // the second brings nothing more.
        const source = scripted([
          { cut: 1000, then: "end" },
          { cut: 0, then: "end" },
        ]);
        await assert.rejects(
          fillPartial(partial, source, options()),
          (e: unknown) =>
            e instanceof SizeMismatchError && e.expected === BLOB.size &&
            e.actual === 1000,
        );
        assert.deepEqual(source.offsets, [0, 1000]);
        partial.close();
        assert.equal(await keptBytes(store), 0);
      });
    },
  );
});

Deno.test("fillPartial() stops at once when aborted during a backoff wait", async () => {
  await withPartial(async (partial, store) => {
    const controller = new AbortController();
    const reason = new Error("stopped by the caller");
    const source = scripted([{ cut: 5000 }]);
    const breakThenAbort: ResumeSource = {
      host: HOST,
      open: async (offset, signal) => {
        const res = await source.open(offset, signal);
        // The body breaks at once; the abort comes during the hour's wait.
        setTimeout(() => controller.abort(reason), 20);
        return res;
      },
    };
    await assert.rejects(
      fillPartial(
        partial,
        breakThenAbort,
        options({ retryDelay: 3_600_000, signal: controller.signal }),
      ),
      (e: unknown) => e === reason,
    );
    assert.deepEqual(source.offsets, [0]);
    partial.close();
    assert.equal(await keptBytes(store), 5000);
  });
});
