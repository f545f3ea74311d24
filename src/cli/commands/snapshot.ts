/**
 * `lucid snapshot create|list|delete|restore|diff|mount|schedule`: instant snapshots, in-place
 * restores, copies out, diffs and read-only snapshot mounts.
 *
 * Where they run: through a mount's agent (`--mount MP`, or the only running mount; restore
 * finds the mount from PATH), which settles its own writes first and drops what it cached of
 * restored files; or, with `--store URL` (and `--service URL` or `--db`), straight on the
 * filespace in this process with no mount at all (PATH is then a path inside the filespace).
 * `mount` starts an agent of its own, like `lucid mount`.
 */
import path from 'node:path';
import type { Argv } from 'yargs';
import { LucidError, UsageError } from '../../errors.js';
import { Filespace } from '../../fs/filespace.js';
import type { RestoreResult, SnapshotSchedule } from '../../meta/types.js';
import { mountCommand, mountOptions, type MountArgs } from './mount.js';
import { callAgent, mountOf, pickMount, streamAgent, type MountRecord } from '../control.js';
import { FilespaceAdmin, type CopyProgress, type DiffLine } from '../admin.js';
import { defaultStoreUrl } from '../home.js';
import { connectMeta, openUnlocked, serviceUrls } from '../open.js';
import { ProgressBar } from '../progress.js';
import { formatSize } from '../../util/size.js';
import { formatDuration, parseDuration } from '../../util/duration.js';

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

/** What the commands need, wherever they run. */
type Target = Pick<FilespaceAdmin, 'createSnapshot' | 'listSnapshots' | 'deleteSnapshot' | 'createSchedule' | 'listSchedules' | 'deleteSchedule' | 'restore' | 'copyOut' | 'diff'> & {
  close(): Promise<void>;
};

/** The mount's agent, over its control socket. */
function agentTarget(rec: MountRecord): Target {
  const snap = <T>(op: string, body: Record<string, unknown> = {}) => callAgent<T>(rec, 'POST', '/snapshot', { op, ...body });
  return {
    createSnapshot: (name) => snap('create', { name }),
    listSnapshots: () => snap('list'),
    deleteSnapshot: async (id) => { await snap('delete', { id }); },
    createSchedule: (name, everyMs, keep) => snap('schedule-create', { name, everyMs, keep }),
    listSchedules: () => snap('schedule-list'),
    deleteSchedule: async (name) => { await snap('schedule-delete', { name }); },
    restore: (id, rel) => snap('restore', { id, path: rel }),
    diff: (id, to) => snap('diff', { id, to }),
    copyOut: (id, rel, to, progress) => streamAgent<CopyProgress>(rec, '/snapshot-copy', { id, path: rel, to }, (line) => {
      if (line.progress) progress(line.progress as CopyProgress);
    }),
    close: async () => {},
  };
}

interface DirectArgs {
  store?: string;
  service?: string;
  db?: string;
  passwordStdin?: boolean;
}

const isDirect = (a: DirectArgs) => a.store !== undefined || a.service !== undefined || a.db !== undefined;

