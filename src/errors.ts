/**
 * Error classes that callers branch on. Every one extends
 * {@linkcode ImageError}, so `catch (e) { if (e instanceof ImageError) … }`
 * tells the library's errors from everything else. Wrong shapes use
 * `TypeError`, values out of range `RangeError` and unparseable text
 * `SyntaxError`; the classes here name conditions a caller can act on.
 *
 * Every constructor takes `(message, options)`; the options carry the
 * structured fields (`reference`, `expected`, `host`, `status`, …) and the
 * `cause`.
 *
 * @module
 */

/** Options every library error takes. */
export interface ImageErrorOptions {
  /** The error that led to this one. */
  cause?: unknown;
}

/**
 * The base class of every error the library throws on purpose.
 *
 * @example Tell library errors from others
 * ```ts
 * import { ImageError, NotFoundError } from "@ironcore/image";
 * const err: unknown = new NotFoundError("Image demo:v1 not found", { reference: "demo:v1" });
 * console.log(err instanceof ImageError); // true
 * ```
 */
export class ImageError extends Error {
  /**
   * Creates the error.
   *
   * @param message Sentence-case description with the fix; a fix that is a
   * call option says "set <option>" (`set plainHttp`).
   * @param options The cause.
   */
  constructor(message: string, options: ImageErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "ImageError";
  }
}

/** Options of {@linkcode NotFoundError}. */
export interface NotFoundErrorOptions extends ImageErrorOptions {
  /** The image reference (or digest prefix) that was looked up. */
  reference?: string | undefined;
  /** The digest of a blob or manifest that is missing. */
  digest?: string | undefined;
  /** The platform (`os/arch[/variant]`) an image has no manifest for. */
  platform?: string | undefined;
  /** The layer kind an image has no layer of. */
  layer?: string | undefined;
  /** The file that is missing. */
  path?: string | undefined;
}

/**
 * Something that was asked for does not exist: a tag or digest in the store,
 * a repository, manifest or blob in a registry, a platform or a layer in an
 * image, a file.
 *
 * @example Branch on a missing image
 * ```ts
 * import { NotFoundError } from "@ironcore/image";
 * const err: unknown = new NotFoundError("Image not found: demo:v1", { reference: "demo:v1" });
 * if (err instanceof NotFoundError) console.error(err.reference);
 * ```
 */
export class NotFoundError extends ImageError {
  /** The image reference (or digest prefix) that was looked up. */
  readonly reference: string | undefined;
  /** The digest of the missing blob or manifest. */
  readonly digest: string | undefined;
  /** The platform the image has no manifest for. */
  readonly platform: string | undefined;
  /** The layer kind the image has no layer of. */
  readonly layer: string | undefined;
  /** The missing file. */
  readonly path: string | undefined;
  /**
   * Creates the error.
   *
   * @param message Sentence-case description with the fix.
   * @param options What is missing, and the cause.
   */
  constructor(message: string, options: NotFoundErrorOptions = {}) {
    super(message, options);
    this.name = "NotFoundError";
    this.reference = options.reference;
    this.digest = options.digest;
    this.platform = options.platform;
    this.layer = options.layer;
    this.path = options.path;
  }
}

/** Options of {@linkcode AmbiguousReferenceError}. */
export interface AmbiguousReferenceErrorOptions extends ImageErrorOptions {
  /** What the user typed. */
  reference: string;
  /** The digests it matches, or the tags of the image it names. */
  candidates: readonly string[];
}

/**
 * A reference or digest prefix matches more than one image, or an image ID
 * names an image with several tags where one is needed (`candidates` are
 * then the tags).
 *
 * @example List the images a prefix matches
 * ```ts
 * import { AmbiguousReferenceError } from "@ironcore/image";
 * const err = new AmbiguousReferenceError("Digest prefix ab matches 2 images", {
 *   reference: "ab",
 *   candidates: ["sha256:ab1", "sha256:ab2"],
 * });
 * console.log(err.candidates.length); // 2
 * ```
 */
export class AmbiguousReferenceError extends ImageError {
  /** What the user typed. */
  readonly reference: string;
  /** The digests it matches, or the tags of the image it names. */
  readonly candidates: readonly string[];
  /**
   * Creates the error.
   *
   * @param message Sentence-case description with the fix.
   * @param options The ambiguous prefix and the digests it matches.
   */
  constructor(message: string, options: AmbiguousReferenceErrorOptions) {
    super(message, options);
    this.name = "AmbiguousReferenceError";
    this.reference = options.reference;
    this.candidates = options.candidates;
  }
}

/** Options of {@linkcode InvalidReferenceError}. */
export interface InvalidReferenceErrorOptions extends ImageErrorOptions {
  /** The reference that failed to parse. */
  reference: string;
}

