/**
 * The worker thread behind ThreadedFileIo. Opens: reads a clean block's cache file whole,
 * checks and decrypts it (openBlock, the codec's own code) and hands the plaintext back
 * without a copy. It knows only the data keys the main thread has sent it; an object under
 * another key comes back as `key` so the main thread can send that key (or refuse). An open
 * that brings memory is decrypted into it: shared memory (`shared`) is filled in place and
 * only the plaintext's length goes back; memory moved here (`into`) is moved back. No MiB is
 * allocated per block on either side. It writes nothing: cache files are written on the
 * event loop (see clean-files-threads.ts).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { IntegrityError } from '../errors.js';
import { openBlock } from '../block/format.js';
import { blockKeyOf } from '../crypto/keys.js';

export type ToWorker =
  | { type: 'key'; keyId: number; key: Uint8Array }
  | { type: 'open'; id: number; file: string; size: number; objectId: string; into?: ArrayBuffer; shared?: { memory: SharedArrayBuffer; offset: number; length: number } };

export type FromWorker =
  | { id: number; plain: Uint8Array }
  | { id: number; sharedLength: number }
  | { id: number; error: 'integrity' | 'unreadable'; message: string }
  | { id: number; error: 'key'; keyId: number };

class MissingKey extends Error {
  constructor(readonly keyId: number) { super(`no data key ${keyId}`); }
}

const keys = new Map<number, Buffer>();
let buf = Buffer.allocUnsafe(0);

/**
 * `bytes` when it owns all of its memory, else a copy that does: a transfer takes a view's
 * whole backing memory, not only the view.
 */
function ownMemory(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : Uint8Array.prototype.slice.call(bytes);
}

function readWhole(file: string, size: number): Buffer {
  if (buf.length < size) buf = Buffer.allocUnsafe(size);
  const fd = openSync(file, 'r');
  try {
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    if (got !== size) throw new Error(`${file} is torn (${got} of ${size} bytes)`);
  } finally {
    closeSync(fd);
  }
  return buf.subarray(0, size);
}

function answer(m: Extract<ToWorker, { type: 'open' }>): { reply: FromWorker; transfer: ArrayBuffer[] } {
  let sealed: Buffer;
  try {
    sealed = readWhole(m.file, m.size);
  } catch (e) {
    return { reply: { id: m.id, error: 'unreadable', message: (e as Error).message }, transfer: [] };
  }
  try {
    const into = m.shared ? Buffer.from(m.shared.memory, m.shared.offset, m.shared.length) : m.into ? Buffer.from(m.into) : undefined;
    const plain = openBlock(m.objectId, sealed, (keyId, id) => {
      const key = keys.get(keyId);
      if (!key) throw new MissingKey(keyId);
      return blockKeyOf(key, id);
    }, into);
    if (m.shared && plain.buffer === m.shared.memory && plain.byteOffset === m.shared.offset) return { reply: { id: m.id, sharedLength: plain.length }, transfer: [] };
    if (into && plain.buffer === m.into) return { reply: { id: m.id, plain: new Uint8Array(m.into, plain.byteOffset, plain.byteLength) }, transfer: [m.into] };
    const own = ownMemory(plain);
    return { reply: { id: m.id, plain: own }, transfer: [own.buffer as ArrayBuffer] };
  } catch (e) {
    if (e instanceof MissingKey) return { reply: { id: m.id, error: 'key', keyId: e.keyId }, transfer: [] };
    if (e instanceof IntegrityError) return { reply: { id: m.id, error: 'integrity', message: e.message }, transfer: [] };
    return { reply: { id: m.id, error: 'unreadable', message: (e as Error).message }, transfer: [] };
  }
}

parentPort!.on('message', (m: ToWorker) => {
  if (m.type === 'key') {
    keys.set(m.keyId, Buffer.from(m.key));
    return;
  }
  const { reply, transfer } = answer(m);
  parentPort!.postMessage(reply, transfer);
});
