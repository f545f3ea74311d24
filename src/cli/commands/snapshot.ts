/**
 * `lucid snapshot create|list|delete|restore|mount`: instant snapshots of a mounted filespace,
 * in-place restores through the mount's agent (which holds the keys to hash names), and
 * read-only mounts of a snapshot (an agent of its own, like `lucid mount`).
 * create/list/delete take `--mount MP` (or the only running mount); restore finds the mount
 * from PATH.
 */
import path from 'node:path';
import type { Argv } from 'yargs';
import { LucidError, UsageError } from '../../errors.js';
import type { RestoreResult, Snapshot, SnapshotSchedule } from '../../meta/types.js';
import { mountCommand, mountOptions, type MountArgs } from './mount.js';
import { callAgent as callAgentRaw, mountOf, pickMount, streamAgent, type MountRecord } from '../control.js';
import { ProgressBar } from '../progress.js';
import type { WarmProgress } from '../agent.js';
import { formatSize } from '../../util/size.js';
import { formatDuration, parseDuration } from '../../util/duration.js';

/** A snapshot or entry that does not exist is the caller's input: exit code 2. */
async function callAgent<T>(rec: MountRecord, method: string, route: string, body: unknown): Promise<T> {
  try {
    return await callAgentRaw<T>(rec, method, route, body);
  } catch (e) {
    if (e instanceof LucidError && e.code === 'NoEntry') throw new UsageError(e.message);
    throw e;
  }
}

/** "15m", "1h", "1d", "1w" (or seconds, "30s") → ms. */
function parseEvery(v: string): number {
  const ms = parseDuration(v, ['s', 'm', 'h', 'd', 'w']);
  if (!(ms >= 1000)) throw new UsageError(`--every must be like 15m, 1h, 1d or 1w (got "${v}")`);
  return ms;
}

function checkId(id: unknown): number {
  const n = Number(id);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`"${String(id)}" is not a snapshot id (lucid snapshot list shows them)`);
  return n;
}

const mountOption = (y: Argv) => y.option('mount', { type: 'string', describe: 'The mount whose filespace to use (default: the only running mount)' });

