/**
 * IronCore OS images as OCI artifacts: build them from files into a local
 * OCI image layout, resolve them into typed IronCore images, and move them
 * between the store and OCI registries.
 *
 * An IronCore image is an OCI index with one image manifest per
 * architecture. Each manifest carries a small JSON config
 * (`{"commandLine": "…"}`) and one layer per artifact the operating system
 * provides: kernel, initramfs, root file system (raw `rootfs`, `disk` image or
 * `squashfs`), a unified kernel image (`uki`) or an `iso`. The media types are
 * listed in {@linkcode LAYER_MEDIA_TYPES}; `OCI-SPEC.md` describes the format.
 *
 * The local store ({@linkcode Store}) is a plain OCI image layout that other
 * OCI tools read. Blobs are streamed and hashed in one pass, verified before
 * they become visible, and `index.json` changes atomically under a file lock.
 *
 * @example Build an image and resolve it
 * ```ts
 * import { build, resolveImage, Store } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vmlinuz`, "kernel bytes");
 * const store = await Store.open(`${dir}/store`);
 * const result = await build(store, [
 *   { arch: "amd64", layers: { kernel: `${dir}/vmlinuz` } },
 * ], { tag: "example.com/os:1.0" });
 * const manifest = await store.readManifest(result.manifests[0]!.descriptor);
 * if (manifest.kind === "manifest") {
 *   const config = await store.readBlob(manifest.manifest.config);
 *   const image = resolveImage(manifest.manifest, config);
 *   console.log(image.kernel?.size); // 12
 * }
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/progress.ts";
export * from "./src/oci/digest.ts";
export * from "./src/oci/digest_verifier.ts";
export * from "./src/oci/manifest.ts";
export * from "./src/oci/platform.ts";
export * from "./src/oci/reference.ts";
export * from "./src/spec/media_types.ts";
export * from "./src/spec/config.ts";
export * from "./src/spec/image_from_manifest.ts";
export * from "./src/spec/validate_documents.ts";
export * from "./src/store/store.ts";
export * from "./src/store/images.ts";
export * from "./src/build/arch_config.ts";
export * from "./src/build/build_image.ts";
export * from "./src/store/_file_stream.ts";
export * from "./src/registry/_auth.ts";
export * from "./src/registry/credentials.ts";
export * from "./src/registry/client.ts";
export * from "./src/registry/login.ts";
export * from "./src/transfer/push_image.ts";
export * from "./src/transfer/pull_image.ts";
export * from "./src/transfer/copy_image.ts";
export * from "./src/image/layer_url.ts";
export * from "./src/archive/export_archive.ts";
export * from "./src/archive/import_archive.ts";
export * from "./src/image/open_layer.ts";
export * from "./src/image/validate_image.ts";
export * from "./src/store/verify_store.ts";
export * from "./src/store/prune_store.ts";
export * from "./src/store/_partial_blob.ts";
export * from "./src/transfer/pull_cache.ts";
export * from "./src/net/retry.ts";
export * from "./src/serve/boot_handler.ts";
