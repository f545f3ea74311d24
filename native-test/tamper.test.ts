/**
 * Tampering with what the store and the metadata database hold, read through a real mount
 * with an empty cache: a flipped bit in a block object, an object swapped for another, an
 * old object replayed under a newer id, a truncated object, a tampered sealed name. Each
 * time the reader gets EIO (never wrong bytes), the agent's log names the object, and other
 * files still read. Put the original bytes back and the file reads again: nothing bad was
 * cached.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LIVE } from '../src/meta/sql/schema.js';
import { blockKey } from '../src/store/keys.js';
import { sh, withMount, type MountFixture } from './helpers.js';


/** The live block objects of a file, by the inode number `stat` shows. */
async function objectsOf(fx: MountFixture, file: string): Promise<string[]> {
  const ino = Number((await sh(`stat -c %i ${file}`)).stdout.trim());
  const db = new Database(path.join(fx.store, '.lucid', 'meta.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT object_id FROM blocks WHERE ino = ? AND csn_to = ? ORDER BY idx').all(ino, LIVE) as { object_id: string }[]).map((r) => r.object_id);
  } finally {
    db.close();
  }
}

const objectPath = (fx: MountFixture, id: string) => path.join(fx.store, blockKey(id));
const agentLog = (fx: MountFixture) => readdirSync(path.join(fx.home, 'logs')).map((f) => readFileSync(path.join(fx.home, 'logs', f), 'utf8')).join('\n');

t.test('tampered blocks and names: EIO, the log names the object, other files read', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`cd ${fx.mp} && mkdir shots && for f in a b c d; do head -c 3M /dev/urandom > ${fx.work}/$f; cp ${fx.work}/$f shots/$f.mov; done \\
    && head -c 3M /dev/urandom > ${fx.work}/d.old && dd if=${fx.work}/d.old of=shots/old.mov bs=1M conv=fsync status=none \\
    && cp ${fx.work}/d shots/old.mov && sync && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  // sync(1) does not reach the mount: `lucid sync` waits until every block is uploaded and committed.
  t.equal((await fx.lucid(['sync', fx.mp])).code, 0, 'lucid sync');
  const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((f) => objectsOf(fx, `${fx.mp}/shots/${f}.mov`)));
  t.equal(a.length, 3, 'three blocks per file');

  /** Unmounts, runs `tamper`, remounts with an empty cache. */
  const cold = async (tamper: () => Promise<void>) => {
    t.equal((await fx.unmount()).code, 0);
    await tamper();
    await sh(`rm -rf ${fx.cacheDir}`);
    t.equal((await fx.mount()).code, 0);
  };
  const readsAs = async (file: string, ref: string) => (await sh(`cmp ${fx.mp}/shots/${file} ${fx.work}/${ref} && echo same`)).stdout.trim() === 'same';
  const eio = async (file: string) => {
    const r = await sh(`cat ${fx.mp}/shots/${file} > /dev/null; echo "exit $?"`);
    return /exit 1/.test(r.stdout) && /Input\/output error/.test(r.stderr);
  };

  // A flipped bit in the second block of a.mov.
  const original = await fs.readFile(objectPath(fx, a[1]));
  await cold(async () => {
    const bad = Buffer.from(original);
    bad[1000] ^= 0x10;
    await fs.writeFile(objectPath(fx, a[1]), bad);
  });
  t.ok(await eio('a.mov'), 'a flipped bit: EIO');
  t.ok(await readsAs('b.mov', 'b'), 'another file still reads');
  t.match(agentLog(fx), new RegExp(`block object ${a[1]} failed authentication`), 'the log names the object');
  const head = await sh(`head -c 1M ${fx.mp}/shots/a.mov | cmp - <(head -c 1M ${fx.work}/a) && echo same`);
  t.equal(head.stdout.trim(), 'same', 'the untouched first block of the same file still reads');

  // Swapped: c.mov's first object holds b.mov's first object's bytes.
  await cold(async () => {
    await fs.writeFile(objectPath(fx, a[1]), original);
    await fs.copyFile(objectPath(fx, b[0]), objectPath(fx, c[0]));
  });
  t.ok(await readsAs('a.mov', 'a'), 'with its bytes put back, a.mov reads again (nothing bad was cached)');
  t.ok(await eio('c.mov'), 'a swapped object: EIO');
  t.match(agentLog(fx), new RegExp(`block object ${c[0]} carries another object's id`), 'named as swapped or replayed');

  // Replayed: the old version's object put back under the new version's id.
  const old = (await fs.readdir(path.join(fx.store, 'blocks'), { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile()).map((e) => e.name).filter((id) => ![...a, ...b, ...c, ...d].includes(id));
  const dNow = await objectsOf(fx, `${fx.mp}/shots/old.mov`);
  const replayed = old.find((id) => !dNow.includes(id))!;
  await cold(async () => {
    await fs.copyFile(objectPath(fx, replayed), objectPath(fx, dNow[0]));
  });
  t.ok(await eio('old.mov'), 'an old object replayed under a newer id: EIO, never the old bytes');

  // Truncated.
  await cold(async () => {
    const full = await fs.readFile(objectPath(fx, d[2]));
    await fs.writeFile(objectPath(fx, d[2]), full.subarray(0, full.length - 100));
  });
  t.ok(await eio('d.mov'), 'a truncated object: EIO');
  t.ok(await readsAs('b.mov', 'b'), 'b.mov still reads');

  // A tampered sealed name: the listing fails, names elsewhere and files by path still work.
  await cold(async () => {
    const db = new Database(path.join(fx.store, '.lucid', 'meta.sqlite'));
    try {
      const row = db.prepare('SELECT parent, hash, csn_from, name_enc FROM dentries WHERE csn_to = ? AND length(name_enc) > 0 ORDER BY csn_from DESC LIMIT 1').get(LIVE) as { parent: number; hash: Buffer; csn_from: number; name_enc: Buffer };
      const bad = Buffer.from(row.name_enc);
      bad[bad.length - 1] ^= 0x01;
      db.prepare('UPDATE dentries SET name_enc = ? WHERE parent = ? AND hash = ? AND csn_from = ?').run(bad, row.parent, row.hash, row.csn_from);
    } finally {
      db.close();
    }
  });
  const ls = await sh(`ls ${fx.mp}/shots; echo "exit $?"`);
  t.match(ls.stdout, /exit [12]/, 'listing the folder with the tampered name fails');
  t.match(ls.stderr, /Input\/output error/, 'with EIO');
  t.match(agentLog(fx), /name .*failed authentication|failed authentication.*name/i, 'the log says which');
  t.ok(await readsAs('b.mov', 'b'), 'files in it still read by path');
  t.equal((await sh(`ls ${fx.mp} && echo listed`)).stdout.trim().split('\n').pop(), 'listed', 'other folders still list');
});
