/**
 * The library's errors with their standard wording, so that every place
 * that finds, say, a digest mismatch says it the same way.
 *
 * @module
 */

import {
  AmbiguousReferenceError,
  DigestMismatchError,
  ImageError,
  type ImageErrorOptions,
  InvalidReferenceError,
  SizeMismatchError,
  StallError,
  StoreError,
} from "./errors.ts";

/**
 * Content that does not hash to its digest.
 *
 * @param expected The digest the content should have.
 * @param actual The digest computed from the bytes.
 * @param what Which content, for the message.
 * @returns The error.
 */
export function digestMismatch(
  expected: string,
  actual: string,
  what = "content",
): DigestMismatchError {
  return new DigestMismatchError(
    `Digest mismatch for ${what}: expected ${expected}, got ${actual}; the data is corrupt or was changed in transit`,
    { expected, actual },
  );
}

/**
 * What to do about a blob of the store whose bytes do not match its digest:
 * repairing removes it, and the next pull or build writes it again.
 */
export const REPAIR_ADVICE =
  "verify the store with repair, then pull or build the image again";

/**
 * A blob of the store whose bytes do not match its digest.
 *
 * @param store The store directory.
 * @param expected The blob's digest.
 * @param actual The digest its bytes hash to.
 * @returns The error.
 */
export function corruptBlob(
  store: string,
  expected: string,
  actual: string,
): DigestMismatchError {
  return new DigestMismatchError(
    `Blob ${expected} in store ${store} is corrupt: its bytes hash to ${actual}; ${REPAIR_ADVICE}`,
    { expected, actual },
  );
}

/**
 * Content of the wrong size.
 *
 * @param expected Size the descriptor declares.
 * @param actual Size seen.
 * @param what Which content, for the message.
 * @returns The error.
 */
export function sizeMismatch(
  expected: number,
  actual: number,
  what = "content",
): SizeMismatchError {
  return new SizeMismatchError(
    `Size mismatch for ${what}: expected ${expected} bytes, got ${actual}`,
    { expected, actual },
  );
}

/**
 * A digest prefix that matches several images.
 *
 * @param reference The prefix.
 * @param candidates The digests it matches.
 * @returns The error.
 */
export function ambiguousReference(
  reference: string,
  candidates: readonly string[],
): AmbiguousReferenceError {
  return new AmbiguousReferenceError(
    `Digest prefix ${reference} matches ${candidates.length} images: use more characters of the digest`,
    { reference, candidates },
  );
}

/**
 * An image ID (a digest or digest prefix) that names an image with several
 * tags where one tag is needed.
 *
 * @param reference What was given.
 * @param tags The tags of the image, as stored.
 * @param fix What to do instead.
 * @returns The error.
 */
export function severalTags(
  reference: string,
  tags: readonly string[],
  fix: string,
): AmbiguousReferenceError {
  const shown = tags.slice(0, 10).join(", ") +
    (tags.length > 10 ? ` and ${tags.length - 10} more` : "");
  return new AmbiguousReferenceError(
    `Image ${reference} has ${tags.length} tags (${shown}): ${fix}`,
    { reference, candidates: tags },
  );
}

/**
 * A reference that does not parse or is not of the kind needed.
 *
 * @param reference The input.
 * @param reason Why it is invalid, with the fix.
 * @param options The cause and the option that fixes it.
 * @returns The error.
 */
export function invalidReference(
  reference: string,
  reason: string,
  options: ImageErrorOptions = {},
): InvalidReferenceError {
  return new InvalidReferenceError(
    `Invalid reference "${reference}": ${reason}`,
    { ...options, reference },
  );
}

/**
 * A store that cannot be used.
 *
 * @param path The store directory.
 * @param reason What is wrong and how to fix it.
 * @param options The cause.
 * @returns The error.
 */
export function storeUnusable(
  path: string,
  reason: string,
  options: ImageErrorOptions = {},
): StoreError {
  return new StoreError(`Store ${path} is not usable: ${reason}`, {
    ...options,
    path,
  });
}

/**
 * No data for too long.
 *
 * @param timeout How long, in milliseconds.
 * @param host The registry, if any.
 * @returns The error.
 */
export function stalled(timeout: number, host?: string): StallError {
  return new StallError(`No data for ${timeout} ms`, { timeout, host });
}

/**
 * Tells whether a file system error is a full device (`ENOSPC`), which the
 * runtime has no error class for.
 *
 * @param e What a write threw.
 * @returns `true` for a full device.
 */
export function isDeviceFull(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === "ENOSPC";
}

/**
 * A file that could not be written because its device is full.
 *
 * @param what What was written, e.g. `kernel layer`.
 * @param path Where.
 * @param cause The runtime's error.
 * @returns The error.
 */
export function deviceFull(
  what: string,
  path: string,
  cause: unknown,
): ImageError {
  return new ImageError(
    `Cannot write ${what} to ${path}: no space left on the device, free some space or write it elsewhere`,
    { cause },
  );
}
