/**
 * Helpers shared by the reliability tests: large inputs, killable CLI
 * children, waiting on the disk, and an independent walk of a store.
 *
 * @module
 */

import {
  type Digest,
  digestHex,
  loadNativeSha256,
  Sha256,
} from "../../src/oci/digest.ts";
import { randomBytes } from "../_helpers/fixtures.ts";
import { CLI_PATH } from "../_helpers/cli.ts";

/** One mebibyte. */
export const MIB = 1024 * 1024;

/**
 * Writes `size` bytes that no other call repeats (a random block, each
 * mebibyte stamped with its index) and returns their digest.
 *
 * @param path The file to write.
 * @param size Its size in bytes.
 * @returns The digest of the content.
 */
export async function writeRandomFile(
  path: string,
  size: number,
): Promise<Digest> {
  const block = randomBytes(MIB);
  await loadNativeSha256();
  const hash = new Sha256();
  using file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  for (let off = 0, i = 0; off < size; off += MIB, i++) {
    new DataView(block.buffer).setFloat64(0, i);
    const part = block.subarray(0, Math.min(MIB, size - off));
    hash.update(part);
    let done = 0;
    while (done < part.byteLength) {
      done += await file.write(part.subarray(done));
    }
  }
  return hash.digest();
}

/**
 * Hashes a file.
 *
 * @param path The file.
 * @returns Its digest.
 */
export async function hashFile(path: string): Promise<Digest> {
  using file = await Deno.open(path, { read: true });
  await loadNativeSha256();
  const hash = new Sha256();
  const buf = new Uint8Array(4 * MIB);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest();
}

/**
 * Starts the CLI as a child process that a test can kill; its output is
 * discarded.
 *
 * @param args Arguments after the program name.
 * @returns The child.
 */
export function spawnCli(args: readonly string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI_PATH, "--quiet", ...args],
    env: {
      NO_COLOR: "1",
      IRONCORE_IMAGE_STORE: "/dev/null/ironcore-image-test-store",
    },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * Polls a condition every 10 ms until it holds.
 *
 * @param condition The condition.
 * @param what What is awaited, for the error.
 * @param timeout Give up (throw) after this many milliseconds.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeout = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeout} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs an operation with an abort signal and fails it when it has not
 * finished after `ms` milliseconds, so that a transfer that hangs (a
 * regression) fails the test instead of blocking the run.
 *
 * @param what What runs, for the error.
 * @param fn The operation.
 * @param ms The limit; generous, never a timing assertion.
 * @returns What the operation returns.
 */
export async function withDeadline<T>(
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  ms = 60_000,
): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`${what} did not finish within ${ms} ms`);
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([fn(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Size of a blob's partial download in a store, 0 when there is none.
 *
 * @param store The store directory.
 * @param digest The blob.
 * @returns The size in bytes.
 */
export async function partialSize(
  store: string,
  digest: Digest,
): Promise<number> {
  try {
    return (await Deno.stat(`${store}/.tmp/partial-${digestHex(digest)}`))
      .size;
  } catch {
    return 0;
  }
}

/**
 * Every digest that `index.json` reaches, walking indexes and manifests,
 * read straight from the files (independently of the store code).
 *
 * @param store The store directory.
 * @returns The reachable digests.
 */
export async function reachableDigests(store: string): Promise<Set<string>> {
  const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
  const seen = new Set<string>();
  const queue: { digest: string; mediaType: string }[] = [...index.manifests];
  while (queue.length > 0) {
    const d = queue.shift()!;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (!/manifest|index/.test(d.mediaType)) continue;
    const doc = JSON.parse(
      await Deno.readTextFile(
        `${store}/blobs/sha256/${d.digest.slice("sha256:".length)}`,
      ),
    );
    if (Array.isArray(doc.manifests)) queue.push(...doc.manifests);
    if (doc.config) queue.push(doc.config);
    if (Array.isArray(doc.layers)) queue.push(...doc.layers);
  }
  return seen;
}

/**
 * Digests of the files under `blobs/sha256/`.
 *
 * @param store The store directory.
 * @returns The digests.
 */
export async function blobFiles(store: string): Promise<Set<string>> {
  const out = new Set<string>();
  try {
    for await (const e of Deno.readDir(`${store}/blobs/sha256`)) {
      out.add(`sha256:${e.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/**
 * The tags in a store's `index.json`.
 *
 * @param store The store directory.
 * @returns Full references, sorted.
 */
export async function storeTags(store: string): Promise<string[]> {
  const index = JSON.parse(await Deno.readTextFile(`${store}/index.json`));
  return (index.manifests as { annotations?: Record<string, string> }[])
    .map((d) => d.annotations?.["org.opencontainers.image.ref.name"])
    .filter((r): r is string => r !== undefined)
    .sort();
}
