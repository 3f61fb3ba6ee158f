/**
 * Uploading a blob: one streaming PUT when the registry allows it, chunked
 * PATCH requests otherwise, resumed from what the registry kept when a
 * chunk's connection breaks.
 *
 * @module
 */

import { RegistryError } from "../errors.ts";
import { isRetriable, retry } from "../net/retry.ts";
import type { BlobUpload, Repository, UploadBlobOptions } from "./client.ts";
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

async function startUpload(
  t: Transport,
  repo: Repository,
  signal: AbortSignal | undefined,
): Promise<string> {
  const init: RegistryRequest = {
    method: "POST",
    actions: "pull,push",
    idempotent: true,
    signal,
  };
  const res = await t.request(
    repo,
    `${t.baseUrl(repo.registry)}${repo.repository}/blobs/uploads/`,
    init,
  );
  await res.body?.cancel();
  if (res.status !== 202) await t.fail(repo, res, "upload start");
  const loc = res.headers.get("location");
  if (!loc) {
    throw new RegistryError(
      `Registry ${repo.registry} started an upload without a location`,
      {
        host: repo.registry,
        status: res.status,
      },
    );
  }
  return new URL(loc, t.baseUrl(repo.registry)).toString();
}

/**
 * Uploads a blob.
 *
 * @param t The transport.
 * @param repo The repository.
 * @param blob The blob and how to read it.
 * @param options Settings, abort signal and byte progress.
 */
export async function uploadBlob(
  t: Transport,
  repo: Repository,
  blob: BlobUpload,
  options: UploadSettings,
): Promise<void> {
  const { digest, size, open } = blob;
  if (!options.forceChunked) {
    const location = await startUpload(t, repo, options.signal);
    const init: RegistryRequest = {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: () => open(0),
      actions: "pull,push",
      idempotent: false,
      signal: options.signal,
    };
    let res: Response;
    try {
      res = await t.request(
        repo,
        appendQuery(location, { digest }),
        init,
      );
    } catch (e) {
      // The connection broke mid-upload: carry on with chunks, which can
      // resume from what the registry received.
      options.signal?.throwIfAborted();
      if (!isRetriable(e)) throw e;
      await uploadChunked(t, repo, blob, options);
      return;
    }
    if (res.status === 201) {
      await res.body?.cancel();
      checkStored(repo, res, digest, "blob");
      options.onBytes?.(size);
      return;
    }
    // A registry that refuses single-request uploads gets chunks instead.
    if (![405, 413, 416].includes(res.status)) {
      await t.fail(repo, res, `blob upload ${digest}`);
    }
    await res.body?.cancel();
  }
  await uploadChunked(t, repo, blob, options);
}

async function uploadChunked(
  t: Transport,
  repo: Repository,
  blob: BlobUpload,
  options: UploadSettings,
): Promise<void> {
  const { digest, size, open } = blob;
  const signal = options.signal;
  let location = await startUpload(t, repo, signal);
  let offset = 0;
  await retry(async (retries) => {
    // After a broken chunk: whether the session goes on where the registry
    // said it stands.
    let resumed = false;
    if (retries > 0) {
      // Ask the registry how much of the upload it kept, and go on from there.
      const status = await uploadStatus(t, repo, location, signal)
        .catch(() => undefined);
      // "0-0" means both nothing and one byte: start afresh then.
      if (status === undefined || status.received <= 1) {
        location = await startUpload(t, repo, signal);
        offset = 0;
      } else {
        location = status.location;
        offset = status.received;
        resumed = true;
      }
    }
    while (offset < size) {
      const len = Math.min(options.chunkSize, size - offset);
      const start = offset;
      const res = await t.request(repo, location, {
        method: "PATCH",
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${start}-${start + len - 1}`,
          "content-length": String(len),
        },
        body: () => open(start, len),
        actions: "pull,push",
        idempotent: false,
        signal,
      });
      await res.body?.cancel();
      if (resumed && (res.status === 404 || res.status === 416)) {
        // The registry dropped the session or no longer agrees on its
        // length: it may still have been writing the broken chunk when it
        // answered where the upload stood. Start over in a new session.
        location = await startUpload(t, repo, signal);
        offset = 0;
        resumed = false;
        continue;
      }
      if (res.status !== 202) {
        await t.fail(repo, res, `blob chunk upload ${digest}`);
      }
      resumed = false;
      const loc = res.headers.get("location");
      if (loc) location = new URL(loc, t.baseUrl(repo.registry)).toString();
      const range = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get("range") ?? "");
      offset = range ? Number(range[1]) + 1 : start + len;
      options.onBytes?.(offset);
    }
  }, {
    maxAttempts: options.retries + 1,
    minTimeout: options.retryDelay,
    signal,
  });
  const init: RegistryRequest = {
    method: "PUT",
    headers: { "content-length": "0" },
    actions: "pull,push",
    idempotent: false,
    signal,
  };
  const res = await t.request(
    repo,
    appendQuery(location, { digest }),
    init,
  );
  await res.body?.cancel();
  if (res.status !== 201) {
    await t.fail(repo, res, `blob upload ${digest}`);
  }
  checkStored(repo, res, digest, "blob");
}

async function uploadStatus(
  t: Transport,
  repo: Repository,
  location: string,
  signal: AbortSignal | undefined,
): Promise<{ location: string; received: number } | undefined> {
  const res = await t.request(repo, location, {
    method: "GET",
    actions: "pull,push",
    idempotent: true,
    signal,
  });
  await res.body?.cancel();
  if (res.status !== 204 && res.status !== 202) return undefined;
  const m = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get("range") ?? "");
  const loc = res.headers.get("location");
  return {
    location: loc
      ? new URL(loc, t.baseUrl(repo.registry)).toString()
      : location,
    received: m ? Number(m[1]) + 1 : 0,
  };
}
