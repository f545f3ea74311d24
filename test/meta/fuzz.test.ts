/**
 * The service API under hostile input: a fixed corpus of malformed and hostile requests
 * (bad JSON, huge and deep bodies, wrong types, names of the wrong size, ids that do not
 * exist or belong elsewhere, replayed requests, another filespace's token, prototype keys),
 * then thousands of seeded random calls of every method with wrong-shaped arguments. Each
 * is a clean 4xx; the service never answers 5xx, never stops answering, and the filespace's
 * metadata is exactly as before (every table, row for row).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { startService, MAX_BODY_BYTES } from '../../src/meta/service.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { MetaClient } from '../../src/meta/client.js';
import { ROOT_INO, S_IFDIR, S_IFREG } from '../../src/meta/types.js';
import { BATCH_OP_PARAMS, META_METHODS, META_PARAMS } from '../../src/meta/rpc.js';
import { encodeWire } from '../../src/meta/wire.js';
import { tempDir } from '../helpers/servers.js';
import { seededRandom } from '../helpers/random.js';

const tmp = tempDir();
t.teardown(() => tmp.remove());
const dbFile = `${tmp.dir}/meta.sqlite`;
const engine = await SqlMetaEngine.open(await SqliteDriver.open(dbFile), { filespaceId: 'a'.repeat(32), blockSize: 65536 });
const token = 'ab'.repeat(32);
const service = await startService({ engine, verifiers: [serviceVerifierOf(token)], scheduleTickMs: 0 });
t.teardown(async () => { await service.close(); await engine.close(); });
const auth = { authorization: `Bearer ${token}` };

// A small filespace to protect: a folder, a file with blocks, a snapshot.
const client = new MetaClient(service.url, token);
const nm = (s: string) => ({ hash: createHash('sha256').update(s).digest(), enc: Buffer.from(`enc:${s}`) });
const dir = await client.create(ROOT_INO, nm('proj'), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 });
const file = await client.create(dir.ino, nm('cut.edl'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
const committed = await client.commitBlocks(file.ino, [{ index: 0, objectId: '0'.repeat(32), length: 100 }], { minSize: 100 });
await client.createSnapshot('guard');
await client.close();

/** Every table, row for row: what must not change. */
async function state(): Promise<string> {
  const db = await SqliteDriver.open(dbFile);
  try {
    const h = createHash('sha256');
    for (const table of ['inodes', 'dentries', 'blocks', 'xattrs', 'snapshots', 'snapshot_schedules', 'locks', 'counters']) {
      for (const line of (await db.all(`SELECT * FROM ${table}`)).map((r) => encodeWire(r)).sort()) h.update(`${table} ${line}\n`);
    }
    return h.digest('hex');
  } finally {
    await db.close();
  }
}
const before = await state();

