/** Options for {@linkcode withTempDir}. */
export interface WithTempDirOptions {
  /** Prefix of the directory name; defaults to `"ironcore-image-test-"`. */
  prefix?: string;
}

/**
 * Runs `fn` with a fresh temporary directory and removes the directory
 * afterwards, whether `fn` succeeds or throws.
 *
 * @param fn Receives the directory path.
 * @param options Directory name prefix.
 * @returns What `fn` returns.
 *
 * @example Write a file into a throwaway directory
 * ```ts ignore
 * const size = await withTempDir(async (dir) => {
 *   await Deno.writeTextFile(`${dir}/a.txt`, "hello");
 *   return (await Deno.stat(`${dir}/a.txt`)).size;
 * });
 * ```
 */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  options: WithTempDirOptions = {},
): Promise<T> {
  const dir = await Deno.makeTempDir({
    prefix: options.prefix ?? "ironcore-image-test-",
  });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
