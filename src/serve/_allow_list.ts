/**
 * Which images a boot server serves: whole registries (`ghcr.io`), or
 * repository prefixes in one (`ghcr.io/org`), matched on whole path
 * segments against the normalised reference, so `ghcr.io/org` allows
 * `ghcr.io/org/os` but not `ghcr.io/organisation/os`, and `ubuntu` is
 * checked as `docker.io/library/ubuntu`.
 */

import {
  formatReference,
  parseReference,
  type Reference,
} from "../oci/reference.ts";

interface Entry {
  /** Lowercase registry, as references normalise it. */
  registry: string;
  /** Repository prefix; empty for the whole registry. */
  prefix: string;
}

const FORM =
  "use a registry such as ghcr.io or localhost:5000, optionally followed by a lowercase repository prefix such as /org/os";

function parseEntry(text: string): Entry {
  const bad = (why: string) =>
    new TypeError(`Invalid allow-list entry ${JSON.stringify(text)}: ${why}`);
  const raw = text.trim().replace(/\/+$/, "");
  const slash = raw.indexOf("/");
  const path = slash < 0 ? "" : raw.slice(slash + 1);
  if (raw.includes("@") || path.includes(":")) {
    throw bad("give a registry or a repository prefix, without tag or digest");
  }
  let ref: Reference;
  try {
    // Two components more keep the registry and path rules of references,
    // without Docker Hub's "library/" for one-component names: an entry is
    // a prefix, not an image.
    ref = parseReference(`${raw}/x/y`, { defaultTag: false });
  } catch {
    throw bad(FORM);
  }
  const parts = ref.repository.split("/");
  if (parts.length !== raw.split("/").length + 1) {
    throw bad(
      `it names no registry: start it with one, e.g. ghcr.io/${raw} or docker.io/library/${raw}`,
    );
  }
  return {
    registry: ref.registry.toLowerCase(),
    prefix: parts.slice(0, -2).join("/"),
  };
}

/** The registries and repository prefixes a boot server serves. */
export class AllowList {
  readonly #entries: Entry[];

  /**
   * @param entries Registries or `registry/prefix` entries.
   * @throws {TypeError} When the list is empty or an entry is malformed.
   */
  constructor(entries: readonly string[]) {
    if (entries.length === 0) {
      throw new TypeError(
        "The allow-list is empty: list the registries or repository prefixes to serve, or leave it out to serve every image",
      );
    }
    this.#entries = entries.map(parseEntry);
  }

  /**
   * Tells whether a parsed reference may be served.
   *
   * @param ref The reference of a request.
   * @returns `true` when an entry covers its registry and repository.
   */
  allows(ref: Reference): boolean {
    const registry = ref.registry.toLowerCase();
    return this.#entries.some((e) =>
      e.registry === registry &&
      (e.prefix === "" || ref.repository === e.prefix ||
        ref.repository.startsWith(`${e.prefix}/`))
    );
  }

  /**
   * The one-line reason a reference is refused, naming what is served.
   *
   * @param ref The refused reference.
   * @returns The message.
   */
  refusal(ref: Reference): string {
    return `Image ${
      formatReference(ref)
    } is not served here: this server serves only images under ${this.toString()}`;
  }

  /** The entries as given, normalised: `ghcr.io, ghcr.io/org/`. */
  toString(): string {
    return this.#entries.map((e) =>
      e.prefix === "" ? e.registry : `${e.registry}/${e.prefix}/`
    ).join(", ");
  }
}
