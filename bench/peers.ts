/**
 * The peers Lucid is compared with, mounted over the same emulated link: `rclone mount
 * --vfs-cache-mode full` and `s3fs` (8 parallel requests), both from Debian
 * (`apt-get install rclone s3fs`). Each reads plain objects under one prefix of the bucket.
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';

export interface PeerMount {
  name: string;
  mountpoint: string;
  unmount(): Promise<void>;
}

export function hasTool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The peers' environment: AWS_CA_BUNDLE (set on these machines) breaks rclone's plain-HTTP client. */
export function peerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  return env;
}

async function waitMounted(mp: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mp)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${mp} did not mount within ${ms} ms`);
}

async function umount(mp: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const c = spawn('umount', ['-l', mp], { stdio: 'ignore' });
    c.on('close', () => resolve());
    c.on('error', () => resolve());
  });
}

/** Starts a peer in the foreground as a child, waits for its mount, and knows how to stop it. */
async function runPeer(name: string, mountpoint: string, cmd: string, args: string[]): Promise<PeerMount> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env: peerEnv() });
  await waitMounted(mountpoint, 20_000).catch((e) => { child.kill('SIGKILL'); throw e; });
  return {
    name, mountpoint,
    unmount: async () => {
      await umount(mountpoint);
      child.kill('SIGTERM');
    },
  };
}

/** rclone over the prefix, read-only unless `writable` (the small-file benchmark writes). */
export async function mountRclone(o: { mountpoint: string; endpoint: string; bucket: string; prefix: string; cacheDir: string; keyId: string; secret: string; writable?: boolean }): Promise<PeerMount> {
  return runPeer('rclone mount --vfs-cache-mode full', o.mountpoint, 'rclone', ['mount', `:s3:${o.bucket}/${o.prefix}`, o.mountpoint, '--vfs-cache-mode', 'full', '--cache-dir', o.cacheDir,
    '--s3-provider', 'Other', '--s3-endpoint', o.endpoint, '--s3-access-key-id', o.keyId, '--s3-secret-access-key', o.secret,
    '--s3-force-path-style', ...(o.writable ? [] : ['--read-only']), '--log-level', 'ERROR']);
}

export async function mountS3fs(o: { mountpoint: string; endpoint: string; bucket: string; prefix: string; workDir: string; keyId: string; secret: string }): Promise<PeerMount> {
  const passwd = path.join(o.workDir, 's3fs-passwd');
  await fs.writeFile(passwd, `${o.keyId}:${o.secret}\n`, { mode: 0o600 });
  return runPeer('s3fs (parallel_count=8)', o.mountpoint, 's3fs', [`${o.bucket}:/${o.prefix}`, o.mountpoint, '-f', '-o', `url=${o.endpoint}`, '-o', 'use_path_request_style',
    '-o', `passwd_file=${passwd}`, '-o', 'parallel_count=8', '-o', 'ro', '-o', 'nosuid']);
}

