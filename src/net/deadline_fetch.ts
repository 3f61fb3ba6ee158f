/**
 * Deadlines for every request to a registry, so that no request waits
 * forever: for the answer (connecting, sending the request, the status line
 * and headers), for a request body the server stops taking, for a response
 * body that stops arriving while it is read.
 *
 * A wait that runs out aborts the request with a {@linkcode NetworkError} of
 * kind `timeout` (no answer) or a {@linkcode StallError} (a body stalled);
 * both are worth another attempt under the one retry rule.
 *
 * @module
 */

import { NetworkError, StallError } from "../errors.ts";
import { byobReaderOf } from "../_streams.ts";

/** How long a request to a registry may wait, in milliseconds. */
export interface RegistryTimeouts {
  /**
   * From sending a request to its status line and headers: connecting,
   * sending the request and the registry's answer. After a request body
   * (an upload), the registry gets one more second per 10 MiB sent, for
   * registries that hash or copy a blob when its upload completes.
   * Default 30 s.
   */
  response?: number | undefined;
  /**
   * Longest time without progress of a body: a response body that sends
   * nothing while it is read, or a request body the registry takes nothing
   * of. A consumer that reads slowly never counts as a stall. Default 30 s.
   */
  stall?: number | undefined;
}

/** Timeouts in force, in milliseconds. */
interface Limits {
  response: number;
  stall: number;
}

/** Defaults of {@linkcode RegistryTimeouts}. */
export const DEFAULT_TIMEOUTS: Readonly<Limits> = {
  response: 30_000,
  stall: 30_000,
};

/**
 * Request body bytes per millisecond a registry is granted on top of the
 * answer timeout when it completes an upload: 10 MiB per second.
 */
const COMMIT_BYTES_PER_MS = (10 * 1024 * 1024) / 1000;

/** Byte size of a response chunk when the reader does not bring a buffer. */
const AUTO_CHUNK = 64 * 1024;

/** Statuses whose answers have no body. */
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];

/** What a deadline is waiting for. */
type Phase = "send" | "answer" | "body";

/** Request bodies whose chunks each own their memory, which nobody else uses. */
const OWNED = new WeakSet<ReadableStream<Uint8Array>>();

/**
 * Marks a request body whose every chunk sits in a buffer of its own that
 * nothing else holds or reads after the chunk was passed on. Sent with
 * `releaseSent`, each chunk's memory is then let go as soon as `fetch` has
 * taken it over, rather than at the next garbage collection: a blob of many
 * GiB otherwise leaves tens of MiB of sent chunks waiting for the
 * collector.
 *
 * @param stream The request body.
 * @returns The same stream.
 *
 * @example Mark a stream of fresh chunks
 * ```ts
 * import { ownedChunks } from "./deadline_fetch.ts";
 * const body = ownedChunks(new Blob(["kernel bytes"]).stream());
 * console.log(body instanceof ReadableStream); // true
 * ```
 */
export function ownedChunks(
  stream: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  OWNED.add(stream);
  return stream;
}

/**
 * Lets go of a sent chunk's memory by detaching its buffer: the runtime's
 * own reference keeps the bytes until they are on the wire.
 */
function release(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.detached) return;
  try {
    buffer.transfer(0);
  } catch {
    // A buffer that cannot be detached stays for the collector.
  }
}

/** Options of {@linkcode deadlineFetch}. */
export interface DeadlineOptions {
  /** The registry host, for errors. */
  host: string;
  /** The timeouts; absent ones take the defaults. */
  timeouts?: RegistryTimeouts | undefined;
  /** What a failed read of the response body throws instead of its error. */
  bodyError?: ((error: unknown) => unknown) | undefined;
  /**
   * Let go of each chunk of a body marked with {@linkcode ownedChunks} when
   * `fetch` asks for the next one (see `releaseSentChunks` of the registry
   * client's options). Default `false`.
   */
  releaseSent?: boolean | undefined;
}

/** Seconds, for messages: `30 s`, `0.5 s`. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * One timer per request that aborts it when its current wait runs out. The
 * deadline moves with progress; the timer is set again only when it fires
 * early, so progress costs no timer calls.
 */
