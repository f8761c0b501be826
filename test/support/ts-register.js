// A minimal require hook so a child process can load our TypeScript sources without ts-node or a build:
//   node -r ./test/support/ts-register.js test/support/some-script.ts
// Transpile only (no type check: jest and tsc do that); CommonJS like tsconfig.json.
//
// Transpiled files are cached by content in node_modules/.cache/rts-ts-register: a hub started this way took ~3.3 s
// to load, ~2.7 s of it loading the TypeScript compiler and transpiling the same ~200 sources again, and the test
// run starts dozens of such processes (child hubs, HA hubs and clients in their namespaces). With the cache the
// compiler is loaded only when a source changed. Entries not written for a week are removed, at most once per process
// and only when that process transpiles something (so it pays for a directory listing only when it has the compiler's
// seconds to pay anyway): every edit of a source leaves one behind, and a long-lived checkout would keep them all.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const TS_VERSION = require('typescript/package.json').version;
const COMPILER_OPTIONS = { module: 'CommonJS', target: 'ES2022', esModuleInterop: true };
const CACHE_DIR = path.join(__dirname, '..', '..', 'node_modules', '.cache', 'rts-ts-register');
const SALT = `${TS_VERSION} ${JSON.stringify(COMPILER_OPTIONS)}\n`;
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;

let pruned = false;
/** Removes the entries (and a crashed process's partial writes) last written more than MAX_AGE_MS ago. */
const prune = () => {
  if (pruned) return;
  pruned = true;
  try {
    const before = Date.now() - MAX_AGE_MS;
    for (const name of fs.readdirSync(CACHE_DIR)) {
      const file = path.join(CACHE_DIR, name);
      try {
        if (fs.statSync(file).mtimeMs < before) fs.rmSync(file, { force: true });
      } catch {
        // gone already: another process pruned it
      }
    }
  } catch {
    // no cache yet, or one that cannot be read: nothing to prune
  }
};

let ts;
const transpile = (source, filename) => {
  ts ??= require('typescript');
  return ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
};

require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const key = crypto.createHash('sha256').update(SALT).update(filename).update('\n').update(source).digest('hex');
  const cached = path.join(CACHE_DIR, `${key}.js`);
  let output;
  try {
    output = fs.readFileSync(cached, 'utf8');
  } catch {
    output = transpile(source, filename);
    prune();
    try {
      // Written whole or not at all: processes started together may transpile the same file at once.
      fs.mkdirSync(CACHE_DIR, { recursive: true });
      const partial = `${cached}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
      fs.writeFileSync(partial, output);
      fs.renameSync(partial, cached);
    } catch {
      // A cache that cannot be written (a read-only checkout) costs the time, not the run.
    }
  }
  module._compile(output, filename);
};
