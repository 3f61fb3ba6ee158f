import {
  formatPlatform,
  parsePlatform,
  type Platform,
} from "../../oci/platform.ts";
import type {
  AccessLogEntry,
  BootHandler,
  BootHandlerOptions,
} from "../../serve/boot_handler.ts";
import { hostPlatform } from "../../oci/platform.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { durationFlag } from "./_flags.ts";
import { registryClient, retries, timeouts } from "./_registry.ts";

const DEFAULT_LISTEN = "127.0.0.1:8080";
const HTTP_SERVERS = ["direct", "deno"] as const;
/** How long responses in flight may take after SIGINT or SIGTERM. */
const DEFAULT_GRACE = 10_000;

/**
 * Parses `--listen`: `HOST:PORT`, `[IPv6]:PORT`, or a bare `PORT` on
 * 127.0.0.1. Every interface is only ever served when asked for by name
 * (`0.0.0.0:8080`).
 */
function parseListen(text: string): { hostname: string; port: number } {
  let hostname = "127.0.0.1";
  let portText = text;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text);
  if (v6) {
    hostname = v6[1]!;
    portText = v6[2]!;
  } else if (text.includes(":")) {
    const i = text.lastIndexOf(":");
    hostname = text.slice(0, i);
    portText = text.slice(i + 1);
    if (hostname === "") {
      throw new UsageError(
        `Flag --listen needs a host in "${text}": write 127.0.0.1${text} for this machine only, or 0.0.0.0${text} for every interface`,
      );
    }
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new UsageError(
      `Flag --listen takes HOST:PORT with a port from 0 to 65535, got "${text}"`,
    );
  }
  return { hostname, port };
}

function formatLog(e: AccessLogEntry): string {
  return `${new Date().toISOString()} ${
    e.remoteAddr ?? "-"
  } ${e.method} ${e.path} ${e.status} ${e.bytes} ${e.durationMs}ms${
    e.source ? ` ${e.source}` : ""
  }${e.error ? ` (${escapeControls(e.error)})` : ""}\n`;
}

/**
 * Writes control characters as `\uXXXX`: an error can quote a decoded
 * request path, and a newline from a client must not start a log line of
 * its own.
 */
