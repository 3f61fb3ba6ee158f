/**
 * Registry authentication: `WWW-Authenticate` challenges, Basic auth and the
 * Bearer token flow (Docker token protocol and its OAuth2 variant), with
 * tokens cached per registry and scope until shortly before they expire.
 *
 * @module
 */

import { UnauthorizedError } from "../errors.ts";
import { readLimited } from "../net/_limited.ts";
import type { Credential, CredentialLookup } from "./credentials.ts";

/** One parsed authentication challenge. */
export interface Challenge {
  /** Lower-cased scheme: `basic` or `bearer`. */
  scheme: string;
  /** Parameters such as `realm`, `service`, `scope`, `error`. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header into its challenges.
 *
 * @param header The header value.
 * @returns The challenges in order.
 *
 * @example Read a Bearer challenge
 * ```ts
 * import { parseChallenges } from "./_auth.ts";
 * const [c] = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example"');
 * console.log(c?.scheme, c?.params.realm); // bearer https://auth.example/token
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && /[\s,]/.test(s[i]!)) i++;
  };
  while (i < s.length) {
    skipWs();
    const m = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*/.exec(s.slice(i));
    if (!m) break;
    const challenge: Challenge = { scheme: m[0].toLowerCase(), params: {} };
    out.push(challenge);
    i += m[0].length;
    for (;;) {
      while (i < s.length && /\s/.test(s[i]!)) i++;
      if (s[i] === ",") {
        i++;
        while (i < s.length && /\s/.test(s[i]!)) i++;
      }
      const p = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(s.slice(i));
      if (!p) break;
      i += p[0].length;
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const v = /^[^\s,]*/.exec(s.slice(i))![0];
        value = v;
        i += v.length;
      }
      challenge.params[p[1]!.toLowerCase()] = value;
    }
  }
  return out;
}

