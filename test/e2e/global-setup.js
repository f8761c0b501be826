// The e2e tier drives the built program (dist/), as `npm start` and the `rts` CLI run it: build once first.
// It is `npm run build`'s tsc -b: a second one with nothing changed takes a second or two (its state in .cache/tsc).
// RTS_E2E_SKIP_BUILD=1 skips even that, when dist/ is known to be fresh (a developer's rerun).
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async () => {
  if (process.env.RTS_E2E_SKIP_BUILD === '1') return;
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'tsconfig.build.json'], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: 'inherit',
  });
};
