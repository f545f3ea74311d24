/**
 * Small files over an emulated WAN: what the write-back namespace is for.
 *
 * s3rver is the store and `lucid serve` the metadata service, each behind a WanProxy (RTT and
 * a bandwidth cap). A tarball of `files` 4 KiB files in 20 folders and a local git repository
 * of `gitFiles` files are made on local disk. Then, for Lucid through the link:
 * - `tar x` into the mount: files/s when tar returns, and the seconds from then until a
 *   second mount (fresh cache, through the link) lists every file;
 * - once the writer has uploaded everything: a cold `ls -lR` and a cold read of every file
 *   from a third mount with an empty cache (byte for byte against the tarball's files);
 * - `rm -rf` of the folder, files/s; `git clone` of the local repository into the mount.
 * The same steps run on `rclone mount --vfs-cache-mode full` over the same link (if rclone
 * is installed), and on Lucid with its service on loopback (the ceiling for the namespace).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startWanProxy, type WanProxy } from './wan-proxy.js';
import { hasTool, mountRclone, type PeerMount } from './peers.js';
import { lucidOk, sh, timedSh, waitLine } from './reads.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { CLI } from '../test/helpers/cli.js';

export interface SmallFilesOptions {
  files: number;
  gitFiles: number;
  rttMs: number;
  bytesPerSecond: number;
  peers: boolean;
  log?: (line: string) => void;
}

export interface SmallFilesRun {
  name: string;
  untarFilesPerSec: number;
  /** Seconds from tar's end until a second mount listed every file (n/a where not measured). */
  visibleAfterSec?: number;
  lsLRSec?: number;
  coldReadFilesPerSec?: number;
  rmFilesPerSec: number;
  gitCloneSec: number;
}

export interface SmallFilesResult {
  files: number;
  gitFiles: number;
  rttMs: number;
  runs: SmallFilesRun[];
}

const FOLDERS = 20;


/** Counts the regular files under `dir` (find), 0 if it is not there yet. */
async function countFiles(dir: string): Promise<number> {
  return Number((await sh(`find '${dir}' -type f 2>/dev/null | wc -l`)).trim()) || 0;
}

/** Polls until a second mount lists all `n` files; seconds from the call. */
async function visibleAfter(dir: string, n: number, limitSec = 120): Promise<number> {
  const t = performance.now();
  while ((performance.now() - t) / 1000 < limitSec) {
    if (await countFiles(dir) >= n) return (performance.now() - t) / 1000;
    await new Promise((r) => setTimeout(r, 100));
  }
  return Infinity;
}

/** Every file under `got` is byte for byte the one under `want` (cmp -r, via diff -r). */
async function sameTree(want: string, got: string): Promise<void> {
  await sh(`diff -r '${want}' '${got}'`);
}

