/**
 * Uploading a blob: one streaming PUT when the registry allows it, chunked
 * PATCH requests otherwise, resumed from what the registry kept when a
 * chunk's connection breaks.
 *
 * @module
 */

import { NetworkError, RegistryError } from "../errors.ts";
import { backoffDelay, sleep } from "../net/retry.ts";
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
      if (!(e instanceof NetworkError)) throw e;
      options.signal?.throwIfAborted();
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
  const chunk = options.chunkSize;
  let location = await startUpload(t, repo, options.signal);
  let offset = 0;
  let failures = 0;
  const retries = options.retries;
  while (offset < size) {
    const len = Math.min(chunk, size - offset);
    const start = offset;
    const init: RegistryRequest = {
      method: "PATCH",
      headers: {
        "content-type": "application/octet-stream",
        "content-range": `${start}-${start + len - 1}`,
        "content-length": String(len),
      },
      body: () => open(start, len),
      actions: "pull,push",
      idempotent: false,
      signal: options.signal,
    };
    let res: Response;
    try {
      res = await t.request(repo, location, init);
    } catch (e) {
      if (!(e instanceof NetworkError) || failures >= retries) throw e;
      failures++;
      options.signal?.throwIfAborted();
      await sleep(
        backoffDelay(options.retryDelay, failures),
        options.signal,
      );
      // Ask the registry how much of the upload it kept, and go on from there.
      const status = await uploadStatus(
        t,
        repo,
        location,
        options.signal,
      ).catch(() => undefined);
      // "0-0" means both nothing and one byte: start afresh then.
      if (status === undefined || status.received <= 1) {
        location = await startUpload(t, repo, options.signal);
        offset = 0;
      } else {
        location = status.location;
        offset = status.received;
      }
      continue;
    }
    await res.body?.cancel();
    if (res.status !== 202) {
      await t.fail(repo, res, `blob chunk upload ${digest}`);
    }
    const loc = res.headers.get("location");
    if (loc) location = new URL(loc, t.baseUrl(repo.registry)).toString();
    const range = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get("range") ?? "");
    offset = range ? Number(range[1]) + 1 : start + len;
    options.onBytes?.(offset);
  }
  const init: RegistryRequest = {
    method: "PUT",
    headers: { "content-length": "0" },
    actions: "pull,push",
    idempotent: false,
    signal: options.signal,
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
