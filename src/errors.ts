/**
 * Error classes that callers branch on. Wrong shapes use `TypeError`, values
 * out of range `RangeError` and unparseable text `SyntaxError`; the classes
 * here name conditions a caller can act on.
 *
 * @module
 */

/**
 * Something that was asked for does not exist: a tag or digest in the store,
 * a repository, manifest or blob in a registry, a layer in an image.
 *
 * @example Branch on a missing image
 * ```ts
 * import { NotFoundError } from "./errors.ts";
 * const err: unknown = new NotFoundError("Image not found: demo:v1", { reference: "demo:v1" });
 * if (err instanceof NotFoundError) console.error(err.reference);
 * ```
 */
export class NotFoundError extends Error {
  /** The reference, digest or name that was not found. */
  readonly reference: string | undefined;
  /**
   * Creates the error.
   *
   * @param message Sentence-case description with the fix.
   * @param options The missing reference and the cause.
   */
  constructor(
    message: string,
    options: { reference?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "NotFoundError";
    this.reference = options.reference;
  }
}

/**
 * A reference or digest prefix matches more than one image.
 *
 * @example
 * ```ts
 * import { AmbiguousReferenceError } from "./errors.ts";
 * const err = new AmbiguousReferenceError("ab", ["sha256:ab1", "sha256:ab2"]);
 * console.log(err.candidates.length); // 2
 * ```
 */
export class AmbiguousReferenceError extends Error {
  /** What the user typed. */
  readonly reference: string;
  /** The digests it matches. */
  readonly candidates: readonly string[];
  /**
   * Creates the error.
   *
   * @param reference The ambiguous prefix.
   * @param candidates The digests it matches.
   */
  constructor(reference: string, candidates: readonly string[]) {
    super(
      `Digest prefix ${reference} matches ${candidates.length} images: use more characters of the digest`,
    );
    this.name = "AmbiguousReferenceError";
    this.reference = reference;
    this.candidates = candidates;
  }
}

/**
 * A reference string does not parse.
 *
 * @example
 * ```ts
 * import { InvalidReferenceError } from "./errors.ts";
 * const err = new InvalidReferenceError("Bad:Ref", "repository name must be lowercase");
 * console.log(err.message);
 * ```
 */
export class InvalidReferenceError extends Error {
  /** The reference that failed to parse. */
  readonly reference: string;
  /**
   * Creates the error.
   *
   * @param reference The offending input.
   * @param reason Why it is invalid.
   */
  constructor(reference: string, reason: string) {
    super(`Invalid reference "${reference}": ${reason}`);
    this.name = "InvalidReferenceError";
    this.reference = reference;
  }
}

/**
 * Content does not hash to the digest it was addressed by.
 *
 * @example
 * ```ts
 * import { DigestMismatchError } from "./errors.ts";
 * const err = new DigestMismatchError("sha256:aa", "sha256:bb", "blob from registry");
 * console.log(err.expected, err.actual);
 * ```
 */
export class DigestMismatchError extends Error {
  /** The digest the content should have. */
  readonly expected: string;
  /** The digest the content has. */
  readonly actual: string;
  /**
   * Creates the error.
   *
   * @param expected The digest the content should have.
   * @param actual The digest computed from the bytes.
   * @param what Which content, for the message.
   */
  constructor(expected: string, actual: string, what = "content") {
    super(
      `Digest mismatch for ${what}: expected ${expected}, got ${actual}; the data is corrupt or was changed in transit`,
    );
    this.name = "DigestMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * Content has the right digest but a different size than its descriptor says,
 * or exceeds a size limit.
 *
 * @example
 * ```ts
 * import { SizeMismatchError } from "./errors.ts";
 * const err = new SizeMismatchError(10, 11, "layer");
 * console.log(err.expected, err.actual);
 * ```
 */
export class SizeMismatchError extends Error {
  /** The expected size in bytes. */
  readonly expected: number;
  /** The actual size in bytes (or at least this many). */
  readonly actual: number;
  /**
   * Creates the error.
   *
   * @param expected Size the descriptor declares.
   * @param actual Size seen.
   * @param what Which content, for the message.
   */
  constructor(expected: number, actual: number, what = "content") {
    super(
      `Size mismatch for ${what}: expected ${expected} bytes, got ${actual}`,
    );
    this.name = "SizeMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * An image, manifest, index or config does not conform to the OCI or
 * IronCore specification.
 *
 * @example
 * ```ts
 * import { InvalidImageError } from "./errors.ts";
 * const err = new InvalidImageError("Invalid manifest: layers[0].digest is missing");
 * console.log(err.message);
 * ```
 */
export class InvalidImageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong and where.
   * @param options The cause.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "InvalidImageError";
  }
}

/**
 * The local store is not usable: not an OCI layout, or `index.json` is corrupt.
 *
 * @example
 * ```ts
 * import { StoreError } from "./errors.ts";
 * const err = new StoreError("/tmp/x", "index.json is not valid JSON");
 * console.log(err.path);
 * ```
 */
export class StoreError extends Error {
  /** The store directory. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param path The store directory.
   * @param reason What is wrong and how to fix it.
   */
  constructor(path: string, reason: string) {
    super(`Store ${path} is not usable: ${reason}`);
    this.name = "StoreError";
    this.path = path;
  }
}

/**
 * A registry refused our credentials (HTTP 401/403 after authenticating).
 *
 * @example
 * ```ts
 * import { UnauthorizedError } from "./errors.ts";
 * const err = new UnauthorizedError("Authentication failed for registry.example: check the credentials", { host: "registry.example", status: 401 });
 * console.log(err.status);
 * ```
 */
export class UnauthorizedError extends Error {
  /** Registry host. */
  readonly host: string;
  /** HTTP status. */
  readonly status: number;
  /**
   * Creates the error.
   *
   * @param message What failed and the fix.
   * @param options Host and status.
   */
  constructor(message: string, options: { host: string; status: number }) {
    super(message);
    this.name = "UnauthorizedError";
    this.host = options.host;
    this.status = options.status;
  }
}

/**
 * A registry answered with an unexpected status or could not be reached.
 *
 * @example
 * ```ts
 * import { RegistryError } from "./errors.ts";
 * const err = new RegistryError("Registry localhost:5000 answered 500", { host: "localhost:5000", status: 500 });
 * console.log(err.status);
 * ```
 */
export class RegistryError extends Error {
  /** Registry host. */
  readonly host: string;
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** Error codes from the registry's JSON error body. */
  readonly codes: readonly string[];
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Host, status, error codes and cause.
   */
  constructor(
    message: string,
    options: {
      host: string;
      status: number;
      codes?: readonly string[];
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "RegistryError";
    this.host = options.host;
    this.status = options.status;
    this.codes = options.codes ?? [];
  }
}

/**
 * The reason an attempt is aborted when no byte arrived for too long.
 *
 * @example
 * ```ts
 * import { StallError } from "./errors.ts";
 * const controller = new AbortController();
 * controller.abort(new StallError(30_000));
 * console.log(controller.signal.reason instanceof StallError); // true
 * ```
 */
export class StallError extends Error {
  /**
   * Creates the error.
   *
   * @param ms How long no data arrived, in milliseconds.
   */
  constructor(ms: number) {
    super(`No data for ${ms} ms`);
    this.name = "StallError";
  }
}
