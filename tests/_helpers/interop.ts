/**
 * Shared pieces of the interoperability tests: one set of input files that
 * covers every layer kind both ironcore-image implementations know, the
 * `--config` arguments that build them, and checks on JSON and fetched bytes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import { REPO_ROOT } from "./cli.ts";
import { writeFiles } from "./fixtures.ts";

/** The sample files of the demo, checked in under `tests/testdata/sample`. */
export const SAMPLE_DIR = `${REPO_ROOT}/tests/testdata/sample`;

/** A layer kind of the Go tool (ours also knows `disk`). */
export type GoLayerKind =
  | "kernel"
  | "initramfs"
  | "squashfs"
  | "rootfs"
  | "uki"
  | "iso";

/** Input files of a two-architecture image, with every layer kind. */
export interface ImageInputs {
  /** `--config` values, the same for both tools. */
  configs: string[];
  /** The file of each layer kind, by architecture. */
  files: {
    amd64: Partial<Record<GoLayerKind, string>>;
    arm64: Partial<Record<GoLayerKind, string>>;
  };
  /** The command line file of amd64 (arm64 has none). */
  cmdline: string;
  /** `build` arguments: `--config` for each architecture. */
  buildArgs: string[];
}

/**
 * Writes input files into `dir`: amd64 boots kernel, initramfs and squashfs
 * (the demo's sample files) with a command line; arm64 carries the same
 * kernel, a rootfs, a UKI and an ISO, without a command line.
 *
 * @param dir An existing directory.
 * @returns The files and the `build` arguments naming them.
 *
 * @example Build with both tools
 * ```ts ignore
 * const inputs = await writeImageInputs(dir);
 * await runCliProcess(["build", "--tag", ref, ...inputs.buildArgs]);
 * ```
 */
export async function writeImageInputs(dir: string): Promise<ImageInputs> {
  const extra = await writeFiles(dir, {
    "rootfs.img": random(40_000),
    "os.efi": random(30_000),
    "os.iso": random(50_000),
  });
  const amd64 = {
    kernel: `${SAMPLE_DIR}/vmlinuz`,
    initramfs: `${SAMPLE_DIR}/initramfs.img`,
    squashfs: `${SAMPLE_DIR}/root.squashfs`,
  };
  const arm64 = {
    kernel: `${SAMPLE_DIR}/vmlinuz`,
    rootfs: extra["rootfs.img"],
    uki: extra["os.efi"],
    iso: extra["os.iso"],
  };
  const cmdline = `${SAMPLE_DIR}/cmdline`;
  const configs = [
    `arch=amd64,${pairs(amd64)},cmdline=${cmdline}`,
    `arch=arm64,${pairs(arm64)}`,
  ];
  return {
    configs,
    files: { amd64, arm64 },
    cmdline,
    buildArgs: configs.flatMap((c) => ["--config", c]),
  };
}

function pairs(files: Record<string, string>): string {
  return Object.entries(files).map(([k, v]) => `${k}=${v}`).join(",");
}

function random(n: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(n));
}

/**
 * Asserts that `actual` holds everything `expected` holds: every key of an
 * object with a matching value, arrays element by element and of the same
 * length. `actual` may have more keys, so a superset of a JSON document a
 * script reads passes.
 *
 * @param actual The document that must contain the other.
 * @param expected The document whose every field must be found.
 * @param path Where in the document the check is, for the message.
 *
 * @example
 * ```ts ignore
 * assertContains({ a: 1, b: { c: 2, d: 3 } }, { b: { c: 2 } });
 * ```
 */
export function assertContains(
  actual: unknown,
  expected: unknown,
  path = "$",
): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: not an array`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertContains(actual[i], e, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === "object") {
    assert.ok(
      actual !== null && typeof actual === "object" && !Array.isArray(actual),
      `${path}: not an object`,
    );
    for (const [key, value] of Object.entries(expected)) {
      assert.ok(key in actual, `${path}.${key}: missing`);
      assertContains(
        (actual as Record<string, unknown>)[key],
        value,
        `${path}.${key}`,
      );
    }
  } else {
    assert.equal(actual, expected, path);
  }
}

/** The `url` command's JSON, as both tools print it. */
export interface UrlJson {
  /** Where to fetch. */
  url: string;
  /** Headers to send, each with a list of values; may be absent. */
  headers?: Record<string, string[]>;
}

/**
 * Fetches what a `url` command printed, sending its headers as a plain HTTP
 * client would, following redirects, and returns the body's digest.
 *
 * @param json The printed JSON.
 * @returns The digest of the body.
 *
 * @example
 * ```ts ignore
 * assert.equal(await fetchUrlJson(JSON.parse(stdout)), expectedDigest);
 * ```
 */
export async function fetchUrlJson(json: UrlJson): Promise<string> {
  const headers = new Headers();
  for (const [name, values] of Object.entries(json.headers ?? {})) {
    for (const value of values) headers.append(name, value);
  }
  const res = await fetch(json.url, { headers });
  const body = new Uint8Array(await res.arrayBuffer());
  assert.equal(
    res.status,
    200,
    `GET ${json.url}: ${res.status} ${new TextDecoder().decode(body)}`,
  );
  return digestOf(body);
}

/**
 * The digest of a file's bytes.
 *
 * @param path The file.
 * @returns `sha256:…`.
 *
 * @example
 * ```ts ignore
 * const digest = await fileDigest(`${SAMPLE_DIR}/vmlinuz`);
 * ```
 */
export async function fileDigest(path: string): Promise<string> {
  return digestOf(await Deno.readFile(path));
}

/**
 * Writes a Docker config that logs in to `host` with Basic credentials.
 *
 * @param dir The directory to use as `DOCKER_CONFIG`.
 * @param host The registry host.
 * @param username The user.
 * @param password The password.
 *
 * @example
 * ```ts ignore
 * await writeDockerConfig(`${dir}/docker`, reg.host, reg.username, reg.password);
 * ```
 */
export async function writeDockerConfig(
  dir: string,
  host: string,
  username: string,
  password: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({
      auths: { [host]: { auth: btoa(`${username}:${password}`) } },
    }),
  );
}
