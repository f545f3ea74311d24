/**
 * Real servers for integration tests, on loopback only: s3rver (the S3 API) in this
 * process, Azurite (the Azure Blob API) as a child process, a metadata service over a
 * SQLite engine. Each returns a close() that removes everything it made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { BlobServiceClient } from '@azure/storage-blob';

const require = createRequire(import.meta.url);

export function tempDir(prefix = 'lucid-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface S3Server {
  endpoint: string;
  bucket: string;
  close(): Promise<void>;
}

/**
 * Starts s3rver in its own process. It makes list continuation tokens with DES, which
 * OpenSSL 3 keeps in its legacy provider, hence the flag (for s3rver's process only).
 */
export async function startS3rver(buckets = ['lucid-test']): Promise<S3Server> {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const tmp = tempDir('lucid-s3rver-');
  const bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const args = ['--openssl-legacy-provider', bin, '-d', tmp.dir, '-a', '127.0.0.1', '-p', '0', '--silent'];
  for (const b of buckets) args.push('--configure-bucket', b);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await waitForOutput(child, /listening on [^:]+:(\d+)/, 's3rver');
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket: buckets[0],
    close: async () => {
      await stopChild(child);
      tmp.remove();
    },
  };
}

async function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<string> {
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(output);
    if (m) return m[1] ?? m[0];
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface AzuriteServer {
  connectionString: string;
  container: string;
  close(): Promise<void>;
}

const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export async function startAzurite(container = 'lucid-test'): Promise<AzuriteServer> {
  const tmp = tempDir('lucid-azurite-');
  const port = await freePort();
  const bin = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js');
  const child: ChildProcess = spawn(process.execPath, [bin, '--blobHost', '127.0.0.1', '--blobPort', String(port),
    '--location', tmp.dir, '--silent', '--disableTelemetry', '--skipApiVersionCheck', '--loose'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitForOutput(child, /successfully listens/, 'azurite');
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`;
  await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container).createIfNotExists();
  return {
    connectionString,
    container,
    close: async () => {
      await stopChild(child);
      tmp.remove();
    },
  };
}

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/ (add a database name). */
  url: string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  close(): Promise<void>;
}

let dbCounter = 0;

/**
 * Starts a private PostgreSQL server from Debian's packages (postgresql) in a temp dir, as
 * the `postgres` user when running as root. fsync is off: these tests are about behaviour,
 * not the database's own durability.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const { existsSync, readdirSync, chownSync } = await import('node:fs');
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)) : [];
  const bin = versions.map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => existsSync(`${d}/postgres`));
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const tmp = tempDir('lucid-pg-');
  const data = path.join(tmp.dir, 'data');
  const asRoot = process.getuid?.() === 0;
  let uid = process.getuid?.() ?? 0;
  let gid = process.getgid?.() ?? 0;
  if (asRoot) {
    const { execFileSync } = await import('node:child_process');
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(tmp.dir, uid, gid);
  }
  // As root, the server runs as the postgres user (it refuses root), spawned directly so
  // signals reach it.
  const ids = asRoot ? { uid, gid, cwd: tmp.dir } : {};
  await new Promise<void>((resolve, reject) => {
    const c = spawn(`${bin}/initdb`, ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { stdio: ['ignore', 'ignore', 'pipe'], ...ids });
    let err = '';
    c.stderr!.on('data', (d) => { err += d; });
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed: ${err}`))));
  });
  const port = await freePort();
  const child = spawn(`${bin}/postgres`, ['-D', data, '-p', String(port), '-k', tmp.dir, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'], { stdio: ['ignore', 'pipe', 'pipe'], ...ids });
  await waitForOutput(child, /(database system is ready to accept connections)/, 'postgres');
  const url = `postgres://postgres@127.0.0.1:${port}/`;
  const pg = (await import('pg')).default;
  return {
    url,
    createDatabase: async (name = `lucid_${process.pid}_${++dbCounter}`) => {
      const c = new pg.Client({ connectionString: `${url}postgres` });
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return `${url}${name}`;
    },
    close: async () => {
      // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
      await stopChild(child, 'SIGINT', 10_000);
      tmp.remove();
    },
  };
}
