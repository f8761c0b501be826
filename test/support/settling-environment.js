'use strict';
/**
 * jest's node environment, plus: after a test file, wait (up to 3 s) for what the file started to end, and name
 * what did not.
 *
 * Each full run printed "A worker process has failed to exit gracefully and has been force exited", and no file
 * could be named: 1 s after each file's teardown no worker held anything but its own pipes (checked over the whole
 * run), so what kept the worker alive at its end was short-lived (a child's last exit, a closing socket), left by
 * whichever file ran last. Waiting here for the worker's resources to be back to what they were before the file lets
 * those end inside the file's own time; anything still there after the wait is written to stderr with the file's
 * name, instead of the anonymous warning at the end of the run.
 */
const { TestEnvironment } = require('jest-environment-node');

const SETTLE_MS = 3000;

/** The jest worker's own channel to jest (a pipe): ref'd or not as jest's messages come and go. */
const isWorkerChannel = (h) => process.channel !== undefined && h?.constructor?.name === 'Pipe' && h.fd === process.channel.fd;

/** The resource kinds that are handles: counted from the handles themselves, so the worker's own pipes can be left out. */
const HANDLE_KINDS = new Set(['TCPSocketWrap', 'TCPServerWrap', 'PipeWrap', 'PipeServerWrap', 'ProcessWrap', 'TTYWrap', 'UDPWrap', 'SignalWrap', 'FSEventWrap', 'TLSWrap']);

/**
 * Counts of what keeps this process's event loop alive, by kind: timers and requests as Node names them, handles by
 * their class, but not the worker's stdio nor its channel to jest (busy or not as jest writes and reads).
 */
const counts = () => {
  const byKind = new Map();
  const add = (kind) => byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  for (const kind of process.getActiveResourcesInfo()) if (!HANDLE_KINDS.has(kind)) add(kind);
  for (const h of process._getActiveHandles()) if (!h._isStdio && !isWorkerChannel(h)) add(h?.constructor?.name ?? 'handle');
  return byKind;
};

/** The kinds there are more of now than in `before`, with how many more. */
const extra = (before) => {
  const more = [];
  for (const [kind, n] of counts()) if (n > (before.get(kind) ?? 0)) more.push(`${kind} x${n - (before.get(kind) ?? 0)}`);
  return more;
};

/** A few words on a live handle: enough to find who made it. */
const describe = (h) => {
  const name = h?.constructor?.name ?? typeof h;
  if (name === 'Socket' || name === 'TLSSocket') return `${name} ${h.localAddress ?? ''}:${h.localPort ?? ''} -> ${h.remoteAddress ?? ''}:${h.remotePort ?? ''}`;
  if (name === 'Server') return `Server ${JSON.stringify(h.address?.() ?? null)}`;
  if (name === 'ChildProcess') return `ChildProcess ${(h.spawnargs ?? []).join(' ').slice(0, 160)}`;
  if (name === 'Timeout') return `Timeout ${h._idleTimeout} ms: ${String(h._onTimeout).replace(/\s+/g, ' ').slice(0, 160)}`;
  return name;
};

/**
 * RTS_TEST_LIVE_SNAPSHOTS=<dir>: every second, this worker writes what keeps its event loop alive (and the file it ran
 * last) to <dir>/worker-<pid>.txt, from an unref'd timer that holds nothing itself. A worker jest had to kill at the
 * end of the run ("failed to exit gracefully") leaves there what it still held then.
 */
let snapshots;
let lastFile = '(none yet)';
const startSnapshots = () => {
  const dir = process.env.RTS_TEST_LIVE_SNAPSHOTS;
  if (!dir || snapshots !== undefined) return;
  const fs = require('node:fs');
  const path = require('node:path');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `worker-${process.pid}.txt`);
  snapshots = setInterval(() => {
    const handles = process._getActiveHandles().filter((h) => !h._isStdio && !isWorkerChannel(h)).map(describe);
    const text = `${new Date().toISOString()} last file: ${lastFile}\nresources: ${process.getActiveResourcesInfo().join(', ')}\nhandles (stdio and jest's channel left out): ${handles.join('; ') || 'none'}\n`;
    try {
      fs.writeFileSync(file, text);
    } catch {
      // a diagnostic: never a test's failure
    }
  }, 1000);
  snapshots.unref();
  // When the event loop ran dry after jest's end message, and when Node began to exit: a worker killed after these
  // lines took longer than jest's 500 ms to tear itself down, not to let go of a resource.
  const mark = (what) => () => {
    try {
      fs.appendFileSync(file, `${new Date().toISOString()} ${what} (heap used ${Math.round(process.memoryUsage().heapUsed / 1048576)} MiB)\n`);
    } catch {
      // a diagnostic
    }
  };
  process.once('beforeExit', mark('beforeExit'));
  process.once('exit', mark('exit'));
};

