/**
 * Streams part of a file with large reads.
 *
 * @module
 */

/** Options for {@linkcode fileStream}. */
export interface FileStreamOptions {
  /** Byte offset to start at. */
  offset?: number;
  /** Bytes to stream; default to the end of the file. */
  length?: number;
  /** Size of each read. Default 1 MiB. */
  chunkSize?: number;
  /** Called with the running byte count. */
  onBytes?: (n: number) => void;
}

/**
 * Opens a file as a byte stream. The file is closed when the stream ends or
 * is cancelled.
 *
 * @param path The file.
 * @param options Range, read size and progress.
 * @returns The stream.
 *
 * @example
 * ```ts
 * import { fileStream } from "./file_stream.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * const text = await new Response(await fileStream(path, { offset: 1 })).text();
 * console.log(text); // "ello"
 * ```
 */
export async function fileStream(
  path: string,
  options: FileStreamOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  const offset = options.offset ?? 0;
  if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
  let left = options.length ?? Infinity;
  let sent = 0;
  const size = options.chunkSize ?? 1024 * 1024;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (left <= 0) {
          close();
          controller.close();
          return;
        }
        const buf = new Uint8Array(Math.min(size, left));
        const n = await file.read(buf);
        if (n === null) {
          close();
          controller.close();
          return;
        }
        left -= n;
        sent += n;
        options.onBytes?.(sent);
        controller.enqueue(n === buf.byteLength ? buf : buf.subarray(0, n));
      } catch (e) {
        close();
        controller.error(e);
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}