export const snapshotCommand = {
  command: 'snapshot <command>',
  describe: 'Instant snapshots and in-place restores',
  builder: (y: Argv) => y
    .command({
      command: 'create [name]',
      describe: 'Take a snapshot now (metadata only, instant); prints its id',
      builder: (a: Argv) => mountOption(a).positional('name', { type: 'string' }),
      handler: async (args: { name?: string; mount?: string }) => {
        const s = await callAgent<Snapshot>(pickMount(args.mount), 'POST', '/snapshot', { op: 'create', name: args.name });
        process.stdout.write(`${s.id}\n`);
      },
    } as never)
    .command({
      command: 'list',
      describe: 'Snapshots: id, name, time taken',
      builder: (a: Argv) => mountOption(a).option('json', { type: 'boolean' }),
      handler: async (args: { mount?: string; json?: boolean }) => {
        const list = await callAgent<Snapshot[]>(pickMount(args.mount), 'POST', '/snapshot', { op: 'list' });
        if (args.json) {
          process.stdout.write(`${JSON.stringify(list.map((s) => ({ ...s, created: new Date(s.createdMs).toISOString(), state: 'ready', schedule: s.schedule ?? null })), null, 2)}\n`);
          return;
        }
        if (list.length === 0) {
          process.stdout.write('no snapshots\n');
          return;
        }
        process.stdout.write(`${'ID'.padEnd(6)}${'CREATED'.padEnd(22)}${'SCHEDULE'.padEnd(12)}NAME\n`);
        for (const s of list) process.stdout.write(`${String(s.id).padEnd(6)}${new Date(s.createdMs).toISOString().slice(0, 19).replace('T', ' ').padEnd(22)}${(s.schedule ?? '-').padEnd(12)}${s.name}\n`);
      },
    } as never)
    .command({
      command: 'delete <id>',
      describe: 'Delete a snapshot',
      builder: (a: Argv) => mountOption(a).positional('id', { type: 'string' }),
      handler: async (args: { id: string; mount?: string }) => {
        await callAgent(pickMount(args.mount), 'POST', '/snapshot', { op: 'delete', id: checkId(args.id) });
        process.stdout.write(`Deleted snapshot ${args.id}\n`);
      },
    } as never)
    .command({
      command: 'restore <id> <path>',
      describe: 'Put a file or folder (or the mountpoint: everything) back as it was, in place, without copying data',
      builder: (a: Argv) => a.positional('id', { type: 'string' }).positional('path', { type: 'string' })
        .option('to', { type: 'string', describe: 'Copy the snapshot\'s version out into this local directory instead (with a progress bar)' }),
      handler: async (args: { id: string; path: string; to?: string }) => {
        const abs = path.resolve(args.path);
        const rec = mountOf(abs);
        const rel = path.relative(rec.mountpoint, abs);
        if (args.to !== undefined) {
          const to = path.resolve(args.to);
          const bar = new ProgressBar(process.stderr);
          const started = Date.now();
          const r = await streamAgent<WarmProgress>(rec, '/snapshot-copy', { id: checkId(args.id), path: rel, to }, (line) => {
            const p = line.progress as WarmProgress | undefined;
            if (p) bar.update(p.bytes, p.bytesTotal, `${p.files}/${p.filesTotal} files`);
          }).finally(() => bar.done());
          process.stdout.write(`Copied ${rel || '/'} from snapshot ${args.id} into ${to}: ${r.filesTotal} file(s), ${formatSize(r.bytesTotal)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
          return;
        }
        const r = await callAgent<RestoreResult>(rec, 'POST', '/snapshot', { op: 'restore', id: checkId(args.id), path: rel });
        process.stdout.write(`Restored ${rel || rec.mountpoint} from snapshot ${args.id}: ${r.restored} item(s)\n`);
      },
    } as never)
    .command({
      command: 'schedule <action> [name]',
      describe: 'Snapshot schedules run by the service: create NAME --every 15m|1h|1d|1w --keep N, list, delete NAME',
      builder: (a: Argv) => mountOption(a).positional('action', { choices: ['create', 'list', 'delete'] }).positional('name', { type: 'string' })
        .option('every', { type: 'string', describe: 'How often: 30s, 15m, 1h, 1d, 1w' })
        .option('keep', { type: 'number', describe: 'How many of its snapshots to keep' })
        .option('json', { type: 'boolean' }),
      handler: async (args: { action: string; name?: string; every?: string; keep?: number; mount?: string; json?: boolean }) => {
        const rec = pickMount(args.mount);
        if (args.action === 'list') {
          const list = await callAgent<SnapshotSchedule[]>(rec, 'POST', '/snapshot', { op: 'schedule-list' });
          if (args.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          else for (const s of list) process.stdout.write(`${s.name.padEnd(16)}every ${formatDuration(s.everyMs).padEnd(6)} keep ${s.keep}\n`);
          return;
        }
        if (!args.name) throw new UsageError(`lucid snapshot schedule ${args.action} needs a NAME`);
        if (args.action === 'delete') {
          await callAgent(rec, 'POST', '/snapshot', { op: 'schedule-delete', name: args.name });
          process.stdout.write(`Deleted schedule ${args.name}\n`);
          return;
        }
        if (!args.every || !args.keep) throw new UsageError('lucid snapshot schedule create NAME needs --every (e.g. 15m, 1h, 1d, 1w) and --keep N');
        const s = await callAgent<SnapshotSchedule>(rec, 'POST', '/snapshot', { op: 'schedule-create', name: args.name, everyMs: parseEvery(args.every), keep: args.keep });
        process.stdout.write(`Schedule ${s.name}: every ${formatDuration(s.everyMs)}, keep ${s.keep}\n`);
      },
    } as never)
    .command({
      command: 'diff <id> [id2]',
      describe: 'What changed between a snapshot and another (or the live tree): + added, - removed, M modified',
      builder: (a: Argv) => mountOption(a).positional('id', { type: 'string' }).positional('id2', { type: 'string' }).option('json', { type: 'boolean' }),
      handler: async (args: { id: string; id2?: string; mount?: string; json?: boolean }) => {
        const changes = await callAgent<{ change: string; path: string }[]>(pickMount(args.mount), 'POST', '/snapshot',
          { op: 'diff', id: checkId(args.id), to: args.id2 === undefined ? undefined : checkId(args.id2) });
        if (args.json) process.stdout.write(`${JSON.stringify(changes, null, 2)}\n`);
        else for (const c of changes) process.stdout.write(`${c.change} ${c.path}\n`);
      },
    } as never)
    .command({
      command: 'mount <id> <mountpoint>',
      describe: 'Mount a read-only view of the filespace as it was (same options as lucid mount)',
      builder: (a: Argv) => mountOptions(a.positional('id', { type: 'string' }).positional('mountpoint', { type: 'string' })),
      handler: async (args: MountArgs & { id: string }) => mountCommand.handler({ ...args, snapshot: checkId(args.id) }),
    } as never)
    .demandCommand(1, 'say which: create, list, delete, restore, diff, mount or schedule'),
  handler: () => {},
};
