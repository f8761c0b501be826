'use strict';
/**
 * Where the time goes in a V8 .cpuprofile (node --cpu-prof): self time by function and by category.
 *
 *   node bench/profile-summary.js FILE.cpuprofile [--top 25]
 */
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const file = process.argv[2];
if (!file || file.startsWith('--')) {
  console.error('usage: node bench/profile-summary.js FILE.cpuprofile [--top 25]');
  process.exit(2);
}
const top = Number(args.top ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from the samples and their time deltas (microseconds).
const self = new Map();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);

const label = (n) => {
  const f = n.callFrame;
  const url = f.url ? f.url.replace(/^file:\/\//, '') : '';
  const where = url ? `${path.relative(L.ROOT, url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

/** Category: the first frame up the stack (self included) that is project code, a dependency, or node. */
const category = (id) => {
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur).callFrame;
    const url = f.url || '';
    if (url.includes('/dist/')) return `project ${url.split('/dist/')[1]}`;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return `dep ${m[1]}`;
  }
  const f = byId.get(id).callFrame;
  return f.url ? 'node internals' : f.functionName === '(garbage collector)' ? 'GC' : f.functionName === '(idle)' ? 'idle' : f.functionName || 'native';
};

const agg = (keyOf) => {
  const m = new Map();
  for (const [id, us] of self) {
    const k = keyOf(id);
    m.set(k, (m.get(k) ?? 0) + us);
  }
  return [...m].sort((a, b) => b[1] - a[1]);
};

const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\nself time by function:');
for (const [k, us] of agg((id) => label(byId.get(id))).slice(0, top)) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
console.log('\nself time by innermost project/dependency module on the stack:');
for (const [k, us] of agg(category).slice(0, top)) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
