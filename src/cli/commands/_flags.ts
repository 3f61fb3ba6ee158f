/** Flags whose values are numbers: counts within bounds, and durations. */

import { UsageError } from "../_args.ts";
import type { CommandContext } from "../_command.ts";

/** Parses a whole-number flag within bounds, or gives its default. */
export function countFlag(
  ctx: CommandContext,
  name: string,
  range: { min: number; max: number; fallback: number },
): number {
  const v = ctx.string(name);
  if (v === undefined) return range.fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < range.min || n > range.max) {
    throw new UsageError(
      `Flag --${name} takes a number from ${range.min} to ${range.max}, got "${v}"`,
    );
  }
  return n;
}

/**
 * Parses a duration flag: `500ms`, `90s`, `10m`, `2h`, `1d`, or a number of
 * seconds; or gives its default.
 *
 * @returns Milliseconds.
 */
export function durationFlag(
  ctx: CommandContext,
  name: string,
  fallback: number,
): number {
  const text = ctx.string(name);
  if (text === undefined) return fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `Flag --${name} takes a duration such as 90s, 10m or 1h, got "${text}"`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] ?? "s"
  ]!;
  return Math.round(Number(m[1]) * unit);
}
