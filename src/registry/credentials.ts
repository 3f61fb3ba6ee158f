/**
 * Registry credentials from the Docker config file (`config.json`), looked up
 * and stored the way the Docker CLI does: a per-registry credential helper
 * (`credHelpers`) wins over the default credential store (`credsStore`),
 * which wins over the plain-text `auths` section.
 *
 * Credential helpers are the `docker-credential-<name>` programs from
 * `docker/docker-credential-helpers`; they speak JSON on stdin and stdout.
 * They are found on `PATH`: the `env` option's `PATH` when the option is
 * given, else the `PATH` of this process.
 *
 * Secrets never appear in error messages: parse errors do not quote the
 * file, and helper output is redacted before it is quoted.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { readSmallFile } from "../_files.ts";
import { ImageError } from "../errors.ts";

/**
 * A registry credential: a username and password, or an identity token
 * (an OAuth2 refresh token, which Docker stores as `identitytoken`).
 */
export interface Credential {
  /** The user name. */
  username?: string | undefined;
  /** The password or personal access token. */
  password?: string | undefined;
  /** An OAuth2 refresh token to exchange for registry access tokens. */
  identityToken?: string | undefined;
}

/** Looks up credentials for a registry host (`docker.io`, `localhost:5000`). */
export type CredentialLookup = (
  registry: string,
) => Promise<Credential | undefined>;

/** Options for {@linkcode DockerConfig.load}. */
export interface DockerConfigOptions {
  /**
   * The `config.json` file to use.
   * Default, also when empty: {@linkcode defaultDockerConfigPath}.
   */
  path?: string | undefined;
  /**
   * Reads environment variables (`DOCKER_CONFIG`, `HOME`, `USERPROFILE`,
   * `PATH`). Default: `Deno.env.get`. When given, its `PATH` is also the
   * `PATH` credential helpers are searched on and run with (passed to
   * `Deno.Command` as `env: { PATH }`; the rest of the environment is
   * inherited).
   */
  env?: (name: string) => string | undefined;
}

/** The key Docker uses for Docker Hub in `auths` and towards helpers. */
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";
const DOCKER_HUB_HOSTS: ReadonlySet<string> = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
]);
/** The user name helpers report when the secret is an identity token. */
const TOKEN_USERNAME = "<token>";
const HELPER_PREFIX = "docker-credential-";
const MAX_HELPER_MESSAGE = 1000;
/** The largest Docker config read: a few entries take a few KiB. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Reads an environment variable. */
type Env = (name: string) => string | undefined;
type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The path of the Docker config file when none is given:
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` with `~` from
 * `HOME` or `USERPROFILE`.
 *
 * @param env Reads environment variables; default `Deno.env.get`.
 * @returns The path of `config.json`.
 * @throws {Error} When neither `DOCKER_CONFIG`, `HOME` nor `USERPROFILE` is
 * set.
 *
 * @example Resolve from a given environment
 * ```ts
 * import { defaultDockerConfigPath } from "@ironcore/image/registry";
 * const vars: Record<string, string> = { HOME: "/home/ada" };
 * defaultDockerConfigPath((name) => vars[name]); // "/home/ada/.docker/config.json"
 * ```
 */
export function defaultDockerConfigPath(
  env?: (name: string) => string | undefined,
): string {
  const read = env ?? ((name: string) => Deno.env.get(name));
  const dockerConfig = read("DOCKER_CONFIG");
  if (dockerConfig) return join(dockerConfig, "config.json");
  const home = read("HOME") || read("USERPROFILE");
  if (home) return join(home, ".docker", "config.json");
  throw new ImageError(
    "Cannot locate the Docker config: set DOCKER_CONFIG or HOME, or pass the path of config.json",
  );
}

/** Strips a scheme and any path: `https://host:5000/v1/` → `host:5000`. */
function hostOf(value: string): string {
  const withoutScheme = value.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = withoutScheme.indexOf("/");
  return slash === -1 ? withoutScheme : withoutScheme.slice(0, slash);
}

