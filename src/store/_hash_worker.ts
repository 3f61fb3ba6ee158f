/**
 * Worker side of {@linkcode ./_worker_writer.ts}: hashes and writes blob bytes
 * on its own thread, so the main thread can keep receiving from the network
 * while other cores hash. One worker serves several blobs at once, each
 * under the number the writer gave it.
 *
 * The worker is plain JavaScript kept as text and started from a `data:` URL.
 * Starting it reads no file and fetches nothing, so it runs under exactly the
 * permissions of the process (a worker inherits them): from a checkout with
 * `--allow-read` narrowed to the store, from an `https:` import with
 * `--allow-net` narrowed to the registry, and inside a `deno compile` binary
 * without `--include`. It imports only `node:crypto`, which the runtime
 * provides.
 *
 * Messages in, each with the blob's `id`: `open` (path; re-hash what the
 * file holds), `write` (a transferred buffer and a length), `truncate`,
 * `finish`, `close` (no answer). Messages out, with the same `id`: `opened`
 * (offset), `written` (the buffer back, running total), `truncated`,
 * `finished` (digest and size), `error` (message).
 *
 * Every handler catches its own errors and answers `error`, so nothing in
 * the worker ends as an uncaught exception (which the runtime would print).
 * `node:crypto` is imported when the first file is opened rather than at
 * the top, so that a runtime without it answers `error` too and the writer
 * hashes on the main thread instead.
 */

const SOURCE = `
let createHash;
const blobs = new Map();

function writeAll(file, data) {
  let off = 0;
  while (off < data.byteLength) off += file.writeSync(data.subarray(off));
}

function fail(id, err) {
  self.postMessage({
    op: "error",
    id,
    message: err instanceof Error ? err.message : String(err),
  });
}

async function open(msg) {
  createHash ??= (await import("node:crypto")).createHash;
  const file = Deno.openSync(msg.path, { read: true, write: true });
  const blob = { file, hash: createHash("sha256"), bytes: 0 };
  blobs.set(msg.id, blob);
  if (file.statSync().size > msg.limit) {
    file.truncateSync(0);
  } else {
    const buf = new Uint8Array(4 * 1024 * 1024);
    for (;;) {
      const n = file.readSync(buf);
      if (n === null) break;
      blob.hash.update(n === buf.byteLength ? buf : buf.subarray(0, n));
      blob.bytes += n;
    }
  }
  file.seekSync(0, Deno.SeekMode.End);
  self.postMessage({ op: "opened", id: msg.id, offset: blob.bytes });
}

self.onmessage = (e) => {
  const msg = e.data;
  const blob = blobs.get(msg.id);
  try {
    switch (msg.op) {
      case "open":
        // The writer sends nothing else for this blob before the answer.
        open(msg).catch((err) => fail(msg.id, err));
        break;
      case "write": {
        const data = new Uint8Array(msg.buffer, 0, msg.length);
        blob.hash.update(data);
        writeAll(blob.file, data);
        blob.bytes += msg.length;
        self.postMessage(
          { op: "written", id: msg.id, buffer: msg.buffer, bytes: blob.bytes },
          [msg.buffer],
        );
        break;
      }
      case "truncate":
        blob.file.truncateSync(0);
        blob.file.seekSync(0, Deno.SeekMode.Start);
        blob.hash = createHash("sha256");
        blob.bytes = 0;
        self.postMessage({ op: "truncated", id: msg.id });
        break;
      case "finish":
        if (msg.sync) blob.file.syncSync();
        self.postMessage({
          op: "finished",
          id: msg.id,
          digest: "sha256:" + blob.hash.copy().digest("hex"),
          bytes: blob.bytes,
        });
        break;
      case "close":
        blobs.delete(msg.id);
        blob?.file.close();
        break;
    }
  } catch (err) {
    if (msg.op !== "close") fail(msg.id, err);
  }
};
`;

/** The hash worker as a module URL that needs no permission to load. */
export const HASH_WORKER_URL: string = `data:text/javascript;base64,${
  btoa(SOURCE)
}`;
