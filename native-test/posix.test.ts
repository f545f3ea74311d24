/**
 * POSIX behaviour through a real mount, one subtest per statement in docs/SEMANTICS.md.
 * The scripts use real tools and print what they observe; the tests compare exactly.
 */
import t, { type Test } from 'tap';
import { sh, withMount, type MountFixture } from './helpers.js';

let fx: MountFixture;
t.before(async () => { fx = await withMount(t, { allowOther: true }); });

const run = async (t: Test, script: string, expected: string[]) => {
  const r = await sh(`cd ${fx.mp}\n${script}`);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), expected);
};

t.test('errors: each failure has its errno', async (t) => {
  await run(t, `
    mkdir e && cd e
    cat missing 2>&1 | grep -o 'No such file or directory'
    mkdir d && mkdir d 2>&1 | grep -o 'File exists'
    touch d/f && rmdir d 2>&1 | grep -o 'Directory not empty'
    touch plain && mkdir plain/x 2>&1 | grep -o 'Not a directory'
    rm d/f && rm d 2>&1 | grep -o 'Is a directory'
    touch "$(printf 'n%.0s' $(seq 1 256))" 2>&1 | grep -o 'File name too long'
    touch "$(printf 'n%.0s' $(seq 1 255))" && echo 255-ok
    ln d dlink 2>&1 | grep -o 'hard link not allowed for directory'
  `, ['No such file or directory', 'File exists', 'Directory not empty', 'Not a directory', 'Is a directory', 'File name too long', '255-ok', 'hard link not allowed for directory']);
});

t.test('rename is atomic, replaces files and empty directories, refuses the rest', async (t) => {
  await run(t, `
    mkdir r && cd r
    echo one > a && echo two > b && mv a b && cat b && ls
    mkdir x y && touch y/inner && mv -T x y 2>&1 | grep -o 'Directory not empty'
    rm y/inner && mv -T x y && ls
    mkdir -p p/q && python3 -c "import os; os.rename('p', 'p/q/z')" 2>&1 | grep -o 'Invalid argument'
    echo moved > f && mkdir other && mv f other/g && cat other/g
    touch k && mv --no-clobber k other/g; cat other/g
  `, ['one', 'b', 'Directory not empty', 'b', 'y', 'Invalid argument', 'moved', 'moved']);
});

t.test('hard links share data and count links; unlink of an open file keeps it readable', async (t) => {
  await run(t, `
    mkdir h && cd h
    echo data > a && ln a b && ln a c && stat -c %h a
    echo more >> c && cat a
    rm a b && stat -c %h c
    exec 3< c; rm c; ls | wc -l; cat <&3; exec 3<&-
    ls | wc -l
  `, ['3', 'data', 'more', '1', '0', 'data', 'more', '0']);
});

t.test('O_APPEND, sparse files and files over 4 GiB', async (t) => {
  await run(t, `
    mkdir s && cd s
    echo first > log && echo second >> log && printf third >> log && cat log && echo
    truncate -s 10M sparse && stat -c %s sparse && cmp sparse <(head -c 10M /dev/zero) && echo zeros
    printf 'X' | dd of=sparse bs=1 seek=5000000 conv=notrunc status=none
    dd if=sparse bs=1 skip=4999999 count=3 status=none | od -An -c | xargs
    truncate -s 5G big && printf 'end-of-big' | dd of=big bs=1M seek=$((4600)) conv=notrunc status=none
    stat -c %s big
    dd if=big bs=1M skip=4600 count=1 status=none | head -c 10; echo
    dd if=big bs=1M skip=100 count=1 status=none | tr -d '\\0' | wc -c
  `, ['first', 'second', 'third', '10485760', 'zeros', '0 X 0', '5368709120', 'end-of-big', '0']);
});

t.test('truncate down and up: old bytes never come back', async (t) => {
  await run(t, `
    mkdir tr && cd tr
    head -c 3000000 /dev/urandom > f && truncate -s 1500000 f && truncate -s 3000000 f
    dd if=f bs=1 skip=1500000 count=1500000 status=none | tr -d '\\0' | wc -c
    stat -c %s f
    sync && truncate -s 10 f && truncate -s 2000000 f && tail -c +11 f | tr -d '\\0' | wc -c
  `, ['0', '3000000', '0']);
});

