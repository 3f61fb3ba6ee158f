/**
 * Runs a real CNCF distribution registry on 127.0.0.1 for tests: Debian's
 * `docker-registry` 2.8 or distribution v3 (built by `.ci/setup-peers`),
 * optionally behind htpasswd Basic auth or behind Docker token auth served by
 * a token endpoint that this module runs in-process, and optionally sending
 * blob downloads to a separate blob host, as registries backed by object
 * storage do.
 *
 * @module
 */

import { startBlobHost, type TestBlobHost } from "./blob_host.ts";
import { peerPath } from "./peers.ts";

/** How the test registry authenticates clients. */
export type RegistryAuth = "none" | "basic" | "token";

/**
 * Which registry program runs: `"distribution2"` is Debian's
 * `docker-registry` 2.8, `"distribution3"` is distribution v3 from
 * `.ci/setup-peers`.
 */
export type RegistryImplementation = "distribution2" | "distribution3";

/** The implementations {@linkcode startRegistry} can run. */
export const REGISTRY_IMPLEMENTATIONS: readonly RegistryImplementation[] = [
  "distribution2",
  "distribution3",
];

/**
 * The environment variable that picks the implementation of registries whose
 * options name none, so one set of tests runs against each.
 */
export const REGISTRY_IMPLEMENTATION_ENV = "IRONCORE_TEST_REGISTRY";

/** Options for {@linkcode startRegistry}. */
export interface StartRegistryOptions {
  /** Authentication mode; defaults to `"none"`. */
  auth?: RegistryAuth;
  /** User accepted by Basic auth or the token endpoint; defaults to `"tester"`. */
  username?: string;
  /** Password for {@linkcode StartRegistryOptions.username}; defaults to a random string. */
  password?: string;
  /** Lifetime of issued tokens in seconds; defaults to 300. */
  tokenTtlSeconds?: number;
  /**
   * The host name in the token realm URL; defaults to `127.0.0.1`. Some
   * clients (crane) refuse a realm at a loopback IP address on another port
   * than the registry's, but accept `localhost`.
   */
  tokenRealmHostname?: "127.0.0.1" | "localhost";
  /**
   * The registry program; defaults to `$IRONCORE_TEST_REGISTRY`, else
   * `"distribution2"`.
   */
  implementation?: RegistryImplementation;
  /**
   * Answer blob downloads with a 307 redirect (the registry's `redirect`
   * storage middleware) to a blob host that serves the registry's storage
   * and records every request: on `"another-host"` (`localhost`, as object
   * storage is another host) or on `"another-port"` of 127.0.0.1. By default
   * blobs are served by the registry.
   */
  blobRedirect?: "another-host" | "another-port";
}

