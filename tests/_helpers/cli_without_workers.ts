/**
 * The CLI in a process where no `Worker` can be constructed, as in a runtime
 * without workers: downloads that would be hashed on a worker thread must
 * hash on the main thread instead. Run it like `cli.ts`.
 *
 * @module
 */

import { main } from "../../cli.ts";

class NoWorker {
  constructor() {
    throw new TypeError("Workers are not available in this process");
  }
}

globalThis.Worker = NoWorker as unknown as typeof Worker;
Deno.exitCode = await main(Deno.args);
