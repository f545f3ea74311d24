/**
 * A no-op file system on Lucid's FUSE binding: one file, `zero.bin`, whose reads return
 * zeros from one buffer with no work at all. Reading it measures what the binding and the
 * kernel allow, the ceiling for Lucid's warm reads. It is mounted as Lucid's mount is, with the
 * same kernel read-ahead (2 MiB at INIT and in the BDI): at the kernel's default 128 KiB it
 * read half as fast (dd: 2.1–2.4 against 3.9–4.6 GB/s), and the ceiling flattered Lucid until
 * session 12. Run as a child process:
 * `node dist/bench/noop-fs.js MOUNTPOINT SIZE_BYTES BLKSIZE`; prints "ready", unmounts on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { loadBinding, type FuseRequest } from '../src/fs/fuse/binding.js';
import { DEFAULT_READAHEAD_KB, raiseReadahead } from '../src/fs/fuse/readahead.js';

const [mountArg, sizeArg, blkArg] = process.argv.slice(2);
const mountpoint = path.resolve(mountArg);
const size = Number(sizeArg);
const blksize = Number(blkArg ?? 1048576);
const b = loadBinding();
const zeros = Buffer.alloc(4 * 1024 * 1024);
const now = Date.now();
const attr = (ino: number) => new Float64Array(ino === 1
  ? [1, 0o040755, 2, 0, 0, 0, 0, 0, now, now, now, 3600, 3600, 0, 4096]
  : [2, 0o100644, 1, 0, 0, 0, size, Math.ceil(size / 512), now, now, now, 3600, 3600, 0, blksize]);

const session = b.mount(mountpoint, 'default_permissions,fsname=noop,subtype=noop,noatime', (r: FuseRequest) => {
  switch (r.op) {
    case 'init': case 'forget': case 'forgetMulti': case 'interrupt': return;
    case 'exit': b.destroy(session); process.exit(0); return;
    case 'lookup': return r.ino === 1 && r.name === 'zero.bin' ? b.replyEntry(r.req, attr(2)) : b.replyErr(r.req, constants.errno.ENOENT);
    case 'getattr': return b.replyAttr(r.req, attr(r.ino));
    case 'open': case 'opendir': return b.replyOpen(r.req, 1, 0);
    case 'read': {
      const n = Math.max(0, Math.min(r.size, size - r.off));
      return b.replyBuf(r.req, zeros.subarray(0, n));
    }
    case 'readdir': {
      const all = [['.', 1, 0o040000], ['..', 1, 0o040000], ['zero.bin', 2, 0o100000]] as const;
      const rest = all.slice(r.off);
      b.replyReaddir(r.req, r.size, rest.map((e) => e[0]), new Float64Array(rest.map((e) => e[1])), new Float64Array(rest.map((e) => e[2])),
        new Float64Array(rest.map((_, i) => r.off + i + 1)));
      return;
    }
    case 'release': case 'releasedir': case 'flush': return b.replyErr(r.req, 0);
    default: return b.replyErr(r.req, constants.errno.ENOSYS);
  }
}, 1 << 20, DEFAULT_READAHEAD_KB * 1024);
await raiseReadahead(mountpoint, DEFAULT_READAHEAD_KB, (line) => process.stderr.write(`no-op file system: ${line}\n`));
process.stdout.write('ready\n');
process.on('SIGTERM', () => { spawn('umount', [mountpoint], { stdio: 'ignore' }); });
