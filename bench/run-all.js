'use strict';
/**
 * Both benchmarks, one after the other (never at the same time: they would measure each other).
 *
 *   node bench/run-all.js [--quick]
 *
 * --quick: smaller runs for a smoke test (ingest n=3000, one round; 1,000 queries). Needs `npm run build` first.
 */
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const quick = process.argv.includes('--quick');
const run = (script, args) => {
  console.log(`\n=== node bench/${script} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [path.join(__dirname, script), ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run('ingest.js', quick ? ['--n', '3000', '--http-n', '3000', '--rounds', '1'] : []);
run('query.js', quick ? ['--queries', '1000'] : []);
