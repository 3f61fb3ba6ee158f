/**
 * A small HTTP/1.1 server for a `fetch`-style handler, made for bodies of
 * hundreds of mebibytes: a body that is a byte stream (a file's own
 * stream, or one of the boot handler's bodies) is read straight into a
 * buffer this server reuses and written to the socket from it, so no
 * JavaScript allocation happens per chunk and the runtime's per-chunk
 * machinery of `Deno.serve` (64 KiB reads, one thread hop each) is not in
 * the way. Everything else about a response is written as the handler made
 * it.
 *
 * It speaks what boot clients speak: `GET` and `HEAD` with persistent
 * connections and pipelining, `Content-Length` or chunked bodies. A request
 * with a body is answered and its connection closed (the handler never
 * reads one). A body that fails or ends short of its `Content-Length` cuts
 * the connection, so a client never takes a broken body for a complete one.
 *
 * @module
 */

import {
  BadRequest,
  bodiless,
  concat,
  hasBody,
  type Head,
  headEnd,
  headOf,
  latin1,
  parseHead,
  requestOf,
  wantsClose,
} from "./_http1_messages.ts";
import { byobReaderOf } from "../_streams.ts";

/** Handles one request; `info` carries the client's address. */
export type Http1Handler = (
  request: Request,
  info: { remoteAddr: Deno.NetAddr },
) => Response | Promise<Response>;

/** Options for {@linkcode serveHttp1}. */
export interface Http1Options {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /**
   * Milliseconds a connection may wait for the head of its next request
   * (idle time on a persistent connection included). Default 60 s.
   */
  headerTimeout?: number | undefined;
  /**
   * Milliseconds a write may wait for a client that does not read before
   * the connection is dropped. Default 60 s.
   */
  sendTimeout?: number | undefined;
  /**
   * Closes the server and every connection at once when aborted (as
   * `Deno.serve`'s `signal` does), cutting off responses in flight.
   */
  signal?: AbortSignal | undefined;
}

/** What the server has done, for tests and diagnostics. */
export interface Http1Stats {
  /** Requests answered. */
  requests: number;
  /** Body bytes read into the server's own reused buffers. */
  pooledBytes: number;
  /** Body bytes written from chunks the body stream allocated. */
  chunkBytes: number;
}

/** A running server. */
export interface Http1Server extends AsyncDisposable {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Counters. */
  readonly stats: Readonly<Http1Stats>;
  /**
   * Stops accepting connections, closes idle ones, and lets the responses
   * in flight finish.
   *
   * @returns {@linkcode Http1Server.finished}.
   */
  shutdown(): Promise<void>;
  /** Closes every connection now, cutting off responses in flight. */
  close(): void;
}

/** Size of the buffers bodies are read into, while few bodies are sent. */
const BUFFER_BYTES = 1024 * 1024;
/** Smallest body buffer, however many bodies are sent at once. */
const MIN_BUFFER_BYTES = 64 * 1024;
/**
 * What the body buffers may take together: with many bodies at once, each
 * gets a smaller one (down to {@linkcode MIN_BUFFER_BYTES}).
 */
const BUFFER_BUDGET = 32 * 1024 * 1024;
/** Spare buffers kept for the next responses. */
const SPARE_BUFFERS = 8;
/**
 * Bytes left unused at the start of a body buffer. A large buffer starts 16
 * bytes past a page boundary (the allocator's header), and a read from the
 * page cache into that start copies up to three times slower on common x86
 * processors: the stores alias the loads 16 bytes behind them in the low 12
 * address bits ("4K aliasing"). 64 bytes further on, they do not.
 */
const BUFFER_SKEW = 64;
/** Room for a request head at first; it grows up to the largest. */
const HEAD_BYTES = 4 * 1024;
/** Largest request head accepted. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Milliseconds to wait before accepting again after accepting failed. */
const ACCEPT_PAUSE = 50;
/** A body without a length up to this size is sent with one. */
const SMALL_BODY_BYTES = 64 * 1024;

const encoder = new TextEncoder();

