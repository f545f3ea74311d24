/**
 * `lucid gc [--dry-run] [--grace 1h]`: snapshot-aware garbage collection by hand (the service,
 * and an agent with its engine in-process, also run it every hour). Through the mount's
 * agent (`--mount MP` or the only mount), or straight on a filespace's store and metadata
 * database with `--store URL [--db …]` (no keys needed: GC sees only object ids).
 */
import type { Argv } from 'yargs';

import { collectGarbage, type GcProgress, type GcReport } from '../../gc/collector.js';
import { formatDuration } from '../../util/duration.js';
import { formatSize } from '../../util/size.js';
import { pickMount, streamAgent } from '../control.js';
import { defaultStoreUrl } from '../home.js';
import { openFilespaceEngine, openStore } from '../open.js';
import { ProgressBar } from '../progress.js';
import { parseGrace } from './serve.js';
import { loadDescriptor } from '../../fs/descriptor-store.js';

interface GcArgs {
  dryRun?: boolean;
  grace?: string;
  mount?: string;
  store?: string;
  db?: string;
  json?: boolean;
}

function summary(r: GcReport): string {
  const verb = r.dryRun ? 'would be removed' : 'removed';
  return [
    `Garbage collection${r.dryRun ? ' (dry run: nothing changed)' : ''}, grace ${formatDuration(r.graceMs)}:`,
    `  metadata versions ${verb}: ${r.versionsRemoved}`,
    `  objects ${verb}: ${r.objectsDeleted} of ${r.objectsScanned}, ${formatSize(r.bytesFreed)} ${r.dryRun ? 'to free' : 'freed'}`,
    `  objects kept: ${r.objectsRetained} reachable, ${r.objectsYoung} written within the grace period (${formatSize(r.bytesRetained)})`,
    `  in ${(r.durationMs / 1000).toFixed(1)} s`,
  ].join('\n');
}

async function direct(args: GcArgs, graceMs: number, progress: (p: GcProgress) => void): Promise<GcReport> {
  const { store } = await openStore(args.store!);
  try {
    const descriptor = await loadDescriptor(store);
    const engine = await openFilespaceEngine(args.store!, descriptor, args.db);
    try {
      return await collectGarbage(engine, store, { graceMs, dryRun: !!args.dryRun, onProgress: progress });
    } finally {
      await engine.close();
    }
  } finally {
    await store.close();
  }
}

export const gcCommand = {
  command: 'gc',
  describe: 'Remove metadata versions and block objects that neither the live tree nor a snapshot reaches',
  builder: (y: Argv) => y
    .option('dry-run', { type: 'boolean', describe: 'Report what would go; change nothing' })
    .option('grace', { type: 'string', default: '1h', describe: 'Keep objects written and refs replaced within this long (uploads in flight)' })
    .option('mount', { type: 'string', describe: 'The mount whose filespace to collect (default: the only running mount)' })
    .option('store', { type: 'string', describe: 'Collect straight on this store, without a mount' })
    .option('db', { type: 'string', describe: 'With --store: the metadata database (default: the embedded one)' })
    .option('json', { type: 'boolean', describe: 'Print the report as JSON' }),
  handler: async (args: GcArgs) => {
    const graceMs = parseGrace(args.grace, '--grace');
    const bar = new ProgressBar(process.stderr);
    const progress = (p: GcProgress) => bar.status(p.phase === 'metadata'
      ? 'pruning metadata versions…'
      : `${p.versionsRemoved} versions; objects: ${p.objectsScanned} scanned, ${p.objectsDeleted} ${args.dryRun ? 'garbage' : 'deleted'} (${formatSize(p.bytesFreed)})`);
    const report = await (args.store || args.db
      ? direct({ ...args, store: args.store ?? defaultStoreUrl() }, graceMs, progress)
      : streamAgent<GcReport>(pickMount(args.mount), '/gc', { dryRun: !!args.dryRun, graceMs }, (line) => {
        if (line.progress) progress(line.progress as GcProgress);
      })).finally(() => bar.done());
    process.stdout.write(args.json ? `${JSON.stringify(report)}\n` : `${summary(report)}\n`);
  },
};
