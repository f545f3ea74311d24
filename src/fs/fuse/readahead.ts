/**
 * A FUSE mount's kernel read-ahead. The kernel caps a FUSE mount's read-ahead at the default
 * 128 KiB whatever the file system asks at INIT, so a 1 MiB read reached us as one 128 KiB
 * request and, a round trip later, the rest. As root, it is raised through the mount's BDI;
 * the kernel then takes the smaller of the BDI's value and INIT's, so both get the same.
 * Lucid's mount and the benchmark's no-op file system (its ceiling) use the same code.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** 2 MiB: an unaligned 1 MiB read spans 257 pages. */
export const DEFAULT_READAHEAD_KB = 2048;

/**
 * Raises the read-ahead of the mount at `mountpoint` to `kb` KiB, found in
 * /proc/self/mountinfo (a stat of the mountpoint would call back into this process). The
 * mount may not be listed yet when this starts: it looks again every 10 ms for a second.
 * (Raised once and lost to that race, or clipped by INIT, read-ahead came out 128, 1024 or
 * 2048 KiB from mount to mount, and a random 1 MiB read cost 2 or 3 blocks.) Never throws:
 * a failure is one line to `log`, and the kernel's default stays.
 */
export async function raiseReadahead(mountpoint: string, kb: number, log?: (line: string) => void): Promise<void> {
  try {
    for (let i = 0; i < 100; i++) {
      const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => unescapeMountinfo(l.split(' ')[4] ?? '') === mountpoint);
      const dev = line?.split(' ')[2];
      if (dev) {
        writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kb));
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    log?.('read-ahead stays at the kernel\'s default (the mount never showed in /proc/self/mountinfo)');
  } catch (e) {
    log?.(`read-ahead stays at the kernel's default (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** A mountinfo path field: space, tab, newline and backslash come as octal escapes. */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
