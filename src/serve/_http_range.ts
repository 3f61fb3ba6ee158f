/**
 * The `Range` request header (RFC 9110, section 14), one range at a time.
 */

/** What a `Range` header asks of an entity of a given size. */
export type RangeRequest =
  | { kind: "full" }
  | { kind: "partial"; start: number; end: number }
  | { kind: "unsatisfiable" };

/**
 * Parses a `Range` header against the entity size. Only single byte ranges
 * are honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`); a header that is
 * malformed or asks for several ranges is ignored, as RFC 9110 allows, and
 * the whole entity is sent.
 *
 * @param header The header value, or `null`.
 * @param size The entity's size in bytes.
 * @returns The whole entity, one range (`end` exclusive), or unsatisfiable.
 */
export function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { kind: "full" };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: "full" };
  const first = m[1]!;
  const last = m[2]!;
  if (first === "" && last === "") return { kind: "full" };
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "full" };
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size : Math.min(size, Number(last) + 1);
  return { kind: "partial", start, end };
}
