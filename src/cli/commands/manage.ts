/**
 * Commands that talk to a running mount agent: unmount, sync, status, cache, pin, unpin, warm.
 */
import path from 'node:path';
import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { formatSize, parseSize } from '../../util/size.js';
import type { AgentStatus, WarmProgress } from '../agent.js';
import { callAgent, listMounts, mountOf, streamAgent, type MountRecord } from '../control.js';
import { ProgressBar } from '../progress.js';
import { detach, lucidMountAt } from '../mountpoint.js';

/** Seconds left, as a person reads them: "12 s", "4 min", "2.5 h". */
function roughly(seconds: number): string {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `${Math.ceil(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function recordAt(mountpoint: string): MountRecord | undefined {
  const abs = path.resolve(mountpoint);
  return listMounts().find((m) => m.mountpoint === abs);
}

function requireMount(mountpoint: string): MountRecord {
  const rec = recordAt(mountpoint);
  if (!rec) throw new UsageError(`${path.resolve(mountpoint)} is not a running Lucid mount (lucid status lists them)`);
  return rec;
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export const unmountCommand = {
  command: 'unmount <mountpoint>',
  aliases: ['umount'],
  describe: 'Upload what is left, then unmount',
  builder: (y: Argv) => y
    .positional('mountpoint', { type: 'string' })
    .option('force', { type: 'boolean', describe: 'Do not wait for uploads; detach even if busy (data stays in the cache)' }),
  handler: async (args: { mountpoint: string; force?: boolean }) => {
    const abs = path.resolve(args.mountpoint);
    const rec = recordAt(abs);
    if (!rec) {
      if (lucidMountAt(abs)) {
        await detach(abs);
        process.stdout.write(`Detached a stale mount at ${abs} (its agent was gone)\n`);
        return;
      }
      throw new UsageError(`${abs} is not a Lucid mount`);
    }
    const before = await callAgent<AgentStatus>(rec, 'GET', '/status').catch(() => undefined);
    if (before && before.uploadBytes > 0 && !args.force) process.stderr.write(`Uploading ${formatSize(before.uploadBytes)} before unmounting…\n`);
    await callAgent(rec, 'POST', '/unmount', { force: !!args.force });
    await waitForExit(rec.pid, 30_000);
    process.stdout.write(`Unmounted ${abs}\n`);
  },
};

function describe(s: AgentStatus): string {
  const c = s.cache;
  return [
    s.offline
      ? `${s.mountpoint}: offline, ${formatSize(s.uploadBytes)}${s.changesWaiting ? ` and ${s.changesWaiting} change(s)` : ''} waiting (agent pid ${s.pid}), filespace ${s.filespaceId}: ${s.offline.reason} since ${s.offline.since}; cached files are served, writes wait in the cache`
      : `${s.mountpoint}: ${s.state} (agent pid ${s.pid}), filespace ${s.filespaceId}`,
    `  store      ${s.store}`,
    `  service    ${s.service}`,
    `  upload     ${s.uploadBytes > 0 ? `${formatSize(s.uploadBytes)} remaining in ${s.uploadBlocks} block(s)${s.uploadSecondsLeft !== undefined ? `, ${formatSize(s.uploadRate)}/s, about ${roughly(s.uploadSecondsLeft)} left` : ''}` : 'nothing remaining'}${s.changesWaiting ? `; ${s.changesWaiting} change(s) to names and attributes waiting (oldest ${(s.changesOldestMs / 1000).toFixed(1)} s)` : ''}`,
    ...(s.conflicts ? [`  conflicts  ${s.conflicts} change(s) landed as a conflict copy or were skipped: another client got there first (see the log)`] : []),
    `  cache      ${formatSize(c.usedBytes)} of ${formatSize(c.limitBytes)} (dirty ${formatSize(c.dirtyBytes)}, pinned ${formatSize(c.pinnedBytes)}) in ${c.dir}`,
    `  hits       ${(c.hitRatio * 100).toFixed(1)}% of ${c.hits + c.misses} block reads from cache; ${c.evictions} evicted`,
    `  prefetch   ${s.prefetch.issued} blocks fetched ahead, ${(s.prefetch.accuracy * 100).toFixed(0)}% of them read; ${s.prefetch.cancelled} cancelled; ${s.prefetch.predictedFiles} files predicted from name order`,
    `  memory     ${formatSize(s.memory.rss)} resident (JavaScript heap ${formatSize(s.memory.heapUsed)}, buffers ${formatSize(s.memory.arrayBuffers)})`,
    `  traffic    read ${formatSize(s.bytesRead)}, wrote ${formatSize(s.bytesWritten)}; store GET ${s.store_requests.get} (${formatSize(s.store_requests.getBytes)}), PUT ${s.store_requests.put} (${formatSize(s.store_requests.putBytes)})`,
  ].join('\n');
}

export const syncCommand = {
  command: 'sync <mountpoint>',
  describe: 'Wait until every change made in the mount is at the service and in the store (what sync(1) cannot ask of a FUSE mount)',
  builder: (y: Argv) => y.positional('mountpoint', { type: 'string' }),
  handler: async (args: { mountpoint: string }) => {
    const rec = requireMount(args.mountpoint);
    const done = await callAgent<{ changes: number; bytes: number }>(rec, 'POST', '/sync', {});
    process.stdout.write(`Synced ${rec.mountpoint}: ${done.changes} change(s) to names and attributes and ${formatSize(done.bytes)} of data were waiting\n`);
  },
};

export const statusCommand = {
  command: 'status [mountpoint]',
  describe: 'Show mounts: state, bytes still to upload, cache use',
  builder: (y: Argv) => y.positional('mountpoint', { type: 'string' }).option('json', { type: 'boolean' }),
  handler: async (args: { mountpoint?: string; json?: boolean }) => {
    const recs = args.mountpoint ? [requireMount(args.mountpoint)] : listMounts();
    const statuses = await Promise.all(recs.map((r) => callAgent<AgentStatus>(r, 'GET', '/status')));
    if (args.json) {
      process.stdout.write(`${JSON.stringify(args.mountpoint ? statuses[0] : statuses, null, 2)}\n`);
      return;
    }
    if (statuses.length === 0) process.stdout.write('No Lucid mounts are running.\n');
    else process.stdout.write(`${statuses.map(describe).join('\n\n')}\n`);
  },
};

export const cacheCommand = {
  command: 'cache <mountpoint>',
  describe: 'Show or change the cache of a mount',
  builder: (y: Argv) => y.positional('mountpoint', { type: 'string' })
    .option('size', { type: 'string', describe: 'New cache size limit, e.g. 20G' })
    .option('json', { type: 'boolean' }),
  handler: async (args: { mountpoint: string; size?: string; json?: boolean }) => {
    const rec = requireMount(args.mountpoint);
    const c = await callAgent<AgentStatus['cache']>(rec, 'POST', '/cache', args.size ? { size: parseSize(args.size, '--size') } : {});
    if (args.json) process.stdout.write(`${JSON.stringify(c, null, 2)}\n`);
    else process.stdout.write(`cache ${formatSize(c.usedBytes)} of ${formatSize(c.limitBytes)}: clean ${formatSize(c.cleanBytes)}, pinned ${formatSize(c.pinnedBytes)}, dirty ${formatSize(c.dirtyBytes)} (${c.dirtyBlocks} blocks) in ${c.dir}\n`);
  },
};

function pinCommand(pin: boolean) {
  return {
    command: `${pin ? 'pin' : 'unpin'} <path>`,
    describe: pin ? 'Keep a file or folder resident in the cache (fetching it now)' : 'Let a pinned file or folder be evicted again',
    builder: (y: Argv) => y.positional('path', { type: 'string' }),
    handler: async (args: { path: string }) => {
      const abs = path.resolve(args.path);
      const rec = mountOf(abs);
      const r = await callAgent<{ files: number; bytes: number }>(rec, 'POST', '/pin', { path: path.relative(rec.mountpoint, abs), pin });
      process.stdout.write(`${pin ? 'Pinned' : 'Unpinned'} ${r.files} file(s), ${formatSize(r.bytes)}\n`);
    },
  };
}

export const pinCommands = [pinCommand(true), pinCommand(false)];

export const warmCommand = {
  command: 'warm <path>',
  describe: 'Fetch a file (or with --recursive, a folder) into the cache now, with a progress bar',
  builder: (y: Argv) => y
    .positional('path', { type: 'string' })
    .option('recursive', { alias: 'r', type: 'boolean', describe: 'Warm every file under a folder' }),
  handler: async (args: { path: string; recursive?: boolean }) => {
    const abs = path.resolve(args.path);
    const rec = mountOf(abs);
    const bar = new ProgressBar(process.stderr);
    const started = Date.now();
    const r = await streamAgent<WarmProgress>(rec, '/warm', { path: path.relative(rec.mountpoint, abs), recursive: !!args.recursive }, (line) => {
      const p = line.progress as WarmProgress | undefined;
      if (p) bar.update(p.bytes, p.bytesTotal, `${p.files}/${p.filesTotal}${p.counting ? '+ (counting)' : ''} files`);
    }).finally(() => bar.done());
    const secs = (Date.now() - started) / 1000;
    process.stdout.write(`Warmed ${r.filesTotal} file(s), ${formatSize(r.bytesTotal)}: ${formatSize(r.fetchedBytes)} fetched, ${formatSize(r.bytes - r.fetchedBytes)} already cached, in ${secs.toFixed(1)} s\n`);
  },
};
