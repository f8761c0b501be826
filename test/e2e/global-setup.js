// The e2e tier drives the built program (dist/), as `npm start` and the `rts` CLI run it: build once first.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async () => {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: 'inherit',
  });
};