/**
 * A reference string does not parse, or is not the kind of reference the
 * call needs (a tag where a digest was given, …).
 *
 * @example Name the reference that failed to parse
 * ```ts
 * import { InvalidReferenceError } from "@ironcore/image";
 * const err = new InvalidReferenceError(
 *   'Invalid reference "Bad:Ref": repository name must be lowercase',
 *   { reference: "Bad:Ref" },
 * );
 * console.log(err.reference);
 * ```
 */
export class InvalidReferenceError extends ImageError {
  /** The reference that failed to parse. */
  readonly reference: string;
  /**
   * Creates the error.
   *
   * @param message Sentence-case description with the fix.
   * @param options The offending input.
   */
  constructor(message: string, options: InvalidReferenceErrorOptions) {
    super(message, options);
    this.name = "InvalidReferenceError";
    this.reference = options.reference;
  }
}

/** Options of {@linkcode DigestMismatchError}. */
export interface DigestMismatchErrorOptions extends ImageErrorOptions {
  /** The digest the content should have. */
  expected: string;
  /** The digest the content has. */
  actual: string;
}

/**
 * Content does not hash to the digest it was addressed by.
 *
 * @example Compare the digests
 * ```ts
 * import { DigestMismatchError } from "@ironcore/image";
 * const err = new DigestMismatchError("Digest mismatch for a blob", {
 *   expected: "sha256:aa",
 *   actual: "sha256:bb",
 * });
 * console.log(err.expected, err.actual);
 * ```
 */
export class DigestMismatchError extends ImageError {
  /** The digest the content should have. */
  readonly expected: string;
  /** The digest the content has. */
  readonly actual: string;
  /**
   * Creates the error.
   *
   * @param message Sentence-case description.
   * @param options The expected and the computed digest.
   */
  constructor(message: string, options: DigestMismatchErrorOptions) {
    super(message, options);
    this.name = "DigestMismatchError";
    this.expected = options.expected;
    this.actual = options.actual;
  }
}

/** Options of {@linkcode SizeMismatchError}. */
export interface SizeMismatchErrorOptions extends ImageErrorOptions {
  /** The expected size in bytes. */
  expected: number;
  /** The actual size in bytes (or at least this many). */
  actual: number;
}

/**
 * Content has the right digest but a different size than its descriptor says,
 * or exceeds a size limit.
 *
 * @example Compare the sizes
 * ```ts
 * import { SizeMismatchError } from "@ironcore/image";
 * const err = new SizeMismatchError("Size mismatch for layer", { expected: 10, actual: 11 });
 * console.log(err.expected, err.actual);
 * ```
 */
export class SizeMismatchError extends ImageError {
  /** The expected size in bytes. */
  readonly expected: number;
  /** The actual size in bytes (or at least this many). */
  readonly actual: number;
  /**
   * Creates the error.
   *
   * @param message Sentence-case description.
   * @param options The expected and the seen size.
   */
  constructor(message: string, options: SizeMismatchErrorOptions) {
    super(message, options);
    this.name = "SizeMismatchError";
    this.expected = options.expected;
    this.actual = options.actual;
  }
}

/**
 * An image, manifest, index, config or archive does not conform to the OCI
 * or IronCore specification.
 *
 * @example Report a malformed document
 * ```ts
 * import { InvalidImageError } from "@ironcore/image";
 * const err = new InvalidImageError("Invalid manifest: layers[0].digest is missing");
 * console.log(err.message);
 * ```
 */
export class InvalidImageError extends ImageError {
  /**
   * Creates the error.
   *
   * @param message What is wrong and where.
   * @param options The cause.
   */
  constructor(message: string, options: ImageErrorOptions = {}) {
    super(message, options);
    this.name = "InvalidImageError";
  }
}

/** Options of {@linkcode StoreError}. */
export interface StoreErrorOptions extends ImageErrorOptions {
  /** The store directory. */
  path: string;
}

/**
 * The local store is not usable: not an OCI layout, or `index.json` is
 * corrupt.
 *
 * @example Name the store that is not usable
 * ```ts
 * import { StoreError } from "@ironcore/image";
 * const err = new StoreError("Store /tmp/x is not usable: index.json is not valid JSON", { path: "/tmp/x" });
 * console.log(err.path);
 * ```
 */
export class StoreError extends ImageError {
  /** The store directory. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param message What is wrong and how to fix it.
   * @param options The store directory and the cause.
   */
  constructor(message: string, options: StoreErrorOptions) {
    super(message, options);
    this.name = "StoreError";
    this.path = options.path;
  }
}

/** Options of {@linkcode UnauthorizedError}. */
export interface UnauthorizedErrorOptions extends ImageErrorOptions {
  /** Registry host. */
  host: string;
  /** HTTP status. */
  status: number;
}

