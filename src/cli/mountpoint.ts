/**
 * Mountpoint checks before a mount, from /proc/self/mountinfo and the directory itself:
 * it must exist, be an empty directory, and not already be mounted. A Lucid mount whose
 * agent died (kill -9) is stale: it is detached so the mount can go ahead.
 */
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { listMounts } from './control.js';

export interface MountInfo {
  target: string;
  fstype: string;
}

export function mountTable(): MountInfo[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').filter(Boolean).map((line) => {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    return { target: unescape(fields[4]), fstype: fields[sep + 1] };
  });
}

export function lucidMountAt(target: string): MountInfo | undefined {
  return mountTable().find((m) => m.target === target && m.fstype.startsWith('fuse') && m.fstype.includes('lucid'));
}

export async function detach(target: string): Promise<void> {
  const root = process.getuid?.() === 0;
  await new Promise<void>((resolve) => {
    const child = spawn(root ? 'umount' : 'fusermount3', root ? ['-l', target] : ['-u', '-z', target], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

/** Returns the absolute mountpoint, or throws a UsageError that says what to fix. */
export async function checkMountpoint(mountpoint: string): Promise<string> {
  const abs = path.resolve(mountpoint);
  const mounted = mountTable().filter((m) => m.target === abs);
  if (mounted.length > 0) {
    const live = listMounts().find((m) => m.mountpoint === abs);
    if (live) throw new UsageError(`${abs} is already mounted by Lucid (agent pid ${live.pid}): run "lucid unmount ${abs}" first`);
    if (lucidMountAt(abs)) {
      await detach(abs); // its agent is gone: a stale mount left by a crash
    } else {
      throw new UsageError(`${abs} is already a mount point (${mounted[mounted.length - 1].fstype}): pick an empty directory`);
    }
  }
  let st;
  try {
    st = await fs.stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`mountpoint ${abs} does not exist: create it (mkdir -p ${abs})`);
    throw new UsageError(`cannot use mountpoint ${abs}: ${code}`);
  }
  if (!st.isDirectory()) throw new UsageError(`mountpoint ${abs} is not a directory`);
  const entries = await fs.readdir(abs);
  if (entries.length > 0) throw new UsageError(`mountpoint ${abs} is not empty (${entries.length} entries): pick an empty directory`);
  return abs;
}