/** A running test registry; stop it with `stop()` or `await using`. */
export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, for image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`, without a trailing slash. */
  readonly url: string;
  /** The authentication mode the registry runs with. */
  readonly auth: RegistryAuth;
  /** The registry program that runs. */
  readonly implementation: RegistryImplementation;
  /** The registry's process ID. */
  readonly pid: number;
  /** The host blob downloads are redirected to, with `blobRedirect`. */
  readonly blobHost: TestBlobHost | undefined;
  /** User accepted by Basic auth or the token endpoint. */
  readonly username: string;
  /** Password of {@linkcode TestRegistry.username}. */
  readonly password: string;
  /** Temporary directory with config, storage, keys and the registry log. */
  readonly dir: string;
  /** Path of the file that receives the registry's stdout and stderr. */
  readonly logPath: string;
  /** URL of the token endpoint in token mode, `undefined` otherwise. */
  readonly tokenRealm: string | undefined;
  /** The `service` the token endpoint and the registry expect. */
  readonly service: string;
  /** Number of requests the token endpoint has received, failed ones included. */
  readonly tokenRequests: number;
  /** Kills the registry, awaits its exit, stops the token endpoint and the blob host and removes {@linkcode TestRegistry.dir}. */
  stop(): Promise<void>;
}

/** The `service` of the token endpoint and of the registry's Bearer challenge. */
export const TOKEN_SERVICE = "test-registry";
/** The `iss` claim of issued tokens. */
export const TOKEN_ISSUER = "test-issuer";

const MAX_PORT_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 10_000;
const INSTANCE_HEADER = "X-Test-Registry-Instance";

/**
 * Starts `docker-registry serve` (or distribution v3's `registry serve`) on
 * 127.0.0.1 with an ephemeral port and filesystem storage in a fresh
 * temporary directory, and waits until it answers `GET /v2/`.
 *
 * In `"basic"` mode the registry checks an htpasswd file. In `"token"` mode
 * it demands Bearer tokens from a token endpoint started here with
 * `Deno.serve`, which implements both the Docker token GET protocol and the
 * OAuth2 POST variant (password and refresh_token grants) and signs ES256
 * JWTs with a self-signed certificate the registry trusts.
 *
 * With `blobRedirect`, a blob host started here serves the storage directory
 * and the registry answers `GET /v2/<name>/blobs/<digest>` with a redirect to
 * it.
 *
 * @param options Authentication mode, credentials, token lifetime,
 * implementation and blob redirects.
 * @returns The running registry.
 *
 * @example Push a blob to an anonymous registry
 * ```ts ignore
 * await using registry = await startRegistry();
 * const res = await fetch(`${registry.url}/v2/`);
 * await res.body?.cancel();
 * ```
 *
 * @example Start a registry with token auth
 * ```ts ignore
 * await using registry = await startRegistry({ auth: "token" });
 * console.log(registry.tokenRealm, registry.username, registry.password);
 * ```
 */
export async function startRegistry(
  options: StartRegistryOptions = {},
): Promise<TestRegistry> {
  const auth = options.auth ?? "none";
  const username = options.username ?? "tester";
  const password = options.password ?? randomString();
  const ttl = options.tokenTtlSeconds ?? 300;
  const implementation = options.implementation ??
    defaultImplementation();
  // Resolved first: a missing binary fails before anything is started.
  const program = implementation === "distribution3"
    ? peerPath("distribution-registry")
    : "docker-registry";
  const dir = await Deno.makeTempDir({ prefix: "ironcore-image-registry-" });
  let tokenServer: TokenServer | undefined;
  let blobHost: TestBlobHost | undefined;
  try {
    if (options.blobRedirect !== undefined) {
      blobHost = startBlobHost(
        `${dir}/data`,
        options.blobRedirect === "another-host" ? "localhost" : "127.0.0.1",
      );
    }
    let authConfig: Record<string, unknown> | undefined;
    if (auth === "basic") {
      const path = `${dir}/htpasswd`;
      const line = await run("htpasswd", ["-Bbn", username, password]);
      await Deno.writeTextFile(path, line);
      authConfig = { htpasswd: { realm: "test", path } };
    } else if (auth === "token") {
      const { cert, key } = await selfSignedCertificate(
        `${dir}/token`,
        TOKEN_ISSUER,
      );
      tokenServer = await TokenServer.start({
        keyPem: key,
        certPem: cert,
        username,
        password,
        ttl,
        realmHostname: options.tokenRealmHostname ?? "127.0.0.1",
      });
      authConfig = {
        token: {
          realm: tokenServer.realm,
          service: TOKEN_SERVICE,
          issuer: TOKEN_ISSUER,
          rootcertbundle: `${dir}/token-cert.pem`,
        },
      };
    } else if (auth !== "none") {
      throw new TypeError(
        `Cannot start test registry: unknown auth mode ${
          JSON.stringify(auth)
        }, use "none", "basic" or "token"`,
      );
    }

    for (let attempt = 1;; attempt++) {
      const port = freePort();
      const launched = await launch({
        program,
        dir,
        port,
        authConfig,
        redirectTo: blobHost?.url,
      });
      if ("child" in launched) {
        return new RunningRegistry({
          child: launched.child,
          status: launched.status,
          port,
          auth,
          implementation,
          username,
          password,
          dir,
          tokenServer,
          blobHost,
        });
      }
      if (!launched.portTaken || attempt >= MAX_PORT_ATTEMPTS) {
        throw new Error(
          `Cannot start ${program} on 127.0.0.1:${port}: ${launched.reason}\n` +
            `--- registry log ---\n${launched.log}`,
        );
      }
    }
  } catch (error) {
    await tokenServer?.stop();
    await blobHost?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

class RunningRegistry implements TestRegistry {
  readonly host: string;
  readonly url: string;
  readonly auth: RegistryAuth;
  readonly implementation: RegistryImplementation;
  readonly blobHost: TestBlobHost | undefined;
  readonly pid: number;
  readonly username: string;
  readonly password: string;
  readonly dir: string;
  readonly logPath: string;
  readonly service: string = TOKEN_SERVICE;
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #tokenServer: TokenServer | undefined;
  #stopped: Promise<void> | undefined;

  constructor(init: {
    child: Deno.ChildProcess;
    status: Promise<Deno.CommandStatus>;
    port: number;
    auth: RegistryAuth;
    implementation: RegistryImplementation;
    username: string;
    password: string;
    dir: string;
    tokenServer: TokenServer | undefined;
    blobHost: TestBlobHost | undefined;
  }) {
    this.host = `127.0.0.1:${init.port}`;
    this.url = `http://${this.host}`;
    this.auth = init.auth;
    this.implementation = init.implementation;
    this.blobHost = init.blobHost;
    this.pid = init.child.pid;
    this.username = init.username;
    this.password = init.password;
    this.dir = init.dir;
    this.logPath = `${init.dir}/registry.log`;
    this.#child = init.child;
    this.#status = init.status;
    this.#tokenServer = init.tokenServer;
  }

  get tokenRealm(): string | undefined {
    return this.#tokenServer?.realm;
  }

  get tokenRequests(): number {
    return this.#tokenServer?.requests ?? 0;
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await this.#status;
    await this.#tokenServer?.stop();
    await this.blobHost?.stop();
    await Deno.remove(this.dir, { recursive: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

type Launched =
  | { child: Deno.ChildProcess; status: Promise<Deno.CommandStatus> }
  | { portTaken: boolean; reason: string; log: string };

function defaultImplementation(): RegistryImplementation {
  const value = Deno.env.get(REGISTRY_IMPLEMENTATION_ENV);
  if (value === undefined || value === "") return "distribution2";
  if ((REGISTRY_IMPLEMENTATIONS as readonly string[]).includes(value)) {
    return value as RegistryImplementation;
  }
  throw new TypeError(
    `Cannot start test registry: ${REGISTRY_IMPLEMENTATION_ENV}=${value} is unknown, use ${
      REGISTRY_IMPLEMENTATIONS.join(" or ")
    }`,
  );
}

async function launch(init: {
  program: string;
  dir: string;
  port: number;
  authConfig: Record<string, unknown> | undefined;
  redirectTo: string | undefined;
}): Promise<Launched> {
  const { program, dir, port, authConfig, redirectTo } = init;
  const configPath = `${dir}/config.yml`;
  const logPath = `${dir}/registry.log`;
  // A value unique to this process tells our registry apart from whatever
  // else may have grabbed the port between freePort() and the bind.
  const instance = randomString();
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "error", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: `${dir}/data` },
      delete: { enabled: true },
      cache: { blobdescriptor: "inmemory" },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: randomString(),
      headers: { [INSTANCE_HEADER]: [instance] },
    },
    health: { storagedriver: { enabled: false } },
  };
  if (authConfig !== undefined) config.auth = authConfig;
  if (redirectTo !== undefined) {
    config.middleware = {
      storage: [{ name: "redirect", options: { baseurl: redirectTo } }],
    };
  }
  // JSON is YAML, so no YAML writer is needed.
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));

  // The shell redirects the registry's output into a file, so no pipe is
  // left for Deno to drain; `exec` keeps the registry's pid as the child's.
  const child = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'exec "$1" serve "$2" >"$3" 2>&1',
      "sh",
      program,
      configPath,
      logPath,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    // The registry reads REGISTRY_* variables as config overrides, and
    // distribution v3 the OTEL_* ones of OpenTelemetry.
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
      OTEL_TRACES_EXPORTER: "none",
    },
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) {
      const log = await readLog(logPath);
      return {
        portTaken: /address already in use/i.test(log),
        reason: `exited with code ${(await status).code}`,
        log,
      };
    }
    const answer = await probe(`http://127.0.0.1:${port}/v2/`);
    if (answer === instance) return { child, status };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await status;
  const log = await readLog(logPath);
  return {
    portTaken: /address already in use/i.test(log),
    reason: `not ready after ${READY_TIMEOUT_MS} ms`,
    log,
  };
}