async function send(path: string, body: string | Buffer, headers: Record<string, string> = auth, method = 'POST'): Promise<number> {
  const res = await fetch(`${service.url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: method === 'GET' ? undefined : typeof body === 'string' ? body : new Uint8Array(body) });
  await res.arrayBuffer();
  return res.status;
}
const rpc = (method: string, args: unknown) => send(`/v1/rpc/${method}`, encodeWire({ args }));
const b64 = (buf: Buffer) => ({ $b: buf.toString('base64') });

t.test('the hostile corpus: every request is a clean 4xx and changes nothing', async (t) => {
  const corpus: [string, () => Promise<number>][] = [
    ['not JSON', () => send('/v1/rpc/getAttr', '{"args": [1')],
    ['JSON but not an object', () => send('/v1/rpc/getAttr', '42')],
    ['args not an array', () => send('/v1/rpc/getAttr', '{"args": {"0": 1}}')],
    ['too many args', () => rpc('getAttr', [1, 2, 3, 4, 5, 6, 7])],
    ['a body over the limit', () => send('/v1/rpc/getAttr', Buffer.alloc(MAX_BODY_BYTES + 10, 0x20))],
    ['deeply nested JSON', () => send('/v1/rpc/getAttr', `{"args": [${'['.repeat(5000)}${']'.repeat(5000)}]}`)],
    ['no token', () => send('/v1/rpc/getAttr', encodeWire({ args: [1] }), {})],
    ['another filespace\'s token', () => send('/v1/rpc/getAttr', encodeWire({ args: [1] }), { authorization: `Bearer ${'cd'.repeat(32)}` })],
    ['a malformed Authorization header', () => send('/v1/rpc/getAttr', encodeWire({ args: [1] }), { authorization: 'Basic xyz' })],
    ['an unknown method', () => rpc('dropEverything', [])],
    ['a method name with a path', () => send('/v1/rpc/../health', '{}')],
    ['close is not callable', () => rpc('close', [])],
    ['GET on an RPC', () => send('/v1/rpc/getAttr', '', auth, 'GET')],
    ['prototype keys', () => send('/v1/rpc/getAttr', '{"args": [1], "__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}').then((s) => (s === 200 ? 400 : s))],
    ['an inode that does not exist', () => rpc('getAttr', [987654])],
    ['inode 0, negative, fractional, huge, a string', async () => Math.max(...await Promise.all([0, -1, 1.5, 2 ** 60, '1'].map((i) => rpc('getAttr', [i]))))],
    ['a hash of the wrong size', () => rpc('lookup', [dir.ino, b64(Buffer.alloc(31))])],
    ['a hash that is not bytes', () => rpc('lookup', [dir.ino, 'a'.repeat(32)])],
    ['a name with "/", "..", NUL, over 255 bytes: its hash is the wrong size', () => rpc('create', [dir.ino, { hash: b64(Buffer.from('../etc/passwd\0')), enc: b64(Buffer.alloc(300, 0x2f)) }, { mode: S_IFREG | 0o644, uid: 0, gid: 0 }])],
    ['a sealed name far over the limit', () => rpc('create', [dir.ino, { hash: b64(Buffer.alloc(32, 7)), enc: b64(Buffer.alloc(100_000, 1)) }, { mode: S_IFREG | 0o644, uid: 0, gid: 0 }])],
    ['create in a file (not a folder)', () => rpc('create', [file.ino, { hash: b64(Buffer.alloc(32, 7)), enc: b64(Buffer.from('x')) }, { mode: S_IFREG | 0o644, uid: 0, gid: 0 }])],
    ['a bad mode', () => rpc('create', [dir.ino, { hash: b64(Buffer.alloc(32, 8)), enc: b64(Buffer.from('x')) }, { mode: 0o170000, uid: 0, gid: 0 }])],
    ['replayed create (the name exists)', () => rpc('create', [ROOT_INO, { hash: b64(nm('proj').hash), enc: b64(nm('proj').enc) }, { mode: S_IFDIR | 0o755, uid: 0, gid: 0 }])],
    ['a create with an inode number never reserved', () => rpc('create', [dir.ino, { hash: b64(Buffer.alloc(32, 10)), enc: b64(Buffer.from('x')) }, { mode: S_IFREG | 0o644, uid: 0, gid: 0, ino: 2 ** 40 }])],
    ['a create with an inode number in use', () => rpc('create', [dir.ino, { hash: b64(Buffer.alloc(32, 11)), enc: b64(Buffer.from('x')) }, { mode: S_IFREG | 0o644, uid: 0, gid: 0, ino: file.ino }])],
    ['a reservation of a million inodes', () => rpc('reserveInodes', [1_000_000])],
    ['replayed commit (an old version)', () => rpc('commitBlocks', [file.ino, [{ index: 0, objectId: '1'.repeat(32), length: 100 }], { expectVersion: committed.version - 1 }])],
    ['a block ref with a bad object id', () => rpc('commitBlocks', [file.ino, [{ index: 0, objectId: '../../x', length: 100 }]])],
    ['a block ref with a negative index', () => rpc('commitBlocks', [file.ino, [{ index: -1, objectId: '1'.repeat(32), length: 100 }]])],
    ['a block ref longer than a block', () => rpc('commitBlocks', [file.ino, [{ index: 0, objectId: '1'.repeat(32), length: 65537 }]])],
    ['rmdir of a folder that is not empty', () => rpc('rmdir', [ROOT_INO, b64(nm('proj').hash)])],
    ['rename a folder into itself', () => rpc('rename', [ROOT_INO, b64(nm('proj').hash), dir.ino, { hash: b64(Buffer.alloc(32, 9)), enc: b64(Buffer.from('x')) }])],
    ['setAttr with a negative size', () => rpc('setAttr', [file.ino, { size: -5 }])],
    ['setAttr with a size of 2^60', () => rpc('setAttr', [file.ino, { size: 2 ** 60 }])],
    ['readdir with a forged cursor', () => rpc('readdir', [dir.ino, { cursor: 'not-a-cursor' }])],
    ['a snapshot that does not exist', () => rpc('restore', [424242, dir.ino, b64(nm('cut.edl').hash)])],
    ['delete a snapshot id 0', () => rpc('deleteSnapshot', [0])],
    ['a schedule every 0 ms', () => rpc('createSchedule', ['x', 0, 1])],
    ['a schedule keeping -1', () => rpc('createSchedule', ['x', 60_000, -1])],
    ['prune with a time that is not a number', () => rpc('pruneVersions', ['yesterday'])],
    ['retainedObjects with 20 000 ids', () => rpc('retainedObjects', [Array.from({ length: 20_000 }, () => '0'.repeat(32)), 0])],
    ['changesSince with a negative csn', () => rpc('changesSince', [-1])],
    ['a lock call that is not JSON', () => send('/v1/locks/set', '{')],
    ['a lock call with an unknown name', () => send('/v1/locks/steal', '{}')],
    ['a lock with a bad range', () => send('/v1/locks/set', JSON.stringify({ client: 'c', ino: file.ino, owner: 'o', range: { kind: 'posix', type: 'write', start: 10, end: 5, pid: 1 } }))],
    ['a lock on inode -1', () => send('/v1/locks/set', JSON.stringify({ client: 'c', ino: -1, owner: 'o', range: { kind: 'posix', type: 'write', start: 0, end: -1, pid: 1 } }))],
  ];
  for (const [what, run] of corpus) {
    const status = await run();
    t.ok(status >= 400 && status < 500, `${what}: ${status}`);
  }
  t.equal(await send('/v1/health', '', {}, 'GET'), 200, 'the service still answers');
  t.equal(await state(), before, 'the metadata is exactly as before');
});

/** Values that are certainly wrong for each kind of parameter. */
const WRONG: Record<string, unknown[]> = {
  int: [true, -1, 0.5, 2 ** 62, 'x', [], {}],
  bytes: [1, 'x', [], {}, true],
  name: [1, 'x', [], {}, { hash: 1, enc: 2 }],
  object: [1, 'x', [], true],
  array: [1, 'x', {}, true],
  string: [1, [], {}, true],
};

t.test('random wrong-shaped calls of every method: never a 5xx, nothing changes', async (t) => {
  const rand = seededRandom(20261121);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const pool: unknown[] = [null, true, -1, 0.5, 2 ** 62, '', 'x'.repeat(300), '../..', 'a\0b', [], [[[]]], {}, { $b: '!!!' }, b64(Buffer.alloc(3)),
    { __proto__: { x: 1 } }, 1, ROOT_INO, dir.ino, file.ino, b64(Buffer.alloc(32, 1)), { mode: S_IFREG | 0o644, uid: 0, gid: 0 }, 'name', 60_000];
  const statuses = new Map<number, number>();
  const methods = META_METHODS.filter((m) => META_PARAMS[m].length > 0);
  for (let i = 0; i < 3000; i++) {
    const method = pick(methods);
    const params = META_PARAMS[method];
    // Too many arguments, or the right number with one certainly wrong.
    const args: unknown[] = Array.from({ length: rand() < 0.15 ? params.length + 1 + Math.floor(rand() * 3) : params.length }, () => pick(pool));
    if (args.length === params.length) {
      const at = Math.floor(rand() * params.length);
      args[at] = pick(WRONG[params[at].replace('?', '')]);
    }
    const status = await rpc(method, args);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    if (status >= 500) t.fail(`${method}(${JSON.stringify(args)}) → ${status}`);
    else if (status < 400) t.fail(`a call with a wrong argument was accepted: ${method}(${JSON.stringify(args)})`);
  }
  t.ok([...statuses.keys()].every((s) => s < 500), `statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  t.equal(await send('/v1/health', '', {}, 'GET'), 200, 'the service still answers');
  t.equal(await state(), before, 'the metadata is exactly as before');
});

