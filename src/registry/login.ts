/**
 * Checks a username and password (or identity token) against a registry
 * before they are stored, the way `docker login` does.
 *
 * @module
 */

import { RegistryError, UnauthorizedError } from "../errors.ts";
import { readLimited } from "../net/_limited.ts";
import { deadlineFetch, type RegistryTimeouts } from "../net/deadline_fetch.ts";
import { noteAnswered } from "../net/retry.ts";
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
import type { Credential } from "./credentials.ts";

/** Options for {@linkcode verifyCredentials}. */
export interface VerifyCredentialsOptions {
  /**
   * Use `http://` instead of `https://`. Absent (the default): plain HTTP
   * for a loopback registry (`localhost`, `127.0.0.0/8`, `[::1]`), HTTPS
   * for any other. `true`: plain HTTP. `false`: HTTPS, loopback included.
   */
  plainHttp?: boolean | undefined;
  /** The fetch to use. */
  fetch?: typeof fetch | undefined;
  /** User-Agent header. */
  userAgent?: string | undefined;
  /** Aborts the check. */
  signal?: AbortSignal | undefined;
  /** How long to wait for each answer and for a stalled body. Default 30 s each. */
  timeouts?: RegistryTimeouts | undefined;
}

/** How the registry authenticated the credential. */
export interface VerifyCredentialsResult {
  /**
   * `basic` or `bearer` when the registry accepted the credential through
   * that scheme; `none` when the registry lets anyone in, so the credential
   * could not be checked.
   */
  scheme: "none" | "basic" | "bearer";
}

/**
 * Checks a credential against a registry's authentication flow: `GET /v2/`
 * and, when the registry challenges, the same request with Basic
 * credentials, or a token request to the Bearer realm with them followed by
 * `GET /v2/` with the token. A refusal at any step means the credential is
 * wrong. The first answer must be a registry's: 200 with the
 * `Docker-Distribution-API-Version` header or a JSON body, or 401 with an
 * authentication challenge; a web server that answers a page is refused.
 * Nothing is stored.
 *
 * @param registry The registry host, e.g. `registry.example.com:5000`.
 * @param credential A username and password, or an identity token.
 * @param options Transport settings and abort signal.
 * @returns How the registry authenticated the credential.
 * @throws {UnauthorizedError} `Authentication failed for HOST: …` when the
 * registry or its token service refuses the credential.
 * @throws {RegistryError} When the registry cannot be reached or answers
 * something unexpected.
 *
 * @example Check a login before saving it
 * ```ts
 * import { DockerConfig } from "@ironcore/image";
 * import { verifyCredentials } from "@ironcore/image/registry";
 * // For this example, a registry that asks for a password (HTTP Basic) and
 * // accepts ada's, answering through the fetch option.
 * const accepted = `Basic ${btoa("ada:s3cret")}`;
 * const registry = (input: RequestInfo | URL, init?: RequestInit) => {
 *   const ok = new Request(input, init).headers.get("authorization") === accepted;
 *   return Promise.resolve(ok ? new Response("{}") : new Response(null, {
 *     status: 401,
 *     headers: { "www-authenticate": 'Basic realm="registry.example.com"' },
 *   }));
 * };
 * const credential = { username: "ada", password: "s3cret" };
 * // Throws an UnauthorizedError for a wrong password: nothing is saved then.
 * await verifyCredentials("registry.example.com", credential, { fetch: registry });
 * const dir = await Deno.makeTempDir();
 * const config = await DockerConfig.load({ path: `${dir}/config.json` });
 * await config.set("registry.example.com", credential);
 * console.log((await config.get("registry.example.com"))?.username); // "ada"
 * ```
 */
export async function verifyCredentials(
  registry: string,
  credential: Credential,
  options: VerifyCredentialsOptions = {},
): Promise<VerifyCredentialsResult> {
  const rawFetch = options.fetch ?? fetch;
  const doFetch = (input: RequestInfo | URL, init?: RequestInit) =>
    deadlineFetch(rawFetch, String(input), init ?? {}, {
      host: registry,
      timeouts: options.timeouts,
    }).then((res) => {
      noteAnswered(registry);
      return res;
    });
  const userAgent = options.userAgent ?? "ironcore-image";
  const plain = usesPlainHttp(registry, options.plainHttp);
  const url = apiBaseUrl(registry, plain);
  const authOptions: ConstructorParameters<typeof Authenticator>[0] = {
    credentials: () => Promise.resolve(credential),
    userAgent,
  };
  authOptions.fetch = async (input, init) => {
    const url = new URL(String(input));
    try {
      return await doFetch(url, {
        ...init,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
      throw fetchFailure(url.host, e, url.protocol === "http:");
    }
  };
  const auth = new Authenticator(authOptions);
  const refused = () =>
    new UnauthorizedError(
      `Authentication failed for ${registry}: the registry refused the username or password, check them`,
      { host: registry, status: 401 },
    );

  const get = async (authorization?: string): Promise<Response> => {
    const headers: Record<string, string> = { "user-agent": userAgent };
    if (authorization) headers.authorization = authorization;
    const init: RequestInit = { headers };
    if (options.signal) init.signal = options.signal;
    try {
      return await doFetch(url, init);
    } catch (e) {
      if (options.signal?.aborted) throw options.signal.reason;
      // A missing net permission is the user's to grant, not the network's.
      if (e instanceof Deno.errors.NotCapable) throw e;
      if (!(e instanceof TypeError)) throw withAttempts(e, 1);
      throw fetchFailure(registry, e, plain);
    }
  };
  const unexpected = async (res: Response) => {
    const body = await readLimited(res, 4096).catch(() => "");
    return new RegistryError(
      isPlainToTlsAnswer(res.status, body)
        ? plainToTlsMessage(registry)
        : `Registry ${registry} answered HTTP ${res.status} to GET /v2/: it may not be an OCI registry`,
      { host: registry, status: res.status },
    );
  };

  const first = await get();
  const why = registryEvidence(first);
  if (why !== undefined && (first.status === 200 || first.status === 401)) {
    await first.body?.cancel();
    throw new RegistryError(notRegistryMessage(registry, why), {
      host: registry,
      status: first.status,
    });
  }
  if (first.ok) {
    await first.body?.cancel();
    return { scheme: "none" };
  }
  if (first.status !== 401) throw await unexpected(first);
  await first.body?.cancel();
  let header: string | undefined;
  try {
    header = await auth.onUnauthorized(registry, first, "");
  } catch (e) {
    if (
      e instanceof UnauthorizedError && (e.status === 401 || e.status === 403)
    ) {
      throw refused();
    }
    throw e;
  }
  if (header === undefined) {
    throw new UnauthorizedError(
      `Authentication failed for ${registry}: its challenge cannot be answered with this credential (it supports Basic and Bearer with a username and password)`,
      { host: registry, status: 401 },
    );
  }
  const second = await get(header);
  if (second.status === 401 || second.status === 403) {
    await second.body?.cancel();
    throw refused();
  }
  if (!second.ok) throw await unexpected(second);
  await second.body?.cancel();
  return { scheme: header.startsWith("Bearer ") ? "bearer" : "basic" };
}
