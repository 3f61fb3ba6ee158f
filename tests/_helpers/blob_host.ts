/**
 * A stand-in for the object storage that registries such as GHCR, ECR and
 * Docker Hub redirect blob downloads to: it serves the files of a directory
 * (the registry's storage) on another loopback port and records the headers
 * of every request, so tests can prove that credentials meant for the
 * registry never reach it.
 *
 * @module
 */

/** One request the blob host received. */
export interface BlobHostRequest {
  /** HTTP method. */
  method: string;
  /** The path, e.g. `/docker/registry/v2/blobs/sha256/ab/ab…/data`. */
  path: string;
  /** Request headers. */
  headers: Headers;
}

/** A running blob host; stop it with `stop()` or `await using`. */
export interface TestBlobHost extends AsyncDisposable {
  /** `http://NAME:PORT`, without a trailing slash. */
  readonly url: string;
  /** Every request received so far, in order. */
  readonly requests: readonly BlobHostRequest[];
  /** Stops serving. */
  stop(): Promise<void>;
}

/**
 * Starts a blob host serving the files under `root`. `GET` and `HEAD` work,
 * with single `Range: bytes=` ranges. Like object storage answering a
 * pre-signed URL, it refuses a request that carries an `Authorization`
 * header (400), because the URL itself is the permission.
 *
 * It listens on 127.0.0.1. `name` is the host name in its URL: `localhost`
 * makes it another host to every client, as object storage is (a name
 * rather than an address, because some clients refuse redirects to loopback
 * addresses); `127.0.0.1` makes it another port of the registry's host,
 * which only clients that compare whole origins tell apart from the
 * registry.
 *
 * @param root The directory to serve.
 * @param name The host name in the URL.
 * @returns The running host.
 *
 * @example Serve a registry's storage
 * ```ts ignore
 * await using host = startBlobHost(`${registryDir}/data`, "localhost");
 * ```
 */
export function startBlobHost(
  root: string,
  name: "localhost" | "127.0.0.1",
): TestBlobHost {
  const requests: BlobHostRequest[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      requests.push({ method: req.method, path, headers: req.headers });
      await req.body?.cancel();
      if (req.headers.has("authorization")) {
        return text(400, "Only one auth mechanism allowed\n");
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        return text(405, "method not allowed\n");
      }
      if (path.split("/").includes("..")) return text(400, "bad path\n");
      return await serveFile(
        `${root}${path}`,
        req.method,
        req.headers.get("range"),
      );
    },
  );
  let stopped: Promise<void> | undefined;
  const stop = () => stopped ??= server.shutdown();
  return {
    url: `http://${name}:${server.addr.port}`,
    requests,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function serveFile(
  path: string,
  method: string,
  range: string | null,
): Promise<Response> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return text(404, "not found\n");
    throw error;
  }
  const size = (await file.stat()).size;
  let start = 0;
  let end = size - 1;
  let status = 200;
  const headers = new Headers({
    "content-type": "application/octet-stream",
    "accept-ranges": "bytes",
  });
  if (range !== null) {
    const match = /^bytes=(\d+)-(\d*)$/.exec(range);
    const first = Number(match?.[1] ?? NaN);
    const last = match?.[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
    if (!match || first >= size || first > last) {
      file.close();
      return new Response(null, {
        status: 416,
        headers: { "content-range": `bytes */${size}` },
      });
    }
    start = first;
    end = last;
    status = 206;
    headers.set("content-range", `bytes ${start}-${end}/${size}`);
  }
  headers.set("content-length", String(end - start + 1));
  if (method === "HEAD" || end < start) {
    file.close();
    return new Response(null, { status, headers });
  }
  await file.seek(start, Deno.SeekMode.Start);
  let left = end - start + 1;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(Math.min(left, 1 << 20));
      const n = await file.read(buffer);
      if (n === null || n === 0) {
        file.close();
        controller.close();
        return;
      }
      left -= n;
      controller.enqueue(buffer.subarray(0, n));
      if (left === 0) {
        file.close();
        controller.close();
      }
    },
    cancel() {
      file.close();
    },
  });
  return new Response(body, { status, headers });
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain" },
  });
}
