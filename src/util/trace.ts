/**
 * LUCID_TRACE timing: `traced` logs `trace WHAT at START took MS ms` when the promise
 * settles (fulfilled or not); without a trace sink it only runs (`what` is not even built). It never changes the
 * promise's outcome.
 */
export type TraceSink = ((line: string) => void) | undefined;

export function traced<T>(trace: TraceSink, what: () => string, run: () => Promise<T>): Promise<T> {
  if (!trace) return run();
  const start = performance.now();
  const p = run();
  void p.finally(() => trace(`trace ${what()} at ${start.toFixed(1)} took ${(performance.now() - start).toFixed(1)} ms`)).catch(() => {});
  return p;
}
