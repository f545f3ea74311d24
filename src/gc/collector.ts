/**
 * Snapshot-aware garbage collection: what neither the live tree nor a retained snapshot
 * reaches goes, metadata first, then block objects.
 *
 * 1. Row versions replaced by commits older than the grace period, and shown by no snapshot,
 *    are removed from the metadata (`MetaEngine.pruneVersions`).
 * 2. The store's block objects are listed page by page; of each page, the ids no retained
 *    block ref points at, written before the grace period began, are deleted.
 *
 * Promises: an object a retained ref points at is never deleted; neither is an object written
 * within the grace period (an upload whose commit is on its way: the writer commits within
 * seconds of its put, and puts again after a failed commit), nor one a reader that is a
 * little behind may still be fetching (refs replaced within the grace period are retained).
 * Listing before asking which ids are retained means an object committed meanwhile is
 * either retained or young. `dryRun` reports the same figures and changes nothing. Running
 * twice at once (two service instances) is safe: deletes are idempotent.
 */
import type { MetaEngine } from '../meta/types.js';
import { BLOCK_PREFIX } from '../store/keys.js';
import type { ObjectInfo, ObjectStore } from '../store/types.js';
import { mapLimit } from '../util/concurrency.js';

export const DEFAULT_GRACE_MS = 60 * 60_000;

export interface GcOptions {
  /** Objects written and refs replaced within this long are kept (default 1 h). */
  graceMs?: number;
  dryRun?: boolean;
  /** The clock (tests). */
  nowMs?: number;
  /** Called after the metadata pass and after every page of objects. */
  onProgress?: (p: GcProgress) => void;
  /** Objects listed and checked per round trip. */
  pageSize?: number;
}

export interface GcProgress {
  phase: 'metadata' | 'objects';
  versionsRemoved: number;
  objectsScanned: number;
  objectsDeleted: number;
  bytesFreed: number;
}

export interface GcReport extends GcProgress {
  dryRun: boolean;
  graceMs: number;
  /** Garbage written within the grace period, left for a later run. */
  objectsYoung: number;
  /** Objects a retained ref still points at. */
  objectsRetained: number;
  /** Bytes held by the objects that stay. */
  bytesRetained: number;
  /** Keys under blocks/ that are not block objects: never touched. */
  foreign: number;
  durationMs: number;
}

const OBJECT_KEY = /^blocks\/([0-9a-f]{2})\/([0-9a-f]{32})$/;

export async function collectGarbage(meta: MetaEngine, store: ObjectStore, options: GcOptions = {}): Promise<GcReport> {
  const started = performance.now();
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const dryRun = options.dryRun ?? false;
  const beforeMs = Math.floor((options.nowMs ?? Date.now()) - graceMs);
  const report: GcReport = {
    phase: 'metadata', dryRun, graceMs, versionsRemoved: 0, objectsScanned: 0, objectsDeleted: 0, bytesFreed: 0,
    objectsYoung: 0, objectsRetained: 0, bytesRetained: 0, foreign: 0, durationMs: 0,
  };
  const progress = () => options.onProgress?.({
    phase: report.phase, versionsRemoved: report.versionsRemoved, objectsScanned: report.objectsScanned,
    objectsDeleted: report.objectsDeleted, bytesFreed: report.bytesFreed,
  });

  report.versionsRemoved = (await meta.pruneVersions(beforeMs, { dryRun })).rows;
  progress();

  report.phase = 'objects';
  let cursor: string | undefined;
  do {
    const page = await store.list(BLOCK_PREFIX, { cursor, limit: options.pageSize ?? 1000 });
    cursor = page.cursor;
    const objects: { id: string; info: ObjectInfo }[] = [];
    for (const info of page.items) {
      const m = OBJECT_KEY.exec(info.key);
      if (m && m[2].startsWith(m[1])) objects.push({ id: m[2], info });
      else report.foreign++;
    }
    report.objectsScanned += objects.length;
    const retained = new Set(await meta.retainedObjects(objects.map((o) => o.id), beforeMs));
    const garbage: ObjectInfo[] = [];
    for (const { id, info } of objects) {
      if (retained.has(id)) {
        report.objectsRetained++;
        report.bytesRetained += info.size;
      } else if (info.modifiedMs > beforeMs) {
        report.objectsYoung++;
        report.bytesRetained += info.size;
      } else {
        garbage.push(info);
      }
    }
    if (!dryRun) await mapLimit(garbage, 16, (info) => store.delete(info.key));
    report.objectsDeleted += garbage.length;
    report.bytesFreed += garbage.reduce((n, o) => n + o.size, 0);
    progress();
  } while (cursor !== undefined);
  report.durationMs = performance.now() - started;
  return report;
}
