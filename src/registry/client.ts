/**
 * A client of the OCI Distribution Specification v1.1 on web-standard
 * `fetch` and streams: manifests, blobs, uploads (monolithic, chunked,
 * cross-repository mount) and tags, with authentication, retries with
 * backoff, and digest checks on everything sent or received.
 *
 * @module
 */

import { digestMismatch } from "../_errors.ts";
import {
  InvalidImageError,
  NotFoundError,
  RegistryError,
  UnauthorizedError,
} from "../errors.ts";
import { type Digest, digestOf, isDigest } from "../oci/digest.ts";
import {
  type Descriptor,
  MAX_MANIFEST_BYTES,
  mediaTypeOf,
  parseManifest,
} from "../oci/manifest.ts";
import { readLimited, readLimitedBytes } from "../net/_limited.ts";
import { deadlineFetch } from "../net/deadline_fetch.ts";
import { isRetriable, noteAnswered, retry } from "../net/retry.ts";
import { Authenticator } from "./_auth.ts";
import {
  apiBaseUrl,
  fetchFailure,
  isPlainToTlsAnswer,
  notRegistryMessage,
  plainToTlsMessage,
  registryEvidence,
  usesPlainHttp,
  withAttempts,
} from "./_network.ts";
import {
  checkStored,
  errorDetails,
  type RegistryRequest,
  RetriableAnswer,
  retryAfterOf,
  type Transport,
} from "./_transport.ts";
import { requestMount, uploadBlob } from "./_upload.ts";

// The option and result types, for code that imports them with the client.
export type * from "./types.ts";
export { MANIFEST_ACCEPT } from "./types.ts";
import type {
  BlobMount,
  BlobUpload,
  FetchedManifest,
  GetBlobOptions,
  ManifestUpload,
  RegistryClientOptions,
  Repository,
  RequestOptions,
  UploadBlobOptions,
  UploadBlobResult,
} from "./types.ts";
import { MANIFEST_ACCEPT } from "./types.ts";

const MAX_REDIRECTS = 10;

/** The full reference of a tag or digest in a repository. */
function imageReference(repo: Repository, tagOrDigest: string): string {
  const sep = isDigest(tagOrDigest) ? "@" : ":";
  return `${repo.registry}/${repo.repository}${sep}${tagOrDigest}`;
}

/**
 * A registry client. One instance caches tokens and keeps connections alive;
 * share it across operations.
 *
 * @example Fetch a manifest
 * ```ts
 * import { RegistryClient } from "@ironcore/image";
 * // For this example, a registry that answers every request with one empty
 * // index, through the client's fetch option.
 * const index = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}';
 * const client = new RegistryClient({ fetch: () => Promise.resolve(new Response(index)) });
 * const repo = { registry: "registry.example.com", repository: "os/demo" };
 * const m = await client.getManifest(repo, "1.0");
 * console.log(m.kind, m.descriptor.digest); // "index" "sha256:…", checked against the bytes
 * ```
 */