/** The filespace itself, unlocked in this process: no mount needed. */
async function directTarget(args: DirectArgs): Promise<Target> {
  const storeUrl = args.store ?? defaultStoreUrl();
  const { store, unlocked } = await openUnlocked(storeUrl, { passwordStdin: args.passwordStdin });
  const closers: (() => Promise<unknown>)[] = [() => store.close()];
  const close = async () => { for (const c of closers.reverse()) await c().catch(() => {}); };
  try {
    const { meta } = await connectMeta(storeUrl, unlocked, args.service, args.db);
    closers.push(() => meta.close());
    return Object.assign(new FilespaceAdmin(new Filespace(unlocked, store, meta)), { close });
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Runs `fn` on the target the arguments name, and closes it. A snapshot or entry that does
 * not exist is the caller's input: exit code 2.
 */
async function withTarget<T>(args: DirectArgs & { mount?: string }, fn: (target: Target) => Promise<T>, rec?: MountRecord): Promise<T> {
  const target = isDirect(args) ? await directTarget(args) : agentTarget(rec ?? pickMount(args.mount));
  try {
    return await fn(target);
  } catch (e) {
    if (e instanceof LucidError && e.code === 'NoEntry') throw new UsageError(e.message);
    throw e;
  } finally {
    await target.close();
  }
}

const targetOptions = (y: Argv) => y
  .option('mount', { type: 'string', describe: 'The mount whose filespace to use (default: the only running mount)' })
  .option('store', { type: 'string', describe: 'Work on this filespace directly, with no mount (default store: the embedded one)' })
  .option('service', { type: 'string', coerce: serviceUrls, describe: 'With --store: the filespace\'s metadata service (instances: URL,URL)' })
  .option('db', { type: 'string', describe: 'With --store: its metadata database (sqlite:PATH or postgres://…), when no service runs' })
  .option('password-stdin', { type: 'boolean', describe: 'With --store: read the password from the first line of standard input' });

export const snapshotCommand = {
  command: 'snapshot <command>',
  describe: 'Instant snapshots and in-place restores',
  builder: (y: Argv) => y
    .command({
      command: 'create [name]',
      describe: 'Take a snapshot now (metadata only, instant); prints its id',
      builder: (a: Argv) => targetOptions(a).positional('name', { type: 'string' }),
      handler: async (args: DirectArgs & { name?: string; mount?: string }) => {
        const s = await withTarget(args, (t) => t.createSnapshot(args.name));
        process.stdout.write(`${s.id}\n`);
      },
    } as never)
    .command({
      command: 'list',
      describe: 'Snapshots: id, name, time taken',
      builder: (a: Argv) => targetOptions(a).option('json', { type: 'boolean' }),
      handler: async (args: DirectArgs & { mount?: string; json?: boolean }) => {
        const list = await withTarget(args, (t) => t.listSnapshots());
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
      builder: (a: Argv) => targetOptions(a).positional('id', { type: 'string' }),
      handler: async (args: DirectArgs & { id: string; mount?: string }) => {
        await withTarget(args, (t) => t.deleteSnapshot(checkId(args.id)));
        process.stdout.write(`Deleted snapshot ${args.id}\n`);
      },
    } as never)
    .command({
      command: 'restore <id> <path>',
      describe: 'Put a file or folder (or the mountpoint: everything) back as it was, in place, without copying data',
      builder: (a: Argv) => targetOptions(a).positional('id', { type: 'string' }).positional('path', { type: 'string' })
        .option('to', { type: 'string', describe: 'Copy the snapshot\'s version out into this local directory instead (with a progress bar)' }),
      handler: async (args: DirectArgs & { id: string; path: string; to?: string }) => {
        const id = checkId(args.id);
        // Through a mount, PATH is a local path inside it; with --store, a path in the filespace.
        let rec: MountRecord | undefined;
        let rel: string;
        let shown: string;
        if (isDirect(args)) {
          rel = args.path.split('/').filter(Boolean).join('/');
          shown = `/${rel}`;
        } else {
          const abs = path.resolve(args.path);
          rec = mountOf(abs);
          rel = path.relative(rec.mountpoint, abs);
          shown = rel || rec.mountpoint;
        }
        await withTarget(args, async (t) => {
          if (args.to !== undefined) {
            const to = path.resolve(args.to);
            const bar = new ProgressBar(process.stderr);
            const started = Date.now();
            const r = await t.copyOut(id, rel, to, (p) => bar.update(p.bytes, p.bytesTotal, `${p.files}/${p.filesTotal} files`)).finally(() => bar.done());
            process.stdout.write(`Copied ${rel || '/'} from snapshot ${id} into ${to}: ${r.filesTotal} file(s), ${formatSize(r.bytesTotal)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
            return;
          }
          const r: RestoreResult = await t.restore(id, rel);
          process.stdout.write(`Restored ${shown} from snapshot ${id}: ${r.restored} item(s)\n`);
        }, rec);
      },
    } as never)
    .command({
      command: 'schedule <action> [name]',
      describe: 'Snapshot schedules run by the service: create NAME --every 15m|1h|1d|1w --keep N, list, delete NAME',
      builder: (a: Argv) => targetOptions(a).positional('action', { choices: ['create', 'list', 'delete'] }).positional('name', { type: 'string' })
        .option('every', { type: 'string', describe: 'How often: 30s, 15m, 1h, 1d, 1w' })
        .option('keep', { type: 'number', describe: 'How many of its snapshots to keep' })
        .option('json', { type: 'boolean' }),
      handler: async (args: DirectArgs & { action: string; name?: string; every?: string; keep?: number; mount?: string; json?: boolean }) => {
        if (args.action === 'list') {
          const list: SnapshotSchedule[] = await withTarget(args, (t) => t.listSchedules());
          if (args.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          else for (const s of list) process.stdout.write(`${s.name.padEnd(16)}every ${formatDuration(s.everyMs).padEnd(6)} keep ${s.keep}\n`);
          return;
        }
        const name = args.name;
        if (!name) throw new UsageError(`lucid snapshot schedule ${args.action} needs a NAME`);
        if (args.action === 'delete') {
          await withTarget(args, (t) => t.deleteSchedule(name));
          process.stdout.write(`Deleted schedule ${name}\n`);
          return;
        }
        if (!args.every || !args.keep) throw new UsageError('lucid snapshot schedule create NAME needs --every (e.g. 15m, 1h, 1d, 1w) and --keep N');
        const everyMs = parseEvery(args.every);
        const keep = args.keep;
        const s = await withTarget(args, (t) => t.createSchedule(name, everyMs, keep));
        process.stdout.write(`Schedule ${s.name}: every ${formatDuration(s.everyMs)}, keep ${s.keep}\n`);
      },
    } as never)
    .command({
      command: 'diff <id> [id2]',
      describe: 'What changed between a snapshot and another (or the live tree): + added, - removed, M modified',
      builder: (a: Argv) => targetOptions(a).positional('id', { type: 'string' }).positional('id2', { type: 'string' }).option('json', { type: 'boolean' }),
      handler: async (args: DirectArgs & { id: string; id2?: string; mount?: string; json?: boolean }) => {
        const from = checkId(args.id);
        const to = args.id2 === undefined ? undefined : checkId(args.id2);
        const changes: DiffLine[] = await withTarget(args, (t) => t.diff(from, to));
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
