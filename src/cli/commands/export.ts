import { deviceFull, isDeviceFull } from "../../_errors.ts";
import { NotFoundError } from "../../errors.ts";
import { familiarReference, parseReference } from "../../oci/reference.ts";
import type {
  ExportArchiveOptions,
  ExportArchiveResult,
} from "../../archive/export_archive.ts";
import { UsageError } from "../_args.ts";
import { checkPositionals, type Command } from "../_command.ts";
import { directoryOf, formatBytes } from "../_output.ts";

function display(result: ExportArchiveResult, input: string): string {
  if (result.reference === undefined) return input;
  try {
    return familiarReference(parseReference(result.reference));
  } catch {
    return result.reference;
  }
}

/** Writes to a temporary file next to `path`, renamed into place at the end. */
async function exportToFile(
  path: string,
  run: (file: Deno.FsFile) => Promise<ExportArchiveResult>,
): Promise<ExportArchiveResult> {
  const dir = directoryOf(path);
  const base = path.slice(path.lastIndexOf("/") + 1);
  const tmp = `${dir}/.${base}.${crypto.randomUUID()}.tmp`;
  const st = await Deno.stat(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  });
  if (st?.isDirectory) {
    throw new TypeError(
      `Cannot write archive ${path}: it is a directory, give a file name such as ${
        path.replace(/\/+$/, "")
      }/image.tar`,
    );
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NotFoundError(
        `Cannot write archive ${path}: directory ${dir} does not exist, create it first`,
        { path },
      );
    }
    throw e;
  }
  let done = false;
  try {
    const result = await run(file);
    await Deno.rename(tmp, path);
    done = true;
    return result;
  } catch (e) {
    if (isDeviceFull(e)) throw deviceFull("archive", path, e);
    throw e;
  } finally {
    file.close();
    if (!done) await Deno.remove(tmp).catch(() => {});
  }
}

/** `export`: an image from the store as an OCI archive. */
export const exportCommand: Command = {
  name: "export",
  summary: "Write an image from the local store as an OCI archive (tar)",
  usage: "export REF -o FILE|- [--name NAME]",
  examples: [
    "ironcore-image export my-os:1.0 -o my-os.tar",
    "ironcore-image export my-os:1.0 -o - | ssh host ironcore-image import -",
    "skopeo copy oci-archive:my-os.tar docker://registry.example.com/os/my-os:1.0",
  ],
  flags: [
    {
      name: "output",
      short: "o",
      type: "string",
      value: "FILE",
      help: "Archive to write, or - for standard output",
    },
    {
      name: "name",
      type: "string",
      value: "NAME",
      help:
        "Name in the archive's index.json (org.opencontainers.image.ref.name); default the full reference",
    },
  ],
  positionals: { min: 1, max: 1, names: "one REF" },
  complete: "tags",
  async run(ctx) {
    checkPositionals(this, ctx);
    const output = ctx.string("output");
    if (output === undefined || output === "") {
      throw new UsageError(
        "export needs -o FILE, or -o - for standard output",
      );
    }
    const ref = ctx.args.positionals[0]!;
    const options: Omit<ExportArchiveOptions, "writable"> = ctx.operation();
    const name = ctx.string("name");
    if (name !== undefined) options.name = name;
    const { exportArchive } = await import("../../archive/export_archive.ts");
    const store = await ctx.store();
    if (output === "-") {
      const writer = ctx.io.stdoutWriter;
      const result = await exportArchive(
        store,
        ref,
        writer
          ? { ...options, writer }
          : { ...options, writable: ctx.io.stdout, preventClose: true },
      );
      await ctx.endProgress();
      await ctx.err(
        `Exported ${
          display(result, ref)
        }: ${result.descriptor.digest}, ${result.blobs} blobs, ${
          formatBytes(result.bytes)
        }\n`,
      );
      return 0;
    }
    // The archive is written under a made-up name in its directory first.
    ctx.workIn(directoryOf(output));
    const result = await exportToFile(
      output,
      (writer) => exportArchive(store, ref, { ...options, writer }),
    );
    await ctx.endProgress();
    await ctx.out(
      `Exported ${
        display(result, ref)
      } to ${output}: ${result.descriptor.digest}, ${result.blobs} blobs, ${
        formatBytes(result.bytes)
      }\n`,
    );
    return 0;
  },
};
