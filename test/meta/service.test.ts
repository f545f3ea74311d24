/** The service over HTTP: health, authentication, malformed input, the push feed, TLS. */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { startService, MAX_BODY_BYTES } from '../../src/meta/service.js';
import { MetaClient } from '../../src/meta/client.js';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { InvalidArgumentError, UnauthorizedError } from '../../src/errors.js';
import { ROOT_INO, S_IFREG, type Commit } from '../../src/meta/types.js';
import { tempDir } from '../helpers/servers.js';
import { BLOCK, nm } from './conformance.js';

const TOKEN = 'cd'.repeat(32);
const tmp = tempDir();
t.teardown(() => tmp.remove());
const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: 'a'.repeat(32), blockSize: BLOCK });
const service = await startService({ engine, verifiers: [serviceVerifierOf(TOKEN)] });
t.teardown(async () => { await service.close(); await engine.close(); });

const post = (p: string, body: string, token: string = TOKEN) => fetch(`${service.url}${p}`, {
  method: 'POST', body, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
});

/** A subscription to the feed from `since`, once it has caught up. */
async function subscribed(client: MetaClient, since: number, onCommit: (c: Commit) => void): Promise<{ close(): void }> {
  let ready!: () => void;
  const isReady = new Promise<void>((r) => { ready = r; });
  const sub = client.subscribe(since, onCommit, () => ready());
  await isReady;
  return sub;
}

t.test('health answers 200 without a token', async (t) => {
  const res = await fetch(`${service.url}/v1/health`);
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'ok' });
});

t.test('calls need the filespace token', async (t) => {
  t.equal((await post('/v1/rpc/info', '{"args":[]}', '')).status, 401);
  t.equal((await post('/v1/rpc/info', '{"args":[]}', 'ef'.repeat(32))).status, 401);
  t.equal((await post('/v1/rpc/info', '{"args":[]}', 'short')).status, 401);
  const ok = await post('/v1/rpc/info', '{"args":[]}');
  t.equal(ok.status, 200);
  t.equal(((await ok.json()) as { result: { blockSize: number } }).result.blockSize, BLOCK);
  await t.rejects(new MetaClient(service.url, 'ef'.repeat(32)).info(), UnauthorizedError);
});

t.test('malformed requests get a clean 4xx and change nothing', async (t) => {
  const before = (await engine.info()).csn;
  const cases: [string, string, number][] = [
    ['/v1/rpc/info', '{not json', 400],
    ['/v1/rpc/info', '{"args": 5}', 400],
    ['/v1/rpc/noSuchMethod', '{"args":[]}', 404],
    ['/v1/rpc/close', '{"args":[]}', 404],
    ['/v1/rpc/constructor', '{"args":[]}', 404],
    ['/v1/nothing', '{}', 404],
    ['/v1/rpc/create', '{"args":[1, {"hash": 5, "enc": "x"}, {"mode": 33188}]}', 400],
    ['/v1/rpc/create', '{"args":[1, null, null]}', 400],
    ['/v1/rpc/getAttr', '{"args":["1; DROP TABLE inodes"]}', 400],
    ['/v1/rpc/getAttr', '{"args":[-1]}', 400],
    ['/v1/rpc/commitBlocks', '{"args":[1, [{"index": 0, "objectId": "../../x", "length": 1}]]}', 400],
    ['/v1/rpc/readdir', '{"args":[1, {"limit": 1e308}]}', 400],
  ];
  for (const [p, body, status] of cases) {
    const res = await post(p, body);
    t.equal(res.status, status, `${p} ${body}`);
    const payload = (await res.json()) as { error?: { code: string; message: string } };
    t.ok(payload.error?.code && payload.error.message, 'carries a code and a message');
  }
  const huge = await post('/v1/rpc/info', `{"args":["${'x'.repeat(MAX_BODY_BYTES + 10)}"]}`);
  t.equal(huge.status, 413);
  t.equal((await engine.info()).csn, before, 'no commit happened');
  t.equal((await fetch(`${service.url}/v1/health`)).status, 200, 'still serving');
  await t.rejects(new MetaClient(service.url, TOKEN).getAttr(-5), InvalidArgumentError, 'typed error through the client');
});