function normalizeKey(value: string): string {
  const host = hostOf(value.trim());
  return DOCKER_HUB_HOSTS.has(host.toLowerCase()) ? DOCKER_HUB_KEY : host;
}

/**
 * The key Docker files a registry's credentials under, which is also the
 * server URL it sends to credential helpers: `https://index.docker.io/v1/`
 * for Docker Hub (`docker.io`, `index.docker.io`, `registry-1.docker.io`),
 * else the registry's `host[:port]`. A scheme or path in the input is
 * dropped.
 *
 * @param registry A registry host such as `ghcr.io` or `localhost:5000`.
 * @returns The credential key.
 * @throws {TypeError} When `registry` has no host.
 *
 * @example Docker Hub and other registries
 * ```ts
 * import { credentialKey } from "./credentials.ts";
 * credentialKey("docker.io"); // "https://index.docker.io/v1/"
 * credentialKey("registry.example:5000"); // "registry.example:5000"
 * ```
 */
export function credentialKey(registry: string): string {
  const key = normalizeKey(registry);
  if (key === "") {
    throw new TypeError(
      `Invalid registry "${registry}": pass a host such as registry.example:5000`,
    );
  }
  return key;
}

/** Finds the entry of `map` filed under `key`, preferring the exact key. */
function findKey(map: JsonObject, key: string): string | undefined {
  if (Object.hasOwn(map, key)) return key;
  return Object.keys(map).find((k) => normalizeKey(k) === key);
}

function decodeBase64(text: string): string {
  const binary = atob(text.trim());
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

function encodeBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join("<redacted>");
  }
  return out;
}

