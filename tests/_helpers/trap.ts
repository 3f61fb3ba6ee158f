/**
 * A TCP listener on an ephemeral loopback port that counts the connections
 * made to it, to prove that something was never contacted.
 *
 * @module
 */

/** A running trap. */
export interface Trap extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Connections accepted so far. */
  connections(): number;
}

/**
 * Starts a trap. Every connection is counted and closed at once.
 *
 * @returns The trap; dispose of it to stop listening.
 *
 * @example Prove that nothing connected
 * ```ts ignore
 * await using trap = startTrap();
 * // … requests naming trap.host …
 * assert.equal(trap.connections(), 0);
 * ```
 */
export function startTrap(): Trap {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        n++;
        conn.close();
      }
    } catch {
      // Closed.
    }
  })();
  return {
    host: `127.0.0.1:${listener.addr.port}`,
    connections: () => n,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
    },
  };
}
