/**
 * Small fixtures shared by the store, build and CLI tests: input files on
 * disk and a seeded random number generator for fuzz tests.
 *
 * @module
 */

/**
 * Writes files into a directory.
 *
 * @param dir The directory; it must exist.
 * @param files Contents by file name.
 * @returns Absolute paths by file name.
 *
 * @example Write a kernel and an initramfs
 * ```ts ignore
 * const paths = await writeFiles(dir, { vmlinuz: "kernel", initrd: "initrd" });
 * ```
 */
export async function writeFiles<K extends string>(
  dir: string,
  files: Record<K, string | Uint8Array>,
): Promise<Record<K, string>> {
  const out = {} as Record<K, string>;
  for (const [name, content] of Object.entries(files) as [K, string][]) {
    const path = `${dir}/${name}`;
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content as Uint8Array);
    out[name] = path;
  }
  return out;
}

/**
 * mulberry32: small, fast and deterministic, so a failing fuzz case
 * reproduces from its seed.
 *
 * @param seed Any 32-bit integer.
 * @returns A function giving numbers in [0, 1).
 *
 * @example
 * ```ts ignore
 * const random = prng(42);
 * const n = Math.floor(random() * 10);
 * ```
 */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Picks one element.
 *
 * @param random A generator from {@linkcode prng}.
 * @param items Non-empty list.
 * @returns One of the items.
 *
 * @example
 * ```ts ignore
 * const c = pick(prng(1), ["a", "b"]);
 * ```
 */
export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/**
 * Random bytes of any length (`crypto.getRandomValues` fills at most 64 KiB
 * per call).
 *
 * @param n How many bytes.
 * @returns Fresh random bytes.
 *
 * @example
 * ```ts ignore
 * const kernel = randomBytes(3 * 1024 * 1024);
 * ```
 */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/**
 * Copies a directory tree of regular files, creating `to` and its
 * subdirectories.
 *
 * @param from The directory to copy.
 * @param to Where the copy goes.
 */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}