export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #auth: Authenticator;
  readonly #fetch: typeof fetch;
  /** Per host, why its API root is not a registry's (`undefined`: it is). */
  readonly #apiChecks = new Map<string, Promise<string | undefined>>();
  readonly #transport: Transport = {
    request: (repo, url, init) => this.#request(repo, url, init),
    fail: (repo, res, what) => this.#fail(repo, res, what),
    baseUrl: (registry) => this.baseUrl(registry),
  };

  /**
   * Creates a client.
   *
   * @param options Transport, credentials and retry settings.
   */
  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    const authOptions: ConstructorParameters<typeof Authenticator>[0] = {
      // Token requests have the deadlines of every other request.
      fetch: (input, init) =>
        this.#call(new URL(String(input)).host, String(input), init ?? {}),
    };
    if (options.credentials) authOptions.credentials = options.credentials;
    if (options.userAgent) authOptions.userAgent = options.userAgent;
    this.#auth = new Authenticator(authOptions);
  }

  #plain(registry: string): boolean {
    return usesPlainHttp(registry, this.#options.plainHttp);
  }

  /**
   * The base URL of a registry's API, e.g. `https://registry-1.docker.io/v2/`.
   *
   * @param registry Registry host.
   * @returns The URL.
   */
  baseUrl(registry: string): string {
    return apiBaseUrl(registry, this.#plain(registry));
  }

  /**
   * URL of a manifest.
   *
   * @param repo The repository.
   * @param tagOrDigest Tag or digest.
   * @returns The URL.
   */
  manifestUrl(repo: Repository, tagOrDigest: string): string {
    return `${
      this.baseUrl(repo.registry)
    }${repo.repository}/manifests/${tagOrDigest}`;
  }

  /**
   * URL of a blob.
   *
   * @param repo The repository.
   * @param digest The blob's digest.
   * @returns The URL.
   */
  blobUrl(repo: Repository, digest: string): string {
    return `${this.baseUrl(repo.registry)}${repo.repository}/blobs/${digest}`;
  }

  #scope(repo: Repository, actions: string): string {
    return `repository:${repo.repository}:${actions}`;
  }

  /**
   * Sends one HTTP request with the deadlines of the timeouts; a failure to
   * connect becomes a {@linkcode NetworkError}, and so does a response body
   * that breaks off.
   */
  async #call(host: string, url: string, init: RequestInit): Promise<Response> {
    const plain = new URL(url).protocol === "http:";
    let res: Response;
    try {
      res = await deadlineFetch(this.#fetch, url, init, {
        host,
        timeouts: this.#options.timeouts,
        bodyError: (e) => e instanceof TypeError ? fetchFailure(host, e) : e,
        releaseSent: this.#options.releaseSentChunks,
      });
    } catch (e) {
      // Deno's fetch throws a TypeError for every network failure.
      if (e instanceof TypeError) throw fetchFailure(host, e, plain);
      throw e;
    }
    noteAnswered(host);
    return res;
  }

  /**
   * Sends a request with auth, redirects and retries, and hands the answer
   * to `consume` within the same attempt, so that a body that breaks off or
   * stalls while `consume` reads it is asked for again.
   */
  async #request(
    repo: Repository,
    url: string,
    init: RegistryRequest,
  ): Promise<Response> {
    return await this.#exchange(repo, url, init, (res) => Promise.resolve(res));
  }

  async #exchange<T>(
    repo: Repository,
    url: string,
    init: RegistryRequest,
    consume: (res: Response) => Promise<T>,
  ): Promise<T> {
    const host = repo.registry;
    const scope = [this.#scope(repo, init.actions), ...(init.extraScopes ?? [])]
      .join(" ");
    let authTried = false;
    let attempts = 0;
    const attempt = async (): Promise<T> => {
      attempts++;
      for (;;) {
        const auth = await this.#auth.headerFor(host, scope);
        const { res, foreign } = await this.#send(url, init, auth, host);
        if (!foreign) await this.#checkApi(host, res, init.signal);
        // A 401 or 403 from a redirect target on another origin (a CDN whose
        // signed URL expired) is not the registry's: answering its challenge
        // would hand the registry's credentials to that origin.
        if (res.status === 401 && !authTried && !foreign) {
          authTried = true;
          const header = await this.#auth.onUnauthorized(host, res, scope);
          await res.body?.cancel();
          if (header !== undefined) continue;
          throw new UnauthorizedError(
            `Authentication failed for ${host}: the registry requires credentials, log in first`,
            { host, status: 401 },
          );
        }
        if (!foreign && (res.status === 401 || res.status === 403)) {
          const { text } = await errorDetails(res);
          throw new UnauthorizedError(
            res.status === 401
              ? `Authentication failed for ${host}: the registry refused the credentials${
                text ? ` (${text})` : ""
              }, check them or log in again`
              : `Access denied by ${host} to ${repo.repository}${
                text ? ` (${text})` : ""
              }: check your permissions`,
            { host, status: res.status },
          );
        }
        if (init.idempotent && !res.ok) {
          const answer = new RetriableAnswer(host, res);
          if (isRetriable(answer)) throw answer;
        }
        return await consume(res);
      }
    };
    try {
      return await retry(attempt, {
        maxAttempts: (this.#options.retries ?? 4) + 1,
        minTimeout: this.#options.retryDelay ?? 250,
        // A request that sent a body is not sent twice.
        isRetriable: (e, n) => init.idempotent && isRetriable(e, n),
        signal: init.signal,
        onRetry: (e) => {
          if (e instanceof RetriableAnswer) e.response.body?.cancel();
        },
      });
    } catch (e) {
      // The last answer is the caller's to turn into an error.
      if (e instanceof RetriableAnswer) return await consume(e.response);
      throw withAttempts(e, attempts);
    }
  }

  /**
   * Fails when an answer in HTML from the registry's own host comes from
   * something that is not a registry (a web server, a captive portal): the
   * registry's API root is asked once per host to tell.
   */
  async #checkApi(
    host: string,
    res: Response,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    // Only a page in place of a success: a proxy's error page in front of
    // a registry that is down is retried like any 5xx.
    const type = res.headers.get("content-type") ?? "";
    if (!res.ok || !/^\s*text\/html\b/i.test(type)) return;
    let verdict = this.#apiChecks.get(host);
    if (!verdict) {
      // Shared by every request to the host, so bound by the deadlines
      // alone; each caller stops waiting when its own signal aborts.
      verdict = this.#probeApi(host);
      this.#apiChecks.set(host, verdict);
      verdict.catch(() => this.#apiChecks.delete(host));
    }
    const why = await new Promise<string | undefined>((resolve, reject) => {
      const onAbort = () => reject(signal!.reason);
      signal?.throwIfAborted();
      signal?.addEventListener("abort", onAbort, { once: true });
      verdict.then(resolve, reject).finally(() =>
        signal?.removeEventListener("abort", onAbort)
      );
    });
    if (why === undefined) return;
    await res.body?.cancel();
    throw new RegistryError(notRegistryMessage(host, why), {
      host,
      status: res.status,
    });
  }

  /**
   * Why the API root of a host is not a registry's, or `undefined` when it
   * is, or cannot tell (an answer other than 200 or 401 is asked again
   * next time).
   */
  async #probeApi(host: string): Promise<string | undefined> {
    const res = await this.#call(host, this.baseUrl(host), {
      headers: { "user-agent": this.#options.userAgent ?? "ironcore-image" },
      redirect: "manual",
    });
    await res.body?.cancel();
    if (res.status !== 200 && res.status !== 401) {
      this.#apiChecks.delete(host);
      return undefined;
    }
    return registryEvidence(res);
  }

  /**
   * A request that only reads: pull rights, sent again after a failure as
   * often as the retry settings allow.
   */
  #read(
    repo: Repository,
    url: string,
    init: Pick<RegistryRequest, "method" | "headers" | "follow" | "signal">,
  ): Promise<Response> {
    return this.#request(repo, url, {
      ...init,
      actions: "pull",
      idempotent: true,
    });
  }

  async #send(
    url: string,
    init: RegistryRequest,
    auth: string | undefined,
    host: string,
  ): Promise<{ res: Response; foreign: boolean }> {
    const origin = new URL(url).origin;
    let current = url;
    let method = init.method;
    for (let hop = 0;; hop++) {
      const headers: Record<string, string> = {
        "user-agent": this.#options.userAgent ?? "ironcore-image",
        ...init.headers,
      };
      if (auth && new URL(current).origin === origin) {
        headers.authorization = auth;
      }
      const reqInit: RequestInit = {
        method,
        headers,
        redirect: "manual",
      };
      if (init.signal) reqInit.signal = init.signal;
      if (hop === 0 && init.body) reqInit.body = await init.body();
      const res = await this.#call(host, current, reqInit);
      if (!init.follow || ![301, 302, 303, 307, 308].includes(res.status)) {
        return { res, foreign: new URL(current).origin !== origin };
      }
      const location = res.headers.get("location");
      await res.body?.cancel();
      const bad = (what: string) =>
        new RegistryError(`Registry ${host} ${what}`, {
          host,
          status: res.status,
        });
      if (!location) throw bad("sent a redirect without a location");
      if (hop >= MAX_REDIRECTS) {
        throw bad(`redirected more than ${MAX_REDIRECTS} times`);
      }
      const next = new URL(location, current);
      if (next.protocol !== "https:" && next.protocol !== "http:") {
        throw bad("redirected to a non-HTTP URL");
      }
      current = next.toString();
      if (res.status === 303) method = "GET";
    }
  }

  /**
   * Throws for an answer that is not what was asked for.
   *
   * @param missing What is missing when the answer is 404: the image
   * (`reference`) or a blob (`digest`).
   */
  async #fail(
    repo: Repository,
    res: Response,
    what: string,
    missing: { reference?: string | undefined; digest?: string | undefined } =
      {},
  ): Promise<never> {
    const { text, codes } = await errorDetails(res);
    if (
      isPlainToTlsAnswer(res.status, text) ||
      (text === "" && await this.#wantsTls(repo.registry, res.status))
    ) {
      throw new RegistryError(plainToTlsMessage(repo.registry), {
        host: repo.registry,
        status: res.status,
      });
    }
    if (res.status === 404) {
      // `what` is worded for the middle of a sentence; this one starts with it.
      throw new NotFoundError(
        `${what[0]!.toUpperCase()}${
          what.slice(1)
        } not found in ${repo.registry}${
          text ? ` (${text})` : ""
        }: check the name and tag`,
        missing,
      );
    }
    throw new RegistryError(
      `Registry ${repo.registry} answered HTTP ${res.status} for ${what}${
        text ? `: ${text}` : ""
      }`,
      {
        host: repo.registry,
        status: res.status,
        codes,
        retryAfter: retryAfterOf(res),
      },
    );
  }

  /**
   * Tells whether a registry spoken to over plain HTTP answers like a TLS
   * server. An answer without a body (to HEAD, as `push` asks first) cannot
   * say so itself, so the API root is asked once with GET.
   */
  async #wantsTls(registry: string, status: number): Promise<boolean> {
    if (status !== 400 || !this.#plain(registry)) return false;
    try {
      const probe = await this.#call(registry, this.baseUrl(registry), {
        headers: { "user-agent": this.#options.userAgent ?? "ironcore-image" },
        redirect: "manual",
      });
      const text = await readLimited(probe, 1024).catch(() => "");
      return isPlainToTlsAnswer(probe.status, text);
    } catch {
      return false;
    }
  }

  /**
   * Fetches a manifest or index, checking its size and digest.
   *
   * @param repo The repository.
   * @param tagOrDigest Tag or digest.
   * @param options Abort signal.
   * @returns The manifest, its bytes and descriptor.
   * @throws {NotFoundError} When the registry has no such manifest.
   * @throws {DigestMismatchError} When the bytes do not match the digest asked for or announced.
   */
  async getManifest(
    repo: Repository,
    tagOrDigest: string,
    options: RequestOptions = {},
  ): Promise<FetchedManifest> {
    const reference = tagOrDigest;
    const what = `manifest ${repo.repository}:${reference}`;
    // The body is read within the attempt: one that stalls or breaks off
    // is asked for again.
    const { res, bytes } = await this.#exchange(
      repo,
      this.manifestUrl(repo, reference),
      {
        method: "GET",
        headers: { accept: MANIFEST_ACCEPT },
        actions: "pull",
        idempotent: true,
        signal: options.signal,
      },
      async (res) => {
        if (!res.ok) return { res, bytes: undefined };
        const declared = Number(res.headers.get("content-length") ?? "0");
        if (declared > MAX_MANIFEST_BYTES) {
          await res.body?.cancel();
          throw new InvalidImageError(
            `Invalid ${what}: ${declared} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`,
          );
        }
        const bytes = await readLimitedBytes(
          res,
          MAX_MANIFEST_BYTES,
          () =>
            new InvalidImageError(
              `Invalid ${what}: over the ${MAX_MANIFEST_BYTES}-byte limit`,
            ),
        );
        return { res, bytes };
      },
    );
    if (bytes === undefined) {
      return await this.#fail(repo, res, what, {
        reference: imageReference(repo, reference),
      });
    }
    const digest = digestOf(bytes);
    if (isDigest(reference) && reference !== digest) {
      throw digestMismatch(reference, digest, what);
    }
    const announced = res.headers.get("docker-content-digest");
    if (announced && announced.startsWith("sha256:") && announced !== digest) {
      throw digestMismatch(announced, digest, what);
    }
    const contentType = res.headers.get("content-type")?.split(";")[0]?.trim();
    const parsed = parseManifest(
      bytes,
      contentType ? { mediaType: contentType } : {},
    );
    return {
      ...parsed,
      bytes,
      descriptor: {
        mediaType: mediaTypeOf(parsed),
        digest,
        size: bytes.byteLength,
      },
    };
  }

  /**
   * Asks for a manifest's descriptor without its body.
   *
   * @param repo The repository.
   * @param tagOrDigest Tag or digest.
   * @param options Abort signal.
   * @returns The descriptor, or `undefined` when absent.
   */
  async headManifest(
    repo: Repository,
    tagOrDigest: string,
    options: RequestOptions = {},
  ): Promise<Descriptor | undefined> {
    const reference = tagOrDigest;
    const res = await this.#read(repo, this.manifestUrl(repo, reference), {
      method: "HEAD",
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    });
    await res.body?.cancel();
    if (res.status === 404) return undefined;
    if (!res.ok) {
      await this.#fail(repo, res, `manifest ${repo.repository}:${reference}`, {
        reference: imageReference(repo, reference),
      });
    }
    const digest = res.headers.get("docker-content-digest");
    const size = Number(res.headers.get("content-length"));
    const mediaType = res.headers.get("content-type")?.split(";")[0]?.trim();
    if (!isDigest(digest) || !Number.isSafeInteger(size) || !mediaType) {
      // Some registries omit the digest on HEAD: fall back to a GET.
      const m = await this.getManifest(repo, reference, options);
      return m.descriptor;
    }
    return { mediaType, digest, size };
  }

  /**
   * Uploads a manifest or index under a tag or its digest.
   *
   * @param repo The repository.
   * @param manifest The tag or digest, the exact bytes and the media type.
   * @param options Abort signal.
   * @returns The digest.
   */
  async putManifest(
    repo: Repository,
    manifest: ManifestUpload,
    options: RequestOptions = {},
  ): Promise<Digest> {
    const { tagOrDigest: reference, bytes, mediaType } = manifest;
    const digest = digestOf(bytes);
    const res = await this.#request(repo, this.manifestUrl(repo, reference), {
      method: "PUT",
      headers: { "content-type": mediaType },
      body: () => bytes.slice(),
      actions: "pull,push",
      idempotent: true,
      signal: options.signal,
    });
    if (res.status !== 201 && res.status !== 200) {
      await this.#fail(
        repo,
        res,
        `manifest upload ${repo.repository}:${reference}`,
      );
    }
    await res.body?.cancel();
    checkStored(repo, res, digest, "manifest");
    return digest;
  }

  /**
   * Tells whether the repository has a blob.
   *
   * @param repo The repository.
   * @param digest The blob's digest.
   * @param options Abort signal.
   * @returns `true` when present.
   */
  async hasBlob(
    repo: Repository,
    digest: Digest,
    options: RequestOptions = {},
  ): Promise<boolean> {
    const res = await this.#read(repo, this.blobUrl(repo, digest), {
      method: "HEAD",
      follow: true,
      signal: options.signal,
    });
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (res.ok) return true;
    return await this.#fail(repo, res, `blob ${digest}`, { digest });
  }

  /**
   * Starts downloading a blob. The caller consumes or cancels the body.
   *
   * @param repo The repository.
   * @param digest The blob's digest.
   * @param options Byte offset to resume from, bytes wanted from there
   * (default: to the end), and abort signal.
   * @returns The response; status 206 when a range was sent and honoured
   * (a registry may ignore the range and answer 200 with the whole blob).
   */
  async getBlob(
    repo: Repository,
    digest: Digest,
    options: GetBlobOptions = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    const offset = options.offset ?? 0;
    if (options.length !== undefined && options.length > 0) {
      headers.range = `bytes=${offset}-${offset + options.length - 1}`;
    } else if (offset) headers.range = `bytes=${offset}-`;
    const res = await this.#read(repo, this.blobUrl(repo, digest), {
      method: "GET",
      headers,
      follow: true,
      signal: options.signal,
    });
    if (res.status !== 200 && res.status !== 206) {
      await this.#fail(repo, res, `blob ${digest}`, { digest });
    }
    return res;
  }

  /**
   * Links a blob from another repository of the same registry.
   *
   * @param repo Destination repository.
   * @param blob The blob's digest and the repository path it is in.
   * @param options Abort signal.
   * @returns `true` when mounted; `false` when the registry declined.
   */
  async mountBlob(
    repo: Repository,
    blob: BlobMount,
    options: RequestOptions = {},
  ): Promise<boolean> {
    const mounted = await requestMount(
      this.#transport,
      repo,
      blob,
      options.signal,
    );
    if (typeof mounted === "string") {
      // The registry opened an upload session instead; abandon it.
      await this.#request(repo, mounted, {
        method: "DELETE",
        actions: "pull,push",
        idempotent: true,
        signal: options.signal,
      }).then((r) => r.body?.cancel()).catch(() => {});
    }
    return mounted === true;
  }

  /**
   * Uploads a blob: one streaming PUT when the registry allows it, chunked
   * PATCH requests otherwise. With `mountFrom`, the registry is asked first
   * to link the blob from that repository; an upload session it opens
   * instead is used for the upload.
   *
   * @param repo The repository.
   * @param blob The blob's digest and size, and how to read it.
   * @param options Abort signal, byte progress and the repository to mount
   * from.
   * @returns Whether the blob was mounted rather than uploaded.
   */
  uploadBlob(
    repo: Repository,
    blob: BlobUpload,
    options: UploadBlobOptions = {},
  ): Promise<UploadBlobResult> {
    return uploadBlob(this.#transport, repo, blob, {
      ...options,
      forceChunked: this.#options.forceChunked ?? false,
      chunkSize: this.#options.chunkSize ?? 64 * 1024 * 1024,
      retries: this.#options.retries ?? 4,
      retryDelay: this.#options.retryDelay ?? 250,
    });
  }

  /**
   * Lists a repository's tags, following pagination.
   *
   * @param repo The repository.
   * @param options Abort signal.
   * @returns The tags.
   */
  async listTags(
    repo: Repository,
    options: RequestOptions = {},
  ): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = `${
      this.baseUrl(repo.registry)
    }${repo.repository}/tags/list?n=1000`;
    for (let page = 0; url && page < 1000; page++) {
      const read = async (r: Response) => ({
        res: r,
        text: r.ok ? await readLimited(r, 16 * 1024 * 1024) : undefined,
      });
      const here: string = url;
      const { res, text } = await this.#exchange(repo, here, {
        method: "GET",
        actions: "pull",
        idempotent: true,
        signal: options.signal,
      }, read);
      if (text === undefined) {
        return await this.#fail(repo, res, `tags of ${repo.repository}`);
      }
      let body: { tags?: unknown };
      try {
        body = JSON.parse(text);
      } catch {
        throw new RegistryError(
          `Registry ${repo.registry} sent a tag list that is not JSON`,
          {
            host: repo.registry,
            status: res.status,
          },
        );
      }
      if (Array.isArray(body.tags)) {
        for (const t of body.tags) if (typeof t === "string") tags.push(t);
      }
      const link: string | null = res.headers.get("link");
      const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      url = m ? new URL(m[1]!, here).toString() : undefined;
    }
    return tags;
  }

  /**
   * Completes the authentication flow for a repository and returns the
   * headers a plain HTTP client needs to read from it.
   *
   * @param repo The repository.
   * @param tagOrDigest A tag or digest to probe with.
   * @param options Abort signal.
   * @returns Headers, e.g. `{ Authorization: "Bearer …" }`; empty when anonymous.
   */
  async authHeaders(
    repo: Repository,
    tagOrDigest: string,
    options: RequestOptions = {},
  ): Promise<Record<string, string>> {
    const scope = this.#scope(repo, "pull");
    let header = await this.#auth.headerFor(repo.registry, scope);
    if (header === undefined) {
      await this.headManifest(repo, tagOrDigest, options);
      header = await this.#auth.headerFor(repo.registry, scope);
    }
    return header ? { Authorization: header } : {};
  }
}