/** Returns the instance header of whatever answers at `url`, `null` if nothing answers. */
async function probe(url: string): Promise<string | null> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 1000);
  try {
    const res = await fetch(url, { signal: controller.signal });
    await res.body?.cancel();
    return res.headers.get(INSTANCE_HEADER) ?? "";
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function readLog(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    return `(no log: ${error instanceof Error ? error.message : error})`;
  }
}

/**
 * Makes a self-signed certificate and its key with openssl, for a TLS server
 * or a token signer.
 *
 * @param prefix Path prefix of the files written: `PREFIX-cert.pem` and
 * `PREFIX-key.pem`.
 * @param commonName The certificate's subject CN.
 * @returns The certificate and the key, PEM-encoded.
 *
 * @example Serve TLS on 127.0.0.1
 * ```ts ignore
 * const { cert, key } = await selfSignedCertificate(`${dir}/tls`, "localhost");
 * Deno.serve({ hostname: "127.0.0.1", port: 0, cert, key }, handler);
 * ```
 */
export async function selfSignedCertificate(
  prefix: string,
  commonName: string,
): Promise<{ cert: string; key: string }> {
  // P-256 rather than RSA: generating it takes milliseconds.
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${prefix}-key.pem`,
    "-out",
    `${prefix}-cert.pem`,
    "-days",
    "1",
    "-subj",
    `/CN=${commonName}`,
  ]);
  return {
    cert: await Deno.readTextFile(`${prefix}-cert.pem`),
    key: await Deno.readTextFile(`${prefix}-key.pem`),
  };
}

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `Cannot run ${command} ${args.join(" ")}: exit code ${output.code}: ${
        decoder.decode(output.stderr)
      }`,
    );
  }
  return decoder.decode(output.stdout);
}

function randomString(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- token endpoint ---------------------------------------------------------

interface Access {
  type: string;
  name: string;
  actions: string[];
}

class TokenServer {
  requests = 0;
  readonly realm: string;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #signer: JwtSigner;
  #username: string;
  #password: string;
  #ttl: number;
  /** Refresh tokens issued with `offline_token`/`access_type=offline`, to their user. */
  #refreshTokens = new Map<string, string>();

  static async start(init: {
    keyPem: string;
    certPem: string;
    username: string;
    password: string;
    ttl: number;
    realmHostname: string;
  }): Promise<TokenServer> {
    const signer = await JwtSigner.create(init.keyPem, init.certPem);
    return new TokenServer(signer, init);
  }

  private constructor(
    signer: JwtSigner,
    init: {
      username: string;
      password: string;
      ttl: number;
      realmHostname: string;
    },
  ) {
    this.#signer = signer;
    this.#username = init.username;
    this.#password = init.password;
    this.#ttl = init.ttl;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#handle(req),
    );
    this.realm = `http://${init.realmHostname}:${this.#server.addr.port}/token`;
  }

  async stop(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname !== "/token") {
      await req.body?.cancel();
      return json(404, { details: `no such endpoint: ${url.pathname}` });
    }
    this.requests++;
    if (req.method === "GET") return await this.#handleGet(req, url);
    if (req.method === "POST") return await this.#handlePost(req);
    await req.body?.cancel();
    return json(405, { details: `method not allowed: ${req.method}` });
  }

  /** The Docker token protocol: credentials in a Basic header. */
  async #handleGet(req: Request, url: URL): Promise<Response> {
    const params = url.searchParams;
    const service = params.get("service");
    if (service !== null && service !== TOKEN_SERVICE) {
      return json(400, { details: `unknown service: ${service}` });
    }
    const credentials = parseBasic(req.headers.get("authorization"));
    if (credentials === null) {
      return json(401, { details: "authentication required" }, {
        "www-authenticate": `Basic realm="${TOKEN_SERVICE}"`,
      });
    }
    if (!this.#checkPassword(credentials.username, credentials.password)) {
      return json(401, { details: "incorrect username or password" }, {
        "www-authenticate": `Basic realm="${TOKEN_SERVICE}"`,
      });
    }
    const offline = params.get("offline_token") === "true";
    const issued = await this.#issue(
      credentials.username,
      parseScopes(params.getAll("scope")),
      offline,
    );
    return json(200, {
      token: issued.token,
      access_token: issued.token,
      expires_in: this.#ttl,
      issued_at: issued.issuedAt,
      ...(issued.refreshToken === undefined
        ? {}
        : { refresh_token: issued.refreshToken }),
    });
  }

  /** The OAuth2 variant: a form with a password or refresh_token grant. */
  async #handlePost(req: Request): Promise<Response> {
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await req.text());
    } catch {
      return json(400, { error: "invalid_request" });
    }
    const service = form.get("service");
    if (service !== null && service !== TOKEN_SERVICE) {
      return json(400, {
        error: "invalid_request",
        error_description: `unknown service: ${service}`,
      });
    }
    const scopes = parseScopes(form.getAll("scope"));
    const grantType = form.get("grant_type");
    let username: string;
    let offline = false;
    let refreshToken: string | undefined;
    if (grantType === "password") {
      const user = form.get("username") ?? "";
      if (!this.#checkPassword(user, form.get("password") ?? "")) {
        return json(401, {
          error: "invalid_grant",
          error_description: "incorrect username or password",
        });
      }
      username = user;
      offline = form.get("access_type") === "offline";
    } else if (grantType === "refresh_token") {
      refreshToken = form.get("refresh_token") ?? "";
      const user = this.#refreshTokens.get(refreshToken);
      if (user === undefined) {
        return json(401, {
          error: "invalid_grant",
          error_description: "unknown refresh token",
        });
      }
      username = user;
    } else {
      return json(400, {
        error: "unsupported_grant_type",
        error_description: `unsupported grant_type: ${grantType}`,
      });
    }
    const issued = await this.#issue(username, scopes, offline);
    refreshToken ??= issued.refreshToken;
    return json(200, {
      access_token: issued.token,
      token_type: "Bearer",
      expires_in: this.#ttl,
      issued_at: issued.issuedAt,
      scope: scopes.map((a) => `${a.type}:${a.name}:${a.actions.join(",")}`)
        .join(" "),
      ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
    });
  }

  #checkPassword(username: string, password: string): boolean {
    return username === this.#username && password === this.#password;
  }

  async #issue(
    username: string,
    access: Access[],
    offline: boolean,
  ): Promise<{ token: string; issuedAt: string; refreshToken?: string }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await this.#signer.sign({
      iss: TOKEN_ISSUER,
      sub: username,
      aud: TOKEN_SERVICE,
      exp: now + this.#ttl,
      nbf: now,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    });
    const issuedAt = new Date(now * 1000).toISOString();
    if (!offline) return { token, issuedAt };
    const refreshToken = randomString();
    this.#refreshTokens.set(refreshToken, username);
    return { token, issuedAt, refreshToken };
  }
}

