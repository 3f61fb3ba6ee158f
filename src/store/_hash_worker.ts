/**
 * Worker side of {@linkcode ./_worker_writer.ts}: hashes and writes blob bytes
 * on its own thread, so the main thread can keep receiving from the network
 * while a core hashes.
 *
 * The worker is plain JavaScript kept as text and started from a `data:` URL.
 * Starting it reads no file and fetches nothing, so it runs under exactly the
 * permissions of the process (a worker inherits them): from a checkout with
 * `--allow-read` narrowed to the store, from an `https:` import with
 * `--allow-net` narrowed to the registry, and inside a `deno compile` binary
 * without `--include`. It imports only `node:crypto`, which the runtime
 * provides.
 *
 * Messages in: `open` (path; re-hash what the file holds), `write` (a
 * transferred buffer and a length), `truncate`, `finish`, `close`.
 * Messages out: `opened` (offset), `written` (the buffer back, running
 * total), `finished` (digest and size), `error` (message).
 *
 * Every handler catches its own errors and answers `error`, so nothing in
 * the worker ends as an uncaught exception (which the runtime would print).
 * `node:crypto` is imported when the first file is opened rather than at
 * the top, so that a runtime without it answers `error` too and the writer
 * hashes on the main thread instead.
 */

const SOURCE = `
let createHash;
let file;
let hash;
let bytes = 0;

function writeAll(data) {
  let off = 0;
  while (off < data.byteLength) off += file.writeSync(data.subarray(off));
}

function fail(err) {
  self.postMessage({
    op: "error",
    message: err instanceof Error ? err.message : String(err),
  });
}

async function open(msg) {
  createHash ??= (await import("node:crypto")).createHash;
  file = Deno.openSync(msg.path, { read: true, write: true });
  hash = createHash("sha256");
  bytes = 0;
  if (file.statSync().size > msg.limit) {
    file.truncateSync(0);
  } else {
    const buf = new Uint8Array(4 * 1024 * 1024);
    for (;;) {
      const n = file.readSync(buf);
      if (n === null) break;
      hash.update(n === buf.byteLength ? buf : buf.subarray(0, n));
      bytes += n;
    }
  }
  file.seekSync(0, Deno.SeekMode.End);
  self.postMessage({ op: "opened", offset: bytes });
}

self.onmessage = (e) => {
  const msg = e.data;
  try {
    switch (msg.op) {
      case "open":
        // The writer sends nothing else before the answer to "open".
        open(msg).catch(fail);
        break;
      case "write": {
        const data = new Uint8Array(msg.buffer, 0, msg.length);
        hash.update(data);
        writeAll(data);
        bytes += msg.length;
        self.postMessage({ op: "written", buffer: msg.buffer, bytes }, [
          msg.buffer,
        ]);
        break;
      }
      case "truncate":
        file.truncateSync(0);
        file.seekSync(0, Deno.SeekMode.Start);
        hash = createHash("sha256");
        bytes = 0;
        self.postMessage({ op: "truncated" });
        break;
      case "finish":
        if (msg.sync) file.syncSync();
        self.postMessage({
          op: "finished",
          digest: "sha256:" + hash.copy().digest("hex"),
          bytes,
        });
        break;
      case "close":
        try {
          file?.close();
        } finally {
          file = undefined;
          self.close();
        }
        break;
    }
  } catch (err) {
    fail(err);
  }
};
`;

/** The hash worker as a module URL that needs no permission to load. */
export const HASH_WORKER_URL: string = `data:text/javascript;base64,${
  btoa(SOURCE)
}`;