/**
 * Reused body buffers, so a response allocates nothing per chunk: one per
 * body being sent, as large as the budget allows for the bodies in flight.
 */
class BufferPool {
  readonly #spare: ArrayBuffer[] = [];
  #lent = 0;

  /** A buffer to read a body into, as a view past {@linkcode BUFFER_SKEW}. */
  take(): Uint8Array<ArrayBuffer> {
    this.#lent++;
    let size = BUFFER_BYTES;
    while (size > MIN_BUFFER_BYTES && size * this.#lent > BUFFER_BUDGET) {
      size /= 2;
    }
    const i = this.#spare.findIndex((b) => b.byteLength === size + BUFFER_SKEW);
    const buffer = i >= 0
      ? this.#spare.splice(i, 1)[0]!
      : new ArrayBuffer(size + BUFFER_SKEW);
    return new Uint8Array(buffer, BUFFER_SKEW, size);
  }

  /** Takes a buffer back; a detached one (lost to a failed read) counts too. */
  give(buffer: ArrayBuffer | undefined): void {
    this.#lent--;
    if (!buffer || buffer.byteLength === 0) return;
    if (this.#spare.length >= SPARE_BUFFERS) this.#spare.shift();
    this.#spare.push(buffer);
  }
}

/** The body ended or failed before its declared length: cut the connection. */
class BrokenBody extends Error {}

/** One accepted connection. */
class Connection {
  readonly #conn: Deno.TcpConn;
  readonly #server: ServerState;
  #buf = new Uint8Array(HEAD_BYTES);
  /** Bytes of the next request(s) already read: `#buf[#start, #end)`. */
  #start = 0;
  #end = 0;
  #closed = false;
  /** The body being sent, cancelled when the connection closes. */
  #reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader | undefined;
  /**
   * Aborts the signal of the request being answered: the connection closed
   * before its response was sent.
   */
  #aborter: AbortController | undefined;
  /** True while waiting for a request that has not started to arrive. */
  idle = true;
  /** True while waiting for a request head, whole or in part. */
  reading = false;
  /** When the watchdog closes the connection: a read or write waits too long. */
  deadline = Infinity;