class Watchdog {
  readonly #controller: AbortController;
  readonly #host: string;
  readonly #what: string;
  readonly #timeouts: Limits;
  #phase: Phase = "answer";
  #deadline = Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #ended = false;
  readonly #onEnd: () => void;
  /** Request body bytes taken so far. */
  sent = 0;

  constructor(
    controller: AbortController,
    request: { host: string; what: string },
    timeouts: Limits,
    onEnd: () => void,
  ) {
    this.#controller = controller;
    this.#host = request.host;
    this.#what = request.what;
    this.#timeouts = timeouts;
    this.#onEnd = onEnd;
  }

  /** Waits for the answer: the response timeout plus the upload's grace. */
  answer(): void {
    this.#phase = "answer";
    this.#set(
      Date.now() + this.#timeouts.response + this.sent / COMMIT_BYTES_PER_MS,
    );
  }

  /** The request body moved (or starts): the next move is due within a stall. */
  sending(first: boolean): void {
    this.#phase = "send";
    this.#set(
      Date.now() + (first ? this.#timeouts.response : this.#timeouts.stall),
    );
  }

  /** A read of the response body waits for bytes. */
  reading(): void {
    this.#phase = "body";
    this.#set(Date.now() + this.#timeouts.stall);
  }

  /** Nothing is waited for (a reader took its bytes and has not asked again). */
  idle(): void {
    this.#deadline = Infinity;
  }

  /** The exchange is over: no more deadlines. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#deadline = Infinity;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#onEnd();
  }

  #set(deadline: number): void {
    if (this.#ended) return;
    this.#deadline = deadline;
    if (this.#timer !== undefined && this.#timerAt <= deadline) return;
    clearTimeout(this.#timer);
    this.#schedule(deadline);
  }

  #schedule(at: number): void {
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#ended || this.#deadline === Infinity) return;
    if (Date.now() < this.#deadline) return this.#schedule(this.#deadline);
    this.#controller.abort(this.#error());
  }

  #error(): NetworkError {
    const host = this.#host;
    const { response, stall } = this.#timeouts;
    if (this.#phase === "body") {
      return new StallError(
        `Registry ${host} sent no data for ${
          seconds(stall)
        } in the middle of the answer to ${this.#what}`,
        { host, timeout: stall },
      );
    }
    if (this.#phase === "send" && this.sent > 0) {
      return new StallError(
        `Registry ${host} took no data for ${
          seconds(stall)
        } in the middle of ${this.#what}`,
        { host, timeout: stall },
      );
    }
    const waited = response + this.sent / COMMIT_BYTES_PER_MS;
    return new NetworkError(
      `Registry ${host} did not answer ${this.#what} within ${seconds(waited)}`,
      { host, kind: "timeout" },
    );
  }
}

/**
 * A request body stream that tells the watchdog when the server takes its
 * chunks. A wait for the source (itself a download with its own deadline)
 * is not the server's stall.
 *
 * With `releaseSent`, the chunk passed on before is released when the
 * next one is asked for: Deno's fetch asks for a chunk only once it has
 * taken the one before over.
 */
function watchRequestBody(
  body: ReadableStream<Uint8Array>,
  dog: Watchdog,
  releaseSent: boolean,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let sent: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent) release(sent);
      sent = undefined;
      dog.idle();
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        dog.answer();
        return;
      }
      dog.sent += value.byteLength;
      controller.enqueue(value);
      if (releaseSent) sent = value;
      dog.sending(false);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * A response body that tells the watchdog when a read waits and when bytes
 * came, passing the reader's own buffers through when it brings them. An
 * abort (a deadline, or the caller's signal) fails the body at once, even
 * while no read is waiting.
 */
function watchResponseBody(
  body: ReadableStream<Uint8Array>,
  dog: Watchdog,
  signal: AbortSignal,
  mapError: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const byob = byobReaderOf(body);
  const source = byob ?? body.getReader();
  let fail: ((error: unknown) => void) | undefined;
  const onAbort = () => fail?.(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const end = () => {
    dog.end();
    signal.removeEventListener("abort", onAbort);
  };
  const start = (controller: { error(e?: unknown): void }) => {
    fail = (e) => {
      end();
      try {
        controller.error(mapError(e));
      } catch {
        // Already closed or errored.
      }
      source.cancel(e).catch(() => {});
    };
  };
  const cancel = (reason: unknown) => {
    end();
    return source.cancel(reason);
  };
  if (!byob) {
    const reader = source as ReadableStreamDefaultReader<Uint8Array>;
    return new ReadableStream<Uint8Array>({
      start,
      async pull(controller) {
        dog.reading();
        try {
          const { done, value } = await reader.read();
          dog.idle();
          if (done) {
            end();
            controller.close();
          } else controller.enqueue(value);
        } catch (e) {
          fail!(e);
        }
      },
      cancel,
    }, { highWaterMark: 0 });
  }
  const reader = byob;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: AUTO_CHUNK,
    start,
    async pull(controller) {
      const request = controller.byobRequest!;
      const view = request.view!;
      dog.reading();
      try {
        // The inner read takes the buffer over; the answer hands it back.
        const { done, value } = await reader.read(
          new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
        );
        dog.idle();
        if (done) {
          end();
          controller.close();
        }
        if (value) request.respondWithNewView(value);
      } catch (e) {
        fail!(e);
      }
    },
    cancel,
  });
}

