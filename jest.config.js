// Test tiers are told apart by file suffix (as in emmett):
//   *.unit.spec.ts         pure, in-memory, milliseconds
//   *.contract.spec.ts     one suite per port, run against every adapter
//   *.int.spec.ts          real servers (SQLite files, PostgreSQL, ActiveMQ)
//   *.e2e.spec.ts          the built program, driven as a user drives it
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };
const tier = (name, suffix, extra = {}) => ({
  displayName: name,
  // jest's node environment that waits for a file's last resources to end and names those that do not (see the file).
  testEnvironment: '<rootDir>/test/support/settling-environment.js',
  transform,
  testMatch: [`<rootDir>/test/**/*.${suffix}.spec.ts`],
  ...extra,
});
const tiers = [
  tier('unit', 'unit'),
  tier('contract', 'contract'),
  tier('integration', 'int'),
  tier('e2e', 'e2e', { globalSetup: '<rootDir>/test/e2e/global-setup.js' }),
];
// RTS_TEST_TIER=unit (or unit,contract) keeps only those tiers: what `npm run test:unit` etc. set. Not jest's
// --selectProjects, which takes every word after it as a project name, so `npm run test:unit -- <path>` ran the
// whole tier; this way the command line stays free for paths and options.
const only = (process.env.RTS_TEST_TIER ?? '').split(',').map((t) => t.trim()).filter(Boolean);
const unknown = only.filter((t) => !tiers.some((p) => p.displayName === t));
if (unknown.length > 0) throw new Error(`RTS_TEST_TIER: no tier ${unknown.join(', ')} (tiers: ${tiers.map((p) => p.displayName).join(', ')})`);
// One worker more than the CPUs (three on this project's 2-CPU machines): most of a file's time is spent waiting on
// the brokers, hubs and browsers it starts, not on jest's own CPU. Each test makes its own ports, temp dirs,
// databases and network namespaces, so files may overlap. Measured on 2026-12-04 (2 cores, the same tree): jest's
// default (one fewer than the CPUs) ran every file in turn; two workers took 714 s, three
// 541 s with them 86 % busy (the files' own times summed 1,414 s and 1,603 s), the later run (CPU-bound unit and
// SQLite files) 142 s and 137 s. `--maxWorkers` on the command line still wins.
const workers = require('node:os').availableParallelism() + 1;
// A worker whose heap passed 512 MB after a file is replaced before the next. Workers grew to 0.7-0.9 GiB by the end
// of a run, and jest then reported one "failed to exit gracefully" and force-exited it in every run of 2026-12-04
// (158d72b's too), with nothing left open: the live snapshots (RTS_TEST_LIVE_SNAPSHOTS) showed no handle or timer,
// and the worker's exit came ~0.5 s after jest's request, past jest's 500 ms. Replaced, the last workers end with
// ~40 MB heaps, at once. The replacements cost the later run a few seconds (jest's count 175 s against 163 s; 2 min
// 58 s against 2 min 57 s in all).
module.exports = {
  maxWorkers: workers,
  workerIdleMemoryLimit: '512MB',
  projects: only.length > 0 ? tiers.filter((p) => only.includes(p.displayName)) : tiers,
  testTimeout: 60000,
  // The default summary, then the skipped tests by name (a suite that needs a server this machine lacks says why).
  reporters: ['default', '<rootDir>/test/support/skipped-reporter.js'],
};
