/**
 * A raw TCP server on 127.0.0.1 for deadline tests: it accepts every
 * connection and, by default, never answers nor reads (a registry that hangs,
 * with the kernel's buffers the only thing taking bytes). A handler can
 * answer chosen requests with raw HTTP and leave the others hanging.
 *
 * @module
 */

/** The head of a request the server read. */
export interface SilentRequest {
  /** HTTP method. */
  method: string;
  /** Path and query. */
  path: string;
}

/**
 * Answers a request with raw HTTP (status line, headers and body; the
 * connection is closed after it), or `undefined` to read nothing more and
 * answer nothing.
 */
export type SilentHandler = (req: SilentRequest) => string | undefined;

/** A running silent server; stop it with `stop()` or `await using`. */
export interface SilentServer extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** Request heads read so far, in order. */
  readonly requests: SilentRequest[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Closes the listener and every connection. */
  stop(): Promise<void>;
}

/**
 * Starts a silent server.
 *
 * @param handler Answers chosen requests; without it, nothing is read or
 * answered at all.
 * @returns The running server.
 *
 * @example A registry that never answers
 * ```ts ignore
 * await using silent = startSilentServer();
 * await pullImage(store, `${silent.host}/os/demo:1`, { client }); // times out
 * ```
 */
export function startSilentServer(handler?: SilentHandler): SilentServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const requests: SilentRequest[] = [];
  let connections = 0;
  const serveConn = async (conn: Deno.Conn) => {
    if (!handler) return;
    const buf = new Uint8Array(64 * 1024);
    let head = "";
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        head += new TextDecoder().decode(buf.subarray(0, n));
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) continue;
        const [method = "", path = ""] = head.slice(0, end).split(" ");
        const req = { method, path };
        requests.push(req);
        const answer = handler(req);
        if (answer === undefined) return;
        await conn.write(new TextEncoder().encode(answer));
        conn.close();
        conns.delete(conn);
        return;
      }
    } catch {
      // Closed by stop() or by the client.
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      serveConn(conn);
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      conns.clear();
      await accepting;
    })();
    return stopped;
  };
  return {
    host: `127.0.0.1:${port}`,
    port,
    requests,
    get connections() {
      return connections;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * A raw HTTP answer that closes the connection.
 *
 * @param status Status code and reason, e.g. `202 Accepted`.
 * @param headers Headers.
 * @param body The body.
 * @returns The raw text.
 */
export function rawAnswer(
  status: string,
  headers: Record<string, string> = {},
  body = "",
): string {
  const lines = Object.entries({
    ...headers,
    "content-length": String(new TextEncoder().encode(body).length),
    connection: "close",
  }).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `HTTP/1.1 ${status}\r\n${lines}\r\n${body}`;
}
