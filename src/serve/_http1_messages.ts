/**
 * The HTTP/1.1 messages of the direct server: request heads parsed and
 * checked strictly (they come from any client), and response heads written.
 *
 * @module
 */

/** Most header lines in a request head. */
const MAX_HEADERS = 100;

const encoder = new TextEncoder();

const REASONS: Record<number, string> = {
  200: "OK",
  206: "Partial Content",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  416: "Range Not Satisfiable",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Headers of the connection, set by this server alone. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;
const HOST = /^(?:[A-Za-z0-9.\-_~%]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
/** Control characters other than tab are not allowed in a header value. */
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** A request the client sent, as far as this server needs it. */
export interface Head {
  method: string;
  target: string;
  minor: number;
  headers: [string, string][];
}

/** Why a request cannot be answered by the handler. */
export class BadRequest extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Bytes as a string of the same code units (a request head is Latin-1). */
export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.byteLength; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

/**
 * The index after the blank line that ends the head starting at `start`,
 * or -1; the scan resumes at `from`.
 */
export function headEnd(
  bytes: Uint8Array,
  start: number,
  from: number,
  to: number,
): number {
  for (let i = Math.max(from, start + 1); i < to; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i - 1] === 0x0a) return i + 1;
    if (i - 2 >= start && bytes[i - 1] === 0x0d && bytes[i - 2] === 0x0a) {
      return i + 1;
    }
  }
  return -1;
}

export function parseHead(text: string): Head {
  const lines = text.split(/\r?\n/);
  const m = REQUEST_LINE.exec(lines.shift() ?? "");
  if (!m) {
    throw new BadRequest(
      /^\S+ \S+ HTTP\/\d/.test(text) ? 505 : 400,
      "Malformed request line: this server speaks HTTP/1.1",
    );
  }
  const headers: [string, string][] = [];
  for (const line of lines) {
    if (line === "") continue;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      throw new BadRequest(400, "Folded header lines are not allowed");
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) {
      throw new BadRequest(400, "Malformed header line");
    }
    headers.push([name.toLowerCase(), value]);
  }
  if (headers.length > MAX_HEADERS) {
    throw new BadRequest(431, `More than ${MAX_HEADERS} header lines`);
  }
  return { method: m[1]!, target: m[2]!, minor: Number(m[3]), headers };
}

function headerOf(head: Head, name: string): string[] {
  return head.headers.filter(([n]) => n === name).map(([, v]) => v);
}

/** Whether the client asked to close after this request, or cannot keep it open. */
export function wantsClose(head: Head): boolean {
  const tokens = headerOf(head, "connection").join(",").toLowerCase()
    .split(",").map((t) => t.trim());
  if (tokens.includes("close")) return true;
  return head.minor === 0 && !tokens.includes("keep-alive");
}

/** Whether the request carries a body (which this server never reads). */
export function hasBody(head: Head): boolean {
  const lengths = headerOf(head, "content-length");
  if (headerOf(head, "transfer-encoding").length > 0) {
    // Two framings that disagree are how requests are smuggled past a
    // proxy in front of this server (RFC 9112, 6.1).
    if (lengths.length > 0) {
      throw new BadRequest(
        400,
        "Transfer-Encoding and Content-Length together are not allowed",
      );
    }
    return true;
  }
  if (lengths.length === 0) return false;
  const values = new Set(
    lengths.flatMap((v) => v.split(",")).map((v) => v.trim()),
  );
  const [only] = values;
  if (values.size !== 1 || !/^\d+$/.test(only!)) {
    throw new BadRequest(400, "Malformed Content-Length");
  }
  return Number(only) > 0;
}

export function requestOf(
  head: Head,
  local: Deno.NetAddr,
  signal: AbortSignal,
): Request {
  if (/^(?:CONNECT|TRACE|TRACK)$/i.test(head.method)) {
    throw new BadRequest(
      405,
      `Method ${head.method} not allowed: use GET or HEAD`,
    );
  }
  let url: URL;
  try {
    if (head.target.startsWith("/")) {
      const hosts = headerOf(head, "host");
      if (
        hosts.length > 1 || (hosts[0] !== undefined && !HOST.test(hosts[0]))
      ) {
        throw new BadRequest(400, "Malformed Host header");
      }
      const host = hosts[0] ??
        (local.hostname.includes(":")
          ? `[${local.hostname}]:${local.port}`
          : `${local.hostname}:${local.port}`);
      url = new URL(`http://${host}${head.target}`);
    } else if (/^https?:\/\//i.test(head.target)) {
      url = new URL(head.target);
    } else {
      throw new BadRequest(400, `Malformed request target ${head.target}`);
    }
  } catch (e) {
    if (e instanceof BadRequest) throw e;
    throw new BadRequest(400, `Malformed request target ${head.target}`);
  }
  try {
    const headers = new Headers();
    for (const [name, value] of head.headers) headers.append(name, value);
    return new Request(url, { method: head.method, headers, signal });
  } catch {
    throw new BadRequest(400, "Malformed request head");
  }
}

let dateSecond = 0;
let dateText = "";

/** The `Date` header's value, made once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** The status line and headers of a response. */
export function headOf(
  response: Response,
  extra: Record<string, string>,
  omit: Set<string> = new Set(),
): Uint8Array {
  const reason = response.statusText || REASONS[response.status] || "";
  let text = `HTTP/1.1 ${response.status} ${reason}\r\n`;
  for (const [name, value] of response.headers) {
    if (HOP_BY_HOP.has(name) || omit.has(name) || name in extra) continue;
    text += `${name}: ${value}\r\n`;
  }
  for (const [name, value] of Object.entries(extra)) {
    text += `${name}: ${value}\r\n`;
  }
  if (!response.headers.has("date")) text += `date: ${httpDate()}\r\n`;
  return encoder.encode(`${text}\r\n`);
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** Statuses whose responses never have a body. */
export function bodiless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}