  constructor(conn: Deno.TcpConn, server: ServerState) {
    this.#conn = conn;
    this.#server = server;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed by the peer already.
    }
    // A handler or a body waiting for its source (a download, a check)
    // stops waiting.
    this.#aborter?.abort(
      new DOMException("The connection closed", "AbortError"),
    );
    this.#reader?.cancel(new Error("The connection closed")).catch(() => {});
  }

  async run(): Promise<void> {
    try {
      this.#conn.setNoDelay(true);
      while (!this.#closed && !this.#server.stopping) {
        const head = await this.#readHead();
        if (head === null) break;
        const keep = await this.#answer(head);
        this.#server.stats.requests++;
        if (!keep) break;
      }
    } catch {
      // A connection that failed is closed; there is nobody to tell.
    } finally {
      this.close();
    }
  }

  /** Reads the next request head; `null` when the client closed or idled out. */
  async #readHead(): Promise<Head | null> {
    this.deadline = Date.now() + this.#server.headerTimeout;
    this.reading = true;
    try {
      let scanned = this.#start;
      let lineChecked = false;
      for (;;) {
        // Empty lines before a request line are allowed (RFC 9112, 2.2).
        while (
          this.#start < this.#end &&
          (this.#buf[this.#start] === 0x0d || this.#buf[this.#start] === 0x0a)
        ) this.#start++;
        scanned = Math.max(scanned, this.#start);
        this.idle = this.#start === this.#end;
        const end = headEnd(this.#buf, this.#start, scanned, this.#end);
        if (end >= 0) {
          const text = latin1(this.#buf.subarray(this.#start, end));
          this.#start = end;
          return parseHead(text);
        }
        if (!lineChecked) {
          // A request line without a version (HTTP/0.9) is refused now:
          // its client waits for an answer, not for a blank line.
          const line = this.#buf.subarray(this.#start, this.#end);
          const nl = line.indexOf(0x0a);
          if (nl >= 0) {
            lineChecked = true;
            parseHead(
              latin1(line.subarray(0, line[nl - 1] === 0x0d ? nl - 1 : nl)),
            );
          }
        }
        scanned = this.#end;
        if (this.#start > 0) {
          this.#buf.copyWithin(0, this.#start, this.#end);
          scanned -= this.#start;
          this.#end -= this.#start;
          this.#start = 0;
        }
        if (this.#end === this.#buf.byteLength) {
          if (this.#buf.byteLength >= MAX_HEAD_BYTES) {
            throw new BadRequest(431, "The request head is too large");
          }
          const grown = new Uint8Array(this.#buf.byteLength * 2);
          grown.set(this.#buf.subarray(0, this.#end));
          this.#buf = grown;
        }
        if (this.idle && this.#server.stopping) return null;
        const n = await this.#conn.read(this.#buf.subarray(this.#end));
        if (n === null) {
          if (this.#start === this.#end) return null;
          throw new BadRequest(
            400,
            "The connection closed inside a request head",
          );
        }
        this.#end += n;
      }
    } catch (e) {
      if (e instanceof BadRequest) {
        await this.#refuse(e).catch(() => {});
        return null;
      }
      if (this.#closed) return null;
      throw e;
    } finally {
      this.idle = false;
      this.reading = false;
      this.deadline = Infinity;
    }
  }

  /** Answers a request the handler cannot take, and ends the connection. */
  async #refuse(e: BadRequest): Promise<void> {
    const response = new Response(`${e.message}\n`, {
      status: e.status,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
    const body = encoder.encode(`${e.message}\n`);
    await this.#write(
      concat(
        headOf(response, {
          "content-length": String(body.byteLength),
          connection: "close",
        }),
        body,
      ),
    );
  }

  /** Answers one request; `true` when the connection may carry another. */
  async #answer(head: Head): Promise<boolean> {
    const aborter = new AbortController();
    this.#aborter = aborter;
    try {
      return await this.#answerWith(head, aborter.signal);
    } finally {
      this.#aborter = undefined;
    }
  }

  async #answerWith(head: Head, signal: AbortSignal): Promise<boolean> {
    let request: Request;
    let close: boolean;
    try {
      close = wantsClose(head) || hasBody(head);
      request = requestOf(head, this.#conn.localAddr, signal);
    } catch (e) {
      if (!(e instanceof BadRequest)) throw e;
      await this.#refuse(e);
      return false;
    }
    let response: Response;
    try {
      response = await this.#server.handler(request, {
        remoteAddr: this.#conn.remoteAddr,
      });
    } catch {
      response = new Response("Internal server error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    close ||= this.#server.stopping;
    const connection = close ? "close" : "keep-alive";
    const body = response.body;
    // The handler saw the method as `Request` spells it ("head" is HEAD).
    const noBody = request.method === "HEAD" || bodiless(response.status);
    if (noBody || body === null) {
      await body?.cancel().catch(() => {});
      const extra: Record<string, string> = { connection };
      if (!noBody) extra["content-length"] = "0";
      await this.#write(headOf(response, extra));
      return !close;
    }
    const declared = response.headers.get("content-length");
    if (declared !== null && /^\d+$/.test(declared)) {
      await this.#sendSized(response, body, Number(declared), connection);
      return !close;
    }
    // An HTTP/1.0 client knows no chunked encoding: a large body without a
    // length ends where the connection does.
    const http10 = head.minor === 0;
    const unframed = await this.#sendUnsized(response, body, {
      connection,
      chunked: !http10,
    });
    return !close && !unframed;
  }

  /** Sends a body of a known length; a body that differs cuts the connection. */
  async #sendSized(
    response: Response,
    body: ReadableStream<Uint8Array>,
    length: number,
    connection: string,
  ): Promise<void> {
    const head = headOf(response, {
      "content-length": String(length),
      connection,
    });
    let sent = 0;
    let headSent = false;
    const send = async (chunk: Uint8Array) => {
      if (sent + chunk.byteLength > length) {
        throw new BrokenBody("The body is longer than its Content-Length");
      }
      if (!headSent && chunk.byteLength <= SMALL_BODY_BYTES) {
        await this.#write(concat(head, chunk));
      } else {
        if (!headSent) await this.#write(head);
        await this.#write(chunk);
      }
      headSent = true;
      sent += chunk.byteLength;
    };
    await this.#pump(body, send);
    if (!headSent) await this.#write(head);
    if (sent !== length) {
      this.close();
      throw new BrokenBody("The body ended before its Content-Length");
    }
  }

  /**
   * Sends a body without a declared length: with one when it is small and
   * ends soon, otherwise in chunked encoding, or (when `chunked` is false)
   * as it comes, ended by closing the connection.
   *
   * @returns Whether the body went out unframed: the connection must close.
   */
  async #sendUnsized(
    response: Response,
    body: ReadableStream<Uint8Array>,
    framing: { connection: string; chunked: boolean },
  ): Promise<boolean> {
    const parts: Uint8Array[] = [];
    let size = 0;
    let streaming = false;
    const write = framing.chunked
      ? (chunk: Uint8Array) => this.#writeChunk(chunk)
      : (chunk: Uint8Array) => this.#write(chunk);
    const send = async (chunk: Uint8Array) => {
      if (!streaming) {
        if (size + chunk.byteLength <= SMALL_BODY_BYTES) {
          parts.push(chunk.slice());
          size += chunk.byteLength;
          return;
        }
        streaming = true;
        await this.#write(
          headOf(
            response,
            framing.chunked
              ? {
                "transfer-encoding": "chunked",
                connection: framing.connection,
              }
              : { connection: "close" },
            new Set(["content-length"]),
          ),
        );
        for (const part of parts) await write(part);
      }
      await write(chunk);
    };
    await this.#pump(body, send);
    if (streaming) {
      if (framing.chunked) await this.#write(encoder.encode("0\r\n\r\n"));
      return !framing.chunked;
    }
    const all = new Uint8Array(size);
    let off = 0;
    for (const part of parts) {
      all.set(part, off);
      off += part.byteLength;
    }
    await this.#write(
      concat(
        headOf(response, {
          "content-length": String(size),
          connection: framing.connection,
        }),
        all,
      ),
    );
    return false;
  }

  async #writeChunk(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength === 0) return;
    await this.#write(encoder.encode(`${chunk.byteLength.toString(16)}\r\n`));
    await this.#write(chunk);
    await this.#write(encoder.encode("\r\n"));
  }

  /**
   * Reads a body to its end and hands each piece to `send`: a byte stream
   * straight into a reused buffer, any other stream chunk by chunk. A
   * failure on either side cancels the body and cuts the connection.
   */
  async #pump(
    body: ReadableStream<Uint8Array>,
    send: (chunk: Uint8Array) => Promise<void>,
  ): Promise<void> {
    const stats = this.#server.stats;
    const byob = byobReaderOf(body);
    const reader = byob ?? body.getReader();
    this.#reader = reader;
    if (this.#closed) {
      // Closed while the handler was still answering: nobody will read.
      this.#reader = undefined;
      await reader.cancel(new Error("The connection closed")).catch(() => {});
      reader.releaseLock();
      throw new BrokenBody("The connection closed before the body was sent");
    }
    const pool = this.#server.pool;
    let view = byob ? pool.take() : undefined;
    const size = view?.byteLength ?? 0;
    try {
      if (byob) {
        for (;;) {
          // A read moves the buffer's memory into a new ArrayBuffer.
          const { done, value } = await byob.read(view!);
          if (value) {
            view = new Uint8Array(
              value.buffer as ArrayBuffer,
              BUFFER_SKEW,
              size,
            );
            if (value.byteLength > 0) {
              stats.pooledBytes += value.byteLength;
              await send(value);
            }
          }
          if (done) break;
        }
      } else {
        const plain = reader as ReadableStreamDefaultReader<Uint8Array>;
        for (;;) {
          const { done, value } = await plain.read();
          if (done) break;
          if (value.byteLength === 0) continue;
          stats.chunkBytes += value.byteLength;
          await send(value);
        }
      }
    } catch (e) {
      await reader.cancel(e).catch(() => {});
      this.close();
      throw e;
    } finally {
      this.#reader = undefined;
      reader.releaseLock();
      if (byob) pool.give(view?.buffer);
    }
  }

  /** Writes all of `bytes`; the watchdog drops a client that stops reading. */
  async #write(bytes: Uint8Array): Promise<void> {
    try {
      for (let off = 0; off < bytes.byteLength;) {
        this.deadline = Date.now() + this.#server.sendTimeout;
        off += await this.#conn.write(bytes.subarray(off));
      }
    } finally {
      this.deadline = Infinity;
    }
  }
}