/**
 * Signs ES256 JWTs the way distribution 2.8 verifies them: the header carries
 * the certificate in `x5c` (checked against `rootcertbundle`) and the libtrust
 * key ID in `kid` (distribution's fallback when `x5c` is absent).
 */
class JwtSigner {
  #key: CryptoKey;
  #header: string;

  static async create(keyPem: string, certPem: string): Promise<JwtSigner> {
    const key = await crypto.subtle.importKey(
      "pkcs8",
      pemBody(keyPem, "PRIVATE KEY"),
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign"],
    );
    const header = {
      typ: "JWT",
      alg: "ES256",
      kid: await libtrustKeyId(key),
      x5c: [encodeBase64(pemBody(certPem, "CERTIFICATE"))],
    };
    return new JwtSigner(key, encodeBase64Url(encodeJson(header)));
  }

  private constructor(key: CryptoKey, header: string) {
    this.#key = key;
    this.#header = header;
  }

  async sign(claims: Record<string, unknown>): Promise<string> {
    const input = `${this.#header}.${encodeBase64Url(encodeJson(claims))}`;
    // WebCrypto returns r||s, which is what JWS (and libtrust) expect.
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      this.#key,
      new TextEncoder().encode(input),
    );
    return `${input}.${encodeBase64Url(new Uint8Array(signature))}`;
  }
}

