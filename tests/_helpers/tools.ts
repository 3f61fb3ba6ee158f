/**
 * External tools the interoperability tests run: which are installed, and
 * running one with its output checked.
 *
 * @module
 */

import assert from "node:assert/strict";

/**
 * Tells whether a program is installed (it answers `--version`).
 *
 * @param name The program.
 * @returns `true` when it runs.
 */
export async function has(name: string): Promise<boolean> {
  try {
    const { code } = await new Deno.Command(name, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0;
  } catch {
    return false;
  }
}

/** Whether skopeo is installed. */
export const hasSkopeo: boolean = await has("skopeo");
/** Whether tar is installed. */
export const hasTar: boolean = await has("tar");

/**
 * Runs a program and fails the test unless it exits with 0.
 *
 * @param cmd The program.
 * @param args Its arguments.
 * @returns Its standard output.
 */
export async function run(cmd: string, ...args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(
    out.code,
    0,
    `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
  );
  return out.stdout;
}

/**
 * Runs skopeo without a signature policy.
 *
 * @param args Its arguments.
 * @returns Its standard output.
 */
export function skopeo(...args: string[]): Promise<Uint8Array> {
  return run("skopeo", "--insecure-policy", ...args);
}