export async function benchSmallFiles(o: SmallFilesOptions): Promise<SmallFilesResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-small-');
  const s3 = await startS3rver(['bench']);
  const s3Port = Number(new URL(s3.endpoint).port);
  const proxies: WanProxy[] = [];
  const children: ChildProcess[] = [];
  const mounted: string[] = [];
  const peers: PeerMount[] = [];
  const env = { LUCID_HOME: path.join(root.dir, 'home'), LUCID_PASSWORD: 'bench password', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const runs: SmallFilesRun[] = [];
  try {
    // ---- the inputs, on local disk ----
    log(`making a tarball of ${o.files} 4 KiB files in ${FOLDERS} folders and a git repository of ${o.gitFiles} files…`);
    const src = path.join(root.dir, 'src', 'tree');
    for (let d = 0; d < FOLDERS; d++) await fs.mkdir(path.join(src, `d${d}`), { recursive: true });
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < o.files; i++) await fs.writeFile(path.join(src, `d${i % FOLDERS}`, `f${i}.bin`), randomBytes(4096));
    const tarball = path.join(root.dir, 'tree.tar');
    await sh(`tar cf '${tarball}' -C '${path.dirname(src)}' tree`);
    const repo = path.join(root.dir, 'repo');
    for (let i = 0; i < o.gitFiles; i++) {
      const f = path.join(repo, `m${i % 40}`, `s${i % 7}`, `file${i}.txt`);
      await fs.mkdir(path.dirname(f), { recursive: true });
      await fs.writeFile(f, `line ${i}\n`.repeat(1 + (i % 50)));
    }
    await sh('git init -q && git add -A && git -c user.email=b@e -c user.name=bench commit -qm init', repo);

    const storeWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: s3Port });
    proxies.push(storeWan);
    const directStore = `s3://bench/fs?endpoint=${s3.endpoint}`;
    const wanStore = `s3://bench/fs?endpoint=${storeWan.url()}`;
    await lucidOk(['init', '--store', directStore, '--kdf', 'interactive'], env);
    const serve = spawn(process.execPath, [CLI, 'serve', '--store', directStore, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0'],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(serve);
    const serviceUrl = (await waitLine(serve, /listening on (\S+)/, 'lucid serve'))[1];
    const serviceWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: Number(new URL(serviceUrl).port) });
    proxies.push(serviceWan);

    let n = 0;
    const mount = async (service: string): Promise<string> => {
      const mp = path.join(root.dir, `mnt${n++}`);
      await fs.mkdir(mp);
      await lucidOk(['mount', mp, '--store', wanStore, '--service', service, '--cache-dir', path.join(root.dir, `cache${n}`)], env);
      mounted.push(mp);
      return mp;
    };
    const unmount = async (mp: string) => {
      await lucidOk(['unmount', mp], env);
      mounted.splice(mounted.indexOf(mp), 1);
    };

    const lucidRun = async (name: string, service: string, top: string, full: boolean): Promise<SmallFilesRun> => {
      log(`${name}: tar x…`);
      const writer = await mount(service);
      await fs.mkdir(path.join(writer, top));
      const untar = await timedSh(`tar xf '${tarball}' -C '${path.join(writer, top)}'`);
      const run: SmallFilesRun = { name, untarFilesPerSec: o.files / untar, rmFilesPerSec: 0, gitCloneSec: 0 };
      if (full) {
        const second = await mount(service);
        run.visibleAfterSec = await visibleAfter(path.join(second, top), o.files);
        await unmount(second);
        log(`${name}: waiting for the upload…`);
        await lucidOk(['unmount', writer], env); // uploads what is left first
        mounted.splice(mounted.indexOf(writer), 1);
        const third = await mount(service);
        log(`${name}: cold ls -lR and cold read…`);
        run.lsLRSec = await timedSh(`ls -lR '${path.join(third, top)}' > /dev/null`);
        await unmount(third);
        const fourth = await mount(service);
        const read = await timedSh(`find '${path.join(fourth, top)}' -type f -exec cat {} + > /dev/null`);
        run.coldReadFilesPerSec = o.files / read;
        await sameTree(src, path.join(fourth, top, 'tree'));
        await unmount(fourth);
        const again = await mount(service);
        run.rmFilesPerSec = o.files / await timedSh(`rm -rf '${path.join(again, top)}'`);
        log(`${name}: git clone…`);
        run.gitCloneSec = await timedSh(`git clone -q --no-hardlinks '${repo}' '${path.join(again, `${top}-git`)}'`);
        await unmount(again);
      } else {
        run.rmFilesPerSec = o.files / await timedSh(`rm -rf '${path.join(writer, top)}'`);
        log(`${name}: git clone…`);
        run.gitCloneSec = await timedSh(`git clone -q --no-hardlinks '${repo}' '${path.join(writer, `${top}-git`)}'`);
        await unmount(writer);
      }
      log(`${name}: ${JSON.stringify(run)}`);
      return run;
    };

    runs.push(await lucidRun(`lucid, service ${o.rttMs} ms away`, serviceWan.url(), 'wan', true));
    runs.push(await lucidRun('lucid, service on loopback (ceiling)', serviceUrl, 'loop', false));

    if (o.peers && hasTool('rclone')) {
      log('rclone mount --vfs-cache-mode full: tar x…');
      const pm = path.join(root.dir, 'rclone');
      await fs.mkdir(pm);
      const m = await mountRclone({ writable: true, mountpoint: pm, endpoint: storeWan.url(), bucket: 'bench', prefix: 'rclone', cacheDir: path.join(root.dir, 'rclone-cache'), keyId: 'S3RVER', secret: 'S3RVER' });
      peers.push(m);
      const untar = await timedSh(`tar xf '${tarball}' -C '${pm}'`);
      const run: SmallFilesRun = { name: m.name, untarFilesPerSec: o.files / untar, rmFilesPerSec: 0, gitCloneSec: 0 };
      run.rmFilesPerSec = o.files / await timedSh(`rm -rf '${path.join(pm, 'tree')}'`);
      run.gitCloneSec = await timedSh(`git clone -q --no-hardlinks '${repo}' '${path.join(pm, 'git')}'`);
      log(`rclone: ${JSON.stringify(run)}`);
      runs.push(run);
    } else if (o.peers) {
      log('rclone is not installed (apt-get install rclone): skipped');
    }
    return { files: o.files, gitFiles: o.gitFiles, rttMs: o.rttMs, runs };
  } finally {
    for (const p of peers) await p.unmount().catch(() => {});
    for (const mp of mounted) await lucidOk(['unmount', mp, '--force'], env).catch(() => {});
    for (const c of children) c.kill('SIGTERM');
    for (const p of proxies) await p.close();
    await s3.close();
    root.remove();
  }
}
