/**
 * Uploading a blob: a cross-repository mount when asked for, else one
 * streaming PUT when the registry allows it, chunked PATCH requests
 * otherwise, resumed from what the registry kept when a chunk's connection
 * breaks.
 *
 * @module
 */

import type { Digest } from "../oci/digest.ts";
import { RegistryError, UnauthorizedError } from "../errors.ts";
import { isRetriable, retry } from "../net/retry.ts";
import type {
  BlobUpload,
  Repository,
  UploadBlobOptions,
  UploadBlobResult,
} from "./client.ts";
import {
  appendQuery,
  checkStored,
  type RegistryRequest,
  type Transport,
} from "./_transport.ts";

/** How a blob is uploaded. */
export interface UploadSettings extends UploadBlobOptions {
  /** Always upload in chunks. */
  forceChunked: boolean;
  /** Size of a PATCH chunk. */
  chunkSize: number;
  /** Resumes of a chunked upload after a broken connection. */
  retries: number;
  /** First delay before a resume, in milliseconds. */
  retryDelay: number;
}

/** Where an upload session stands, as the registry says. */
interface SessionState {
  /** The URL of the session's next request. */
  location: string;
  /** Bytes the registry holds. */
  received: number;
}

/**
 * Asks a registry to link a blob from another repository of the same
 * registry (`POST …/blobs/uploads/?mount=<digest>&from=<repository>`). The
 * token asked for includes pull rights on the source repository.
 *
 * @param t The transport.
 * @param repo The destination repository.
 * @param blob The blob's digest and the repository it is in.
 * @param signal Aborts the request.
 * @returns `true` when linked; the URL of an upload session when the
 * registry opened one instead (202); `undefined` when it declined (any
 * other answer, or no rights on the source).
 */
export async function requestMount(
  t: Transport,
  repo: Repository,
  blob: { digest: Digest; from: string },
  signal: AbortSignal | undefined,
): Promise<true | string | undefined> {
  const url = appendQuery(
    `${t.baseUrl(repo.registry)}${repo.repository}/blobs/uploads/`,
    { mount: blob.digest, from: blob.from },
  );
  let res: Response;
  try {
    res = await t.request(repo, url, {
      method: "POST",
      actions: "pull,push",
      extraScopes: [`repository:${blob.from}:pull`],
      idempotent: true,
      signal,
    });
  } catch (e) {
    // Refused rights may be the source's alone: the upload finds out.
    if (e instanceof UnauthorizedError) return undefined;
    throw e;
  }
  await res.body?.cancel();
  if (res.status === 201) {
    checkStored(repo, res, blob.digest, "blob");
    return true;
  }
  const location = res.headers.get("location");
  if (res.status === 202 && location) {
    return new URL(location, t.baseUrl(repo.registry)).toString();
  }
  return undefined;
}

/** `0-N` in a `Range` header of an upload session: N + 1 bytes received. */
function receivedOf(res: Response): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get("range") ?? "");
  return m ? Number(m[1]) + 1 : undefined;
}

/** One blob upload to one repository. */
class Upload {
  readonly #t: Transport;
  readonly #repo: Repository;
  readonly #blob: BlobUpload;
  readonly #options: UploadSettings;

  constructor(
    t: Transport,
    repo: Repository,
    blob: BlobUpload,
    options: UploadSettings,
  ) {
    this.#t = t;
    this.#repo = repo;
    this.#blob = blob;
    this.#options = options;
  }

