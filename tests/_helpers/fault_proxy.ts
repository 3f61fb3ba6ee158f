/**
 * A fault-injecting HTTP/1.1 proxy for reliability tests. It listens on
 * 127.0.0.1 with an ephemeral port, forwards every request to a registry on
 * the loopback interface, and can break any request on purpose: cut the
 * response after N body bytes, cut the upload after N request-body bytes,
 * answer 503 or 429 itself, or stall mid-body with the socket left open.
 *
 * It works on raw TCP (`Deno.listen`, `Deno.connect`) so that a cut is a
 * real close of the socket in the middle of a `Content-Length` body, which
 * the client sees as an error rather than a short, clean body. Each
 * connection carries one request (`Connection: close` both ways), so bodies
 * are piped as bytes without being re-framed; request counts are body bytes
 * after the head, chunk framing included for chunked uploads.
 *
 * The `Host` header is forwarded unchanged, so a registry that builds
 * absolute `Location` URLs (upload sessions) points them back at the proxy.
 *
 * @module
 */

/** What to do to one request. */
export type Fault =
  /** Forward the head and `after` body bytes of the response, then close. */
  | { kind: "cut-response"; after: number }
  /**
   * Forward `after` request-body bytes, then close both connections. With
   * `hold`, the client's connection closes at once, and the registry gets
   * those bytes (and the end of the body) only once it has answered the
   * next request; the client sees that answer after the registry has
   * answered the cut request too: a registry still busy with a request its
   * client has given up on, while the client asks again.
   */
  | { kind: "cut-request"; after: number; hold?: boolean }
  /** Answer with this status without asking the registry. */
  | { kind: "status"; status: number; retryAfter?: number }
  /**
   * Forward `after` response-body bytes, then send nothing more while the
   * socket stays open: until the client goes away, the proxy stops, or
   * `timeout` ms pass (default 60 s).
   */
  | { kind: "stall"; after: number; timeout?: number };

/** A request as the proxy received it. */
export interface ProxyRequest {
  /** Sequence number, from 0. */
  readonly id: number;
  /** HTTP method. */
  readonly method: string;
  /** Path and query, e.g. `/v2/os/demo/blobs/sha256:…`. */
  readonly path: string;
  /** The path without the query. */
  readonly pathname: string;
  /** Request headers. */
  readonly headers: Headers;
}

/** A forwarded (or answered) request and what happened to it. */
export interface ProxyRecord extends ProxyRequest {
  /** The fault chosen for it, if any. */
  readonly fault: Fault | undefined;
  /** Whether the fault actually happened (the body was long enough). */
  faulted: boolean;
  /** Status sent to the client, once known. */
  status: number | undefined;
  /** Request-body bytes forwarded to the registry. */
  requestBytes: number;
  /** Response-body bytes forwarded to the client. */
  responseBytes: number;
  /** Whether the exchange has ended (completed, cut or abandoned). */
  done: boolean;
}

/**
 * Chooses a fault for a request, or `undefined` to forward it untouched.
 * `n` counts earlier requests with the same method and path (query ignored).
 */
export type FaultPlan = (req: ProxyRequest, n: number) => Fault | undefined;

/** Options for {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /** The registry, `127.0.0.1:PORT` or `localhost:PORT`. */
  upstream: string;
  /** The initial plan; {@linkcode FaultProxy.plan} replaces it. */
  plan?: FaultPlan;
}

/** A running proxy; stop it with `stop()` or `await using`. */
export interface FaultProxy extends AsyncDisposable {
  /** `127.0.0.1:PORT`, for image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Every request received, in order. */
  readonly records: readonly ProxyRecord[];
  /** Request-body bytes forwarded to the registry in total. */
  readonly bytesUp: number;
  /** Response-body bytes forwarded to clients in total. */
  readonly bytesDown: number;
  /** Replaces the plan (`undefined`: forward everything). */
  plan(plan: FaultPlan | undefined): void;
  /** Records whose method matches and whose path contains or matches `path`. */
  find(method: string, path: string | RegExp): ProxyRecord[];
  /** Sum of response-body bytes of the records {@linkcode find} returns. */
  responseBytes(method: string, path: string | RegExp): number;
  /** Forgets the records and zeroes the counters. */
  reset(): void;
  /** Closes the listener and every connection, and waits for them. */
  stop(): Promise<void>;
}