/** Encodes `user:password` for Basic auth (UTF-8, base64). */
export function basicAuth(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

interface CachedToken {
  header: string;
  expires: number;
}

/** Options for {@linkcode Authenticator}. */
export interface AuthenticatorOptions {
  /** Where credentials come from. */
  credentials?: CredentialLookup | undefined;
  /** The fetch to use. */
  fetch?: typeof fetch | undefined;
  /** User-Agent header. */
  userAgent?: string | undefined;
}

/**
 * Remembers how each registry authenticates and holds tokens per scope.
 *
 * @example Nothing cached before the first request
 * ```ts
 * import { Authenticator } from "./_auth.ts";
 * const auth = new Authenticator({ credentials: () => Promise.resolve(undefined) });
 * console.log(auth.cachedHeader("localhost:5000", "repository:a:pull")); // undefined
 * ```
 */
export class Authenticator {
  readonly #credentials: CredentialLookup;
  readonly #fetch: typeof fetch;
  readonly #userAgent: string;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #basic = new Map<string, string>();
  readonly #challenges = new Map<string, Challenge>();
  readonly #pending = new Map<string, Promise<string | undefined>>();
  readonly #creds = new Map<string, Promise<Credential | undefined>>();

  /**
   * Creates an authenticator.
   *
   * @param options Credentials, fetch and User-Agent.
   */
  constructor(options: AuthenticatorOptions = {}) {
    this.#credentials = options.credentials ??
      (() => Promise.resolve(undefined));
    this.#fetch = options.fetch ?? fetch;
    this.#userAgent = options.userAgent ?? "ironcore-image";
  }

  #credential(registry: string): Promise<Credential | undefined> {
    let c = this.#creds.get(registry);
    if (!c) {
      c = this.#credentials(registry);
      this.#creds.set(registry, c);
      c.catch(() => this.#creds.delete(registry));
    }
    return c;
  }

  /**
   * The Authorization header to send for a scope, when one is known.
   *
   * @param registry Registry host.
   * @param scope Token scope, e.g. `repository:os/img:pull`.
   * @returns The header value, or `undefined`.
   */
  cachedHeader(registry: string, scope: string): string | undefined {
    const basic = this.#basic.get(registry);
    if (basic) return basic;
    const t = this.#tokens.get(`${registry} ${scope}`);
    if (t && t.expires > Date.now()) return t.header;
    return undefined;
  }

  /**
   * Obtains an Authorization header for a scope before any request was
   * refused, using a challenge seen earlier for the same registry.
   *
   * @param registry Registry host.
   * @param scope Token scope.
   * @returns The header value, or `undefined` when no challenge is known.
   */
  async headerFor(
    registry: string,
    scope: string,
  ): Promise<string | undefined> {
    const cached = this.cachedHeader(registry, scope);
    if (cached) return cached;
    const challenge = this.#challenges.get(registry);
    if (!challenge) return undefined;
    return await this.#fromChallenge(registry, challenge, scope);
  }

  /**
   * Answers a 401: parses its challenge, fetches a token or picks Basic
   * credentials, and returns the header to retry with.
   *
   * @param registry Registry host.
   * @param response The 401 response (its headers are read, not its body).
   * @param scope The scope the request needs.
   * @returns The header, or `undefined` when no authentication is possible.
   */
  async onUnauthorized(
    registry: string,
    response: Response,
    scope: string,
  ): Promise<string | undefined> {
    const header = response.headers.get("www-authenticate") ?? "";
    const challenges = parseChallenges(header);
    const challenge = challenges.find((c) => c.scheme === "bearer") ??
      challenges.find((c) => c.scheme === "basic");
    if (!challenge) return undefined;
    this.#challenges.set(registry, challenge);
    this.#tokens.delete(`${registry} ${scope}`);
    return await this.#fromChallenge(registry, challenge, scope);
  }

  #fromChallenge(
    registry: string,
    challenge: Challenge,
    scope: string,
  ): Promise<string | undefined> {
    const key = `${registry} ${scope}`;
    let p = this.#pending.get(key);
    if (!p) {
      p = this.#resolve(registry, challenge, scope).finally(() =>
        this.#pending.delete(key)
      );
      this.#pending.set(key, p);
    }
    return p;
  }

  async #resolve(
    registry: string,
    challenge: Challenge,
    scope: string,
  ): Promise<string | undefined> {
    const cred = await this.#credential(registry);
    if (challenge.scheme === "basic") {
      if (!cred?.username || cred.password === undefined) return undefined;
      const h = basicAuth(cred.username, cred.password);
      this.#basic.set(registry, h);
      return h;
    }
    const realm = challenge.params.realm;
    if (!realm) return undefined;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UnauthorizedError(
        `Registry ${registry} sent an invalid token realm: cannot authenticate`,
        { host: registry, status: 401 },
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new UnauthorizedError(
        `Registry ${registry} sent a token realm that is not http(s): cannot authenticate`,
        { host: registry, status: 401 },
      );
    }
    const service = challenge.params.service;
    const scopes = scope ? scope.split(" ") : [];
    let res: Response;
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: cred.identityToken,
        client_id: "ironcore-image",
      });
      if (service) form.set("service", service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      res = await this.#fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "user-agent": this.#userAgent,
        },
        body: form,
      });
    } else {
      if (service) url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      const headers: Record<string, string> = { "user-agent": this.#userAgent };
      if (cred?.username && cred.password !== undefined) {
        headers.authorization = basicAuth(cred.username, cred.password);
      }
      res = await this.#fetch(url, { headers });
    }
    const text = await readLimited(res, 1024 * 1024);
    if (res.status === 401 || res.status === 403) {
      throw new UnauthorizedError(
        `Authentication failed for ${registry}: ${
          cred
            ? "the registry refused the credentials, check them (login again)"
            : "credentials are required, log in first"
        }`,
        { host: registry, status: res.status },
      );
    }
    if (!res.ok) {
      throw new UnauthorizedError(
        `Authentication failed for ${registry}: the token service answered HTTP ${res.status}`,
        { host: registry, status: res.status },
      );
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
    } catch {
      throw new UnauthorizedError(
        `Authentication failed for ${registry}: the token service did not answer JSON`,
        { host: registry, status: res.status },
      );
    }
    const token = typeof body.token === "string"
      ? body.token
      : typeof body.access_token === "string"
      ? body.access_token
      : undefined;
    if (!token) {
      throw new UnauthorizedError(
        `Authentication failed for ${registry}: the token service answered without a token`,
        { host: registry, status: res.status },
      );
    }
    const ttl = typeof body.expires_in === "number" && body.expires_in > 0
      ? body.expires_in
      : 60;
    const header = `Bearer ${token}`;
    // Renew a little early so a token never expires mid-request.
    this.#tokens.set(`${registry} ${scope}`, {
      header,
      expires: Date.now() + Math.max(1, ttl - Math.min(30, ttl / 4)) * 1000,
    });
    return header;
  }
}