async function readConfig(path: string): Promise<JsonObject> {
  let text: string;
  try {
    const bytes = await readSmallFile(
      path,
      MAX_CONFIG_BYTES,
      (kind) =>
        new ImageError(
          kind === "a directory"
            ? `Docker config ${path} is a directory: give the path of the file, such as ${
              join(path, "config.json")
            }`
            : kind === undefined
            ? `Docker config ${path} is larger than ${MAX_CONFIG_BYTES} bytes: give the path of a Docker config.json`
            : `Docker config ${path} is ${kind}: give the path of a Docker config.json`,
        ),
    );
    text = new TextDecoder().decode(bytes);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    // A missing permission is the caller's to grant, not a broken config.
    if (err instanceof Deno.errors.NotCapable || err instanceof ImageError) {
      throw err;
    }
    throw new ImageError(
      `Cannot read Docker config ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // Docker treats an empty file as an empty config.
  if (text.trim() === "") return {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // JSON.parse quotes the text around the error, which may hold a
    // password, so neither its message nor the error goes into ours.
    throw new SyntaxError(
      `Docker config ${path} is not valid JSON: fix the file or remove it`,
    );
  }
  if (!isObject(data)) {
    throw new SyntaxError(
      `Docker config ${path} is not valid: it must be a JSON object; fix the file or remove it`,
    );
  }
  validateConfig(path, data);
  return data;
}

function validateConfig(path: string, data: JsonObject): void {
  const invalid = (detail: string) =>
    new SyntaxError(
      `Docker config ${path} is not valid: ${detail}; fix the file or remove it`,
    );
  const { auths, credHelpers, credsStore } = data;
  if (auths !== undefined && auths !== null) {
    if (!isObject(auths)) {
      throw invalid(`"auths" must be an object mapping registries to entries`);
    }
    for (const [key, entry] of Object.entries(auths)) {
      if (entry !== null && !isObject(entry)) {
        throw invalid(`"auths" entry for ${key} must be an object`);
      }
    }
  }
  if (credHelpers !== undefined && credHelpers !== null) {
    if (
      !isObject(credHelpers) ||
      !Object.values(credHelpers).every((v) => typeof v === "string")
    ) {
      throw invalid(
        `"credHelpers" must be an object mapping registries to helper names`,
      );
    }
  }
  if (
    credsStore !== undefined && credsStore !== null &&
    typeof credsStore !== "string"
  ) {
    throw invalid(`"credsStore" must be a helper name`);
  }
}

/** The helper responsible for `key`: `credHelpers` first, then `credsStore`. */
function helperFor(data: JsonObject, key: string): string | undefined {
  const { credHelpers, credsStore } = data;
  if (isObject(credHelpers)) {
    const found = findKey(credHelpers, key);
    const name = found === undefined ? undefined : credHelpers[found];
    if (typeof name === "string" && name !== "") return name;
  }
  if (typeof credsStore === "string" && credsStore !== "") return credsStore;
  return undefined;
}

interface HelperResult {
  code: number;
  output: string;
}

/**
 * Loaded Docker credentials (`config.json`), with lookup, login and logout as
 * the Docker CLI does them. A missing file holds no credentials; `set`
 * creates it.
 *
 * @example Look up credentials for a registry
 * ```ts
 * import { DockerConfig } from "@ironcore/image";
 * const dir = await Deno.makeTempDir();
 * const config = await DockerConfig.load({ path: `${dir}/config.json` });
 * await config.set("registry.example:5000", { username: "ada", password: "s3cret" });
 * const credential = await config.get("registry.example:5000");
 * console.log(credential?.username); // "ada"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class DockerConfig {
  /** The resolved path of `config.json` (which need not exist). */
  readonly path: string;
  #data: JsonObject;
  #env: Env | undefined;

  private constructor(path: string, data: JsonObject, env: Env | undefined) {
    this.path = path;
    this.#data = data;
    this.#env = env;
  }

  /**
   * Reads the Docker config. The path is `options.path` (unless empty),
   * else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
   *
   * @param options The config path and the environment.
   * @returns The loaded config; empty when the file does not exist.
   * @throws {SyntaxError} When the file is not valid JSON or its `auths`,
   * `credHelpers` or `credsStore` have the wrong shape.
   *
   * @example Load from an explicit path
   * ```ts
   * import { DockerConfig } from "@ironcore/image";
   * const config = await DockerConfig.load({ path: "/nonexistent/config.json" });
   * console.log(await config.get("ghcr.io")); // undefined
   * ```
   */
  static async load(options: DockerConfigOptions = {}): Promise<DockerConfig> {
    const path = options.path || defaultDockerConfigPath(options.env);
    return new DockerConfig(path, await readConfig(path), options.env);
  }

  /**
   * The credential for a registry: from its `credHelpers` helper, else the
   * `credsStore` helper, else `auths`. When a helper has no entry, `auths`
   * is consulted too (it may predate the helper).
   *
   * @param registry The registry host, such as `ghcr.io` or `docker.io`.
   * @returns The credential, or `undefined` when there is none.
   * @throws {Error} When a helper is not installed or fails, or an `auth`
   * entry is not base64 of `username:password`.
   *
   * @example Read credentials
   * ```ts
   * import { DockerConfig } from "@ironcore/image";
   * const config = await DockerConfig.load({ path: "/nonexistent/config.json" });
   * const credential = await config.get("docker.io");
   * if (credential === undefined) console.log("anonymous");
   * ```
   */
  async get(registry: string): Promise<Credential | undefined> {
    const key = credentialKey(registry);
    const helper = helperFor(this.#data, key);
    if (helper !== undefined) {
      const credential = await this.#helperGet(helper, key);
      if (credential !== undefined) return credential;
    }
    return this.#authsGet(key);
  }

  /**
   * Stores a credential, as `docker login` does: in the registry's helper
   * when one is configured (leaving an empty `auths` entry, as Docker does),
   * else base64-encoded in `auths`. The file is rewritten atomically with
   * mode 0600; its other fields are kept.
   *
   * @param registry The registry host.
   * @param credential A username and password, or an identity token.
   * @returns When the credential is stored.
   * @throws {TypeError} When the credential has neither a username and
   * password nor an identity token.
   *
   * @example Log in
   * ```ts
   * import { DockerConfig } from "@ironcore/image";
   * const dir = await Deno.makeTempDir();
   * const config = await DockerConfig.load({ path: `${dir}/config.json` });
   * await config.set("ghcr.io", { username: "ada", password: "token" });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async set(registry: string, credential: Credential): Promise<void> {
    const key = credentialKey(registry);
    const { username = "", password = "", identityToken = "" } = credential;
    if (identityToken === "" && (username === "" || password === "")) {
      throw new TypeError(
        `Cannot store credentials for ${key}: pass a username and password or an identity token`,
      );
    }
    if (username.includes(":")) {
      throw new TypeError(
        `Cannot store credentials for ${key}: the username must not contain ":"`,
      );
    }
    // Re-read so that changes made since load() are not overwritten.
    const data = await readConfig(this.path);
    const helper = helperFor(data, key);
    let entry: JsonObject = {};
    if (helper !== undefined) {
      const payload = identityToken !== ""
        ? { ServerURL: key, Username: TOKEN_USERNAME, Secret: identityToken }
        : { ServerURL: key, Username: username, Secret: password };
      const result = await this.#runHelper(
        helper,
        "store",
        JSON.stringify(payload),
      );
      if (result.code !== 0) {
        throw this.#helperError(helper, "store", key, result, [
          identityToken,
          password,
        ]);
      }
    } else {
      if (username !== "" || password !== "") {
        entry.auth = encodeBase64(`${username}:${password}`);
      }
      if (identityToken !== "") entry.identitytoken = identityToken;
    }
    const auths = isObject(data.auths) ? data.auths : {};
    for (const k of Object.keys(auths)) {
      if (k !== key && normalizeKey(k) === key) delete auths[k];
    }
    if (isObject(auths[key]) && helper !== undefined) {
      // Keep Docker's non-secret fields such as "email".
      const {
        auth: _a,
        identitytoken: _i,
        username: _u,
        password: _p,
        ...rest
      } = auths[key];
      entry = rest;
    }
    auths[key] = entry;
    data.auths = auths;
    await writeConfig(this.path, data);
    this.#data = data;
  }

  /**
   * Removes a registry's credential, as `docker logout` does: from its helper
   * when one is configured, and every `auths` entry filed under the
   * registry (in any of the key forms Docker writes).
   *
   * @param registry The registry host.
   * @returns `true` when something was removed.
   * @throws {Error} When a helper is not installed or fails.
   *
   * @example Log out
   * ```ts
   * import { DockerConfig } from "@ironcore/image";
   * const config = await DockerConfig.load({ path: "/nonexistent/config.json" });
   * console.log(await config.erase("ghcr.io")); // false
   * ```
   */
  async erase(registry: string): Promise<boolean> {
    const key = credentialKey(registry);
    const data = await readConfig(this.path);
    let removed = false;
    const helper = helperFor(data, key);
    if (helper !== undefined) {
      const result = await this.#runHelper(helper, "erase", key);
      if (result.code === 0) removed = true;
      else if (!isNotFound(result)) {
        throw this.#helperError(helper, "erase", key, result, []);
      }
    }
    const auths = data.auths;
    let changed = false;
    if (isObject(auths)) {
      for (const k of Object.keys(auths)) {
        if (normalizeKey(k) === key) {
          delete auths[k];
          changed = true;
        }
      }
    }
    if (changed) {
      await writeConfig(this.path, data);
      removed = true;
    }
    this.#data = data;
    return removed;
  }

  #authsGet(key: string): Credential | undefined {
    const auths = this.#data.auths;
    if (!isObject(auths)) return undefined;
    const found = findKey(auths, key);
    if (found === undefined) return undefined;
    const entry = auths[found];
    if (!isObject(entry)) return undefined;
    const credential: Credential = {};
    if (typeof entry.username === "string" && entry.username !== "") {
      credential.username = entry.username;
    }
    if (typeof entry.password === "string" && entry.password !== "") {
      credential.password = entry.password;
    }
    if (typeof entry.auth === "string" && entry.auth !== "") {
      let decoded: string | undefined;
      try {
        decoded = decodeBase64(entry.auth);
      } catch {
        decoded = undefined;
      }
      const colon = decoded?.indexOf(":") ?? -1;
      if (decoded === undefined || colon === -1) {
        throw new ImageError(
          `Docker config ${this.path} has an invalid "auth" for ${found}: it must be base64 of "username:password"; log in again or fix the entry`,
        );
      }
      credential.username = decoded.slice(0, colon);
      // Docker trims NUL padding that some tools leave after the password.
      credential.password = decoded.slice(colon + 1).replace(/^\0+|\0+$/g, "");
    }
    if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
      credential.identityToken = entry.identitytoken;
    }
    if (
      !credential.identityToken && !credential.username && !credential.password
    ) {
      return undefined;
    }
    return credential;
  }

  async #helperGet(
    helper: string,
    key: string,
  ): Promise<Credential | undefined> {
    const result = await this.#runHelper(helper, "get", key);
    if (result.code !== 0) {
      if (isNotFound(result)) return undefined;
      throw this.#helperError(helper, "get", key, result, []);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(result.output);
    } catch {
      parsed = undefined;
    }
    if (
      !isObject(parsed) || typeof parsed.Username !== "string" ||
      typeof parsed.Secret !== "string"
    ) {
      // The output may hold the secret, so it is not quoted.
      throw new ImageError(
        `Credential helper ${HELPER_PREFIX}${helper} returned invalid output for ${key}: expected JSON with "Username" and "Secret"; check the helper's version`,
      );
    }
    const { Username: username, Secret: secret } = parsed;
    if (username === TOKEN_USERNAME) {
      return secret === "" ? undefined : { identityToken: secret };
    }
    if (username === "" && secret === "") return undefined;
    return { username, password: secret };
  }

  async #runHelper(
    helper: string,
    action: "get" | "store" | "erase",
    input: string,
  ): Promise<HelperResult> {
    const program = `${HELPER_PREFIX}${helper}`;
    const path = this.#env?.("PATH");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args: [action],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        ...(path === undefined ? {} : { env: { PATH: path } }),
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new ImageError(
          `Credential helper ${program} is not installed: install it or remove credsStore/credHelpers from ${this.path}`,
          { cause: err },
        );
      }
      if (err instanceof Deno.errors.NotCapable) throw err;
      throw new ImageError(
        `Cannot run credential helper ${program}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(input));
      await writer.close();
    } catch {
      // The helper exited without reading its input; its exit status and
      // output below say why.
      await writer.abort().catch(() => {});
    }
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    const out = decoder.decode(stdout).trim();
    const err = decoder.decode(stderr).trim();
    return {
      code,
      output: code === 0 ? out : [err, out].filter((s) => s !== "").join("\n"),
    };
  }

  #helperError(
    helper: string,
    action: "get" | "store" | "erase",
    key: string,
    result: HelperResult,
    secrets: readonly string[],
  ): ImageError {
    let detail = redact(result.output, secrets).trim();
    if (detail.length > MAX_HELPER_MESSAGE) {
      detail = `${detail.slice(0, MAX_HELPER_MESSAGE)}…`;
    }
    if (detail === "") detail = `exit code ${result.code}`;
    return new ImageError(
      `Credential helper ${HELPER_PREFIX}${helper} failed to ${action} credentials for ${key}: ${detail}`,
    );
  }
}

function isNotFound(result: HelperResult): boolean {
  return result.output.toLowerCase().includes("credentials not found");
}

/** Replaces the file atomically: a temporary sibling renamed over it. */
async function writeConfig(path: string, data: JsonObject): Promise<void> {
  let target = path;
  try {
    // Rewrite the file a symlink points at rather than replacing the link.
    target = await Deno.realPath(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${crypto.randomUUID()}.tmp`);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(tmp, `${JSON.stringify(data, null, "\t")}\n`, {
      createNew: true,
      mode: 0o600,
    });
    // The umask may have taken bits away; 0600 exactly is what Docker uses.
    if (Deno.build.os !== "windows") await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, target);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    if (err instanceof Deno.errors.NotCapable) throw err;
    throw new ImageError(
      `Cannot write Docker config ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
