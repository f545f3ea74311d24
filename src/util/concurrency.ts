/**
 * Running async work with bounded concurrency: at most `limit` calls of `fn` in flight.
 * mapLimit takes an array and returns results in input order; forEachAhead takes a stream
 * (a walk of millions of files) and holds at most `ahead` of its items at once.
 */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

/**
 * Calls `fn` on every item of `source`, `limit` at a time, reading the source up to `ahead`
 * items beyond the calls in flight (`seen` is told of each item as it is read: a progress
 * total that grows while the walk goes on). Memory stays bounded by `ahead` however long
 * the source is. The first error (from the source or a call) stops the reading and the
 * starting of calls; the ones in flight finish; then it is thrown.
 */
export async function forEachAhead<T>(source: AsyncIterable<T>, limit: number, ahead: number, fn: (item: T) => Promise<void>, seen?: (item: T) => void): Promise<void> {
  let queue: T[] = [];
  let head = 0;
  let ended = false;
  let failed: { error: unknown } | undefined;
  let waiting: (() => void)[] = [];
  const changed = () => {
    const w = waiting;
    waiting = [];
    for (const f of w) f();
  };
  const change = () => new Promise<void>((resolve) => waiting.push(resolve));
  const fail = (error: unknown) => {
    failed ??= { error };
    changed();
  };
  const reader = (async () => {
    try {
      for await (const item of source) {
        while (queue.length - head >= ahead && !failed) await change();
        if (failed) return;
        seen?.(item);
        queue.push(item);
        changed();
      }
    } catch (e) {
      fail(e);
    } finally {
      ended = true;
      changed();
    }
  })();
  const worker = async () => {
    for (;;) {
      while (queue.length === head && !ended && !failed) await change();
      if (failed || queue.length === head) return;
      const item = queue[head++]!;
      if (head >= 1024 && head * 2 >= queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
      changed();
      try {
        await fn(item);
      } catch (e) {
        fail(e);
        return;
      }
    }
  };
  await Promise.all([reader, ...Array.from({ length: Math.max(1, limit) }, worker)]);
  if (failed) throw failed.error;
}