function escapeControls(text: string): string {
  return text.replace(
    /\p{Cc}/gu,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Whether a listen address reaches only this machine. Only literal loopback
 * addresses count: a host name might resolve to anything.
 */
function isLoopback(hostname: string): boolean {
  return hostname.toLowerCase() === "localhost" || hostname === "::1" ||
    /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(hostname);
}

function urlHost(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

/** `serve`: HTTP boot endpoint streaming layers of images. */
export const serveCommand: Command = {
  name: "serve",
  summary:
    "Serve kernels, initramfs and root file systems of images over HTTP for network boot",
  usage:
    "serve [--listen 127.0.0.1:8080] [--allow-registry REGISTRY[/PREFIX]]... [--cache] [--resolve-interval 60s] [--platform os/arch] [--http-server direct|deno] [--shutdown-grace 10s]",
  examples: [
    "ironcore-image serve --listen 0.0.0.0:8080 --allow-registry ghcr.io/org --cache",
    "curl -O http://127.0.0.1:8080/v1/images/ghcr.io%2Forg%2Fos%3A1.0/kernel",
    "curl http://127.0.0.1:8080/v1/images/ghcr.io%2Forg%2Fos%3A1.0",
  ],
  flags: [
    {
      name: "listen",
      type: "string",
      value: "HOST:PORT",
      help:
        `Address to listen on (default ${DEFAULT_LISTEN}; 0.0.0.0:PORT for every interface)`,
      default: DEFAULT_LISTEN,
    },
    {
      name: "allow-registry",
      type: "strings",
      value: "REGISTRY[/PREFIX]",
      help:
        "Serve only images of this registry or repository prefix, e.g. ghcr.io/org (repeatable, or comma-separated); required unless listening on loopback",
    },
    {
      name: "cache",
      type: "boolean",
      help:
        "Keep served blobs in the local store: later downloads skip the registry",
    },
    {
      name: "resolve-interval",
      type: "string",
      value: "DURATION",
      help: "How long a tag's resolution is reused (default 60s)",
      default: "60s",
    },
    {
      name: "platform",
      type: "string",
      value: "OS/ARCH",
      help:
        "Platform of an index when a request names none (default: this machine's)",
    },
    {
      name: "http-server",
      type: "string",
      value: "KIND",
      choices: HTTP_SERVERS,
      help:
        "direct: HTTP/1.1 that writes stored blobs from reused buffers (fastest); deno: the runtime's Deno.serve (default direct)",
      default: "direct",
    },
    {
      name: "shutdown-grace",
      type: "string",
      value: "DURATION",
      help:
        "On SIGINT or SIGTERM, how long responses in flight may take to finish (default 10s)",
      default: "10s",
    },
  ],
  positionals: { min: 0, max: 0, names: "no arguments" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const listen = parseListen(ctx.string("listen") ?? DEFAULT_LISTEN);
    const resolveInterval = durationFlag(ctx, "resolve-interval", 60_000);
    const grace = durationFlag(ctx, "shutdown-grace", DEFAULT_GRACE);
    let platform: Platform = hostPlatform();
    const platformText = ctx.string("platform");
    if (platformText !== undefined) {
      try {
        platform = parsePlatform(platformText);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const allow = ctx.strings("allow-registry").flatMap((v) => v.split(","));
    if (allow.length === 0 && !isLoopback(listen.hostname)) {
      // Any client that can reach the server could make it connect to any
      // host it names.
      throw new UsageError(
        `Listening on ${listen.hostname}, not a loopback address, needs --allow-registry: name the registries or repository prefixes to serve, e.g. --allow-registry ghcr.io/org`,
      );
    }
    const httpServer = ctx.string("http-server") ?? "direct";
    if (!(HTTP_SERVERS as readonly string[]).includes(httpServer)) {
      throw new UsageError(
        `Flag --http-server takes ${
          HTTP_SERVERS.join(" or ")
        }, got "${httpServer}"`,
      );
    }
    const cache = ctx.bool("cache");
    const [{ createBootHandler }, { serveHttp1 }] = await Promise.all([
      import("../../serve/boot_handler.ts"),
      import("../../serve/_serve_http1.ts"),
    ]);
    const store = await ctx.store();
    const quiet = ctx.bool("quiet");
    const options: BootHandlerOptions = {
      client: await registryClient(ctx),
      store,
      cache,
      platform,
      resolveInterval,
      retries: retries(ctx),
      stallTimeout: timeouts(ctx).stall,
    };
    if (allow.length > 0) options.allow = allow;
    if (!quiet) {
      // Best effort: a closed stderr must not fail a download.
      options.onLog = (e) => void ctx.err(formatLog(e)).catch(() => {});
    }
    let handler: BootHandler;
    try {
      handler = createBootHandler(options);
    } catch (e) {
      if (e instanceof TypeError) {
        throw new UsageError(`${e.message} (in --allow-registry)`);
      }
      throw e;
    }
    // Stopping the server through its signal closes every connection at
    // once; graceful stops end the responses in flight first.
    const closing = new AbortController();
    let server: { addr: Deno.NetAddr; finished: Promise<void> };
    try {
      server = httpServer === "deno"
        ? Deno.serve({
          ...listen,
          signal: closing.signal,
          onListen() {},
          // A body that breaks off is in the access log already.
          onError: () => new Response(null, { status: 500 }),
        }, handler)
        : serveHttp1({ ...listen, signal: closing.signal }, handler);
    } catch (e) {
      await handler.close();
      if (e instanceof Deno.errors.AddrInUse) {
        throw new Deno.errors.AddrInUse(
          `Cannot listen on ${listen.hostname}:${listen.port}: the address is in use, pick another with --listen`,
        );
      }
      if (e instanceof Deno.errors.AddrNotAvailable) {
        throw new Deno.errors.AddrNotAvailable(
          `Cannot listen on ${listen.hostname}:${listen.port}: no interface has that address, check --listen`,
        );
      }
      throw e;
    }
    await ctx.err(
      `Listening on http://${
        urlHost(server.addr.hostname)
      }:${server.addr.port}/ (${
        cache ? `caching in ${store.path}` : "no cache"
      }; default platform ${formatPlatform(platform)}; serving ${
        allow.length > 0 ? `only ${allow.join(", ")}` : "every registry"
      })\n`,
    );
    let code = 0;
    try {
      await stopped(ctx.io.signal);
      const waiting = handler.inFlight;
      if (waiting > 0) {
        await ctx.err(
          `Stopping: waiting for ${waiting} ${
            waiting === 1 ? "response" : "responses"
          } (Ctrl-C again to stop now)\n`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = await Promise.race([
        handler.drain().then(() => "drained" as const),
        new Promise<"grace">((resolve) => {
          timer = setTimeout(() => resolve("grace"), grace);
        }),
        stopped(ctx.io.signalAgain).then(() => "again" as const),
      ]);
      clearTimeout(timer);
      if (end === "again") {
        code = (ctx.io.signalAgain?.reason as Error | undefined)?.message ===
            "SIGTERM"
          ? 143
          : 130;
      }
      const cut = handler.inFlight;
      if (cut > 0) {
        await ctx.err(
          `Stopping now: ${cut} ${
            cut === 1 ? "response" : "responses"
          } cut off${end === "grace" ? ` after ${grace / 1000} s` : ""}\n`,
        );
      }
    } finally {
      closing.abort();
      await handler.close();
      await server.finished;
    }
    await ctx.err("Stopped\n");
    return code;
  },
};

/** Settles when the signal aborts; never without one. */
function stopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
}
