// A minimal require hook so a child process can load our TypeScript sources without ts-node or a build:
//   node -r ./test/support/ts-register.js test/support/some-script.ts
// Transpile only (no type check: jest and tsc do that); CommonJS like tsconfig.json.
'use strict';
const fs = require('node:fs');
const ts = require('typescript');

require.extensions['.ts'] = (module, filename) => {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  });
  module._compile(outputText, filename);
};
