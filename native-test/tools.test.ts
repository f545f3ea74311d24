/**
 * Real tools inside the mount: tar extract and re-tar, git, SQLite, a 1 GiB cp/dd/cmp,
 * random writes against a reference file, and a rename/unlink storm.
 */
import t from 'tap';
import { sh, withMount, type MountFixture } from './helpers.js';

let fx: MountFixture;
t.before(async () => { fx = await withMount(t); });

t.test('tar: extract into the mount, re-tar, identical archive', async (t) => {
  const r = await sh(`
    set -e
    src=${fx.work}/tree; mkdir -p $src/a/b/c $src/empty
    for i in $(seq 1 60); do head -c $((RANDOM * 7 % 300000)) /dev/urandom > $src/a/file$i; done
    head -c 5M /dev/urandom > $src/a/b/c/large.bin
    echo hello > $src/a/b/hello.txt && ln -s b/hello.txt $src/a/link && ln $src/a/file1 $src/a/b/hard1
    chmod 750 $src/a/b && chmod 600 $src/a/file2
    find $src -exec touch -h -d '@1700000000' {} +
    tar --sort=name --numeric-owner --format=gnu -C ${fx.work} -cf ${fx.work}/a.tar tree
    mkdir ${fx.mp}/x && tar -C ${fx.mp}/x -xpf ${fx.work}/a.tar
    tar --sort=name --numeric-owner --format=gnu -C ${fx.mp}/x -cf ${fx.work}/b.tar tree
    cmp ${fx.work}/a.tar ${fx.work}/b.tar && echo identical
    diff -r $src ${fx.mp}/x/tree && echo same-tree
  `);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['identical', 'same-tree']);
});

t.test('git: init, commits, branches, gc and fsck inside the mount', async (t) => {
  const r = await sh(`
    set -e
    export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
    mkdir ${fx.mp}/repo && cd ${fx.mp}/repo
    git init -q -b main .
    for i in $(seq 1 20); do echo "line $i" >> notes.txt; head -c 20000 /dev/urandom > blob$((i % 5)); git add -A; git commit -qm "commit $i"; done
    git checkout -q -b feature && echo feature > f.txt && git add f.txt && git commit -qm feature
    git checkout -q main && git merge -q --no-edit feature
    git gc -q --aggressive
    git fsck --strict --full 2>&1 && echo fsck-ok
    git log --oneline | wc -l
    git status --porcelain | wc -l
  `);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['fsck-ok', '21', '0']);
});

t.test('SQLite: a database in the mount, in rollback and WAL modes', async (t) => {
  const r = await sh(`
    set -e
    cd ${fx.mp}
    for mode in delete wal; do
      sqlite3 db-$mode.sqlite "PRAGMA journal_mode=$mode;" >/dev/null
      sqlite3 db-$mode.sqlite "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
      for batch in $(seq 1 20); do
        sqlite3 db-$mode.sqlite "BEGIN; $(for i in $(seq 1 250); do printf "INSERT INTO t (v) VALUES (hex(randomblob(40)));"; done) COMMIT;"
      done
      sqlite3 db-$mode.sqlite "DELETE FROM t WHERE id % 3 = 0; VACUUM;"
      sqlite3 db-$mode.sqlite "PRAGMA integrity_check; SELECT count(*) FROM t;"
    done
  `);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['ok', '3334', 'ok', '3334']);
});

t.test('cp, dd and cmp of a 1 GiB file', async (t) => {
  const r = await sh(`
    set -e
    head -c 1G /dev/urandom > ${fx.work}/1g
    cp ${fx.work}/1g ${fx.mp}/copy.bin
    dd if=${fx.work}/1g of=${fx.mp}/dd.bin bs=4M conv=fsync status=none
    cmp ${fx.mp}/copy.bin ${fx.work}/1g && cmp ${fx.mp}/dd.bin ${fx.work}/1g && echo equal
    rm ${fx.work}/1g ${fx.mp}/copy.bin ${fx.mp}/dd.bin
  `);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), 'equal');
});

t.test('random writes at random offsets match a reference file', async (t) => {
  const r = await sh(`
    set -e
    ref=${fx.work}/ref; f=${fx.mp}/random.bin
    head -c 7000000 /dev/urandom > $ref && cp $ref $f
    for i in $(seq 1 300); do
      off=$(( (RANDOM * 32768 + RANDOM) % 9000000 )); len=$(( RANDOM % 70000 + 1 ))
      head -c $len /dev/urandom > ${fx.work}/c
      dd if=${fx.work}/c of=$f bs=64K seek=$off oflag=seek_bytes conv=notrunc status=none
      dd if=${fx.work}/c of=$ref bs=64K seek=$off oflag=seek_bytes conv=notrunc status=none
      if [ $((i % 50)) -eq 0 ]; then cmp $f $ref; fi
    done
    cmp $f $ref && echo match
  `);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), 'match');
});

t.test('a rename/unlink storm from parallel workers leaves exactly the expected tree', async (t) => {
  const r = await sh(`
    set -e
    cd ${fx.mp} && mkdir storm && cd storm && mkdir a b c
    worker() {
      w=$1
      for i in $(seq 1 150); do
        echo "$w-$i" > a/$w-$i
        mv a/$w-$i b/$w-$i
        ln b/$w-$i c/$w-$i-link
        if [ $((i % 3)) -eq 0 ]; then rm b/$w-$i; fi
        if [ $((i % 5)) -eq 0 ]; then mv c/$w-$i-link c/$w-$i-renamed; fi
        mkdir -p own$w && mv -T own$w c/$w-tmpdir && mv -T c/$w-tmpdir own$w
      done
    }
    for w in 1 2 3 4; do worker $w & done; wait
    ls a | wc -l; ls b | wc -l; ls c | wc -l; ls -d own* | wc -l
    cat c/3-10-renamed c/2-7-link
    for f in b/*; do [ "$(cat $f)" = "$(basename $f)" ] || echo "bad $f"; done
  `);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['0', String(4 * 100), String(4 * 150), '4', '3-10', '2-7']);
});