/**
 * Sends a request with deadlines: the answer must come within the response
 * timeout (plus one second per 10 MiB of request body), a request body must
 * keep moving, and the response body must not stall while it is read. A
 * deadline that runs out aborts the request; `fetch` then rejects, or the
 * body read fails, with a {@linkcode NetworkError} of kind `timeout` or a
 * {@linkcode StallError}. Aborting `init.signal` aborts as before.
 *
 * @param doFetch The fetch to send with.
 * @param input The URL.
 * @param init The request; a stream body is watched as it is sent.
 * @param options The host (for errors) and the timeouts.
 * @returns The response, its body watched for stalls.
 *
 * @example Give up on a registry that does not answer
 * ```ts
 * import { deadlineFetch } from "./deadline_fetch.ts";
 * // For this example, a registry that never answers.
 * const silent = (_: RequestInfo | URL, init?: RequestInit) =>
 *   new Promise<Response>((_, reject) =>
 *     init?.signal?.addEventListener("abort", () => reject(init.signal!.reason))
 *   );
 * try {
 *   await deadlineFetch(silent, "https://registry.example/v2/", {}, {
 *     host: "registry.example",
 *     timeouts: { response: 10 },
 *   });
 * } catch (e) {
 *   console.log((e as Error).message); // "Registry registry.example did not answer GET /v2/ within 0.01 s"
 * }
 * ```
 */
export async function deadlineFetch(
  doFetch: typeof fetch,
  input: string | URL,
  init: RequestInit,
  options: DeadlineOptions,
): Promise<Response> {
  const timeouts: Limits = {
    response: options.timeouts?.response ?? DEFAULT_TIMEOUTS.response,
    stall: options.timeouts?.stall ?? DEFAULT_TIMEOUTS.stall,
  };
  const url = new URL(input);
  // A redirect target on another host is named with its host.
  const what = `${init.method ?? "GET"} ${
    url.host === options.host ? "" : url.host
  }${url.pathname}`;
  const controller = new AbortController();
  const outer = init.signal ?? undefined;
  const onAbort = () => controller.abort(outer!.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener("abort", onAbort, { once: true });
  const dog = new Watchdog(
    controller,
    { host: options.host, what },
    timeouts,
    () => outer?.removeEventListener("abort", onAbort),
  );
  const sendInit: RequestInit = { ...init, signal: controller.signal };
  const body = init.body;
  if (body instanceof ReadableStream) {
    dog.sending(true);
    const releaseSent = options.releaseSent === true && OWNED.has(body);
    sendInit.body = watchRequestBody(body, dog, releaseSent);
  } else {
    if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
      dog.sent = body.byteLength;
    } else if (typeof body === "string") dog.sent = body.length;
    dog.answer();
  }
  let res: Response;
  try {
    res = await doFetch(url, sendInit);
  } catch (e) {
    dog.end();
    throw e;
  }
  if (res.body === null || NULL_BODY_STATUSES.includes(res.status)) {
    dog.end();
    return res;
  }
  dog.idle();
  const mapError = options.bodyError ?? ((e: unknown) => e);
  return new Response(
    watchResponseBody(res.body, dog, controller.signal, mapError),
    {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    },
  );
}
