/**
 * Worker side of {@linkcode ./_worker_writer.ts}: hashes and writes blob bytes
 * on its own thread, so the main thread can keep receiving from the network
 * while a core hashes.
 *
 * Messages in: `open` (path; re-hash what the file holds), `write` (a
 * transferred buffer and a length), `truncate`, `finish`, `close`.
 * Messages out: `opened` (offset), `written` (the buffer back, running
 * total), `finished` (digest and size), `error` (message).
 */

/// <reference lib="deno.worker" />

import { createHash, type Hash } from "node:crypto";

let file: Deno.FsFile | undefined;
let hash: Hash = createHash("sha256");
let bytes = 0;

function writeAll(data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) off += file!.writeSync(data.subarray(off));
}

self.onmessage = (e: MessageEvent) => {
  const msg = e.data;
  try {
    switch (msg.op) {
      case "open": {
        file = Deno.openSync(msg.path, { read: true, write: true });
        hash = createHash("sha256");
        bytes = 0;
        const size = file.statSync().size;
        if (size > msg.limit) {
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
        break;
      }
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
      case "truncate": {
        file!.truncateSync(0);
        file!.seekSync(0, Deno.SeekMode.Start);
        hash = createHash("sha256");
        bytes = 0;
        self.postMessage({ op: "truncated" });
        break;
      }
      case "finish": {
        if (msg.sync) file!.syncSync();
        self.postMessage({
          op: "finished",
          digest: `sha256:${hash.copy().digest("hex")}`,
          bytes,
        });
        break;
      }
      case "close": {
        file?.close();
        file = undefined;
        self.close();
        break;
      }
    }
  } catch (err) {
    self.postMessage({
      op: "error",
      message: err instanceof Error ? err.message : String(err),
    });
  }
};
