/**
 * OCI archives: a tar of an OCI image layout, the format
 * `skopeo copy … oci-archive:FILE` reads and writes. Export streams an image
 * out of the store; import streams an archive in, verifying every blob and
 * tagging only once everything checks out.
 *
 * @example Copy an image between stores through an archive
 * ```ts
 * import { buildImage, Store } from "@ironcore/image";
 * import { exportArchive, importArchive } from "@ironcore/image/archive";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel");
 * const a = await Store.open(`${dir}/a`);
 * await buildImage(a, [{ arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } }], {
 *   tag: "example.com/os:1.0",
 * });
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const [, result] = await Promise.all([
 *   exportArchive(a, "example.com/os:1.0", { writable }),
 *   importArchive(await Store.open(`${dir}/b`), readable),
 * ]);
 * console.log(result.images[0]!.reference); // "example.com/os:1.0"
 * ```
 *
 * @module
 */

export {
  exportArchive,
  type ExportArchiveOptions,
  type ExportArchiveResult,
} from "./export_archive.ts";
export {
  importArchive,
  type ImportArchiveOptions,
  type ImportArchiveResult,
} from "./import_archive.ts";
export type { ByteWriter } from "../store/_verified_copy.ts";