/**
 * A failed test's errors, with every BigInt in them (an assertion's `matcherResult.actual`, an error's own fields such
 * as a store position) replaced by its text, `12n`. jest 29's worker sends a file's results to jest as JSON, which has
 * no BigInt: one in a failure crashed the send ("Do not know how to serialize a BigInt" at messageParent), and the
 * file was reported as "failed to run", without the failing test's name or its assertion (jest's issue 11617). The
 * message jest prints is made from the error's own text, which already shows the values.
 */
/** `value` with its BigInts as text: a copy of what holds one (arrays and objects, as JSON would see them), else itself. */
// No depth limit: JSON.stringify walks the whole value when the worker sends it, so a BigInt 9 levels down (an
// assertion on a nested record) crashed the send as before; cycles are what `seen` is for.
const bigIntsAsText = (value, seen = new Set()) => {
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  let copy;
  for (const key of Object.keys(value)) {
    let v;
    try {
      v = value[key];
    } catch {
      continue;
    }
    const w = bigIntsAsText(v, seen);
    if (w === v) continue;
    copy ??= Array.isArray(value) ? [...value] : { ...value };
    copy[key] = w;
  }
  seen.delete(value);
  return copy ?? value;
};
/** `error` with the field `key` set to `value`: a copy (same prototype, message and stack) when it cannot be set. */
const withField = (error, key, value) => {
  try {
    error[key] = value;
  } catch {
    // frozen, read-only or a getter without a setter: below
  }
  if (error[key] === value) return error;
  const descriptors = Object.getOwnPropertyDescriptors(error);
  for (const d of Object.values(descriptors)) {
    d.configurable = true;
    if ('value' in d) d.writable = true;
  }
  descriptors[key] = { value, enumerable: true, writable: true, configurable: true };
  return Object.create(Object.getPrototypeOf(error), descriptors);
};
/**
 * The error with its own fields that hold a BigInt replaced by copies with text: the test's own values stay as they
 * were. A frozen error (or one whose field is read-only) is copied, else its BigInt crashed the send as before.
 */
const withoutBigInts = (error) => {
  if (error === null || typeof error !== 'object') return error;
  let out = error;
  for (const key of Object.keys(error)) {
    let v;
    let w;
    try {
      v = error[key];
      w = bigIntsAsText(v);
    } catch {
      continue; // a getter that throws, or a structure too deep for the stack (JSON.stringify fails on it as well)
    }
    if (w !== v) out = withField(out, key, w);
  }
  return out;
};

class SettlingEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
  }

  async setup() {
    await super.setup();
    startSnapshots();
    lastFile = `${this.testPath.replace(`${process.cwd()}/`, '')} (running)`;
    this.before = counts();
  }

  handleTestEvent(event) {
    if (event.name !== 'test_done') return;
    const errors = event.test.errors ?? [];
    errors.forEach((entry, i) => (errors[i] = Array.isArray(entry) ? entry.map(withoutBigInts) : withoutBigInts(entry)));
  }

  async teardown() {
    await super.teardown();
    lastFile = `${this.testPath.replace(`${process.cwd()}/`, '')} (ended ${new Date().toISOString()})`;
    const deadline = Date.now() + SETTLE_MS;
    while (extra(this.before).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50).unref());
    const left = extra(this.before);
    if (left.length === 0) return;
    const handles = process._getActiveHandles().filter((h) => !h._isStdio && !isWorkerChannel(h)).map(describe);
    process.stderr.write(`\n${this.testPath.replace(`${process.cwd()}/`, '')} left, ${SETTLE_MS} ms after its end: ${left.join(', ')}\n  live handles: ${handles.join('; ')}\n`);
  }
}

module.exports = SettlingEnvironment;