/**
 * A registry refused our credentials (HTTP 401/403 after authenticating).
 *
 * @example Tell a refused login by its status
 * ```ts
 * import { UnauthorizedError } from "@ironcore/image";
 * const err = new UnauthorizedError("Authentication failed for registry.example: check the credentials", { host: "registry.example", status: 401 });
 * console.log(err.status);
 * ```
 */
export class UnauthorizedError extends ImageError {
  /** Registry host. */
  readonly host: string;
  /** HTTP status. */
  readonly status: number;
  /**
   * Creates the error.
   *
   * @param message What failed and the fix.
   * @param options Host, status and cause.
   */
  constructor(message: string, options: UnauthorizedErrorOptions) {
    super(message, options);
    this.name = "UnauthorizedError";
    this.host = options.host;
    this.status = options.status;
  }
}

/** Options of {@linkcode RegistryError}. */
export interface RegistryErrorOptions extends ImageErrorOptions {
  /** Registry host. */
  host: string;
  /** HTTP status, or 0 when no response arrived. */
  status: number;
  /** Error codes from the registry's JSON error body. */
  codes?: readonly string[] | undefined;
  /** Milliseconds the registry asked to wait before trying again (`Retry-After`). */
  retryAfter?: number | undefined;
}

/**
 * A registry answered with an unexpected status or could not be reached
 * (then it is a {@linkcode NetworkError}).
 *
 * @example Read the status of a failed request
 * ```ts
 * import { RegistryError } from "@ironcore/image";
 * const err = new RegistryError("Registry localhost:5000 answered 500", { host: "localhost:5000", status: 500 });
 * console.log(err.status);
 * ```
 */
export class RegistryError extends ImageError {
  /** Registry host. */
  readonly host: string;
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** Error codes from the registry's JSON error body. */
  readonly codes: readonly string[];
  /** Milliseconds the registry asked to wait before trying again, if it said. */
  readonly retryAfter: number | undefined;
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Host, status, error codes, `Retry-After` and cause.
   */
  constructor(message: string, options: RegistryErrorOptions) {
    super(message, options);
    this.name = "RegistryError";
    this.host = options.host;
    this.status = options.status;
    this.codes = options.codes ?? [];
    this.retryAfter = options.retryAfter;
  }
}

/**
 * Why no answer came: the connection was refused, the name does not
 * resolve, TLS failed, the connection was reset, no data came for too long,
 * or something else.
 */
export type NetworkErrorKind =
  | "refused"
  | "dns"
  | "tls"
  | "reset"
  | "timeout"
  | "other";

/** Options of {@linkcode NetworkError}. */
export interface NetworkErrorOptions extends ImageErrorOptions {
  /** Registry host. */
  host: string;
  /** What went wrong. */
  kind: NetworkErrorKind;
  /** What the runtime reported, shortened. */
  detail?: string | undefined;
}

/**
 * A registry could not be reached, or the connection broke before the
 * answer was complete. Its `status` is 0.
 *
 * @example Tell a refused connection from a timeout
 * ```ts
 * import { NetworkError } from "@ironcore/image";
 * const err = new NetworkError("Cannot connect to registry localhost:5000: connection refused", {
 *   host: "localhost:5000",
 *   kind: "refused",
 * });
 * console.log(err.kind, err.status); // "refused" 0
 * ```
 */
export class NetworkError extends RegistryError {
  /** What went wrong. */
  readonly kind: NetworkErrorKind;
  /** What the runtime reported, shortened; empty when it said nothing. */
  readonly detail: string;
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Host, kind, detail and cause.
   */
  constructor(message: string, options: NetworkErrorOptions) {
    super(message, { ...options, status: 0 });
    this.name = "NetworkError";
    this.kind = options.kind;
    this.detail = options.detail ?? "";
  }
}

/** Options of {@linkcode StallError}. */
export interface StallErrorOptions extends ImageErrorOptions {
  /** Registry host. */
  host?: string | undefined;
  /** How long no data arrived, in milliseconds. */
  timeout: number;
}

/**
 * No data arrived for too long; the attempt was given up (and is retried
 * where the operation retries). A {@linkcode NetworkError} of kind
 * `timeout`.
 *
 * @example Abort a transfer that stalled
 * ```ts
 * import { StallError } from "@ironcore/image";
 * const controller = new AbortController();
 * controller.abort(new StallError("No data for 30000 ms", { timeout: 30_000 }));
 * console.log(controller.signal.reason instanceof StallError); // true
 * ```
 */
export class StallError extends NetworkError {
  /** How long no data arrived, in milliseconds. */
  readonly timeout: number;
  /**
   * Creates the error.
   *
   * @param message What stalled.
   * @param options The timeout, the host and the cause.
   */
  constructor(message: string, options: StallErrorOptions) {
    super(message, { ...options, host: options.host ?? "", kind: "timeout" });
    this.name = "StallError";
    this.timeout = options.timeout;
  }
}