/** libtrust's key ID: the first 240 bits of SHA-256(PKIX DER), base32, in groups of 4. */
async function libtrustKeyId(privateKey: CryptoKey): Promise<string> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  delete jwk.d;
  delete jwk.key_ops;
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const spki = await crypto.subtle.exportKey("spki", publicKey);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  const encoded = encodeBase32(digest.subarray(0, 30));
  return encoded.match(/.{1,4}/g)?.join(":") ?? encoded;
}

function parseBasic(
  header: string | null,
): { username: string; password: string } | null {
  const match = header?.match(/^Basic\s+(\S+)$/i);
  if (!match?.[1]) return null;
  let decoded: string;
  try {
    const binary = atob(match[1]);
    decoded = new TextDecoder().decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return null;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return {
    username: decoded.slice(0, colon),
    password: decoded.slice(colon + 1),
  };
}

/** Parses `type:name:actions` scopes; values may repeat or hold several space-separated scopes. */
function parseScopes(values: string[]): Access[] {
  const access: Access[] = [];
  for (const value of values) {
    for (const scope of value.split(" ")) {
      const first = scope.indexOf(":");
      const last = scope.lastIndexOf(":");
      if (first < 0 || last === first) continue;
      access.push({
        type: scope.slice(0, first),
        name: scope.slice(first + 1, last),
        actions: scope.slice(last + 1).split(",").filter((a) => a !== ""),
      });
    }
  }
  return access;
}

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const match = pem.match(
    new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`),
  );
  if (!match?.[1]) {
    throw new SyntaxError(`Cannot read PEM: no ${label} block`);
  }
  const binary = atob(match[1].replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function encodeJson(value: unknown): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(value));
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function encodeBase32(bytes: Uint8Array): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}
