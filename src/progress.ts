/**
 * Progress reporting shared by every long operation.
 *
 * @module
 */

/** Progress of one blob in a long operation. */
export interface ProgressEvent {
  /** What moves: a file name, layer kind or digest, for display. */
  name: string;
  /** Digest, once known. */
  digest?: string | undefined;
  /** Bytes done so far. */
  done: number;
  /** Total bytes, when known. */
  total?: number | undefined;
  /** `start`, `progress`, `skip` (already present), `done`. */
  phase: "start" | "progress" | "skip" | "done";
}

/** Receives progress events. Must be cheap: it runs on the hot path. */
export type ProgressCallback = (event: ProgressEvent) => void;

/** Options every long operation accepts. */
export interface OperationOptions {
  /** Aborts the operation; partial results are discarded. */
  signal?: AbortSignal | undefined;
  /** Called as bytes move. */
  onProgress?: ProgressCallback | undefined;
}