const MAX_HEAD_BYTES = 64 * 1024;
const PIPE_BUFFER = 256 * 1024;
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection"]);
const REASONS: Record<number, string> = {
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Starts a fault-injecting proxy in front of a registry.
 *
 * @param options The registry and the initial plan.
 * @returns The running proxy.
 *
 * @example Cut every blob download after 1 MiB
 * ```ts ignore
 * await using reg = await startRegistry();
 * await using proxy = startFaultProxy({
 *   upstream: reg.host,
 *   plan: (req) =>
 *     req.method === "GET" && req.pathname.includes("/blobs/")
 *       ? { kind: "cut-response", after: 1024 * 1024 }
 *       : undefined,
 * });
 * ```
 */
export function startFaultProxy(options: FaultProxyOptions): FaultProxy {
  return new RunningFaultProxy(options);
}

class RunningFaultProxy implements FaultProxy {
  readonly host: string;
  readonly url: string;
  records: ProxyRecord[] = [];
  bytesUp = 0;
  bytesDown = 0;
  readonly #listener: Deno.Listener;
  readonly #upstreamPort: number;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #seen = new Map<string, number>();
  readonly #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #plan: FaultPlan | undefined;
  /** Sends the held bytes of a cut request on, and closes its connection. */
  #release: (() => Promise<void>) | undefined;
  #accepting: Promise<void>;
  #stopping: Promise<void> | undefined;

  constructor(options: FaultProxyOptions) {
    const m = /^(127\.0\.0\.1|localhost):(\d+)$/.exec(options.upstream);
    if (!m) {
      throw new TypeError(
        `Cannot proxy to ${options.upstream}: give 127.0.0.1:PORT, the proxy only talks to the loopback interface`,
      );
    }
    this.#upstreamPort = Number(m[2]);
    this.#plan = options.plan;
    this.#stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const addr = this.#listener.addr as Deno.NetAddr;
    this.host = `127.0.0.1:${addr.port}`;
    this.url = `http://${this.host}`;
    this.#accepting = this.#accept();
  }

  plan(plan: FaultPlan | undefined): void {
    this.#plan = plan;
  }

  find(method: string, path: string | RegExp): ProxyRecord[] {
    return this.records.filter((r) =>
      r.method === method &&
      (typeof path === "string" ? r.path.includes(path) : path.test(r.path))
    );
  }

  responseBytes(method: string, path: string | RegExp): number {
    return this.find(method, path).reduce((n, r) => n + r.responseBytes, 0);
  }

  reset(): void {
    this.records = [];
    this.bytesUp = 0;
    this.bytesDown = 0;
    this.#seen.clear();
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#resolveStopped();
      await this.#releaseHeld();
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      await this.#accepting;
      for (const c of this.#conns) closeQuietly(c);
      await Promise.allSettled([...this.#tasks]);
    })();
    return this.#stopping;
  }

  /**
   * Sends on the held bytes of a cut request, and waits until the registry
   * has answered it.
   */
  async #releaseHeld(): Promise<void> {
    const release = this.#release;
    if (!release) return;
    this.#release = undefined;
    await release().catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      this.#conns.add(conn);
      const task = this.#serve(conn).catch(() => {}).finally(() => {
        closeQuietly(conn);
        this.#conns.delete(conn);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async #serve(client: Deno.Conn): Promise<void> {
    const head = await readHead(client);
    if (!head) return;
    const [requestLine = "", ...lines] = head.text.split("\r\n");
    const [method = "", target = ""] = requestLine.split(" ");
    const headers = new Headers();
    const forwarded: string[] = [];
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      try {
        headers.append(name, value);
      } catch {
        // An odd header is forwarded but not recorded.
      }
      if (!HOP_BY_HOP.has(name.toLowerCase())) forwarded.push(line);
    }
    const pathname = target.split("?")[0] ?? target;
    const key = `${method} ${pathname}`;
    const n = this.#seen.get(key) ?? 0;
    this.#seen.set(key, n + 1);
    const request: ProxyRequest = {
      id: this.records.length,
      method,
      path: target,
      pathname,
      headers,
    };
    const fault = this.#plan?.(request, n);
    const record: ProxyRecord = {
      ...request,
      fault,
      faulted: false,
      status: undefined,
      requestBytes: 0,
      responseBytes: 0,
      done: false,
    };
    this.records.push(record);
    try {
      if (fault?.kind === "status") {
        await this.#answer(client, record, fault);
      } else {
        await this.#forward(client, record, head.rest, forwarded);
      }
    } finally {
      record.done = true;
    }
  }

  async #answer(
    client: Deno.Conn,
    record: ProxyRecord,
    fault: Extract<Fault, { kind: "status" }>,
  ): Promise<void> {
    const body = JSON.stringify({
      errors: [{ code: "UNAVAILABLE", message: "injected by the fault proxy" }],
    });
    const extra = fault.retryAfter !== undefined
      ? `retry-after: ${fault.retryAfter}\r\n`
      : "";
    await writeAll(
      client,
      encoder.encode(
        `HTTP/1.1 ${fault.status} ${REASONS[fault.status] ?? "Error"}\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length}\r\n` +
          `${extra}connection: close\r\n\r\n${body}`,
      ),
    );
    record.status = fault.status;
    record.faulted = true;
    // Let the client finish sending a body before the socket closes, so it
    // reads the answer instead of a reset.
    await client.closeWrite().catch(() => {});
    await drain(client, 2000);
  }

  async #forward(
    client: Deno.Conn,
    record: ProxyRecord,
    early: Uint8Array,
    headLines: string[],
  ): Promise<void> {
    const upstream = await Deno.connect({
      hostname: "127.0.0.1",
      port: this.#upstreamPort,
    });
    this.#conns.add(upstream);
    const fault = record.fault;
    let clientGone!: () => void;
    const gone = new Promise<void>((resolve) => clientGone = resolve);
    let answered!: () => void;
    const answer = new Promise<void>((resolve) => answered = resolve);
    let finished = false;
    const closeBoth = () => {
      closeQuietly(client);
      closeQuietly(upstream);
    };
    try {
      await writeAll(
        upstream,
        encoder.encode(
          `${record.method} ${record.path} HTTP/1.1\r\n${
            headLines.map((l) => `${l}\r\n`).join("")
          }connection: close\r\n\r\n`,
        ),
      );
      const up = (async () => {
        const limit = fault?.kind === "cut-request" ? fault.after : Infinity;
        const hold = fault?.kind === "cut-request" && fault.hold === true;
        const held: Uint8Array[] = [];
        let heldBytes = 0;
        const buf = new Uint8Array(PIPE_BUFFER);
        let chunk = early;
        for (;;) {
          if (hold && chunk.byteLength > 0) {
            const part = chunk.slice(0, limit - heldBytes);
            held.push(part);
            heldBytes += part.byteLength;
            if (heldBytes >= limit) {
              record.faulted = true;
              closeQuietly(client);
              await new Promise<void>((resolve) => {
                this.#release = async () => {
                  try {
                    for (const p of held) await writeAll(upstream, p);
                    record.requestBytes += heldBytes;
                    this.bytesUp += heldBytes;
                    // The body ends short: the registry answers, having
                    // taken what came.
                    await upstream.closeWrite();
                    let timer: ReturnType<typeof setTimeout> | undefined;
                    await Promise.race([
                      answer,
                      new Promise<void>((resolve) => {
                        timer = setTimeout(resolve, 10_000);
                      }),
                    ]);
                    clearTimeout(timer);
                  } finally {
                    closeQuietly(upstream);
                    resolve();
                  }
                };
              });
              return;
            }
          } else if (chunk.byteLength > 0) {
            const room = limit - record.requestBytes;
            const part = chunk.subarray(0, Math.min(room, chunk.byteLength));
            await writeAll(upstream, part);
            record.requestBytes += part.byteLength;
            this.bytesUp += part.byteLength;
            if (record.requestBytes >= limit) {
              record.faulted = true;
              closeBoth();
              return;
            }
          }
          const n = await client.read(buf);
          if (n === null) return;
          chunk = buf.subarray(0, n);
        }
      })().catch(() => {}).finally(() => {
        // The client went away (or was cut off): an unfinished exchange
        // ends here.
        clientGone();
        if (!finished) closeBoth();
      });
      const down = (async () => {
        const head = await readHead(upstream).finally(answered);
        if (!head) return;
        const [statusLine = "", ...lines] = head.text.split("\r\n");
        record.status = Number(statusLine.split(" ")[1]);
        // The registry has answered: the held bytes of a cut request go on
        // before the client sees the answer.
        await this.#releaseHeld();
        const kept = lines.filter((l) =>
          !HOP_BY_HOP.has(l.slice(0, l.indexOf(":")).trim().toLowerCase())
        );
        await writeAll(
          client,
          encoder.encode(
            `${statusLine}\r\n${
              kept.map((l) => `${l}\r\n`).join("")
            }connection: close\r\n\r\n`,
          ),
        );
        const limit = fault?.kind === "cut-response" || fault?.kind === "stall"
          ? fault.after
          : Infinity;
        const buf = new Uint8Array(PIPE_BUFFER);
        let chunk = head.rest;
        for (;;) {
          if (chunk.byteLength > 0) {
            const room = limit - record.responseBytes;
            const part = chunk.subarray(0, Math.min(room, chunk.byteLength));
            await writeAll(client, part);
            record.responseBytes += part.byteLength;
            this.bytesDown += part.byteLength;
            if (record.responseBytes >= limit) {
              record.faulted = true;
              if (fault?.kind === "stall") {
                let timer: ReturnType<typeof setTimeout> | undefined;
                await Promise.race([
                  this.#stopped,
                  gone,
                  new Promise<void>((resolve) => {
                    timer = setTimeout(resolve, fault.timeout ?? 60_000);
                  }),
                ]);
                clearTimeout(timer);
              }
              return;
            }
          }
          const n = await upstream.read(buf);
          if (n === null) {
            finished = true;
            return;
          }
          chunk = buf.subarray(0, n);
        }
      })();
      await down.catch(() => {});
      closeBoth();
      await up;
    } finally {
      closeBoth();
      this.#conns.delete(upstream);
    }
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await conn.write(data.subarray(off));
}

/** Reads until the client closes, for at most `ms` milliseconds. */
async function drain(conn: Deno.Conn, ms: number): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), ms);
  try {
    const buf = new Uint8Array(PIPE_BUFFER);
    while ((await conn.read(buf)) !== null) {
      // Discard.
    }
  } catch {
    // Closed by the timer or reset by the client.
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads an HTTP head up to the blank line. Returns its text and the bytes
 * read past it, or `null` when the connection closes first.
 */
async function readHead(
  conn: Deno.Conn,
): Promise<{ text: string; rest: Uint8Array } | null> {
  let data = new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      return null;
    }
    if (n === null) return null;
    const next = new Uint8Array(data.byteLength + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.byteLength);
    const from = Math.max(0, data.byteLength - 3);
    data = next;
    for (let i = from; i + 3 < data.byteLength; i++) {
      if (
        data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 &&
        data[i + 3] === 10
      ) {
        return {
          text: decoder.decode(data.subarray(0, i)),
          rest: data.slice(i + 4),
        };
      }
    }
    if (data.byteLength > MAX_HEAD_BYTES) return null;
  }
}