  /** A request of the upload, with push rights and the abort signal. */
  #request(
    url: string,
    init: Omit<RegistryRequest, "actions" | "signal">,
  ): Promise<Response> {
    return this.#t.request(this.#repo, url, {
      ...init,
      actions: "pull,push",
      signal: this.#options.signal,
    });
  }

  /** An absolute URL from a `Location` header. */
  #resolve(location: string): string {
    return new URL(location, this.#t.baseUrl(this.#repo.registry)).toString();
  }

  /** Opens an upload session and returns its URL. */
  async #start(): Promise<string> {
    const { registry, repository } = this.#repo;
    const res = await this.#request(
      `${this.#t.baseUrl(registry)}${repository}/blobs/uploads/`,
      { method: "POST", idempotent: true },
    );
    await res.body?.cancel();
    if (res.status !== 202) await this.#t.fail(this.#repo, res, "upload start");
    const loc = res.headers.get("location");
    if (!loc) {
      throw new RegistryError(
        `Registry ${registry} started an upload without a location`,
        { host: registry, status: res.status },
      );
    }
    return this.#resolve(loc);
  }

  /** Where a session stands, or `undefined` when the registry will not say. */
  async #status(location: string): Promise<SessionState | undefined> {
    const res = await this.#request(location, {
      method: "GET",
      idempotent: true,
    });
    await res.body?.cancel();
    if (res.status !== 204 && res.status !== 202) return undefined;
    const loc = res.headers.get("location");
    return {
      location: loc ? this.#resolve(loc) : location,
      received: receivedOf(res) ?? 0,
    };
  }

  /**
   * Completes a session with `PUT ?digest=`, with the whole blob as body or
   * none after chunks.
   *
   * @returns The registry's answer when it refused; nothing once stored.
   */
  async #complete(
    location: string,
    body: RegistryRequest["body"],
  ): Promise<Response | undefined> {
    const { digest } = this.#blob;
    const res = await this.#request(appendQuery(location, { digest }), {
      method: "PUT",
      headers: body
        ? { "content-type": "application/octet-stream" }
        : { "content-length": "0" },
      body,
      idempotent: false,
    });
    if (res.status !== 201) return res;
    await res.body?.cancel();
    checkStored(this.#repo, res, digest, "blob");
    return undefined;
  }

  /**
   * Links the blob from the repository named in the options, or uploads it
   * in one request, falling back to chunks.
   */
  async run(): Promise<UploadBlobResult> {
    let session: string | undefined;
    const from = this.#options.mountFrom;
    if (from !== undefined && from !== this.#repo.repository) {
      const mounted = await requestMount(this.#t, this.#repo, {
        digest: this.#blob.digest,
        from,
      }, this.#options.signal);
      if (mounted === true) return { mounted: true };
      // A registry that declines a mount may open an upload session
      // instead: the upload goes on in it.
      session = mounted;
    }
    await this.#upload(session);
    return { mounted: false };
  }

  /** Uploads the blob in one request, falling back to chunks. */
  async #upload(session: string | undefined): Promise<void> {
    const { digest, size, open } = this.#blob;
    if (this.#options.forceChunked) return await this.#chunked(session);
    const location = session ?? await this.#start();
    let refused: Response | undefined;
    try {
      refused = await this.#complete(location, () => open(0));
    } catch (e) {
      // The connection broke mid-upload: carry on with chunks, which can
      // resume from what the registry received.
      this.#options.signal?.throwIfAborted();
      if (!isRetriable(e)) throw e;
      return await this.#chunked();
    }
    if (refused === undefined) {
      this.#options.onBytes?.(size);
      return;
    }
    // A registry that refuses single-request uploads gets chunks instead.
    if (![405, 413, 416].includes(refused.status)) {
      await this.#t.fail(this.#repo, refused, `blob upload ${digest}`);
    }
    await refused.body?.cancel();
    await this.#chunked();
  }

  /**
   * Uploads the blob in PATCH chunks, resuming after a broken one.
   *
   * @param session An upload session that is still empty, if one is open.
   */
  async #chunked(session?: string | undefined): Promise<void> {
    const { digest, size, open } = this.#blob;
    const options = this.#options;
    let location = session ?? await this.#start();
    let offset = 0;
    /** The session went on after a broken chunk, where the registry said. */
    let resumed = false;
    /** The blob was sent again in a new session after a resumed one. */
    let again = false;
    const restart = async () => {
      location = await this.#start();
      offset = 0;
      resumed = false;
    };
    await retry(async (retries) => {
      // The first chunk after the registry said where the upload stands.
      let first = false;
      if (retries > 0) {
        // Ask the registry how much of the upload it kept, and go on from
        // there.
        const state = await this.#status(location).catch(() => undefined);
        // "0-0" means both nothing and one byte: start afresh then.
        if (state === undefined || state.received <= 1) await restart();
        else {
          ({ location, received: offset } = state);
          resumed = first = true;
        }
      }
      for (;;) {
        while (offset < size) {
          const len = Math.min(options.chunkSize, size - offset);
          const start = offset;
          const res = await this.#request(location, {
            method: "PATCH",
            headers: {
              "content-type": "application/octet-stream",
              "content-range": `${start}-${start + len - 1}`,
              "content-length": String(len),
            },
            body: () => open(start, len),
            idempotent: false,
          });
          await res.body?.cancel();
          if (first && (res.status === 404 || res.status === 416)) {
            // The registry dropped the session or no longer agrees on its
            // length: it may still have been writing the broken chunk when
            // it said where the upload stood. Start over in a new session.
            await restart();
            first = false;
            continue;
          }
          if (res.status !== 202) {
            await this.#t.fail(this.#repo, res, `blob chunk upload ${digest}`);
          }
          first = false;
          const loc = res.headers.get("location");
          if (loc) location = this.#resolve(loc);
          offset = receivedOf(res) ?? start + len;
          options.onBytes?.(offset);
        }
        const refused = await this.#complete(location, undefined);
        if (refused === undefined) return;
        try {
          await this.#t.fail(this.#repo, refused, `blob upload ${digest}`);
        } catch (e) {
          // Bytes of the broken chunk written after the registry said where
          // the upload stood end up mixed into the session, and the digest
          // does not match: send the blob again in a new session, once.
          const mixed = resumed && e instanceof RegistryError &&
            e.codes.includes("DIGEST_INVALID");
          if (!mixed || again) throw e;
          again = true;
          await restart();
        }
      }
    }, {
      maxAttempts: options.retries + 1,
      minTimeout: options.retryDelay,
      signal: options.signal,
    });
  }
}

/**
 * Uploads a blob, or links it from another repository when asked to and the
 * registry agrees.
 *
 * @param t The transport.
 * @param repo The repository.
 * @param blob The blob and how to read it.
 * @param options Settings, mount source, abort signal and byte progress.
 * @returns Whether the blob was linked instead of uploaded.
 */
export function uploadBlob(
  t: Transport,
  repo: Repository,
  blob: BlobUpload,
  options: UploadSettings,
): Promise<UploadBlobResult> {
  return new Upload(t, repo, blob, options).run();
}
