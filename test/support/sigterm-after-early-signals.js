// Preloaded (`node --require`) by the start-failures e2e test: sends the process its own SIGTERM right after
// dist/bootstrap/main.js has loaded its first import, early-signals, and before the rest of its modules load.
// That is the moment an operator's stop lands most often (the module loading is most of the start's CPU), and
// doing it here makes the test independent of how fast the machine is: a signal from outside timed by the child's
// CPU could land before Node had even started main.js (CI saw Node's own exit by SIGTERM once).
'use strict';
const Module = require('node:module');

const load = Module._load;
Module._load = function loadThenSignal(request, ...rest) {
  const exported = load.call(this, request, ...rest);
  if (request === './early-signals') {
    Module._load = load;
    process.stderr.write('test preload: early-signals loaded, sending SIGTERM\n');
    process.kill(process.pid, 'SIGTERM');
  }
  return exported;
};
