/**
 * The CLI's very first import (main.ts): on a Node.js too old to load its modules, one line and exit 1 (the CLI
 * itself cannot run), before any of them is loaded.
 */
import { nodeVersionProblem } from '../system/node-version';

const problem = nodeVersionProblem(process.versions.node);
if (problem !== null && require.main?.filename !== undefined && /[\\/]cli[\\/]main\.(js|ts)$/.test(require.main.filename)) {
  process.stderr.write(`rts: ${problem}\n`);
  process.exit(1);
}
