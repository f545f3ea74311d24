/**
 * The walkthrough on the embedded default, through a real mount with real tools:
 * 48 MiB written, scattered random writes, a rename, a hard link, a symlink, a truncate
 * through the hard link, unmount and mount again — every byte as expected. Then nothing in
 * plaintext under the store or the cache.
 */
import t from 'tap';
import { sh, withMount } from './helpers.js';

t.test('walkthrough on the embedded default survives a remount byte for byte', async (t) => {
  const fx = await withMount(t, { embedded: true });
  const { mp, work } = fx;
  const script = `
    set -e
    head -c 48M /dev/urandom > ${work}/ref
    cp ${work}/ref ${mp}/data.bin
    # scattered writes at random offsets, mirrored on the reference
    for i in $(seq 1 40); do
      off=$(( (RANDOM * 32768 + RANDOM) % (60 * 1024 * 1024) ))
      len=$(( RANDOM % 200000 + 1 ))
      head -c $len /dev/urandom > ${work}/chunk
      dd if=${work}/chunk of=${mp}/data.bin bs=64K seek=$off oflag=seek_bytes conv=notrunc status=none
      dd if=${work}/chunk of=${work}/ref bs=64K seek=$off oflag=seek_bytes conv=notrunc status=none
    done
    cmp ${mp}/data.bin ${work}/ref
    mkdir ${mp}/project
    mv ${mp}/data.bin ${mp}/project/renamed.bin
    ln ${mp}/project/renamed.bin ${mp}/hardlink.bin
    ln -s project/renamed.bin ${mp}/symlink.bin
    truncate -s 30000001 ${mp}/hardlink.bin
    truncate -s 30000001 ${work}/ref
    cmp ${mp}/symlink.bin ${work}/ref
    stat -c '%h %s' ${mp}/project/renamed.bin
  `;
  const r = await sh(script);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), '2 30000001', 'two links, truncated size seen through the other name');
  t.equal((await fx.unmount()).code, 0, 'unmount uploads and stops');
  t.equal((await fx.mount()).code, 0, 'mounts again');
  const after = await sh(`
    set -e
    cmp ${mp}/project/renamed.bin ${work}/ref
    cmp ${mp}/hardlink.bin ${work}/ref
    cmp ${mp}/symlink.bin ${work}/ref
    readlink ${mp}/symlink.bin
    stat -c '%h %s' ${mp}/hardlink.bin
    ls ${mp}
  `);
  t.equal(after.code, 0, after.stderr);
  t.same(after.stdout.trim().split('\n'), ['project/renamed.bin', '2 30000001', 'hardlink.bin', 'project', 'symlink.bin']);

  // Nothing readable in the store or the cache: no name, no 64-byte piece of the content.
  const scan = await sh(`python3 - "${fx.store}" "${fx.cacheDir}" "${work}/ref" <<'PY'
import os, sys
ref = open(sys.argv[3], 'rb').read()
needles = [b'renamed.bin', b'hardlink.bin', b'symlink.bin', b'project/'] + [ref[o:o + 64] for o in range(0, len(ref) - 64, 3_000_017)]
hits = []
for root in sys.argv[1:3]:
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            data = open(p, 'rb').read()
            hits += [f'{p}: {n[:16]!r}' for n in needles if n in data]
print('\\n'.join(hits))
sys.exit(1 if hits else 0)
PY`);
  t.equal(scan.code, 0, `plaintext found: ${scan.stdout}`);
});
