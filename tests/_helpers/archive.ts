/**
 * Images and archive files for the OCI archive tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { exportArchive } from "../../src/archive/export_archive.ts";
import { importArchive } from "../../src/archive/import_archive.ts";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { imageFromManifest } from "../../src/spec/image_from_manifest.ts";
import type { Store } from "../../src/store/store.ts";
import { writeFiles } from "./fixtures.ts";

/** A two-architecture image tagged docker.io/library/demo:1. */
export async function demo(
  dir: string,
  store: Store,
  kernel: string | Uint8Array = "kernel bytes",
): Promise<BuildImageResult> {
  const f = await writeFiles(dir, {
    vmlinuz: kernel,
    initrd: "initramfs bytes ".repeat(100),
    cmdline: "console=ttyS0",
  });
  return await buildImage(store, [
    {
      arch: "amd64",
      layers: { kernel: f.vmlinuz, initramfs: f.initrd },
      cmdline: f.cmdline,
    },
    { arch: "arm64", layers: { kernel: f.vmlinuz } },
  ], { tag: "demo:1" });
}

export async function exportToFile(
  store: Store,
  ref: string,
  path: string,
  name?: string,
): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true });
  await exportArchive(store, ref, {
    writable: file.writable,
    ...name ? { name } : {},
  });
}

export async function importFile(
  store: Store,
  path: string,
  options: Parameters<typeof importArchive>[2] = {},
): Promise<Awaited<ReturnType<typeof importArchive>>> {
  const file = await Deno.open(path, { read: true });
  return await importArchive(store, file.readable, options);
}

/** Digest → bytes of every blob under a layout directory. */
export async function blobsOf(layout: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(`${layout}/blobs/sha256`)) {
    const bytes = await Deno.readFile(`${layout}/blobs/sha256/${e.name}`);
    assert.equal(digestOf(bytes), `sha256:${e.name}`, "blob names are honest");
    out.set(e.name, digestOf(bytes));
  }
  return out;
}

/** Resolves every architecture of a tagged index as an IronCore image. */
export async function resolveAll(store: Store, ref: string): Promise<string[]> {
  const { descriptor } = await store.resolve(ref);
  const top = await store.readManifest(descriptor);
  assert.equal(top.kind, "index");
  if (top.kind !== "index") return [];
  const kinds: string[] = [];
  for (const m of top.index.manifests) {
    const child = await store.readManifest(m);
    assert.equal(child.kind, "manifest");
    if (child.kind !== "manifest") continue;
    const image = imageFromManifest(
      child.manifest,
      await store.readBlob(child.manifest.config),
    );
    kinds.push(
      `${m.platform?.architecture}:${image.kernel ? "kernel" : ""}${
        image.initramfs ? "+initramfs" : ""
      }`,
    );
  }
  return kinds;
}
