/**
 * The JSON on the wire (src/meta/wire.ts): byte arrays anywhere travel as {"$b": base64} and
 * come back as Buffers byte for byte; everything else is plain JSON, and what only looks like
 * a byte array, or a key named "__proto__", stays what it was.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { decodeWire, encodeWire } from '../../src/meta/wire.js';

t.test('byte arrays anywhere come back byte for byte; the rest as JSON has it', async (t) => {
  const hash = randomBytes(32);
  const sealed = randomBytes(77);
  const value = {
    kind: 'create', parent: 12345, hash, entry: { nameEnc: sealed, list: [Buffer.alloc(0), new Uint8Array([1, 2, 3]), null, undefined, 7] },
    notBytes: { $b: 'AQID', other: 1 }, when: new Date(0), gone: undefined, nan: NaN,
  };
  const text = encodeWire(value);
  t.same(JSON.parse(text).hash, { $b: hash.toString('base64') }, 'a Buffer travels as base64, not as an array of numbers');
  const back = decodeWire(text) as typeof value & { entry: { list: unknown[] } };
  t.ok(Buffer.isBuffer(back.hash) && back.hash.equals(hash), 'hash');
  t.ok(Buffer.isBuffer(back.entry.nameEnc) && back.entry.nameEnc.equals(sealed), 'nested');
  t.same(back.entry.list.map((x) => (Buffer.isBuffer(x) ? [...x] : x)), [[], [1, 2, 3], null, null, 7], 'in arrays; undefined as null');
  t.same(back.notBytes, { $b: 'AQID', other: 1 }, 'an object with more than "$b" stays an object');
  t.equal(back.when as unknown, '1970-01-01T00:00:00.000Z', 'toJSON is honoured');
  t.notOk('gone' in back, 'undefined properties are left out');
  t.equal(back.nan as unknown, null);
});

t.test('a key named __proto__ stays a key', async (t) => {
  const back = decodeWire('{"__proto__": {"$b": "aGk="}, "x": 1}') as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(back), Object.prototype, 'the prototype is untouched');
  t.same(Object.keys(back), ['__proto__', 'x']);
  t.ok(Buffer.isBuffer(Object.getOwnPropertyDescriptor(back, '__proto__')?.value));
});
