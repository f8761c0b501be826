// Test tiers are told apart by file suffix (as in emmett):
//   *.unit.spec.ts         pure, in-memory, milliseconds
//   *.contract.spec.ts     one suite per port, run against every adapter
//   *.int.spec.ts          real servers (SQLite files, PostgreSQL, ActiveMQ)
//   *.e2e.spec.ts          the built program, driven as a user drives it
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };
const tier = (name, suffix, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform,
  testMatch: [`<rootDir>/test/**/*.${suffix}.spec.ts`],
  ...extra,
});
module.exports = {
  projects: [
    tier('unit', 'unit'),
    tier('contract', 'contract'),
    tier('integration', 'int'),
    tier('e2e', 'e2e', { globalSetup: '<rootDir>/test/e2e/global-setup.js' }),
  ],
  testTimeout: 60000,
  // The default summary, then the skipped tests by name (a suite that needs a server this machine lacks says why).
  reporters: ['default', '<rootDir>/test/support/skipped-reporter.js'],
};
