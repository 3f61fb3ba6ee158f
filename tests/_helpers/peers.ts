/**
 * Finds the peer programs that `.ci/setup-peers` builds: the Go
 * ironcore-image, oras, crane, regctl and the distribution v3 registry. They
 * live outside the repository, in `$IRONCORE_PEERS_DIR/bin` (default
 * `/opt/ironcore-image-peers/bin`).
 *
 * @module
 */

/** The programs `.ci/setup-peers` builds, by binary name. */
export type PeerName =
  | "ironcore-image"
  | "oras"
  | "crane"
  | "regctl"
  | "distribution-registry";

/** The directory `.ci/setup-peers` builds into. */
export function peersBinDir(): string {
  const dir = Deno.env.get("IRONCORE_PEERS_DIR") || "/opt/ironcore-image-peers";
  return `${dir}/bin`;
}

/**
 * The absolute path of a peer program. A missing one throws, so a test that
 * needs it fails instead of skipping.
 *
 * @param name The binary name.
 * @returns Its path.
 *
 * @example Run crane
 * ```ts ignore
 * await new Deno.Command(peerPath("crane"), { args: ["version"] }).output();
 * ```
 */
export function peerPath(name: PeerName): string {
  const path = `${peersBinDir()}/${name}`;
  try {
    const info = Deno.statSync(path);
    if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return path;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  throw new Error(
    `Cannot find ${name} at ${path}: run bash .ci/setup-peers ` +
      `(or set IRONCORE_PEERS_DIR to where it built the peers)`,
  );
}

/** What a peer run produced. */
export interface PeerResult {
  /** Exit code. */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Options for {@linkcode runPeer}. */
export interface RunPeerOptions {
  /** Working directory of the child. */
  cwd?: string;
  /** Environment of the child, on top of `PATH`, `HOME` and `DOCKER_CONFIG`. */
  env?: Record<string, string>;
  /** Text for the child's standard input. */
  stdin?: string;
}

/**
 * Runs a peer program and collects its output. The child gets a clean
 * environment: `HOME` and `DOCKER_CONFIG` point at an empty directory unless
 * `env` says otherwise, so no credentials or settings of the machine leak in.
 *
 * @param name The binary name.
 * @param args Its arguments.
 * @param options Working directory, environment and standard input.
 * @returns Exit code, stdout and stderr.
 *
 * @example List the tags of a repository with crane
 * ```ts ignore
 * const { stdout } = await runPeer("crane", ["ls", "127.0.0.1:5000/os", "--insecure"]);
 * ```
 */
export async function runPeer(
  name: PeerName,
  args: readonly string[],
  options: RunPeerOptions = {},
): Promise<PeerResult> {
  const home = options.env?.HOME ?? emptyHome();
  const child = new Deno.Command(peerPath(name), {
    args: [...args],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: home,
      DOCKER_CONFIG: `${home}/.docker`,
      NO_COLOR: "1",
      ...options.env,
    },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * Like {@linkcode runPeer}, but throws with the peer's output when it exits
 * with another code than 0.
 *
 * @param name The binary name.
 * @param args Its arguments.
 * @param options Working directory, environment and standard input.
 * @returns Standard output.
 *
 * @example Copy an image with crane
 * ```ts ignore
 * await peerOk("crane", ["copy", "--insecure", src, dst]);
 * ```
 */
export async function peerOk(
  name: PeerName,
  args: readonly string[],
  options: RunPeerOptions = {},
): Promise<string> {
  const out = await runPeer(name, args, options);
  if (out.code !== 0) {
    throw new Error(
      `${name} ${args.join(" ")} exited with ${out.code}\n` +
        `--- stdout ---\n${out.stdout}\n--- stderr ---\n${out.stderr}`,
    );
  }
  return out.stdout;
}

let home: string | undefined;

/** An empty directory, the peers' `HOME` unless a test gives one; removed when the process ends. */
function emptyHome(): string {
  if (home === undefined) {
    const dir = Deno.makeTempDirSync({ prefix: "ironcore-image-peer-home-" });
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(dir, { recursive: true });
    });
    home = dir;
  }
  return home;
}
