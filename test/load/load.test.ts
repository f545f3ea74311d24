/**
 * The load test: 16 client processes run a mixed workload (writes, partial writes, reads
 * checked byte for byte, renames, deletes, listings, stat, chmod, creates and deletes in a
 * shared folder) against one `lucid serve` for 5 minutes (LUCID_LOAD_SECONDS to change).
 * Zero errors, zero lost writes (a fresh reader checks every file against the checksum its
 * writer recorded, and every folder holds exactly what its client left), and the service's
 * memory stays bounded. scripts/test runs it alone, after the other tests, so its load does
 * not skew their timing. Throughput and latency are printed (and measured by
 * `npm run bench -- load`), not asserted.
 */
import t from 'tap';
import { runLoad } from '../../bench/load.js';

const seconds = Number(process.env.LUCID_LOAD_SECONDS ?? 300);

t.test(`16 clients, ${seconds} s, one service: no errors, no lost writes, bounded memory`, { timeout: (seconds + 300) * 1000 }, async (t) => {
  const r = await runLoad({ clients: 16, seconds, log: (l) => t.comment(l) });
  t.comment(`${r.ops} operations (${r.opsPerSecond.toFixed(0)}/s); metadata ${r.metadataOpsPerSecond.toFixed(0)}/s, median ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; service RSS ${r.serviceRssMiB.first.toFixed(0)} → peak ${r.serviceRssMiB.peak.toFixed(0)} MiB`);
  t.ok(r.ops > 16 * seconds, `every client kept working (${r.ops} operations)`);
  t.same(r.errors, [], 'zero errors');
  t.ok(r.filesChecked > 16, `${r.filesChecked} files checked`);
  t.same(r.lostWrites, [], 'zero lost writes');
  t.ok(r.serviceRssMiB.peak < 512, `service memory bounded: peak ${r.serviceRssMiB.peak.toFixed(0)} MiB`);
});
