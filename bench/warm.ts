/**
 * Warm sequential reads from the agent's disk cache against the no-op ceiling, side by side
 * in one run (these machines are noisy: only ratios within a run mean much).
 *
 * A file is written through a mount on a local store; then, round after round, each variant
 * (a value of LUCID_OPEN_THREADS: how many threads open cached blocks, 0 = the event loop)
 * mounts the same cache afresh (so the kernel has no pages of the file) and reads it once
 * from start to end, and the no-op file system on the same binding is read the same way.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MiB, lucidOk, median, mountNoop, seqMBps, writeRandom } from './reads.js';
import { tempDir } from '../test/helpers/servers.js';
import { lucid } from '../test/helpers/cli.js';

export interface WarmOptions {
  fileMiB: number;
  rounds: number;
  /** Values of LUCID_OPEN_THREADS to compare. */
  variants: string[];
  log?: (line: string) => void;
}

export interface WarmResult {
  fileMiB: number;
  /** MB/s per round, by variant name (`threads=N`), and `no-op`. */
  rounds: Record<string, number[]>;
  medians: Record<string, number>;
  /** Median over rounds of MB/s divided by the no-op's MB/s in the same round. */
  ratios: Record<string, number>;
}

export async function benchWarm(o: WarmOptions): Promise<WarmResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-warm-');
  const env = { LUCID_HOME: path.join(root.dir, 'home'), LUCID_PASSWORD: 'bench password' };
  const store = `file://${root.dir}/store`;
  const mp = path.join(root.dir, 'mnt');
  const cacheDir = path.join(root.dir, 'cache');
  const must = (args: string[], extra: Record<string, string> = {}) => lucidOk(args, { ...env, ...extra });
  let noop: Awaited<ReturnType<typeof mountNoop>> | undefined;
  try {
    await fs.mkdir(mp);
    await fs.mkdir(path.join(root.dir, 'store'));
    await must(['init', '--store', store, '--kdf', 'interactive']);
    log(`writing ${o.fileMiB} MiB…`);
    await must(['mount', mp, '--store', store, '--cache-dir', cacheDir]);
    await writeRandom(path.join(mp, 'warm.bin'), o.fileMiB);
    await must(['unmount', mp]);
    noop = await mountNoop(path.join(root.dir, 'noop'), o.fileMiB * MiB);
    const rounds: Record<string, number[]> = {};
    const add = (name: string, v: number) => { (rounds[name] ??= []).push(v); };
    for (let round = 1; round <= o.rounds; round++) {
      for (const threads of o.variants) {
        await must(['mount', mp, '--store', store, '--cache-dir', cacheDir], { LUCID_OPEN_THREADS: threads });
        add(`threads=${threads}`, await seqMBps(path.join(mp, 'warm.bin'), o.fileMiB * MiB));
        await must(['unmount', mp]);
      }
      add('no-op', await seqMBps(noop.file, o.fileMiB * MiB));
      log(`round ${round}: ${Object.entries(rounds).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(0)}`).join(', ')} MB/s`);
    }
    const medians = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, median(v)]));
    const ratios = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, median(v.map((x, i) => x / rounds['no-op'][i]))]));
    return { fileMiB: o.fileMiB, rounds, medians, ratios };
  } finally {
    noop?.stop();
    await lucid(['unmount', mp, '--force'], { env });
    root.remove();
  }
}
