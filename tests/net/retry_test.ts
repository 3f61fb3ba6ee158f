import assert from "node:assert/strict";
import {
  DigestMismatchError,
  InvalidImageError,
  NetworkError,
  NotFoundError,
  RegistryError,
  SizeMismatchError,
  StallError,
  UnauthorizedError,
} from "../../src/errors.ts";
import { isRetriable, noteAnswered, retry } from "../../src/net/retry.ts";

const HOST = "registry.example";

function network(kind: NetworkError["kind"]): NetworkError {
  return new NetworkError(`Cannot connect to registry ${HOST}: ${kind}`, {
    host: HOST,
    kind,
  });
}

function status(code: number): RegistryError {
  return new RegistryError(`Registry ${HOST} answered HTTP ${code}`, {
    host: HOST,
    status: code,
  });
}

Deno.test("isRetriable() retries network failures and busy registries, nothing else", () => {
  const yes: unknown[] = [
    network("reset"),
    network("timeout"),
    network("other"),
    new StallError("No data for 30000 ms", { timeout: 30_000 }),
    status(408),
    status(429),
    status(500),
    status(502),
    status(503),
    status(504),
  ];
  for (const e of yes) assert.equal(isRetriable(e), true, String(e));
  const no: unknown[] = [
    status(400),
    status(404),
    status(405),
    status(302),
    new NotFoundError("Image demo:1 not found", { reference: "demo:1" }),
    new UnauthorizedError("Access denied", { host: HOST, status: 403 }),
    new DigestMismatchError("Digest mismatch", {
      expected: "sha256:aa",
      actual: "sha256:bb",
    }),
    new SizeMismatchError("Size mismatch", { expected: 1, actual: 2 }),
    new InvalidImageError("Invalid manifest"),
    new Deno.errors.NotCapable("Requires net access"),
    new DOMException("The operation was aborted", "AbortError"),
    new TypeError("error reading a body from connection"),
    new Error("anything else"),
    "a string",
    undefined,
  ];
  for (const e of no) assert.equal(isRetriable(e), false, String(e));
});

Deno.test("isRetriable() gives a refused connection, an unknown host and a TLS failure one retry", () => {
  for (const kind of ["refused", "dns", "tls"] as const) {
    assert.equal(isRetriable(network(kind), 0), true, kind);
    assert.equal(isRetriable(network(kind), 1), false, kind);
  }
  // Failures that may heal keep their retries.
  assert.equal(isRetriable(network("reset"), 7), true);
  assert.equal(isRetriable(status(503), 7), true);
});

Deno.test("isRetriable() keeps retrying a refused connection to a host that has answered", () => {
  const host = `answered-${crypto.randomUUID()}.example`;
  const refused = (kind: "refused" | "dns" | "tls") =>
    new NetworkError(`Cannot connect to registry ${host}: ${kind}`, {
      host,
      kind,
    });
  assert.equal(isRetriable(refused("refused"), 3), false);
  noteAnswered(host);
  for (const kind of ["refused", "dns", "tls"] as const) {
    assert.equal(isRetriable(refused(kind), 3), true, kind);
  }
  // Other hosts still fail fast.
  assert.equal(isRetriable(network("refused"), 1), false);
});

Deno.test("retry() calls again after a retriable failure and returns the first success", async () => {
  const seen: number[] = [];
  const result = await retry((retries) => {
    seen.push(retries);
    if (retries < 2) return Promise.reject(status(503));
    return Promise.resolve("done");
  }, { minTimeout: 0 });
  assert.equal(result, "done");
  assert.deepEqual(seen, [0, 1, 2]);
});

Deno.test("retry() stops after maxAttempts and throws the last failure as it is", async () => {
  const failures: RegistryError[] = [];
  await assert.rejects(
    retry(() => {
      const e = status(500 + failures.length);
      failures.push(e);
      return Promise.reject(e);
    }, { maxAttempts: 3, minTimeout: 0 }),
    (e: unknown) => e === failures.at(-1),
  );
  assert.equal(failures.length, 3);
});

Deno.test("retry() does not call again after a failure that is not retriable", async () => {
  let calls = 0;
  const missing = new NotFoundError("Blob not found", { digest: "sha256:aa" });
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.reject(missing);
    }, { minTimeout: 0 }),
    (e: unknown) => e === missing,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() asks its own isRetriable with the retries so far", async () => {
  const asked: number[] = [];
  let calls = 0;
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.reject(new Error("odd"));
    }, {
      minTimeout: 0,
      isRetriable: (_e, retries) => {
        asked.push(retries);
        return retries < 1;
      },
    }),
    /odd/,
  );
  assert.equal(calls, 2);
  assert.deepEqual(asked, [0, 1]);
});

Deno.test("retry() waits with capped exponential backoff and jitter", async () => {
  const delays: number[] = [];
  const run = (jitter: number) =>
    retry(() => Promise.reject(status(503)), {
      maxAttempts: 6,
      minTimeout: 1,
      maxTimeout: 8,
      multiplier: 3,
      jitter,
      onRetry: (_e, _n, delay) => delays.push(delay),
    });
  await assert.rejects(run(0), RegistryError);
  // 1, 3, 9 → capped at 8, 27 → 8, 81 → 8.
  assert.deepEqual(delays, [1, 3, 8, 8, 8]);
  delays.length = 0;
  await assert.rejects(run(0.5), RegistryError);
  const full = [1, 3, 8, 8, 8];
  for (const [i, d] of delays.entries()) {
    assert.ok(d >= full[i]! / 2 && d <= full[i]!, `${d} for ${full[i]}`);
  }
});

Deno.test("retry() waits as long as a Retry-After hint says, capped at maxTimeout", async () => {
  const delays: number[] = [];
  const hinted = (ms: number) =>
    new RegistryError("Too many requests", {
      host: HOST,
      status: 429,
      retryAfter: ms,
    });
  let calls = 0;
  await retry(() => {
    calls++;
    if (calls === 1) return Promise.reject(hinted(3));
    if (calls === 2) return Promise.reject(hinted(60_000));
    return Promise.resolve();
  }, {
    minTimeout: 1000,
    maxTimeout: 5,
    onRetry: (_e, _n, delay) => delays.push(delay),
  });
  assert.deepEqual(delays, [3, 5]);
});

Deno.test("retry() ends a wait as soon as the signal aborts", async () => {
  const controller = new AbortController();
  const reason = new Error("stopped by the caller");
  let calls = 0;
  // An hour's wait: the test finishes (and leaks no timer) only when the
  // abort ends it.
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.reject(status(503));
    }, {
      minTimeout: 3_600_000,
      maxTimeout: 3_600_000,
      signal: controller.signal,
      onRetry: () => queueMicrotask(() => controller.abort(reason)),
    }),
    (e: unknown) => e === reason,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() never retries the caller's abort", async () => {
  const controller = new AbortController();
  const reason = network("reset");
  let calls = 0;
  await assert.rejects(
    retry(() => {
      calls++;
      controller.abort(reason);
      return Promise.reject(status(503));
    }, { minTimeout: 0, signal: controller.signal }),
    (e: unknown) => e === reason,
  );
  assert.equal(calls, 1);
  // An aborted signal stops the first attempt too.
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.resolve();
    }, { signal: controller.signal }),
    (e: unknown) => e === reason,
  );
  assert.equal(calls, 1);
});
