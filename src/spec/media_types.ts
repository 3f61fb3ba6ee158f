/**
 * IronCore media types: the config blob and one layer type per OS artifact,
 * plus the legacy `v1alpha1` types that are still read.
 *
 * @module
 */

/** Media type of the IronCore image config blob (`{"commandLine": "…"}`). */
export const CONFIG_MEDIA_TYPE =
  "application/vnd.ironcore.image.config.v1+json";
/** Legacy media type of the config blob; read, never written. */
export const LEGACY_CONFIG_MEDIA_TYPE =
  "application/vnd.ironcore.image.config.v1alpha1+json";

/** The kinds of layer an IronCore image can carry, one of each at most. */
export type LayerKind =
  | "kernel"
  | "initramfs"
  | "rootfs"
  | "disk"
  | "squashfs"
  | "uki"
  | "iso";

/** Every layer kind, in the order layers are written into a manifest. */
export const LAYER_KINDS: readonly LayerKind[] = [
  "rootfs",
  "disk",
  "squashfs",
  "initramfs",
  "kernel",
  "uki",
  "iso",
];

/** Current media type of each layer kind. */
export const LAYER_MEDIA_TYPES: Readonly<Record<LayerKind, string>> = {
  rootfs: "application/vnd.ironcore.image.rootfs",
  disk: "application/vnd.ironcore.image.disk.img",
  initramfs: "application/vnd.ironcore.image.initramfs",
  kernel: "application/vnd.ironcore.image.kernel",
  squashfs: "application/vnd.ironcore.image.squashfs",
  uki: "application/vnd.ironcore.image.uki",
  iso: "application/vnd.ironcore.image.iso",
};

/** Legacy `v1alpha1` media types, read but never written. */
export const LEGACY_LAYER_MEDIA_TYPES: Readonly<
  Partial<Record<LayerKind, string>>
> = {
  rootfs: "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs",
  initramfs: "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs",
  kernel: "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz",
  squashfs: "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs",
};

/** Annotation naming the boot variant of a per-architecture manifest. */
export const ANNOTATION_VARIANT = "variant";

/** Boot variants: bare-metal boot, or a virtual machine. */
export type Variant = "metal" | "virtualization";

/** Every variant. */
export const VARIANTS: readonly Variant[] = ["metal", "virtualization"];

/**
 * Finds the layer kind of a media type, current or legacy.
 *
 * @param mediaType A layer's media type.
 * @returns The kind and whether the type is legacy, or `undefined` when unknown.
 *
 * @example Name the layer of a media type
 * ```ts
 * import { layerKindOf } from "@ironcore/image/spec";
 * layerKindOf("application/vnd.ironcore.image.kernel"); // { kind: "kernel", legacy: false }
 * ```
 */
export function layerKindOf(
  mediaType: string,
): { kind: LayerKind; legacy: boolean } | undefined {
  for (const kind of LAYER_KINDS) {
    if (LAYER_MEDIA_TYPES[kind] === mediaType) return { kind, legacy: false };
    if (LEGACY_LAYER_MEDIA_TYPES[kind] === mediaType) {
      return { kind, legacy: true };
    }
  }
  return undefined;
}

/**
 * Tells whether a string names a layer kind.
 *
 * @param value The string, e.g. a layer name a user typed.
 * @returns `true` for `kernel`, `initramfs`, `rootfs`, `disk`, `squashfs`, `uki`, `iso`.
 *
 * @example Check a layer name
 * ```ts
 * import { isLayerKind } from "@ironcore/image/spec";
 * isLayerKind("kernel"); // true
 * ```
 */
export function isLayerKind(value: string): value is LayerKind {
  return (LAYER_KINDS as readonly string[]).includes(value);
}
