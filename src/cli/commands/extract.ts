import { formatPlatform } from "../../oci/platform.ts";
import { familiarReference, parseReference } from "../../oci/reference.ts";
import { isLayerKind, LAYER_KINDS } from "../../spec/media_types.ts";
import {
  type LayerRequest,
  openLayer,
  writeLayerFile,
} from "../../image/open_layer.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { directoryOf } from "../_output.ts";
import { platformFlag, registryClient } from "./_registry.ts";

/** `extract`: one layer of an image to a file or standard output. */
export const extractCommand: Command = {
  name: "extract",
  summary: "Write one layer of an image (kernel, initramfs, …) to a file",
  usage:
    "extract REF --layer kernel|initramfs|rootfs|disk|squashfs|uki|iso -o FILE|- [--remote] [--platform os/arch]",
  examples: [
    "ironcore-image extract my-os:1.0 --layer kernel -o vmlinuz",
    "ironcore-image extract ghcr.io/org/os:1.0 --remote --platform linux/arm64 --layer initramfs -o - > initrd.img",
  ],
  flags: [
    {
      name: "layer",
      type: "string",
      value: "KIND",
      choices: LAYER_KINDS,
      help: `Layer to write: ${LAYER_KINDS.join(", ")}`,
    },
    {
      name: "output",
      short: "o",
      type: "string",
      value: "FILE",
      help: "File to write, or - for standard output",
    },
    {
      name: "remote",
      type: "boolean",
      help: "Read the image from its registry instead of the local store",
    },
    {
      name: "platform",
      type: "string",
      value: "OS/ARCH",
      help: "Platform of an index (default: the only one, or this machine's)",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const layer = ctx.string("layer");
    if (layer === undefined) {
      throw new UsageError(
        `extract needs --layer: one of ${LAYER_KINDS.join(", ")}`,
      );
    }
    if (!isLayerKind(layer)) {
      throw new UsageError(
        `Unknown layer "${layer}": use one of ${LAYER_KINDS.join(", ")}`,
      );
    }
    const output = ctx.string("output");
    if (output === undefined || output === "") {
      throw new UsageError(
        "extract needs -o FILE, or -o - for standard output",
      );
    }
    const request: LayerRequest = {
      reference: ctx.args.positionals[0]!,
      layer,
    };
    const platform = platformFlag(ctx);
    if (platform) request.platform = platform;
    const options = ctx.operation();
    const source = ctx.bool("remote") ? registryClient(ctx) : await ctx.store();
    const opened = await openLayer(source, request, options);
    if (output === "-") {
      // Streamed as it arrives; the stream errors at the end on a bad
      // digest, which makes the exit code 1.
      await opened.stream.pipeTo(ctx.io.stdout, {
        preventClose: true,
        preventAbort: true,
        ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
      });
      await ctx.endProgress();
      return 0;
    }
    // The layer is written under a made-up name in its directory first.
    ctx.workIn(directoryOf(output));
    await writeLayerFile(
      opened,
      output,
      ctx.io.signal ? { signal: ctx.io.signal } : {},
    );
    await ctx.endProgress();
    const where = opened.platform
      ? ` (${formatPlatform(opened.platform)})`
      : "";
    let name = opened.reference;
    try {
      name = familiarReference(parseReference(name));
    } catch {
      // A digest or digest prefix of a local image.
    }
    await ctx.out(
      `Wrote ${layer} of ${name}${where} to ${output}: ${opened.descriptor.digest}, ${opened.descriptor.size} bytes\n`,
    );
    return 0;
  },
};
