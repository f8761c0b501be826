'use strict';
/**
 * Where the time goes in a V8 .cpuprofile (node --cpu-prof): self time by function and by category.
 *
 *   node bench/profile-summary.js FILE.cpuprofile [--top 25] [--last MS]
 *
 * --last MS: only the samples of the profile's last MS milliseconds (the loaded part of a run, without the start).
 * Also prints the samples by part of the upload path: each sample counted once, in the first part (in the order of
 * PARTS) that a frame of its stack belongs to.
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

// The samples kept (all, or those of the last --last ms), with their time deltas (microseconds).
const at = [];
profile.timeDeltas.reduce((t, d, i) => (at[i] = t + d), profile.startTime);
const from = args.last === undefined ? -Infinity : at[at.length - 1] - Number(args.last) * 1000;
const kept = profile.samples.map((id, i) => [id, profile.timeDeltas[i] ?? 0, at[i]]).filter(([, , t]) => t >= from);

// Self time per node.
const self = new Map();
for (const [id, us] of kept) self.set(id, (self.get(id) ?? 0) + us);
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

/**
 * Parts of the upload path, first match wins (a sample in the group commit's flush is that, whatever it calls).
 * Matched against "functionName url" of each frame on the stack.
 */
const PARTS = [
  ['the group commit\'s flush (runBatch)', /^runBatch /],
  ['the key store\'s flush', /key-stores\.js/],
  ['projectors and subscribers reading new events', /projector\.js|readCoveredPage|readPageOfTypes|readAll |retired-expert|waitForWork/],
  ['the audit trail', /audit-trail\.js/],
  ['security hooks (tokens, rate limits, pseudonyms)', /security\.js|tokens\.js|jws_|security-module/],
  ['the upload\'s own work (record, submit)', /telemed\.js|xds-backend\.js/],
  ['the route handlers, outside the above', /http\/server\.js/],
  ['fastify', /fastify\//],
  ['node\'s HTTP', /node:_http|node:net|parserOn|writev|node:internal\/stream/],
];
const partOf = (id) => {
  const leaf = byId.get(id).callFrame.functionName;
  if (leaf === '(idle)') return 'idle';
  if (leaf === '(garbage collector)') return 'GC';
  if (leaf === '(program)') return '(program)';
  const stack = [];
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur).callFrame;
    stack.push(`${f.functionName} ${f.url}`);
  }
  for (const [name, re] of PARTS) if (stack.some((frame) => re.test(frame))) return name;
  return 'the rest';
};
console.log(`\nsamples by part of the upload path (${kept.length} samples):`);
const parts = new Map();
for (const [id] of kept) parts.set(partOf(id), (parts.get(partOf(id)) ?? 0) + 1);
for (const [k, n] of [...parts].sort((a, b) => b[1] - a[1])) console.log(`${((100 * n) / kept.length).toFixed(1).padStart(5)}%  ${k}`);
