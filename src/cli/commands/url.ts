import { isLayerKind, LAYER_KINDS } from "../../spec/media_types.ts";
import type { LayerUrlRequest } from "../../image/layer_url.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { platformFlag, registryClient } from "./_registry.ts";

/** `url`: authenticated URL of a manifest or layer. */
export const urlCommand: Command = {
  name: "url",
  summary:
    "Print the URL and auth headers to fetch a remote image's manifest or layer",
  usage:
    "url REF [--layer kernel|initramfs|rootfs|disk|squashfs|uki|iso] [--platform os/arch]",
  examples: ["ironcore-image url ghcr.io/org/os:1.0 --layer kernel"],
  flags: [
    {
      name: "layer",
      type: "string",
      value: "KIND",
      choices: LAYER_KINDS,
      help: `Layer to point at: ${LAYER_KINDS.join(", ")}`,
    },
    {
      name: "platform",
      type: "string",
      value: "OS/ARCH",
      help: "Platform of an index (default: the only one, or this machine's)",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const request: LayerUrlRequest = { reference: ctx.args.positionals[0]! };
    const layer = ctx.string("layer");
    if (layer !== undefined) {
      if (!isLayerKind(layer)) {
        throw new UsageError(
          `Unknown layer "${layer}": use one of ${LAYER_KINDS.join(", ")}`,
        );
      }
      request.layer = layer;
    }
    const platform = platformFlag(ctx);
    if (platform) request.platform = platform;
    const { layerUrl } = await import("../../image/layer_url.ts");
    const req = await layerUrl(await registryClient(ctx), request, {
      signal: ctx.io.signal,
    });
    await ctx.out(JSON.stringify(req, null, 2) + "\n");
    const scheme = Object.entries(req.headers)
      .find(([name]) => name.toLowerCase() === "authorization")?.[1][0]
      ?.split(" ")[0];
    if (scheme !== undefined) {
      // Printed on purpose, for a boot script to send; said once, apart
      // from the JSON.
      await ctx.err(
        `Warning: the Authorization header carries ${
          scheme.toLowerCase() === "basic"
            ? "your registry password (base64-encoded, not encrypted)"
            : "a registry token, good until it expires"
        }: keep this output out of logs and shared places\n`,
      );
    }
    return 0;
  },
};
