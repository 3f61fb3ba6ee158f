/**
 * Where the blobs of a store were last seen in registries: `.sources.json`
 * beside the layout, a hint for cross-repository mounts. A push to a new
 * repository asks the registry to link a blob from a repository that has
 * it instead of uploading its bytes again; pull, push and copy note where
 * each blob came from or went.
 *
 * The file belongs to this library, not to the OCI layout: other tools
 * ignore it, and losing it costs only the mounts. It holds at most
 * {@linkcode MAX_SOURCES} locations (the oldest go first), is replaced
 * atomically (written aside, then renamed) under the store's lock, and a
 * damaged or foreign file reads as empty.
 *
 * @module
 */

import { type Digest, isDigest } from "../oci/digest.ts";
import { parseReference } from "../oci/reference.ts";
import { join } from "./_blob_store.ts";

/** The file's name in the store directory. */
export const SOURCES_FILE = ".sources.json";
/** Most locations kept, over all blobs. */
export const MAX_SOURCES = 4096;
/** Most locations kept for one blob. */
const MAX_PER_BLOB = 4;
/** Largest file read; a larger one is treated as damaged. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/** A repository in a registry where a blob was seen. */
export interface BlobSource {
  /** Registry host as in the reference, e.g. `registry.example.com:5000`. */
  registry: string;
  /** Repository path, e.g. `os/demo`. */
  repository: string;
}

/** A blob seen in a repository. */
export interface BlobSighting extends BlobSource {
  /** The blob's digest. */
  digest: Digest;
}

/** What {@linkcode BlobSources} needs of its store. */
export interface BlobSourcesStore {
  /** Creates the layout (and the temporary directory) on the first write. */
  prepare: () => Promise<void>;
  /** A fresh path in the store's temporary directory. */
  tempPath: () => string;
  /** Runs a function under the store's exclusive lock. */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** One location: registry, repository, when it was seen (ms since epoch). */
type Row = [string, string, number];

/** Tells whether a registry and repository form a valid reference. */
function validSource(registry: unknown, repository: unknown): boolean {
  if (typeof registry !== "string" || typeof repository !== "string") {
    return false;
  }
  try {
    const ref = parseReference(`${registry}/${repository}`);
    return ref.registry === registry && ref.repository === repository;
  } catch {
    return false;
  }
}

/** The file's content, with every row checked; anything else is dropped. */
function parse(text: string): Map<Digest, Row[]> {
  const out = new Map<Digest, Row[]>();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return out;
  }
  const sources = json as { version?: unknown; sources?: unknown } | null;
  if (
    sources?.version !== 1 || typeof sources.sources !== "object" ||
    sources.sources === null
  ) {
    return out;
  }
  for (const [digest, rows] of Object.entries(sources.sources)) {
    if (!isDigest(digest) || !Array.isArray(rows)) continue;
    const good = rows.filter((r): r is Row =>
      Array.isArray(r) && r.length === 3 && validSource(r[0], r[1]) &&
      Number.isSafeInteger(r[2])
    );
    if (good.length > 0) out.set(digest, good.slice(0, MAX_PER_BLOB));
  }
  return out;
}

/** The newest rows: at most {@linkcode MAX_SOURCES} over all blobs. */
function bound(table: Map<Digest, Row[]>): Map<Digest, Row[]> {
  const all = [...table].flatMap(([digest, rows]) =>
    rows.map((row) => ({ digest, row }))
  );
  if (all.length <= MAX_SOURCES) return table;
  all.sort((a, b) => b.row[2] - a.row[2]);
  const out = new Map<Digest, Row[]>();
  for (const { digest, row } of all.slice(0, MAX_SOURCES)) {
    const rows = out.get(digest);
    if (rows) rows.push(row);
    else out.set(digest, [row]);
  }
  return out;
}

/** The `.sources.json` of a store. */
export class BlobSources {
  readonly #path: string;
  readonly #store: BlobSourcesStore;

  /**
   * @param dir The store directory.
   * @param store What the file needs of its store.
   */
  constructor(dir: string, store: BlobSourcesStore) {
    this.#path = join(dir, SOURCES_FILE);
    this.#store = store;
  }

  async #read(): Promise<Map<Digest, Row[]>> {
    try {
      using file = await Deno.open(this.#path, { read: true });
      if ((await file.stat()).size > MAX_FILE_BYTES) return new Map();
      return parse(await new Response(file.readable).text());
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return new Map();
      throw e;
    }
  }

  /**
   * Where blobs were seen in one registry, newest first.
   *
   * @param digests The blobs.
   * @param registry The registry host.
   * @returns The repositories of that registry for each blob that has any.
   */
  async find(
    digests: Iterable<Digest>,
    registry: string,
  ): Promise<Map<Digest, string[]>> {
    const table = await this.#read();
    const out = new Map<Digest, string[]>();
    for (const digest of digests) {
      const repos = (table.get(digest) ?? [])
        .filter((r) => r[0] === registry)
        .map((r) => r[1]);
      if (repos.length > 0) out.set(digest, repos);
    }
    return out;
  }

  /**
   * Notes where blobs were seen now, keeping the newest locations. Written
   * under the store's lock, so concurrent writers lose nothing. A failure
   * to write is ignored: the file is a hint, and the operation that saw
   * the blobs has done its work.
   *
   * @param sightings The blobs and their repositories.
   */
  async record(sightings: readonly BlobSighting[]): Promise<void> {
    const now = Date.now();
    const fresh = sightings.filter((s) =>
      validSource(s.registry, s.repository)
    );
    if (fresh.length === 0) return;
    await this.#write(fresh, now).catch(() => {});
  }

  async #write(fresh: readonly BlobSighting[], now: number): Promise<void> {
    await this.#store.prepare();
    await this.#store.exclusive(async () => {
      const table = await this.#read();
      for (const s of fresh) {
        const rows = (table.get(s.digest) ?? []).filter((r) =>
          r[0] !== s.registry || r[1] !== s.repository
        );
        table.set(
          s.digest,
          [[s.registry, s.repository, now] as Row, ...rows].slice(
            0,
            MAX_PER_BLOB,
          ),
        );
      }
      const sources: Record<string, Row[]> = {};
      for (const [digest, rows] of bound(table)) sources[digest] = rows;
      // A hint, not data: written aside and renamed, never flushed.
      const tmp = this.#store.tempPath();
      try {
        await Deno.writeTextFile(tmp, JSON.stringify({ version: 1, sources }));
        await Deno.rename(tmp, this.#path);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
    });
  }
}
