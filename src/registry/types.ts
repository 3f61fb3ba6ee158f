/**
 * The shapes the registry client takes and returns: repositories, uploads,
 * options and fetched manifests.
 *
 * @module
 */

import type { RegistryTimeouts } from "../net/deadline_fetch.ts";
import type { Digest } from "../oci/digest.ts";
import {
  type Descriptor,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  type ParsedManifest,
} from "../oci/manifest.ts";
import type { CredentialLookup } from "./credentials.ts";

export type { RegistryTimeouts };

/** A repository in a registry. */
export interface Repository {
  /** Registry host as in the reference, e.g. `docker.io`, `localhost:5000`. */
  registry: string;
  /** Repository path, e.g. `library/ubuntu`. */
  repository: string;
}

/** Options of every request: an abort signal. */
export interface RequestOptions {
  /** Aborts the request. */
  signal?: AbortSignal | undefined;
}

/** Options for {@linkcode RegistryClient.getBlob}. */
export interface GetBlobOptions extends RequestOptions {
  /** Byte offset to start at. Default 0. */
  offset?: number | undefined;
  /** Bytes wanted from the offset. Default: to the end. */
  length?: number | undefined;
}

/** A manifest or index to upload with {@linkcode RegistryClient.putManifest}. */
export interface ManifestUpload {
  /** The tag to set, or the digest of `bytes`. */
  tagOrDigest: string;
  /** The exact manifest bytes. */
  bytes: Uint8Array;
  /** The manifest's media type. */
  mediaType: string;
}

/** A blob to upload with {@linkcode RegistryClient.uploadBlob}. */
export interface BlobUpload {
  /** The blob's digest. */
  digest: Digest;
  /** The blob's size in bytes. */
  size: number;
  /**
   * Opens a fresh stream of the blob's bytes from an offset (for `length`
   * bytes, or to the end); called again to resume or retry.
   */
  open: (
    offset: number,
    length?: number | undefined,
  ) => Promise<ReadableStream<Uint8Array>>;
}

/** Options for {@linkcode RegistryClient.uploadBlob}. */
export interface UploadBlobOptions extends RequestOptions {
  /** Called with the bytes the registry has confirmed. */
  onBytes?: ((bytes: number) => void) | undefined;
  /**
   * A repository of the same registry that has the blob: the registry is
   * asked first to link it from there (a cross-repository mount), and the
   * bytes are uploaded only when it declines.
   */
  mountFrom?: string | undefined;
}

/** What {@linkcode RegistryClient.uploadBlob} did. */
export interface UploadBlobResult {
  /** The registry linked the blob from `mountFrom`; no bytes were sent. */
  mounted: boolean;
}

/** A blob to link from another repository with {@linkcode RegistryClient.mountBlob}. */
export interface BlobMount {
  /** The blob's digest. */
  digest: Digest;
  /** The repository path it is in, in the same registry. */
  from: string;
}

/** Options for {@linkcode RegistryClient}. */
export interface RegistryClientOptions {
  /**
   * Use `http://` instead of `https://`. Absent (the default): plain HTTP
   * for loopback registries only (`localhost`, `127.0.0.0/8`, `[::1]`, with
   * any port), HTTPS for every other. `true`: plain HTTP for every registry.
   * `false`: HTTPS for every registry, loopback ones included. A function
   * decides per registry host; when it returns `undefined`, the default
   * applies to that host.
   */
  plainHttp?: boolean | ((registry: string) => boolean | undefined) | undefined;
  /** Where credentials come from. */
  credentials?: CredentialLookup | undefined;
  /** Retries of a request after a network error, 429 or 5xx. Default 4. */
  retries?: number | undefined;
  /** First retry delay in milliseconds; doubles each time up to 10 s. Default 250. */
  retryDelay?: number | undefined;
  /** The fetch to use. */
  fetch?: typeof fetch | undefined;
  /** User-Agent header. */
  userAgent?: string | undefined;
  /** Size of PATCH chunks when a registry refuses a single-request upload. Default 64 MiB. */
  chunkSize?: number | undefined;
  /** Always upload in chunks instead of one PUT. */
  forceChunked?: boolean | undefined;
  /**
   * How long a request may wait for the registry's answer, and for a body
   * that stops moving; each request that runs out is retried like a broken
   * connection. Default 30 s each.
   */
  timeouts?: RegistryTimeouts | undefined;
  /**
   * Let go of each chunk of an upload (push, copy) as soon as `fetch` asks
   * for the next one, by detaching its buffer, instead of leaving the sent
   * chunks to the garbage collector: memory stays flat on uploads of many
   * GiB. Only for a `fetch` that takes each chunk over before it asks for
   * the next, as Deno's own does; leave it off when `fetch` (also the global
   * one) is wrapped by something that keeps or tees request bodies. The CLI
   * turns it on. Default `false`.
   */
  releaseSentChunks?: boolean | undefined;
}

/** A manifest or index fetched from a registry. */
export type FetchedManifest = ParsedManifest & {
  /** Its descriptor (media type, digest, size). */
  descriptor: Descriptor;
  /** The exact bytes, whose digest is `descriptor.digest`. */
  bytes: Uint8Array;
};

/** Media types sent in `Accept` when fetching manifests. */
export const MANIFEST_ACCEPT: string = [
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
].join(", ");
