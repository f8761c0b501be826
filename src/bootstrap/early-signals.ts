/**
 * The hub's first import (src/bootstrap/main.ts): a SIGTERM or SIGINT that arrives while Node is still loading the
 * hub's modules (most of a second on a busy machine) stops it with exit 0 and one log line, as one during the rest of
 * the start does. Before, such a signal was lost: it waits in libuv until the module loading ends, and `main()` had by
 * then replaced the listeners, which drops what the old ones had not yet been handed. So the listeners installed here
 * stay; `main()` only changes what they do (`onStopSignal`). They are installed only when the hub is the process's
 * entry point, so a test or a library that imports the bootstrap keeps its own signal handling.
 */
import { join } from 'node:path';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type StopSignal = (typeof SIGNALS)[number];

const stoppedDuringStart = (signal: StopSignal): void => {
  // pino's shape (level 30 = info), written by hand: the logger is among the modules still loading.
  process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, signal, msg: 'stopped during start; nothing was served' })}\n`);
  process.exit(0);
};

let action: (signal: StopSignal) => void = stoppedDuringStart;
let installed = false;

const install = (): void => {
  installed = true;
  for (const signal of SIGNALS) {
    const listener = (): void => {
      // Once per signal, as before: a second one gets Node's default (the operator's "stop now").
      process.off(signal, listener);
      action(signal);
    };
    process.on(signal, listener);
  }
};

// This package's own main.js (or main.ts under ts-node/jest), not any entry file that happens to be called
// bootstrap/main: an embedding application may well have one of its own, and its signals are its own.
const entry = require.main?.filename;
if (entry !== undefined && [join(__dirname, 'main.js'), join(__dirname, 'main.ts')].includes(entry)) install();

/** What the first SIGTERM or SIGINT does from now on (installs the listeners if the entry point had another name). */
export const onStopSignal = (stop: (signal: StopSignal) => void): void => {
  action = stop;
  if (!installed) install();
};
