/**
 * Store URLs to backends, registered by scheme (file, s3, azure, memory). Parsing is strict:
 * a malformed URL is a BadStoreUrlError (exit 2) that says what the right form is.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadStoreUrlError } from '../errors.js';
import { FileStore } from './file.js';
import { MemoryStore } from './memory.js';
import type { ObjectStore } from './types.js';

/** Cloud backends load their SDK only when a URL names them (the Azure SDK alone is 7 MiB of heap). */
type Factory = (url: URL, raw: string) => ObjectStore | Promise<ObjectStore>;

const FORMS = 'file:///abs/dir, s3://bucket/prefix?endpoint=http://host:port&region=R, or azure://container/prefix';

function normalizePrefix(p: string): string {
  const trimmed = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed.split('/').some((s) => s === '.' || s === '..')) throw new BadStoreUrlError(`store prefix "${p}" may not contain "." or ".." segments`);
  return trimmed ? `${trimmed}/` : '';
}

const registry = new Map<string, Factory>([
  ['file:', (url, raw) => {
    if (url.host !== '' && url.host !== 'localhost') throw new BadStoreUrlError(`store URL ${raw} has a host; use file:///absolute/path`);
    const dir = fileURLToPath(url);
    if (!path.isAbsolute(dir)) throw new BadStoreUrlError(`store URL ${raw} must hold an absolute path: file:///abs/dir`);
    return new FileStore(dir.replace(/\/+$/, '') || '/');
  }],
  ['s3:', async (url, raw) => {
    if (!url.hostname) throw new BadStoreUrlError(`store URL ${raw} names no bucket: use s3://bucket/prefix`);
    const endpoint = url.searchParams.get('endpoint') ?? undefined;
    if (endpoint && !/^https?:\/\/[^/]+/.test(endpoint)) throw new BadStoreUrlError(`endpoint "${endpoint}" in ${raw} must be http://host:port or https://host`);
    const { S3Store } = await import('./s3.js');
    return new S3Store({
      bucket: decodeURIComponent(url.hostname),
      prefix: normalizePrefix(decodeURIComponent(url.pathname)),
      endpoint: endpoint?.replace(/\/+$/, ''),
      region: url.searchParams.get('region') ?? undefined,
    });
  }],
  ['azure:', async (url, raw) => {
    if (!url.hostname) throw new BadStoreUrlError(`store URL ${raw} names no container: use azure://container/prefix`);
    const { AzureStore } = await import('./azure.js');
    return new AzureStore({ container: decodeURIComponent(url.hostname), prefix: normalizePrefix(decodeURIComponent(url.pathname)) });
  }],
  ['memory:', (url) => new MemoryStore(url.hostname || 'test')],
]);

/** Opens the backend a store URL names. No I/O: call `probe()` to check it is there. */
export async function openStore(raw: string): Promise<ObjectStore> {
  if (/^[a-z0-9]+:\/\/[^?#]*\/\.{1,2}(\/|$|[?#])/i.test(raw)) throw new BadStoreUrlError(`store URL ${raw} may not contain "." or ".." segments`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadStoreUrlError(`"${raw}" is not a store URL: use ${FORMS}`);
  }
  const factory = registry.get(url.protocol);
  if (!factory) throw new BadStoreUrlError(`store URL scheme "${url.protocol}" is not supported: use ${FORMS}`);
  return factory(url, raw);
}

/** The local directory behind a file:// URL, or undefined for remote stores. */
export function localStoreDir(raw: string): string | undefined {
  return raw.startsWith('file:') ? fileURLToPath(new URL(raw)) : undefined;
}
