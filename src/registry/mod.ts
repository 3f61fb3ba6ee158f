/**
 * Talking to OCI registries: a distribution-API client with authentication,
 * retries and digest checks, Docker's credential store, and checking a
 * login.
 *
 * @example Talk to a registry with the user's Docker credentials
 * ```ts
 * import { DockerConfig, RegistryClient } from "@ironcore/image/registry";
 * const dir = await Deno.makeTempDir();
 * const docker = await DockerConfig.load({ path: `${dir}/config.json` });
 * await docker.set("registry.example.com", { username: "ada", password: "s3cret" });
 * // For this example, a registry that wants ada's password (HTTP Basic) and
 * // then lists one tag, answering through the client's fetch option.
 * const accepted = `Basic ${btoa("ada:s3cret")}`;
 * const client = new RegistryClient({
 *   credentials: (registry) => docker.get(registry),
 *   fetch: (input, init) =>
 *     Promise.resolve(
 *       new Request(input, init).headers.get("authorization") === accepted
 *         ? Response.json({ name: "os", tags: ["1.0"] })
 *         : new Response(null, {
 *           status: 401,
 *           headers: { "www-authenticate": 'Basic realm="registry.example.com"' },
 *         }),
 *     ),
 * });
 * const tags = await client.listTags({ registry: "registry.example.com", repository: "os" });
 * console.log(tags); // ["1.0"]
 * ```
 *
 * @module
 */

export {
  type BlobMount,
  type BlobUpload,
  type FetchedManifest,
  type GetBlobOptions,
  MANIFEST_ACCEPT,
  type ManifestUpload,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryTimeouts,
  type Repository,
  type RequestOptions,
  type UploadBlobOptions,
  type UploadBlobResult,
} from "./client.ts";
export {
  type Credential,
  type CredentialLookup,
  defaultDockerConfigPath,
  DockerConfig,
  type DockerConfigOptions,
} from "./credentials.ts";
export {
  verifyCredentials,
  type VerifyCredentialsOptions,
  type VerifyCredentialsResult,
} from "./login.ts";
