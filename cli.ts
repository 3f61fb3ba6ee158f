/**
 * The `ironcore-image` command-line tool: build IronCore OS images from
 * kernel, initramfs and root file system files into a local OCI store, tag,
 * list, inspect and delete them, and push and pull them to and from OCI
 * registries.
 *
 * ```sh
 * ironcore-image build --tag my-os:1.0 --config arch=amd64,kernel=vmlinuz,initramfs=initrd.img
 * ironcore-image list
 * ```
 *
 * @example Run the CLI from code
 * ```ts
 * import { main } from "@ironcore/image/cli";
 * const store = await Deno.makeTempDir();
 * // Prints [] (an empty store) on standard output.
 * const code = await main(["--store-path", store, "list", "--json"]);
 * console.log(code); // 0
 * ```
 *
 * @module
 */

import { runCli } from "./src/cli/run_cli.ts";

/**
 * Runs the CLI with this process's streams and environment.
 *
 * @param args Arguments after the program name.
 * @returns The exit code.
 */
export async function main(args: readonly string[]): Promise<number> {
  const controller = new AbortController();
  const again = new AbortController();
  const on = (name: "SIGINT" | "SIGTERM") => () => {
    const reason = new DOMException(name, "AbortError");
    if (controller.signal.aborted) again.abort(reason);
    else controller.abort(reason);
  };
  const onInt = on("SIGINT");
  const onTerm = on("SIGTERM");
  try {
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
  } catch {
    // Signals are not available everywhere (e.g. some Windows consoles).
  }
  try {
    return await runCli(args, {
      stdout: Deno.stdout.writable,
      stdoutWriter: Deno.stdout,
      stderr: Deno.stderr.writable,
      stdin: Deno.stdin.readable,
      stderrIsTerminal: Deno.stderr.isTerminal(),
      // A missing --allow-env surfaces as a clear permission error.
      env: (name) => Deno.env.get(name),
      signal: controller.signal,
      signalAgain: again.signal,
    });
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
    } catch {
      // See above.
    }
  }
}

if (import.meta.main) {
  // Every write is out when main returns: exiting at once spares a short
  // command the runtime's teardown (a few milliseconds).
  Deno.exit(await main(Deno.args));
}
