/**
 * Runs garbage collection every so often: the service does (no client needs to be connected),
 * and so does an agent whose engine is in-process. One run at a time; a failed run is logged
 * and the next one tries again.
 */
import type { MetaEngine } from '../meta/types.js';
import type { ObjectStore } from '../store/types.js';
import { formatSize } from '../util/size.js';
import { collectGarbage } from './collector.js';

export function startPeriodicGc(meta: MetaEngine, store: ObjectStore, options: { everyMs: number; graceMs: number; log?: (line: string) => void }): { stop(): void } {
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try {
      const r = await collectGarbage(meta, store, { graceMs: options.graceMs });
      if (r.versionsRemoved || r.objectsDeleted) {
        options.log?.(`garbage collection: ${r.versionsRemoved} metadata versions and ${r.objectsDeleted} objects removed, ${formatSize(r.bytesFreed)} freed`);
      }
    } catch (e) {
      options.log?.(`garbage collection: ${(e as Error).message}`);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void run(), options.everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