/** What the connections of one server share. */
interface ServerState {
  readonly handler: Http1Handler;
  readonly headerTimeout: number;
  readonly sendTimeout: number;
  readonly pool: BufferPool;
  readonly stats: Http1Stats;
  stopping: boolean;
}

/**
 * Starts a server on a TCP address.
 *
 * @param options Address and timeouts.
 * @param handler Answers each request.
 * @returns The running server.
 * @throws {Deno.errors.AddrInUse} When the address is taken.
 *
 * @example Serve a file to every request
 * ```ts
 * import { serveHttp1 } from "./_serve_http1.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "kernel");
 * const server = serveHttp1({ hostname: "127.0.0.1", port: 0 }, async () => {
 *   const file = await Deno.open(path);
 *   return new Response(file.readable, { headers: { "content-length": "6" } });
 * });
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * console.log(await res.text()); // "kernel"
 * await server.shutdown();
 * ```
 */
export function serveHttp1(
  options: Http1Options,
  handler: Http1Handler,
): Http1Server {
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    transport: "tcp",
  });
  const state: ServerState = {
    handler,
    headerTimeout: options.headerTimeout ?? 60_000,
    sendTimeout: options.sendTimeout ?? 60_000,
    pool: new BufferPool(),
    stats: { requests: 0, pooledBytes: 0, chunkBytes: 0 },
    stopping: false,
  };
  const connections = new Set<Connection>();
  const running = new Set<Promise<void>>();
  // One timer for every connection's deadline, instead of one per write.
  const tick = Math.max(
    10,
    Math.min(1000, state.headerTimeout / 4, state.sendTimeout / 4),
  );
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const c of connections) if (now > c.deadline) c.close();
  }, tick);
  const accepting = (async () => {
    while (!state.stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (state.stopping || e instanceof Deno.errors.BadResource) break;
        // Out of file descriptors (clients that connect and say nothing, or
        // send a head byte by byte): the connection that has waited longest
        // for a request makes room, and accepting goes on.
        let oldest: Connection | undefined;
        for (const c of connections) {
          if (c.reading && c.deadline < (oldest?.deadline ?? Infinity)) {
            oldest = c;
          }
        }
        oldest?.close();
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_PAUSE));
        continue;
      }
      const c = new Connection(conn, state);
      connections.add(c);
      const run = c.run().finally(() => {
        connections.delete(c);
        running.delete(run);
      });
      running.add(run);
    }
  })();
  const finished = (async () => {
    await accepting;
    while (running.size > 0) await Promise.allSettled([...running]);
    clearInterval(watchdog);
  })();
  const stop = () => {
    if (state.stopping) return;
    state.stopping = true;
    try {
      listener.close();
    } catch {
      // Closed already.
    }
    for (const c of connections) if (c.idle) c.close();
  };
  const closeAll = () => {
    stop();
    for (const c of connections) c.close();
  };
  const signal = options.signal;
  if (signal?.aborted) closeAll();
  signal?.addEventListener("abort", closeAll, { once: true });
  finished.then(() => signal?.removeEventListener("abort", closeAll));
  return {
    addr: listener.addr,
    finished,
    stats: state.stats,
    shutdown() {
      stop();
      return finished;
    },
    close: closeAll,
    async [Symbol.asyncDispose]() {
      stop();
      await finished;
    },
  };
}
