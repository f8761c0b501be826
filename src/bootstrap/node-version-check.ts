/**
 * The hub's very first import (src/bootstrap/main.ts): on a Node.js too old to load the hub's modules, one line and
 * exit 78 (a setting of the machine, as a bad RTS_* setting), before any of them is loaded. Only when the hub is the
 * process's entry point: a library that imports the bootstrap has its own Node.
 */
import { join } from 'node:path';
import { nodeVersionProblem } from '../adapters/system/node-version';

const entry = require.main?.filename;
const problem = nodeVersionProblem(process.versions.node);
if (problem !== null && entry !== undefined && [join(__dirname, 'main.js'), join(__dirname, 'main.ts')].includes(entry)) {
  process.stderr.write(`${problem}\n`);
  process.exit(78);
}
