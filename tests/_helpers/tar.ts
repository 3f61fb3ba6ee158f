/**
 * Raw tar construction for the tar reader tests and for hostile archives
 * that the writer refuses to make, and reading archives back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TarReader } from "../../src/archive/_tar_reader.ts";

const encoder = new TextEncoder();

export function octal(
  block: Uint8Array,
  at: number,
  len: number,
  n: number,
): void {
  block.set(encoder.encode(n.toString(8).padStart(len - 1, "0")), at);
}

export function checksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
}

/** One raw ustar header, for entries our writer refuses to make. */
export function header(
  name: string,
  options: { type?: string; size?: number; link?: string } = {},
): Uint8Array {
  const block = new Uint8Array(512);
  block.set(encoder.encode(name).subarray(0, 100), 0);
  octal(block, 100, 8, 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, options.size ?? 0);
  octal(block, 136, 12, 0);
  block[156] = (options.type ?? "0").charCodeAt(0);
  block.set(encoder.encode(options.link ?? ""), 157);
  block.set(encoder.encode("ustar\x0000"), 257);
  checksum(block);
  return block;
}

export function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A regular-file entry: header, data, padding. */
export function fileEntry(name: string, data: Uint8Array): Uint8Array {
  return concat([header(name, { size: data.length }), padded(data)]);
}

/** The end-of-archive marker: two zero blocks. */
export const END: Uint8Array = new Uint8Array(1024);

export async function tarEntries(
  path: string,
): Promise<Map<string, Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  const tar = new TarReader(file.readable);
  const out = new Map<string, Uint8Array>();
  for (let e = await tar.next(); e !== null; e = await tar.next()) {
    if (e.type === "file") out.set(e.name, await tar.readAll(1 << 26));
  }
  await tar.cancel();
  return out;
}

export async function tarEntry(
  path: string,
  name: string,
): Promise<Uint8Array> {
  const data = (await tarEntries(path)).get(name);
  assert.ok(data, `${name} in ${path}`);
  return data;
}

export async function writeTar(
  path: string,
  entries: Map<string, Uint8Array>,
): Promise<void> {
  const parts: Uint8Array[] = [];
  for (const [name, data] of entries) parts.push(fileEntry(name, data));
  parts.push(END);
  await Deno.writeFile(path, concat(parts));
}