t.test('hostile batches: refused whole (4xx) or at their first operation, and nothing changes', async (t) => {
  const rand = seededRandom(20261205);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const name = { hash: b64(Buffer.alloc(32, 3)), enc: b64(Buffer.from('x')) };
  const valid: Record<string, Record<string, unknown>> = {
    create: { parent: dir.ino, name, node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 } },
    link: { ino: file.ino, parent: dir.ino, name },
    unlink: { parent: dir.ino, hash: b64(nm('cut.edl').hash), expectIno: file.ino },
    rmdir: { parent: ROOT_INO, hash: b64(nm('proj').hash) },
    rename: { parent: dir.ino, hash: b64(nm('cut.edl').hash), newParent: dir.ino, newName: name, noReplace: true },
    setAttr: { ino: file.ino, changes: { mode: 0o600 } },
    commitBlocks: { ino: file.ino, blocks: [{ index: 0, objectId: '2'.repeat(32), length: 10 }] },
    reclaim: { ino: file.ino },
    setXattr: { ino: file.ino, entry: { hash: b64(Buffer.alloc(32, 4)), nameEnc: b64(Buffer.from('n')), valueEnc: b64(Buffer.from('v')) } },
    removeXattr: { ino: file.ino, hash: b64(Buffer.alloc(32, 4)) },
  };
  // No empty object or list: `changes: {}` and `blocks: []` are operations that do nothing, and apply.
  const pool: unknown[] = [null, true, -1, 0.5, 2 ** 62, '', 'x', [[]], { x: 1 }, { $b: '!!!' }, b64(Buffer.alloc(3)), 987654, { hash: 1, enc: 2 }];
  const corpus: unknown[][] = [
    [null], [1], ['create'], [[]], [{}], [{ op: 'dropEverything' }], [{ op: '__proto__' }], [{ op: 'toString' }],
    [{ op: 'create', parent: dir.ino, name, node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 }, extra: 1 }],
    [{ op: 'setAttr', ino: file.ino, changes: { mode: 0o600 }, options: { expectVersion: 1 } }],
    [{ op: 'unlink', parent: dir.ino, hash: b64(nm('cut.edl').hash), expectIno: dir.ino }],
    Array.from({ length: 1001 }, () => ({ op: 'reclaim', ino: file.ino })),
  ];
  // Each kind of operation with one field certainly wrong (or missing), as the first of the batch.
  for (let i = 0; i < 600; i++) {
    const kind = pick(Object.keys(valid));
    const op: Record<string, unknown> = { op: kind, ...valid[kind] };
    // A required field (an optional one left out, or null, makes a valid operation).
    const field = pick(Object.keys(valid[kind]).filter((k) => !BATCH_OP_PARAMS[kind as keyof typeof BATCH_OP_PARAMS][k].endsWith('?')));
    if (rand() < 0.2) delete op[field];
    else op[field] = pick(pool);
    corpus.push([op, { op: 'setAttr', ino: file.ino, changes: { mode: 0o600 } }]);
  }
  let refusedWhole = 0;
  let refusedFirst = 0;
  for (const ops of corpus) {
    const res = await fetch(`${service.url}/v1/rpc/applyBatch`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: encodeWire({ args: [ops] }) });
    const body = await res.json() as { result?: { applied: unknown[]; failed?: { index: number } } };
    if (res.status >= 500) t.fail(`${JSON.stringify(ops).slice(0, 200)} → ${res.status}`);
    else if (res.status >= 400) refusedWhole++;
    else if (body.result?.applied.length === 0 && body.result.failed?.index === 0) refusedFirst++;
    else t.fail(`a hostile batch applied something: ${JSON.stringify(ops).slice(0, 200)} → ${JSON.stringify(body)}`);
  }
  t.equal(refusedWhole + refusedFirst, corpus.length, `${refusedWhole} refused whole, ${refusedFirst} at their first operation`);
  t.equal(await send('/v1/health', '', {}, 'GET'), 200, 'the service still answers');
  t.equal(await state(), before, 'the metadata is exactly as before');
});
