/**
 * Runs async tasks with bounded concurrency; the first failure aborts the
 * rest and is rethrown.
 */

/**
 * Runs `fn` over `items`, at most `limit` at a time.
 *
 * @param items The inputs.
 * @param limit Most tasks at once.
 * @param fn The task.
 * @param signal Aborts scheduling of further tasks.
 */
export async function runPool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal | undefined,
): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      signal?.throwIfAborted();
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { error: e };
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker),
  );
  if (failed) throw failed.error;
}
