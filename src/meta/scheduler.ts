/**
 * Runs snapshot schedules: every tick, asks the engine to take the snapshots that are due and
 * drop the ones past each schedule's `keep`. The service runs it (so schedules fire with no
 * client connected), and so does an agent whose engine is in-process. Several instances over
 * one database may run it at once: the engine takes each due snapshot once.
 */
import type { MetaEngine } from './types.js';

export function startScheduler(engine: MetaEngine, options: { tickMs?: number; log?: (line: string) => void } = {}): { stop(): void } {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      for (const s of await engine.runSchedules(Date.now())) options.log?.(`scheduled snapshot ${s.id} "${s.name}" (schedule ${s.schedule})`);
    } catch (e) {
      options.log?.(`snapshot schedules: ${(e as Error).message}`);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), options.tickMs ?? 10_000);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer) };
}
