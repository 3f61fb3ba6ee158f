/**
 * Talking to OCI registries: a distribution-API client with authentication,
 * retries and digest checks, Docker's credential store, and checking a
 * login.
 *
 * @example Log in, keeping the credential only when the registry accepts it
 * ```ts ignore
 * import { DockerConfig, verifyCredentials } from "./mod.ts";
 * const credential = { username: "ada", password: "s3cret" };
 * await verifyCredentials("registry.example.com", credential);
 * await (await DockerConfig.load()).set("registry.example.com", credential);
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
  type Repository,
  type RequestOptions,
  type UploadBlobOptions,
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
