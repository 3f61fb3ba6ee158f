import { NotFoundError } from "../../errors.ts";
import {
  importArchive,
  type ImportArchiveOptions,
} from "../../archive/import_archive.ts";
import { specialKind } from "../../_files.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { familiar } from "../_output.ts";

async function openArchive(path: string): Promise<ReadableStream<Uint8Array>> {
  // Told before the open: opening a FIFO waits for a writer, without end
  // when there is none, and a device never ends.
  let kind: string | undefined;
  try {
    kind = specialKind(await Deno.stat(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NotFoundError(
        `Cannot read archive ${path}: no such file, check the path`,
        { path },
      );
    }
    throw e;
  }
  if (kind === "a FIFO (named pipe)") {
    throw new TypeError(
      `Cannot read archive ${path}: it is ${kind}; to import a stream, give - and redirect it: ironcore-image import - < ${path}`,
    );
  }
  if (kind !== undefined) {
    throw new TypeError(
      `Cannot read archive ${path}: it is ${kind}, give a tar file (or - for standard input)`,
    );
  }
  const file = await Deno.open(path, { read: true });
  // Closed when the stream ends or is cancelled.
  return file.readable;
}

/** `import`: an OCI archive into the store. */
export const importCommand: Command = {
  name: "import",
  summary: "Import an OCI archive (tar) into the local store",
  usage: "import FILE|- [--tag TAG] [--json]",
  examples: [
    "ironcore-image import my-os.tar",
    "ironcore-image import my-os.tar --tag registry.example.com/os/my-os:1.0",
    "skopeo copy docker://registry.example.com/os/my-os:1.0 oci-archive:/dev/stdout | ironcore-image import - --tag my-os:1.0",
  ],
  flags: [
    {
      name: "tag",
      type: "string",
      value: "TAG",
      help:
        "Tag for the archive's image (default: the full reference named in the archive)",
    },
    jsonFlag("Print JSON: {images: [{reference, digest, mediaType, size}], …}"),
  ],
  positionals: { min: 1, max: 1, names: "one FILE, or - for standard input" },
  complete: "files",
  async run(ctx) {
    checkPositionals(this, ctx);
    const path = ctx.args.positionals[0]!;
    const options: ImportArchiveOptions = ctx.operation();
    const tag = ctx.string("tag");
    if (tag !== undefined) options.tag = tag;
    const store = await ctx.store();
    let source: ReadableStream<Uint8Array>;
    if (path === "-") {
      if (!ctx.io.stdin) {
        throw new UsageError(
          "Standard input is not available: give the archive as a FILE",
        );
      }
      source = ctx.io.stdin;
    } else {
      source = await openArchive(path);
    }
    const result = await importArchive(store, source, options);
    await ctx.endProgress();
    const json = {
      images: result.images.map((i) => ({
        reference: i.reference,
        digest: i.descriptor.digest,
        mediaType: i.descriptor.mediaType,
        size: i.descriptor.size,
      })),
      ingested: result.ingested,
      skipped: result.skipped,
      bytes: result.bytes,
    };
    if (await ctx.printJson(json)) return 0;
    for (const image of result.images) {
      await ctx.out(
        `Imported ${familiar(image.reference)}: ${image.descriptor.digest}\n`,
      );
    }
    return 0;
  },
};
