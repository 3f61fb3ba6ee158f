import { digestHex } from "../../oci/digest.ts";
import {
  familiarReference,
  parseReference,
  type Reference,
} from "../../oci/reference.ts";
import { listImages } from "../../store/images.ts";
import { checkPositionals, type Command, jsonFlag } from "../_command.ts";
import { formatBytes, formatTable } from "../_output.ts";

const familiarRepositories = new Map<string, string>();

function splitReference(full: string): [string, string] {
  // Thousands of tags share few repositories: name each repository once.
  const slash = full.lastIndexOf("/");
  const colon = full.lastIndexOf(":");
  if (!full.includes("@") && colon > slash && slash > 0) {
    const repo = full.slice(0, colon);
    const familiar = familiarRepositories.get(repo);
    if (familiar !== undefined) return [familiar, full.slice(colon + 1)];
    const parsed = parseFull(full);
    if (parsed[1] === full.slice(colon + 1)) {
      familiarRepositories.set(repo, parsed[0]);
    }
    return parsed;
  }
  return parseFull(full);
}

function parseFull(full: string): [string, string] {
  let ref: Reference;
  try {
    ref = parseReference(full, { defaultTag: false });
  } catch {
    // A tag written by another OCI tool need not be a reference.
    return [full, "<none>"];
  }
  const familiar = familiarReference({
    registry: ref.registry,
    repository: ref.repository,
  });
  // A tag stored without `:tag` (as the Go tool may store it) answers to
  // `:latest`: show what resolves.
  return [
    familiar,
    ref.tag ?? (ref.digest === undefined ? "latest" : "<none>"),
  ];
}

/** `list`: the images in the store. */
export const listCommand: Command = {
  name: "list",
  summary: "List the images in the local store",
  usage: "list [--json]",
  flags: [
    jsonFlag(
      "Print JSON: [{reference, repository, tag, digest, mediaType, size}]",
    ),
  ],
  positionals: { min: 0, max: 0, names: "no arguments" },
  async run(ctx) {
    checkPositionals(this, ctx);
    const rows = await listImages(await ctx.store());
    if (ctx.bool("json")) {
      const json = rows.map((r) => {
        const [repository, tag] = r.reference
          ? splitReference(r.reference)
          : ["<none>", "<none>"];
        return {
          reference: r.reference ?? null,
          repository,
          tag,
          digest: r.descriptor.digest,
          mediaType: r.descriptor.mediaType,
          size: r.size,
        };
      });
      await ctx.printJson(json);
      return 0;
    }
    const table = rows.map((r) => {
      const [repository, tag] = r.reference
        ? splitReference(r.reference)
        : ["<none>", "<none>"];
      return [
        repository,
        tag,
        digestHex(r.descriptor.digest).slice(0, 12),
        r.descriptor.mediaType,
        formatBytes(r.size),
      ];
    });
    await ctx.out(
      formatTable(
        ["REPOSITORY", "TAG", "IMAGE ID", "MEDIA TYPE", "SIZE"],
        table,
      ),
    );
    return 0;
  },
};
