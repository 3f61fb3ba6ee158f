/**
 * Renders progress events: on a terminal, one line per blob (bytes, rate,
 * ETA) and a total, redrawn at most ten times a second; elsewhere, a single
 * summary line at the end.
 */

import type { ProgressEvent } from "../progress.ts";
import { formatBytes, formatDuration } from "./_output.ts";

interface Row {
  name: string;
  done: number;
  /** Bytes already there when it started (a resumed download's offset). */
  first: number;
  total: number | undefined;
  state: ProgressEvent["phase"];
  started: number;
}

/** Collects progress and draws it to a text sink. */
export class ProgressView {
  readonly #write: (text: string) => void;
  readonly #terminal: boolean;
  readonly #rows = new Map<string, Row>();
  readonly #started = performance.now();
  #drawn = 0;
  #last = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(write: (text: string) => void, terminal: boolean) {
    this.#write = write;
    this.#terminal = terminal;
  }

  /** Progress callback; cheap on the hot path. */
  readonly update = (e: ProgressEvent): void => {
    let row = this.#rows.get(e.name);
    if (!row) {
      row = {
        name: e.name,
        done: 0,
        first: e.phase === "start" ? e.done : 0,
        total: e.total,
        state: e.phase,
        started: performance.now(),
      };
      this.#rows.set(e.name, row);
    }
    row.done = e.done;
    if (e.total !== undefined) row.total = e.total;
    row.state = e.phase;
    if (!this.#terminal) return;
    const now = performance.now();
    if (now - this.#last >= 100 || e.phase !== "progress") {
      this.#draw(now);
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#draw(performance.now());
      }, 100);
    }
  };

  #line(row: Row, now: number): string {
    const secs = (now - row.started) / 1000;
    const rate = secs > 0 ? (row.done - row.first) / secs : 0;
    const total = row.total ?? 0;
    const pct = total > 0 ? Math.floor((row.done / total) * 100) : 100;
    const status = row.state === "skip"
      ? "exists"
      : row.state === "done"
      ? "done"
      : `${pct}%  ${formatBytes(rate)}/s  eta ${
        formatDuration(rate > 0 ? (total - row.done) / rate : Infinity)
      }`;
    return `${row.name.padEnd(24)} ${formatBytes(row.done).padStart(10)} / ${
      formatBytes(total).padEnd(10)
    } ${status}`;
  }

  #draw(now: number): void {
    this.#last = now;
    let done = 0;
    let total = 0;
    const lines: string[] = [];
    for (const row of this.#rows.values()) {
      lines.push(this.#line(row, now));
      done += row.done;
      total += row.total ?? 0;
    }
    const secs = (now - this.#started) / 1000;
    lines.push(
      `${"total".padEnd(24)} ${formatBytes(done).padStart(10)} / ${
        formatBytes(total).padEnd(10)
      } ${formatBytes(secs > 0 ? done / secs : 0)}/s`,
    );
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    this.#write(up + lines.map((l) => `\r\x1b[2K${l}`).join("\n") + "\n");
    this.#drawn = lines.length;
  }

  /** Final redraw on a terminal; a one-line summary elsewhere. */
  finish(verb: string): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#rows.size === 0) return;
    const now = performance.now();
    if (this.#terminal) {
      this.#draw(now);
      return;
    }
    // What this run moved: not the blobs that were there, nor the bytes a
    // resumed download already had.
    let bytes = 0;
    let skipped = 0;
    for (const r of this.#rows.values()) {
      if (r.state === "skip") skipped++;
      else bytes += Math.max(0, r.done - r.first);
    }
    const secs = (now - this.#started) / 1000;
    this.#write(
      `${verb} ${this.#rows.size - skipped} blob(s), ${formatBytes(bytes)} in ${
        formatDuration(secs)
      }` +
        (skipped ? `, ${skipped} already present` : "") + "\n",
    );
  }
}
