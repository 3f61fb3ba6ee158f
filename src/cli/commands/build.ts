import { parseArchConfig } from "../../build/arch_config.ts";
import type { BuildImageOptions } from "../../build/build_image.ts";
import { familiarReference, parseReference } from "../../oci/reference.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";

function parseAnnotations(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    for (const pair of v.split(",")) {
      const eq = pair.indexOf("=");
      if (eq <= 0) {
        throw new UsageError(
          `Invalid --annotations entry "${pair}": expected key=value`,
        );
      }
      out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return out;
}

/** `build`: files to an image in the store. */
export const buildCommand: Command = {
  name: "build",
  summary: "Build an image from files into the local store",
  usage:
    "build --tag NAME:TAG --config arch=ARCH,kernel=FILE,initramfs=FILE,rootfs=FILE,... [--config ...] [--annotations K=V,...]",
  examples: [
    "ironcore-image build --tag my-os:1.0 --config arch=amd64,variant=metal,kernel=vmlinuz,initramfs=initrd.img,squashfs=root.squashfs,cmdline=cmdline.txt",
  ],
  flags: [
    {
      name: "tag",
      type: "string",
      value: "REF",
      help: "Tag for the index; each arch manifest is tagged REF-<arch>",
    },
    {
      name: "config",
      type: "strings",
      value: "SPEC",
      help:
        "Per-architecture files: arch=,kernel=,initramfs=,rootfs=,disk=,squashfs=,uki=,iso=,cmdline=,variant=metal|virtualization (repeatable)",
    },
    {
      name: "annotations",
      type: "strings",
      value: "K=V,...",
      help: "Annotations on the index (repeatable)",
    },
  ],
  positionals: { min: 0, max: 0, names: "no arguments" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const specs = ctx.strings("config");
    if (specs.length === 0) {
      throw new UsageError(
        "build needs at least one --config arch=…,kernel=…: run ironcore-image build --help",
      );
    }
    let configs;
    try {
      configs = specs.map((s) => parseArchConfig(s, { name: "--config" }));
    } catch (e) {
      if (e instanceof SyntaxError) throw new UsageError(e.message);
      throw e;
    }
    const { buildImage, checkArchConfig } = await import(
      "../../build/build_image.ts"
    );
    const arches = new Set<string>();
    for (const c of configs) {
      if (arches.has(c.arch)) {
        throw new UsageError(
          `Architecture ${c.arch} is configured twice: give one --config per architecture`,
        );
      }
      arches.add(c.arch);
      const problem = checkArchConfig(c);
      if (problem !== undefined) {
        throw new UsageError(`Invalid --config for ${c.arch}: ${problem}`);
      }
    }
    const options: BuildImageOptions = {
      ...ctx.operation(),
      annotations: parseAnnotations(ctx.strings("annotations")),
    };
    const tag = ctx.string("tag");
    if (tag !== undefined) options.tag = tag;
    let result;
    try {
      result = await buildImage(await ctx.store(), configs, options);
    } catch (e) {
      // Every input file was named by a --config.
      if (e instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(`${e.message} in --config`, {
          cause: e,
        });
      }
      throw e;
    }
    await ctx.endProgress();
    for (const m of result.manifests) {
      await ctx.out(
        `Built ${m.arch}: ${m.descriptor.digest}` +
          (m.reference
            ? ` (${familiarReference(parseReference(m.reference))})`
            : "") +
          "\n",
      );
    }
    await ctx.out(
      `Built index: ${result.index.digest}` +
        (result.reference
          ? ` (${familiarReference(parseReference(result.reference))})`
          : "") +
        "\n",
    );
    return 0;
  },
};