t.test('permissions, ownership and times', async (t) => {
  await run(t, `
    mkdir pm && cd pm
    touch f && chmod 640 f && stat -c %a f
    chown 1234:5678 f && stat -c '%u %g' f
    touch -m -d '2001-02-03 04:05:06.789' f && stat -c %y f | cut -c1-23
    touch -a -d '2002-03-04 05:06:07' f && stat -c %x f | cut -c1-19
    stat -c %y f | cut -c1-19
    mkdir g && chmod 2775 g && chown :4321 g && mkdir g/sub && touch g/file && stat -c '%g %a' g/sub g/file
    echo secret > private && chmod 600 private && chown 1000:1000 private
    setpriv --reuid=2000 --regid=2000 --clear-groups cat private 2>&1 | grep -o 'Permission denied'
    setpriv --reuid=1000 --regid=1000 --clear-groups cat private
    chmod 1777 . && setpriv --reuid=3000 --regid=3000 --clear-groups rm -f private 2>&1 | grep -o 'Operation not permitted'
    setpriv --reuid=3000 --regid=3000 --clear-groups sh -c 'echo mine > ownfile' && stat -c '%u %g' ownfile
  `, ['640', '1234 5678', '2001-02-03 04:05:06.789', '2002-03-04 05:06:07', '2001-02-03 04:05:06', '4321 2755', '4321 644', 'Permission denied', 'secret', 'Operation not permitted', '3000 3000']);
});

t.test('set-user-ID and set-group-ID are dropped as Linux drops them: chown, and a write or truncate by another user', async (t) => {
  await run(t, `
    mkdir su && cd su && chmod 777 .
    touch a && chmod 6755 a && chown 1000:1000 a && stat -c %a a
    touch b && chmod 2745 b && chown 1000 b && stat -c %a b
    touch c && chown 1000:1000 c && chmod 6755 c && setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo x >> c' && stat -c %a c
    touch d && chown 1000:1000 d && chmod 4755 d && setpriv --reuid=1000 --regid=1000 --clear-groups truncate -s 1 d && stat -c %a d
    touch e && chmod 4755 e && echo x >> e && truncate -s 0 e && stat -c %a e
    mkdir f && chmod 6755 f && chown 1000:1000 f && stat -c %a f
  `, ['755', '2745', '755', '755', '4755', '6755']);
});

t.test('extended attributes: set, get, list, replace, remove; SELinux labels and POSIX ACLs are not supported', async (t) => {
  await run(t, `
    mkdir xa && cd xa && touch f
    setfattr -n user.colour -v blue f && setfattr -n user.size -v 42 f
    getfattr --only-values -n user.colour f; echo
    getfattr -d f | grep -c '^user\\.'
    setfattr -n user.colour -v red f && getfattr --only-values -n user.colour f; echo
    setfattr -x user.colour f && getfattr -n user.colour f 2>&1 | grep -o 'No such attribute'
    setfattr -n bogus.ns -v x f 2>&1 | grep -o 'Operation not supported'
    setfattr -n security.lucid -v kept f && getfattr --only-values -n security.lucid f; echo
    setfattr -n security.selinux -v system_u:object_r:x f 2>&1 | grep -o 'Operation not supported'
    getfattr -n security.selinux f 2>&1 | grep -o 'Operation not supported'
    touch plain && getfattr -n security.selinux plain 2>&1 | grep -o 'Operation not supported'
    getfattr -n system.posix_acl_access f 2>&1 | grep -o 'Operation not supported'
    setfattr -x system.posix_acl_access f 2>&1 | grep -o 'Operation not supported'
  `, ['blue', '2', 'red', 'No such attribute', 'Operation not supported', 'kept', 'Operation not supported', 'Operation not supported',
    'Operation not supported', 'Operation not supported', 'Operation not supported']);
});

t.test('symlinks: target, size, dangling links', async (t) => {
  await run(t, `
    mkdir sl && cd sl && echo hi > target
    ln -s target l && readlink l && stat -c %s l && cat l
    ln -s /nowhere/at/all dangling && readlink dangling && cat dangling 2>&1 | grep -o 'No such file or directory'
  `, ['target', '6', 'hi', '/nowhere/at/all', 'No such file or directory']);
});

t.test('many readers and writers at once in one mount', async (t) => {
  await run(t, `
    mkdir par && cd par
    for i in $(seq 1 8); do (head -c $((3000000 + i * 1000)) /dev/urandom > /tmp/lucid-par-$i.$$ && cp /tmp/lucid-par-$i.$$ f$i) & done; wait
    for i in $(seq 1 8); do (cmp f$i /tmp/lucid-par-$i.$$ && echo ok) & done | sort | uniq -c | tr -s ' '
    rm -f /tmp/lucid-par-*.$$
  `, ['8 ok']);
});

t.test('statfs reports a large virtual capacity', async (t) => {
  const r = await sh(`df -B1 --output=size,avail ${fx.mp} | tail -1`);
  const [size, avail] = r.stdout.trim().split(/\s+/).map(Number);
  t.ok(size >= 2 ** 50, `size ${size}`);
  t.ok(avail > 0 && avail <= size);
});
