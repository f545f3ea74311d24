// Counts test results in tap's TAP output. A test is a subtest (t.test) with no subtests of
// its own; a parent that failed without any failing child (a crash in its setup, a file that
// did not load) counts as one failure too, and so does a subtest that never closed.
// Prints the name of each failed test (with the names of the subtests holding it), then
// "N passed, N failed[, N skipped]" as the last line.
import { createInterface } from 'node:readline';

let passed = 0, failed = 0, skipped = 0;
const stack = []; // { indent, name, children, failedLeaves }
const failures = [];
const where = (node) => [...stack.map((p) => p.name), node.name].join(' > ');
let yaml = false; // inside a failure's diagnostic block ("---" … "..."), which may quote TAP
for await (const line of createInterface({ input: process.stdin })) {
  if (yaml) { if (/^\s*\.\.\.\s*$/.test(line)) yaml = false; continue; }
  if (/^\s+---\s*$/.test(line)) { yaml = true; continue; }
  const header = /^( *)# Subtest: /.exec(line);
  if (header) {
    const indent = header[1].length;
    if (stack.length) stack[stack.length - 1].children++;
    stack.push({ indent, name: line.slice(header[0].length), children: 0, failedLeaves: 0 });
    continue;
  }
  const result = /^( *)(not ok|ok) \d+/.exec(line);
  if (!result) continue;
  // A subtest that never closed (its process ended mid-test: "test unfinished") is a failure,
  // seen when a result comes at an outer level while it is still open.
  while (stack.length && stack[stack.length - 1].indent > result[1].length) {
    failures.push(`${where(stack.pop())} (unfinished)`);
    failed++;
    for (const p of stack) p.failedLeaves++;
  }
  if (!stack.length || result[1].length !== stack[stack.length - 1].indent) continue;
  const node = stack.pop();
  const ok = result[2] === 'ok';
  if (node.children === 0) {
    if (/# SKIP|# TODO/i.test(line)) skipped++;
    else if (ok) passed++;
    else { failed++; failures.push(where(node)); for (const p of stack) p.failedLeaves++; }
  } else if (!ok && node.failedLeaves === 0) {
    failed++;
    failures.push(where(node));
    for (const p of stack) p.failedLeaves++;
  }
}
for (const f of failures) console.log(`failed: ${f}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