t.test('the feed pushes commits live and catches up from a CSN', async (t) => {
  const client = new MetaClient(service.url, TOKEN);
  const start = (await client.info()).csn;
  const got: Commit[] = [];
  const sub = await subscribed(client, start, (c) => got.push(c));
  const a = await client.create(ROOT_INO, nm('feed-a'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  await client.setAttr(a.ino, { mode: 0o600 });
  for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.same(got.map((c) => c.csn), [start + 1, start + 2], 'live, in order');
  t.ok(got[0].inos.includes(a.ino) && got[0].inos.includes(ROOT_INO));
  sub.close();

  const late: Commit[] = [];
  const sub2 = client.subscribe(start, (c) => late.push(c));
  for (let i = 0; i < 100 && late.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.same(late.map((c) => c.csn), [start + 1, start + 2], 'catch-up from an old CSN');
  sub2.close();
  await client.close();

  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`${service.url.replace('http', 'ws')}/v1/feed`);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => {});
  });
  t.equal(status, 401, 'the feed needs the token too');
});

t.test('a follower from before the pruned history is told to reset, then hears what the history holds', async (t) => {
  const client = new MetaClient(service.url, TOKEN);
  t.teardown(() => client.close());
  const start = (await client.info()).csn;
  const a = await client.create(ROOT_INO, nm('reset-a'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  await new Promise((r) => setTimeout(r, 5));
  await client.pruneVersions(Date.now());
  const from = (await client.info()).historyCsn!;
  t.ok(from > start, `the history now starts after commit ${from}`);
  await client.setAttr(a.ino, { mode: 0o600 });
  const heard: string[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => { ready = r; });
  const sub = client.subscribe(start, (c) => heard.push(`commit ${c.csn}`), () => ready(), undefined, undefined, (csn) => heard.push(`reset ${csn}`));
  await isReady;
  sub.close();
  t.same(heard, [`reset ${from}`, `commit ${(await client.info()).csn}`], 'the reset first, then the commits after the start of the history');
  const fresh: string[] = [];
  const sub2 = client.subscribe(from, (c) => fresh.push(`commit ${c.csn}`), undefined, undefined, undefined, (csn) => fresh.push(`reset ${csn}`));
  for (let i = 0; i < 100 && fresh.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  sub2.close();
  t.same(fresh, [`commit ${(await client.info()).csn}`], 'a follower within the history is not reset');
});

t.test('the feed never overtakes a reply: word of a commit comes after the answer to the call that made it', async (t) => {
  const client = new MetaClient(service.url, TOKEN);
  const start = (await client.info()).csn;
  const order: string[] = [];
  const sub = await subscribed(client, start, (c) => order.push(`feed ${c.csn}`));
  const a = await client.create(ROOT_INO, nm('feed-order'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  order.push(`reply ${a.version}`);
  const csns = [a.version];
  for (let i = 0; i < 40; i++) {
    const res = await client.applyBatch([{ op: 'setAttr', ino: a.ino, changes: { mode: 0o600 | (i % 2) } }]);
    order.push(`reply ${res.applied[0].csn}`);
    csns.push(res.applied[0].csn);
  }
  for (let i = 0; i < 200 && !order.includes(`feed ${csns.at(-1)}`); i++) await new Promise((r) => setTimeout(r, 10));
  const late = csns.filter((csn) => !(order.indexOf(`reply ${csn}`) < order.indexOf(`feed ${csn}`)));
  t.same(late, [], `each of ${csns.length} commits was answered before the feed told of it`);
  sub.close();
  await client.close();
});

t.test('a database from another filespace is refused', async (t) => {
  const other = tempDir();
  const file = path.join(other.dir, 'm.sqlite');
  const e1 = await SqlMetaEngine.open(await SqliteDriver.open(file), { filespaceId: '1'.repeat(32), blockSize: BLOCK });
  await e1.close();
  await t.rejects(SqlMetaEngine.open(await SqliteDriver.open(file), { filespaceId: '2'.repeat(32), blockSize: BLOCK }), InvalidArgumentError);
  other.remove();
});

t.test('TLS: the service speaks HTTPS with --tls-cert/--tls-key', async (t) => {
  const dir = tempDir();
  t.teardown(() => dir.remove());
  const key = path.join(dir.dir, 'key.pem');
  const cert = path.join(dir.dir, 'cert.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const tls = await startService({ engine, verifiers: [serviceVerifierOf(TOKEN)], tls: { cert: readFileSync(cert), key: readFileSync(key) } });
  t.teardown(() => tls.close());
  t.match(tls.url, /^https:/);
  const client = new MetaClient(tls.url, TOKEN, { ca: readFileSync(cert) });
  t.equal((await client.info()).blockSize, BLOCK);
  await client.close();
});
