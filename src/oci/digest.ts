/**
 * SHA-256 content digests: parsing, validation and streaming computation.
 *
 * @module
 */

import { digestMismatch } from "../_errors.ts";
import type { Hash } from "node:crypto";
import { Sha256Js } from "./_sha256.ts";

/** The runtime's native SHA-256, once {@linkcode loadNativeSha256} loaded it. */
let createHash: ((algorithm: "sha256") => Hash) | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the runtime's native SHA-256 (`node:crypto`), which large data
 * needs for speed. Until it is loaded, hashes are computed in JavaScript:
 * right, and quick for the small documents a transfer starts with, but
 * slow for large blobs. Loading it costs start-up time, so it is loaded
 * when the first large hash needs it; a runtime without it keeps the
 * JavaScript hash.
 *
 * @returns When the native hash is ready (or known to be missing).
 *
 * @example Hash a large blob at native speed
 * ```ts
 * import { loadNativeSha256, Sha256 } from "./digest.ts";
 * await loadNativeSha256();
 * const h = new Sha256();
 * h.update(new Uint8Array(64 * 1024 * 1024));
 * console.log(h.digest());
 * ```
 */
export function loadNativeSha256(): Promise<void> {
  loading ??= import("node:crypto").then(
    (m) => {
      createHash = m.createHash;
    },
    () => {},
  );
  return loading;
}

/** A content digest in OCI form, `sha256:` followed by 64 lowercase hex digits. */
export type Digest = `sha256:${string}`;

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * Tells whether a string is a well-formed SHA-256 digest.
 *
 * @param value The string to check.
 * @returns `true` for `sha256:<64 lowercase hex>`.
 *
 * @example Check a digest
 * ```ts
 * import { isDigest } from "@ironcore/image/oci";
 * console.log(isDigest("sha256:" + "0".repeat(64))); // true
 * console.log(isDigest("sha256:abc")); // false
 * ```
 */
export function isDigest(value: unknown): value is Digest {
  return typeof value === "string" && SHA256_RE.test(value);
}

/**
 * Validates a digest string and returns it typed. Only SHA-256 is supported;
 * other well-formed algorithms get a clear error.
 *
 * @param value The untrusted string.
 * @param what Where the value came from, for the error message.
 * @returns The digest.
 * @throws {SyntaxError} When the value is not a SHA-256 digest.
 *
 * @example Parse a digest
 * ```ts
 * import { parseDigest } from "@ironcore/image/oci";
 * console.log(parseDigest("sha256:" + "a".repeat(64)).length); // 71
 * try {
 *   parseDigest("sha256:abc", "config digest");
 * } catch (e) {
 *   console.log((e as Error).message); // names the config digest and what is wrong
 * }
 * ```
 */
export function parseDigest(value: unknown, what = "digest"): Digest {
  if (isDigest(value)) return value;
  // A malformed sha256 digest is invalid, not of an unsupported algorithm.
  if (
    typeof value === "string" && ANY_DIGEST_RE.test(value) &&
    !value.startsWith("sha256:")
  ) {
    throw new SyntaxError(
      `Unsupported ${what} ${value}: only sha256 digests are supported`,
    );
  }
  throw new SyntaxError(
    `Invalid ${what} ${
      JSON.stringify(value)
    }: expected sha256: followed by 64 lowercase hex digits`,
  );
}

/**
 * The hex part of a digest, used as the blob's file name.
 *
 * @param digest A SHA-256 digest.
 * @returns The 64 hex digits.
 *
 * @example Take the hex part
 * ```ts
 * import { digestHex } from "./digest.ts";
 * digestHex(`sha256:${"b".repeat(64)}`); // "bbbb…"
 * ```
 */
export function digestHex(digest: Digest): string {
  return digest.slice("sha256:".length);
}

/**
 * An incremental SHA-256 hasher: the runtime's native one once
 * {@linkcode loadNativeSha256} loaded it (await that before hashing large
 * data), else one in JavaScript. Feed it large buffers (megabytes) for full
 * speed.
 *
 * @example Hash two chunks
 * ```ts
 * import { Sha256 } from "./digest.ts";
 * const h = new Sha256();
 * h.update(new TextEncoder().encode("hello "));
 * h.update(new TextEncoder().encode("world"));
 * console.log(h.digest(), h.bytes);
 * ```
 */
export class Sha256 {
  #hash: Hash | Sha256Js = createHash?.("sha256") ?? new Sha256Js();
  #bytes = 0;

  /**
   * Adds bytes to the hash.
   *
   * @param chunk The bytes.
   */
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.byteLength;
  }

  /** Number of bytes hashed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Finishes the hash. The hasher cannot be used afterwards.
   *
   * @returns The digest of every byte passed to {@linkcode Sha256.update}.
   */
  digest(): Digest {
    const hash = this.#hash;
    return `sha256:${
      hash instanceof Sha256Js ? hash.hex() : hash.digest("hex")
    }`;
  }
}

/** Content size from which a hash is worth waiting for the native SHA-256. */
const NATIVE_HASH_FROM = 1024 * 1024;

/**
 * A hash for content of `size` bytes: native when that is loaded, and for
 * content larger than 1 MiB loaded first, so that no large blob is hashed
 * in JavaScript.
 *
 * @param size The content's size in bytes.
 * @returns A new hash.
 */
export async function sha256For(size: number): Promise<Sha256> {
  if (size > NATIVE_HASH_FROM) await loadNativeSha256();
  return new Sha256();
}

/**
 * Computes the digest of bytes held in memory (configs, manifests).
 *
 * @param data The bytes or a string (encoded as UTF-8).
 * @returns The SHA-256 digest.
 *
 * @example Hash a document
 * ```ts
 * import { digestOf } from "@ironcore/image/oci";
 * console.log(digestOf("{}")); // "sha256:44136fa3…"
 * ```
 */
export function digestOf(data: Uint8Array | string): Digest {
  const h = new Sha256();
  h.update(typeof data === "string" ? new TextEncoder().encode(data) : data);
  return h.digest();
}

/**
 * Throws {@linkcode DigestMismatchError} when two digests differ.
 *
 * @param expected The digest the content is addressed by.
 * @param actual The digest computed from the bytes.
 * @param what Which content, for the message.
 *
 * @example Check bytes against the digest they should have
 * ```ts
 * import { assertDigest, digestOf } from "./digest.ts";
 * assertDigest(digestOf("a"), digestOf("a"), "config");
 * ```
 */
export function assertDigest(
  expected: Digest,
  actual: Digest,
  what = "content",
): void {
  if (expected !== actual) {
    throw digestMismatch(expected, actual, what);
  }
}
