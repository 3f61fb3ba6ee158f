/**
 * Runs `ironcore-image serve` as a child process on an ephemeral loopback
 * port, with its output collected as it arrives.
 *
 * @module
 */

import { CLI_PATH } from "./cli.ts";

/** Text a child writes, collected as it arrives. */
export interface Collected {
  /** Everything so far. */
  text: () => string;
  /** Settles when the stream ends. */
  done: Promise<void>;
}

/**
 * Reads a child's output stream into a string as it arrives.
 *
 * @param stream The stream.
 * @returns The text so far, and the end.
 */
export function collect(stream: ReadableStream<Uint8Array>): Collected {
  let text = "";
  const decoder = new TextDecoder();
  const done = stream.pipeTo(
    new WritableStream({
      write(chunk) {
        text += decoder.decode(chunk, { stream: true });
      },
    }),
  );
  return { text: () => text, done };
}

/**
 * Polls every 25 ms until `check` returns a value, for at most 10 s.
 *
 * @param what What is awaited, for the error.
 * @param check The value, or `undefined` while it is not there.
 * @returns The value.
 */
export async function waitForValue<T>(
  what: string,
  check: () => T | undefined,
): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const hit = check();
    if (hit !== undefined) return hit;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** Options of {@linkcode spawnServe}. */
export interface SpawnServeOptions {
  /** Deno's permission flags; default `--allow-all`. */
  permissions?: readonly string[];
  /** The store; default `cache` under the directory. */
  store?: string;
}

/**
 * Starts `serve` on an ephemeral loopback port, its store under `dir`.
 *
 * @param dir The directory of its store (`cache`) and Docker config.
 * @param flags More flags.
 * @param options Permissions, and another store.
 * @returns The child, its standard output and error piped.
 */
export function spawnServe(
  dir: string,
  flags: readonly string[] = [],
  options: SpawnServeOptions = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(options.permissions ?? ["--allow-all"]),
      "--quiet",
      CLI_PATH,
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--plain-http",
      "--store-path",
      options.store ?? `${dir}/cache`,
      ...flags,
    ],
    env: { DOCKER_CONFIG: dir, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * The server's base URL, once its standard error says where it listens.
 *
 * @param stderr Its collected standard error.
 * @returns `http://127.0.0.1:PORT`.
 */
export function listeningAt(stderr: Collected): Promise<string> {
  return waitForValue(
    "the listening address",
    () => /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr.text())?.[1],
  );
}

/**
 * Kills a child if it still runs and waits for it and its output.
 *
 * @param child The child.
 * @param outputs Its collected outputs.
 */
export async function reap(
  child: Deno.ChildProcess,
  ...outputs: Collected[]
): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await child.status;
  await Promise.allSettled(outputs.map((o) => o.done));
}
