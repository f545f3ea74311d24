/**
 * Where Lucid keeps things on this machine: $LUCID_HOME, or ~/.lucid. The embedded default
 * filespace (no cloud account needed) lives in its `default/` folder, with a generated
 * password file readable only by the owner unless LUCID_PASSWORD or --password-stdin is used.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { localStoreDir } from '../store/registry.js';

export function lucidHome(): string {
  return process.env.LUCID_HOME ?? path.join(os.homedir(), '.lucid');
}

export function defaultStoreUrl(): string {
  return pathToFileURL(path.join(lucidHome(), 'default', 'store')).href;
}

export function isDefaultStore(url: string): boolean {
  return url === defaultStoreUrl();
}

/** The embedded default's password, made on first use. */
export async function defaultStorePassword(create: boolean): Promise<string | undefined> {
  const file = path.join(lucidHome(), 'default', 'password');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    if (!create) return undefined;
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const password = randomBytes(24).toString('base64url');
    await fs.writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
    return password;
  }
}

/** Default SQLite metadata database: inside a file:// store, else under the Lucid home. */
export function defaultDbPath(storeUrl: string, filespaceId: string): string {
  const dir = localStoreDir(storeUrl);
  return dir ? path.join(dir, '.lucid', 'meta.sqlite') : path.join(lucidHome(), 'meta', `${filespaceId}.sqlite`);
}
