/**
 * The journal's file (FileJournalStore): what it keeps across a reopen, what a kill cut short,
 * what reached the service, and cutting the file down past its size bound — in order, always.
 */
import t from 'tap';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { FileJournalStore } from '../../src/fs/namespace/journal-store.js';
import { tempDir } from '../helpers/servers.js';

t.test('appended changes come back after a reopen, in order; removed ones do not', async (t) => {
  const d = tempDir();
  t.teardown(() => d.remove());
  const s = FileJournalStore.open(d.dir);
  const seqs = ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":"x\\ny"}'].map((op) => s.append(op));
  t.same(seqs, [...seqs].sort((x, y) => x - y), 'sequence numbers grow');
  s.removeThrough(seqs[1]);
  s.close();
  const again = FileJournalStore.open(d.dir);
  t.same(again.entries().map((e) => e.op), ['{"c":3}', '{"d":"x\\ny"}'], 'what waits, in order (a JSON newline escape stays one line)');
  const next = again.append('{"e":5}');
  t.ok(next > seqs[3], 'numbers go on past the old ones');
  again.removeThrough(next);
  t.equal(statSync(path.join(d.dir, 'journal.log')).size, 0, 'nothing waits: the file is emptied');
  again.close();
  t.same(FileJournalStore.open(d.dir).entries(), [], 'and nothing comes back');
});

t.test('a line a kill cut short is dropped, and the next append starts a clean line', async (t) => {
  const d = tempDir();
  t.teardown(() => d.remove());
  const s = FileJournalStore.open(d.dir);
  s.append('{"kept":1}');
  s.close();
  appendFileSync(path.join(d.dir, 'journal.log'), '99 {"torn":');
  const again = FileJournalStore.open(d.dir);
  t.same(again.entries().map((e) => e.op), ['{"kept":1}'], 'the torn line is not a change');
  again.append('{"after":2}');
  again.close();
  t.same(FileJournalStore.open(d.dir).entries().map((e) => e.op), ['{"kept":1}', '{"after":2}'], 'the file reads whole');
});

t.test('past 8 MiB, what reached the service is cut away and what waits keeps its order', async (t) => {
  const d = tempDir();
  t.teardown(() => d.remove());
  const s = FileJournalStore.open(d.dir);
  const pad = 'x'.repeat(1000);
  const seqs: number[] = [];
  for (let i = 0; i < 9000; i++) seqs.push(s.append(`{"i":${i},"p":"${pad}"}`));
  s.removeThrough(seqs[8994]);
  const size = statSync(path.join(d.dir, 'journal.log')).size;
  t.ok(size < 10_000, `the file holds only what waits (${size} bytes)`);
  s.append('{"i":9000}');
  s.close();
  const ops = FileJournalStore.open(d.dir).entries().map((e) => JSON.parse(e.op).i);
  t.same(ops, [8995, 8996, 8997, 8998, 8999, 9000], 'in order after the cut and a reopen');
  t.match(readFileSync(path.join(d.dir, 'journal.done'), 'utf8').trim(), String(seqs[8994]), 'the marker says how far the service got');
});
