/**
 * The library end to end on real backends: what is written reads back byte for byte; the
 * store and the metadata database hold no plaintext; tampering is an IntegrityError.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { IntegrityError, NoEntryError } from '../../src/errors.js';
import { FileStore } from '../../src/store/file.js';
import { MemoryStore } from '../../src/store/memory.js';
import { FaultyStore } from '../../src/store/faults.js';
import { S3Store } from '../../src/store/s3.js';
import { listAll } from '../../src/store/types.js';
import { DESCRIPTOR_KEY, blockKey } from '../../src/store/keys.js';

import { startS3rver, tempDir } from '../helpers/servers.js';
import { dbPathIn, makeFilespace } from '../helpers/filespace.js';
import { loadDescriptor } from '../../src/fs/descriptor-store.js';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

t.test('no plaintext name, content, password or key anywhere in the store or the database', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const password = 'Tr0ub4dor&3-unique-password';
  const fx = await makeFilespace(new FileStore(tmp.dir), dbPathIn(tmp.dir), { password, blockSize: 65536 });
  const { fs: f } = fx;
  const secrets = {
    dir: 'Confidential-Project-Falcon',
    file: 'ending-where-the-hero-dies.txt',
    other: 'payroll-2026-salaries.csv',
    link: 'shortcut-to-secret-cut',
    target: '/Volumes/SecretTarget/final-cut.mov',
    xattrName: 'user.classification-level',
    xattrValue: 'TOP-SECRET-EYES-ONLY',
  };
  const text = Buffer.from('The hero dies in the last reel. Nobody may learn this before the premiere. '.repeat(3000));
  const binary = randomBytes(300_000);
  await f.mkdir(secrets.dir);
  await f.writeFile(`${secrets.dir}/${secrets.file}`, text);
  await f.writeFile(`${secrets.dir}/${secrets.other}`, binary);
  await f.symlink(secrets.target, `${secrets.dir}/${secrets.link}`);
  await f.setXattr(`${secrets.dir}/${secrets.file}`, secrets.xattrName, Buffer.from(secrets.xattrValue));
  await f.rename(`${secrets.dir}/${secrets.other}`, `${secrets.dir}/renamed-${secrets.other}`);

  t.ok((await f.readFile(`${secrets.dir}/${secrets.file}`)).equals(text), 'text reads back');
  t.ok((await f.readFile(`${secrets.dir}/renamed-${secrets.other}`)).equals(binary), 'binary reads back');
  t.equal(await f.readlink(`${secrets.dir}/${secrets.link}`), secrets.target);
  t.equal((await f.getXattr(`${secrets.dir}/${secrets.file}`, secrets.xattrName)).toString(), secrets.xattrValue);
  t.same(await f.listXattr(`${secrets.dir}/${secrets.file}`), [secrets.xattrName]);
  t.same((await f.readdir(secrets.dir)).map((e) => e.name), [secrets.link, secrets.file, `renamed-${secrets.other}`].sort());
  await fx.close();

  const keys = f.unlocked.keys;
  const needles: [string, Buffer][] = [
    ...Object.entries(secrets).map(([k, v]) => [k, Buffer.from(v)] as [string, Buffer]),
    ['text content', text.subarray(0, 24)],
    ['password', Buffer.from(password)],
    ['name key', keys.nameEnc], ['name-hash key', keys.nameHash], ['meta key', keys.meta], ['service token', keys.serviceToken],
    ['service token (hex)', Buffer.from(keys.serviceToken.toString('hex'))],
  ];
  for (let i = 0; i < 40; i++) {
    const at = Math.floor(Math.random() * (binary.length - 16));
    needles.push([`binary window @${at}`, binary.subarray(at, at + 16)]);
  }
  const files = await filesUnder(tmp.dir);
  t.ok(files.some((p) => p.endsWith('meta.sqlite')), 'the database is among the scanned files');
  const expectedBlocks = Math.ceil(text.length / 65536) + Math.ceil(binary.length / 65536);
  t.equal(files.filter((p) => p.includes(`${path.sep}blocks${path.sep}`)).length, expectedBlocks, 'every block object scanned');
  let scanned = 0;
  for (const file of files) {
    const bytes = await fs.readFile(file);
    scanned += bytes.length;
    for (const [what, needle] of needles) {
      if (bytes.includes(needle)) t.fail(`${what} found in plaintext in ${path.relative(tmp.dir, file)}`);
    }
  }
  t.ok(scanned > text.length, `scanned ${scanned} bytes in ${files.length} files`);
});

t.test('tampering with a block, a sealed name, a symlink target or an xattr is an IntegrityError', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const store = new FileStore(tmp.dir);
  const fx = await makeFilespace(store, dbPathIn(tmp.dir));
  const { fs: f } = fx;
  const victim = randomBytes(200_000);
  const bystander = randomBytes(100_000);
  await f.mkdir('d');
  await f.writeFile('d/victim.bin', victim);
  await f.writeFile('bystander.bin', bystander);
  await f.symlink('/target/path', 'd/link');
  await f.setXattr('bystander.bin', 'user.tag', Buffer.from('value'));
  const attr = await f.resolve('d/victim.bin');
  const [ref] = await fx.engine.getBlocks(attr.ino, 1, 1);
  const objectPath = path.join(tmp.dir, ...blockKey(ref.objectId).split('/'));
  const original = await fs.readFile(objectPath);
  for (const at of [0, 12, 30, 38, 5000, original.length - 1]) {
    const bad = Buffer.from(original);
    bad[at] ^= 0x10;
    await fs.writeFile(objectPath, bad);
    await t.rejects(f.readFile('d/victim.bin'), IntegrityError, `flipped byte ${at}`);
  }
  await fs.writeFile(objectPath, original.subarray(0, original.length - 100));
  await t.rejects(f.readFile('d/victim.bin'), IntegrityError, 'truncated object');
  const [otherRef] = await fx.engine.getBlocks((await f.resolve('bystander.bin')).ino, 0, 1);
  await fs.copyFile(path.join(tmp.dir, ...blockKey(otherRef.objectId).split('/')), objectPath);
  await t.rejects(f.readFile('d/victim.bin'), IntegrityError, "another object's bytes under this id");
  t.ok((await f.read(attr.ino, 0, 65536)).equals(victim.subarray(0, 65536)), 'untouched blocks of the file still read');
  t.ok((await f.readFile('bystander.bin')).equals(bystander), 'other files still read');
  await fs.writeFile(objectPath, original);
  t.ok((await f.readFile('d/victim.bin')).equals(victim), 'restored object reads again');

  // Metadata blobs, changed behind the service's back in the database itself.
  const db = new Database(dbPathIn(tmp.dir));
  const flip = (table: string, column: string, where: string, params: unknown[]) => {
    const row = db.prepare(`SELECT rowid, ${column} AS v FROM ${table} WHERE ${where}`).get(...params) as { rowid: number; v: Buffer };
    const bad = Buffer.from(row.v);
    bad[bad.length - 3] ^= 0x01;
    db.prepare(`UPDATE ${table} SET ${column} = ? WHERE rowid = ?`).run(bad, row.rowid);
  };
  const dIno = (await f.resolve('d')).ino;
  flip('dentries', 'name_enc', 'parent = ? AND csn_to > 1e15 AND ino = ?', [dIno, attr.ino]);
  await t.rejects(f.readdir('d'), IntegrityError, 'sealed name');
  flip('inodes', 'target', 'ino = ? AND csn_to > 1e15', [(await f.resolve('d/link')).ino]);
  await t.rejects(f.readlink('d/link'), IntegrityError, 'symlink target');
  flip('xattrs', 'value_enc', 'ino = ? AND csn_to > 1e15', [(await f.resolve('bystander.bin')).ino]);
  await t.rejects(f.getXattr('bystander.bin', 'user.tag'), IntegrityError, 'xattr value');
  // Swap two entries' sealed names: each still authenticates, but no longer hashes to its entry.
  const rows = db.prepare('SELECT rowid, name_enc FROM dentries WHERE parent = 1 AND csn_to > 1e15 ORDER BY rowid').all() as { rowid: number; name_enc: Buffer }[];
  db.prepare('UPDATE dentries SET name_enc = ? WHERE rowid = ?').run(rows[1].name_enc, rows[0].rowid);
  db.prepare('UPDATE dentries SET name_enc = ? WHERE rowid = ?').run(rows[0].name_enc, rows[1].rowid);
  db.close();
  await t.rejects(f.readdir('/'), IntegrityError, 'swapped sealed names');
  await fx.close();

  const desc = await fs.readFile(path.join(tmp.dir, DESCRIPTOR_KEY));
  desc[100] ^= 0x04;
  await fs.writeFile(path.join(tmp.dir, DESCRIPTOR_KEY), desc);
  await t.rejects(loadDescriptor(store), IntegrityError, 'descriptor in the store');
});

t.test('the store is log-structured: rewriting a block adds an object, never overwrites one', async (t) => {
  const store = new MemoryStore();
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const fx = await makeFilespace(store, path.join(tmp.dir, 'm.sqlite'));
  const { fs: f } = fx;
  await f.writeFile('a.bin', randomBytes(65536 * 3));
  const snapshot = new Map<string, Buffer>();
  for await (const o of listAll(store, 'blocks/')) snapshot.set(o.key, Buffer.from(store.raw(o.key)!));
  const csnBefore = (await fx.engine.info()).csn;
  const ino = (await f.resolve('a.bin')).ino;
  await f.write(ino, 65536 + 10, Buffer.from('patched'));
  const after = new Map<string, Buffer>();
  for await (const o of listAll(store, 'blocks/')) after.set(o.key, store.raw(o.key)!);
  t.equal(after.size, snapshot.size + 1, 'one new object');
  for (const [k, v] of snapshot) t.ok(after.get(k)?.equals(v), `old object ${k} unchanged`);
  const old = await f.read(ino, 65536, 65536, csnBefore);
  const now = await f.read(ino, 65536, 65536);
  t.notOk(old.equals(now), 'the old version still reads as of its CSN');
  t.equal(now.subarray(10, 17).toString(), 'patched');
  await fx.close();
});

t.test('random writes, truncates and reads match a reference buffer', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const fx = await makeFilespace(new MemoryStore(), path.join(tmp.dir, 'm.sqlite'), { blockSize: 65536 });
  const { fs: f } = fx;
  let reference = Buffer.alloc(0);
  const attr = await f.writeFile('r.bin', Buffer.alloc(0));
  for (let op = 0; op < 150; op++) {
    const roll = Math.random();
    if (roll < 0.75) {
      const off = Math.floor(Math.random() * 500_000);
      const data = randomBytes(1 + Math.floor(Math.random() * 150_000));
      await f.write(attr.ino, off, data);
      if (reference.length < off + data.length) reference = Buffer.concat([reference, Buffer.alloc(off + data.length - reference.length)]);
      data.copy(reference, off);
    } else {
      const size = Math.floor(Math.random() * 600_000);
      await fx.fs.meta.setAttr(attr.ino, { size });
      reference = size <= reference.length ? Buffer.from(reference.subarray(0, size)) : Buffer.concat([reference, Buffer.alloc(size - reference.length)]);
    }
    if (op % 10 === 9) {
      const got = await f.readFile('r.bin');
      if (!got.equals(reference)) { t.fail(`mismatch after op ${op}`); break; }
    }
  }
  const off = Math.floor(Math.random() * reference.length);
  t.ok((await f.read(attr.ino, off, 100_000)).equals(reference.subarray(off, off + 100_000)), 'a random range');
  t.ok((await f.readFile('r.bin')).equals(reference), 'whole file identical');
  await fx.close();
});

t.test('a library write that cannot reach the store throws, and nothing of it lands later', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const store = new FaultyStore(new MemoryStore());
  const fx = await makeFilespace(store, path.join(tmp.dir, 'm.sqlite'), { blockSize: 65536 });
  const { fs: f } = fx;
  const first = randomBytes(65536 * 2 + 100);
  const attr = await f.writeFile('w.bin', first);
  t.equal(attr.size, first.length, 'writeFile returns the committed size');
  store.inject({ op: 'put', fault: { kind: 'accessDenied' } });
  await t.rejects(f.write(attr.ino, 10, Buffer.from('never lands')), { code: 'AccessDenied' }, 'the store\'s error reaches the caller');
  store.clear();
  // The uploader retries a failed block after 2 s: a discarded write must not be among them.
  await new Promise((r) => setTimeout(r, 2500));
  t.ok((await f.readFile('w.bin')).equals(first), 'the file is as before the failed write');
  const after = await f.write(attr.ino, 65536 * 2 + 90, Buffer.from('past the end of the file'));
  const expected = Buffer.concat([first.subarray(0, 65536 * 2 + 90), Buffer.from('past the end of the file')]);
  t.equal(after.size, expected.length, 'a write past the end returns the grown size');
  t.ok((await f.readFile('w.bin')).equals(expected), 'partial block patched byte for byte');
  await fx.close();
});

t.test('S3 (s3rver) store with the metadata service over HTTP: byte-identical round trip', async (t) => {
  const s3 = await startS3rver();
  const tmp = tempDir();
  t.teardown(async () => { await s3.close(); tmp.remove(); });
  const store = new S3Store({ bucket: s3.bucket, prefix: 'team/', endpoint: s3.endpoint });
  const fx = await makeFilespace(store, path.join(tmp.dir, 'm.sqlite'), { viaService: true, blockSize: 1 << 20 });
  const { fs: f } = fx;
  const big = randomBytes(5 * 1024 * 1024 + 333);
  await f.mkdir('media');
  await f.writeFile('media/clip.mov', big);
  await f.write((await f.resolve('media/clip.mov')).ino, 3_000_000, Buffer.from('overwritten in the middle'));
  Buffer.from('overwritten in the middle').copy(big, 3_000_000);
  t.ok((await f.readFile('media/clip.mov')).equals(big), '5 MiB file identical through S3 and the service');
  await f.unlink('media/clip.mov');
  await t.rejects(f.resolve('media/clip.mov'), NoEntryError);
  let objects = 0;
  for await (const o of listAll(store, 'blocks/')) { objects++; t.ok(o.size > 0); }
  t.ok(objects >= 7, `${objects} block objects in the bucket`);
  await fx.close();
  await store.close();
});
