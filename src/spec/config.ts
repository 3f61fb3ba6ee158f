/**
 * The IronCore image config blob.
 *
 * @module
 */

import { InvalidImageError } from "../errors.ts";

/** The IronCore image config: what a machine needs besides the layers. */
export interface ImageConfig {
  /** Kernel command line to boot with. */
  commandLine?: string | undefined;
}

/** Largest config blob accepted, in bytes. */
export const MAX_CONFIG_BYTES: number = 1024 * 1024;

/**
 * Parses and validates config blob bytes of untrusted origin. Unknown fields
 * are kept, so a newer config survives a round trip.
 *
 * @param bytes The config blob.
 * @returns The config.
 * @throws {InvalidImageError} When the blob is too large, not JSON, or
 * `commandLine` is not a string.
 *
 * @example Read the kernel command line
 * ```ts
 * import { parseConfig } from "@ironcore/image/spec";
 * parseConfig(new TextEncoder().encode('{"commandLine":"console=ttyS0"}')).commandLine; // "console=ttyS0"
 * ```
 */
export function parseConfig(bytes: Uint8Array): ImageConfig {
  if (bytes.byteLength > MAX_CONFIG_BYTES) {
    throw new InvalidImageError(
      `Invalid config: ${bytes.byteLength} bytes is over the ${MAX_CONFIG_BYTES}-byte limit`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new InvalidImageError(
      `Invalid config: not valid UTF-8 JSON (${(e as Error).message})`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidImageError("Invalid config: expected a JSON object");
  }
  const commandLine = (value as Record<string, unknown>).commandLine;
  if (commandLine !== undefined && typeof commandLine !== "string") {
    throw new InvalidImageError(
      "Invalid config: commandLine must be a string",
    );
  }
  return value as ImageConfig;
}
