// The hub's log when its reader stops reading (src/bootstrap/log-stream.ts): a pipe nobody reads (a stalled log
// shipper) and a terminal nobody reads (Ctrl-S; here a pty whose other end is not read). The logger is the hub's own
// (createLogger), in a child process whose standard output is that pipe or pty.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

jest.setTimeout(60_000);

const ROOT = resolve(__dirname, '..', '..');
const source = (file: string) => JSON.stringify(join(ROOT, 'src', 'bootstrap', file));

/** A bound small enough for the test; the hub's is LOG_BUFFER_MAX_BYTES. */
const BOUND = 256 * 1024;
const LINE_PAD = 'x'.repeat(150);

// Logs until its stream has dropped a line (or, without a bound, until four times the bound waits in memory), in
// batches with a turn of the event loop between them (so the writes under way can finish when someone reads), then
// says on stderr how many lines it logged and what waits in memory, and, told so on stdin, logs one last line and exits.
const child = `
const pino = require('pino');
const { createLogger } = require(${source('container.ts')});
const { hubLogDestination, droppedLogLines } = require(${source('log-stream.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' }, hubLogDestination(${BOUND}));
const stream = logger[pino.symbols.streamSym];
let logged = 0;
const batch = () => {
  for (let i = 0; i < 100; i++) logger.info({ i: logged++, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
  if (droppedLogLines(logger) === 0 && stream._len < ${4 * BOUND}) return setImmediate(batch);
  process.stderr.write(JSON.stringify({ logged, waiting: stream._len, dropped: droppedLogLines(logger) }) + '\\n');
};
process.stdin.once('data', () => {
  logger.info('the end');
  exitAfterLog(logger, 0);
});
batch();
`;

type Report = { logged: number; waiting: number; dropped: number };

it('a pipe nobody reads: lines beyond the bound are dropped, not kept, and said (how many) once the reader is back', async () => {
  const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', child], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((done) => p.on('exit', (code) => done(code)));
  // Nobody reads: paused, the parent's side takes its buffer's worth, then the pipe fills.
  p.stdout.pause();
  const report = await new Promise<Report>((done, fail) => {
    p.on('error', fail);
    p.stderr.once('data', (d: Buffer) => done(JSON.parse(d.toString('utf8')) as Report));
  });
  // What waits in memory is held at the bound, and lines beyond it were dropped.
  expect(report.waiting).toBeLessThanOrEqual(BOUND);
  expect(report.dropped).toBeGreaterThan(0);

  // The reader is back: every line logged is either in the log or counted in a notice of the lines dropped.
  let out = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    if (out.includes('log lines were dropped') && p.stdin.writable) p.stdin.end('go\n');
  });
  p.stdout.resume();
  expect(await exited).toBe(0);
  const lines = out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { msg: string; level: number; droppedLines?: number });
  const written = lines.filter((l) => l.msg === 'line').length;
  const notices = lines.filter((l) => l.msg.includes('log lines were dropped'));
  const saidDropped = notices.reduce((sum, l) => sum + (l.droppedLines ?? 0), 0);
  expect({ notices: notices.length > 0, level: notices[0]?.level, accounted: written + saidDropped, last: lines.at(-1)?.msg }).toEqual({
    notices: true,
    level: 40,
    accounted: report.logged,
    last: 'the end',
  });
  expect(saidDropped).toBeGreaterThanOrEqual(report.dropped);
});

// A terminal nobody reads (Ctrl-S; a pty whose other end is not read). Node keeps a terminal stdout in blocking mode,
// so sonic-boom's write of the log waited in a thread-pool thread that never returned, and the process could not
// exit: Node's exit joins libuv's thread-pool threads. The hub's exit (exitAfterLog: it waits up to 2 s for the log,
// then exits without it) hung there for ever. Python's pty module makes the terminal; it never reads the other end.
const onUnreadTerminal = `
const { createLogger } = require(${source('container.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
for (let i = 0; i < 5000; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
process.stderr.write('logged\\n');
exitAfterLog(logger, 3);
`;

// A timer thread kills a child that hangs, not wait(timeout=): that sleeps with time.sleep, which fails (EINVAL) under
// the libfaketime of test:later, and the holder then died without a word while the child hung on.
const ptyHolder = `
import json, os, pty, subprocess, sys, threading
master, slave = pty.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
os.close(slave)
hung = threading.Timer(20, child.kill)
hung.start()
code = child.wait()
hung.cancel()
print(json.dumps({'code': 'hung' if code < 0 else code, 'stderr': child.stderr.read().decode()}))
`;

it('a terminal nobody reads: the hub still exits, with its code', async () => {
  const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
    const p = spawn('/usr/bin/python3', ['-c', ptyHolder, process.execPath, '-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', onUnreadTerminal], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    p.on('error', fail);
    p.on('exit', () => done(JSON.parse(out)));
  });
  expect(got).toEqual({ code: 3, stderr: 'logged\n' });
});

// An exit that is not the hub's own (an uncaught exception; a dependency's process.exit) with a reader that does not
// read: pino's exit flush (sonic-boom's flushSync) met EAGAIN and slept and tried again without end. It tries for a
// bounded while now, and the lines it could not write are lost; the process ends with its own code.
const crashWithStalledReader = `
const { createLogger } = require(${source('container.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
for (let i = 0; i < 5000; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
setTimeout(() => {
  throw new Error('an uncaught failure');
}, 100);
`;

it('a crash while a pipe is not read: the exit flush gives up, and the process ends with its code', async () => {
  const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
    const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', crashWithStalledReader], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // Nobody reads: paused, the parent's side takes its buffer's worth, then the pipe fills.
    p.stdout.pause();
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const hung = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', fail);
    p.on('exit', (code) => (clearTimeout(hung), done({ code: code ?? 'hung', stderr })));
  });
  expect(got).toEqual({ code: 1, stderr: expect.stringContaining('an uncaught failure') });
});

// The terminal tests below run the child under a pty that Python's pty module makes, and read its other end as the
// script says; the pty's output turns '\n' into '\r\n', which is undone here.
type TerminalRun = { code: number | 'hung'; stderr: string; out: string };

const runOnTerminal = (reader: string, script: string): Promise<TerminalRun> =>
  new Promise((done, fail) => {
    const p = spawn('/usr/bin/python3', ['-c', reader, process.execPath, '-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    p.on('error', fail);
    p.on('exit', () => {
      const run = JSON.parse(out) as TerminalRun;
      done({ ...run, out: run.out.replace(/\r\n/g, '\n') });
    });
  });

/**
 * A python script that runs the child (its argv) on a terminal of its own and prints what came of it as JSON: its exit
 * code ('hung' when killed after 30 s), `report` (what `before` read of its stderr) and, with `stderrRest`, the rest of
 * its stderr, and all the terminal's output. `before` runs once the child has started and before the terminal is read
 * to its end (it may read the child's stderr into `report`, write its stdin, read the terminal into `out`); `eachRead`
 * runs after each read of that loop.
 */
const ptyReader = ({ stdin = 'PIPE', before = '', eachRead = '', stderrRest = true }: { stdin?: 'PIPE' | 'DEVNULL'; before?: string; eachRead?: string; stderrRest?: boolean }): string => `
import json, os, pty, subprocess, sys, threading
master, slave = pty.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.${stdin}, stdout=slave, stderr=subprocess.PIPE)
os.close(slave)
hung = threading.Timer(30, child.kill)
hung.start()
report = ''
out = bytearray()
${before}
while True:
    try:
        data = os.read(master, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
${eachRead}
code = child.wait()
hung.cancel()
print(json.dumps({'code': 'hung' if code < 0 else code, 'stderr': report${stderrRest ? ' + child.stderr.read().decode()' : ''}, 'out': out.decode('utf8', 'replace')}))
`;

/** Python: reads the child's terminal as fast as it can, to its end; the child's exit code, stderr and output. */
const fastReader = ptyReader({ stdin: 'DEVNULL' });

// A terminal that is read: the lines went out through sonic-boom, which answers the terminal's EAGAIN (its buffer is a
// few KiB) with a fixed 100 ms sleep: 20,000 debug lines took 51 s instead of 9.7 s, and a busy hub dropped at the
// bound lines the terminal would have taken. They now go whenever the terminal takes more (libuv waits for it on
// epoll). Shown here without a clock: the child's timers never fire (setTimeout does nothing; an interval holds the
// process), so its lines can reach the terminal only if their writes wait for the terminal, not for a timer, and its
// exit (exitAfterLog) only once they are all written.
const readTerminalNoTimers = `
const { createLogger } = require(${source('container.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'debug' });
setInterval(() => undefined, 1000);
const never = { ref() { return this; }, unref() { return this; }, hasRef: () => false, refresh() { return this; } };
globalThis.setTimeout = () => never;
globalThis.clearTimeout = () => undefined;
for (let i = 0; i < 20000; i++) logger.debug({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
exitAfterLog(logger, 0);
`;

it('a terminal that is read gets every line, whole and in order, as fast as it reads (not on a timer)', async () => {
  const run = await runOnTerminal(fastReader, readTerminalNoTimers);
  const lines = run.out.split('\n');
  expect(lines.at(-1)).toBe(''); // the output ends with a whole line
  const numbers = lines.slice(0, -1).map((l) => (JSON.parse(l) as { i: number }).i);
  expect({ code: run.code, stderr: run.stderr, count: numbers.length, inOrder: numbers.every((n, at) => n === at) }).toEqual({
    code: 0,
    stderr: '',
    count: 20000,
    inOrder: true,
  });
});

/**
 * Python: holds the child's terminal unread until the child reports on stderr, then reads it to its end; once the
 * notice of dropped lines is there, tells the child (its stdin) to log its last line and exit.
 */
const stalledThenReadReader = ptyReader({
  before: `
report = child.stderr.readline().decode()
told = False`,
  eachRead: `
    if not told and b'log lines were dropped' in out:
        told = True
        child.stdin.write(b'go\\n')
        child.stdin.flush()`,
  stderrRest: false,
});

// The terminal's bound: what waits for an unread terminal (Ctrl-S) is held at it, lines beyond it are dropped whole and
// counted, and said once the terminal is read again, as on a pipe (above).
const stalledTerminalChild = `
const { createLogger } = require(${source('container.ts')});
const { hubLogDestination, droppedLogLines } = require(${source('log-stream.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const stream = hubLogDestination(${BOUND});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' }, stream);
let logged = 0;
const batch = () => {
  for (let i = 0; i < 100; i++) logger.info({ i: logged++, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
  if (droppedLogLines(logger) === 0) return setImmediate(batch);
  process.stderr.write(JSON.stringify({ terminal: stream.constructor.name, logged, waiting: stream.pendingBytes, dropped: droppedLogLines(logger) }) + '\\n');
};
process.stdin.once('data', () => {
  logger.info('the end');
  exitAfterLog(logger, 0);
});
batch();
`;

it('a terminal nobody reads: lines beyond the bound are dropped whole, counted, and said once it is read again', async () => {
  const run = await runOnTerminal(stalledThenReadReader, stalledTerminalChild);
  const report = JSON.parse(run.stderr) as Report & { terminal: string };
  expect(report.terminal).toBe('TerminalLogStream');
  expect(report.waiting).toBeLessThanOrEqual(BOUND);
  expect(report.dropped).toBeGreaterThan(0);
  const lines = run.out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { msg: string; level: number; i?: number; droppedLines?: number });
  const numbers = lines.filter((l) => l.msg === 'line').map((l) => l.i ?? -1);
  const notices = lines.filter((l) => l.msg.includes('log lines were dropped'));
  const saidDropped = notices.reduce((sum, l) => sum + (l.droppedLines ?? 0), 0);
  expect({
    code: run.code,
    notices: notices.length > 0,
    level: notices[0]?.level,
    inOrder: numbers.every((n, at) => at === 0 || n > (numbers[at - 1] ?? n)),
    accounted: numbers.length + saidDropped,
    last: lines.at(-1)?.msg,
  }).toEqual({ code: 0, notices: true, level: 40, inOrder: true, accounted: report.logged, last: 'the end' });
  expect(saidDropped).toBeGreaterThanOrEqual(report.dropped);
});

// Several loggers on one terminal (startHub in tests makes several): they shared one descriptor, and a logger whose
// stream was ended closed it under the others, whose lines were then lost (EBADF). Each has a descriptor of its own.
const twoLoggersChild = `
const pino = require('pino');
const { createLogger } = require(${source('container.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const first = createLogger({ RTS_LOG_LEVEL: 'info' });
const second = createLogger({ RTS_LOG_LEVEL: 'info' });
first.info('from the first');
const firstStream = first[pino.symbols.streamSym];
firstStream.once('close', () => {
  second.info('from the second, after the first ended');
  exitAfterLog(second, 0);
});
firstStream.end();
`;

it('a logger whose stream is ended leaves the terminal to the other loggers', async () => {
  const run = await runOnTerminal(fastReader, twoLoggersChild);
  const messages = run.out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { msg: string }).msg);
  expect({ code: run.code, stderr: run.stderr, messages }).toEqual({ code: 0, stderr: '', messages: ['from the first', 'from the second, after the first ended'] });
});

/**
 * Python: reads 64 KiB of the child's terminal, then nothing until the child says on stderr that its exit gave up;
 * then reads what the terminal holds (so it has room for more), tells the child so (its stdin), and reads to the end.
 */
const stopsThenMakesRoomReader = ptyReader({
  before: `
while len(out) < 65536:
    out += os.read(master, 65536 - len(out))
report = child.stderr.readline().decode()
os.set_blocking(master, False)
while True:
    try:
        data = os.read(master, 65536)
    except BlockingIOError:
        break
    out += data
os.set_blocking(master, True)
child.stdin.write(b'room\\n')
child.stdin.flush()`,
  stderrRest: false,
});

// An exit that gives up on a slow reader (exitAfterLog's limit) while the terminal has part of a line: the log ended
// in half a JSON line, and whatever came next (the next process's first line) was joined to it and unparseable. The
// line cut short is now finished with a newline. Here lines of 300 KB and a reader that took 64 KiB of them: the first
// line is cut short when the exit gives up. The newline needs room in the terminal (it waits at most 0.1 s for it): the
// child's exit says on stderr that it gave up and waits for the reader to have made room, so the test does not hang
// on the reader being scheduled within 0.1 s; what the terminal got by then cannot change meanwhile (no event loop).
const slowTerminalChild = `
const fs = require('node:fs');
const pino = require('pino');
const { createLogger } = require(${source('container.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
const stream = logger[pino.symbols.streamSym];
const finishAtExit = stream.finishAtExit.bind(stream);
stream.finishAtExit = (flushMs) => {
  process.stderr.write(JSON.stringify({ terminal: stream.constructor.name, held: stream.pendingBytes }) + '\\n');
  fs.readSync(0, Buffer.alloc(16));
  finishAtExit(flushMs);
};
for (let i = 0; i < 3; i++) logger.info({ i, pad: 'x'.repeat(300000) }, 'line');
exitAfterLog(logger, 4, 300);
`;

it('an exit that gives up on a slow terminal ends the log with a whole line: one cut short is finished', async () => {
  const run = await runOnTerminal(stopsThenMakesRoomReader, slowTerminalChild);
  const lines = run.out.split('\n');
  const report = JSON.parse(run.stderr) as { terminal: string; held: number };
  expect({
    code: run.code,
    terminal: report.terminal,
    held: report.held > 0,
    cutShort: lines.length === 2 && (lines[0] ?? '').startsWith('{"level":30') && (lines[0] ?? '').length < 300000,
    end: lines.at(-1),
  }).toEqual({ code: 4, terminal: 'TerminalLogStream', held: true, cutShort: true, end: '' });
});

/**
 * Python: holds the child's terminal unread until the child reports on stderr, then tells the child (its stdin), waits
 * for its second report (written just before it crashes: until then it holds its lines, as the terminal is not read;
 * reading the terminal at once let the child's event loop write them all before it crashed, now and then under load),
 * and reads the terminal to its end.
 */
const heldThenReadReader = ptyReader({
  before: `
report = child.stderr.readline().decode()
child.stdin.write(b'go\\n')
child.stdin.flush()
report += child.stderr.readline().decode()`,
});

// A crash (an uncaught exception) while the terminal holds lines back: the exit writes them (for at most 2 s), each
// once; pino's fatal() flushes a stream that has flushSync, which must not write them a second time.
const crashWithLinesHeld = `
const pino = require('pino');
const { createLogger } = require(${source('container.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
const stream = logger[pino.symbols.streamSym];
for (let i = 0; i < 600; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
logger.fatal('going down');
process.stderr.write(JSON.stringify({ terminal: stream.constructor.name }) + '\\n');
process.stdin.once('data', () => {
  process.stderr.write(JSON.stringify({ heldAtCrash: stream.pendingBytes }) + '\\n');
  throw new Error('an uncaught failure');
});
`;

it('a crash while the terminal holds lines: the exit writes them, each once, and the process ends with its code', async () => {
  const run = await runOnTerminal(heldThenReadReader, crashWithLinesHeld);
  const [first, second] = run.stderr.split('\n');
  const report = { ...(JSON.parse(first ?? '') as object), ...(JSON.parse(second ?? '') as object) } as { terminal: string; heldAtCrash: number };
  const lines = run.out.split('\n');
  const parsed = lines.slice(0, -1).map((l) => JSON.parse(l) as { msg: string; i?: number });
  expect({
    code: run.code,
    terminal: report.terminal,
    held: report.heldAtCrash > 0,
    crash: run.stderr.includes('an uncaught failure'),
    end: lines.at(-1),
    messages: parsed.map((l) => (l.msg === 'line' ? l.i : l.msg)),
  }).toEqual({ code: 1, terminal: 'TerminalLogStream', held: true, crash: true, end: '', messages: [...Array.from({ length: 600 }, (_, i) => i), 'going down'] });
});

const crashOnUnreadTerminal = `
const { createLogger } = require(${source('container.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
for (let i = 0; i < 5000; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
logger.fatal('going down');
process.stderr.write('logged\\n');
setImmediate(() => {
  throw new Error('an uncaught failure');
});
`;

it('a crash while nobody reads the terminal: the exit gives up on the lines held, and the process ends with its code', async () => {
  const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
    const p = spawn('/usr/bin/python3', ['-c', ptyHolder, process.execPath, '-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', crashOnUnreadTerminal], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    p.on('error', fail);
    p.on('exit', () => done(JSON.parse(out)));
  });
  expect({ code: got.code, stderr: got.stderr.startsWith('logged\n') && got.stderr.includes('an uncaught failure') }).toEqual({ code: 1, stderr: true });
});

// A Node whose tty internals the stream does not know (_handle, its setBlocking or writeQueueSize renamed or gone):
// the hub must still start, log to the terminal through sonic-boom, say so once, and exit with its code, also when
// nobody reads the terminal. nodeInternals.handleOf plays such a Node.
const fallbackChild = (handleOf: string, read: boolean) => `
const pino = require('pino');
const { nodeInternals } = require(${source('terminal-log-stream.ts')});
const { createLogger } = require(${source('container.ts')});
const { exitAfterLog } = require(${source('exit-after-log.ts')});
nodeInternals.handleOf = ${handleOf};
const first = createLogger({ RTS_LOG_LEVEL: 'info' });
const second = createLogger({ RTS_LOG_LEVEL: 'info' });
for (let i = 0; i < ${read ? 200 : 5000}; i++) first.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
second.info('from the second');
process.stderr.write(JSON.stringify({ streams: [first, second].map((l) => l[pino.symbols.streamSym].constructor.name) }) + '\\n');
exitAfterLog(first, 0);
`;

const NODE_DRIFTS = {
  'no _handle': '() => undefined',
  'no setBlocking': '(tty) => ({ writeQueueSize: tty._handle.writeQueueSize })',
  'no writeQueueSize': '(tty) => ({ setBlocking: (blocking) => tty._handle.setBlocking(blocking) })',
  'a setBlocking that throws': '() => ({ writeQueueSize: 0, setBlocking: () => { throw new TypeError("not this way") } })',
};

it.each(Object.entries(NODE_DRIFTS))('a Node with %s: the log goes to the terminal through sonic-boom, said once', async (_drift, handleOf) => {
  const run = await runOnTerminal(fastReader, fallbackChild(handleOf, true));
  const lines = run.out.split('\n');
  const parsed = lines.slice(0, -1).map((l) => JSON.parse(l) as { msg: string; i?: number; level: number });
  expect({
    code: run.code,
    stderr: JSON.parse(run.stderr) as unknown,
    end: lines.at(-1),
    notices: parsed.filter((l) => l.msg.includes('through sonic-boom')).map((l) => l.level),
    lines: parsed.filter((l) => l.msg === 'line').map((l) => l.i),
    second: parsed.filter((l) => l.msg === 'from the second').length,
  }).toEqual({ code: 0, stderr: { streams: ['SonicBoom', 'SonicBoom'] }, end: '', notices: [40], lines: Array.from({ length: 200 }, (_, i) => i), second: 1 });
});

it('a Node without the internals and a terminal nobody reads: the hub still exits, with its code', async () => {
  const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
    const p = spawn('/usr/bin/python3', ['-c', ptyHolder, process.execPath, '-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', fallbackChild(NODE_DRIFTS['no _handle'], false)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    p.on('error', fail);
    p.on('exit', () => done(JSON.parse(out)));
  });
  expect(got).toEqual({ code: 0, stderr: JSON.stringify({ streams: ['SonicBoom', 'SonicBoom'] }) + '\n' });
});

// A terminal that hangs up (the SSH session of a hub started with setsid or nohup ends; here the pty's master is
// closed): writes answer EIO. The hub goes on: what was held and every line after it is dropped and counted, and
// nothing retries the write (one EIO, the event loop idle). The child has no controlling terminal (setsid), so
// no SIGHUP. Its exit is not asserted: Node 20 aborts in its own exit (ResetStdio's tcsetattr on the hung-up
// terminal, nodejs/node#58200), whatever the hub does.
const hangUpReader = `
import json, os, pty, subprocess, sys, threading
master, slave = pty.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=slave, stderr=subprocess.PIPE, start_new_session=True)
os.close(slave)
hung = threading.Timer(30, child.kill)
hung.start()
report = child.stderr.readline().decode()
os.close(master)
child.stdin.write(b'hung up\\n')
child.stdin.flush()
report += child.stderr.readline().decode()
hung.cancel()
child.kill()
child.wait()
print(json.dumps({'code': 0, 'stderr': report, 'out': ''}))
`;

const hangUpChild = `
const { performance } = require('node:perf_hooks');
const pino = require('pino');
const { createLogger } = require(${source('container.ts')});
const { droppedLogLines } = require(${source('log-stream.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
const stream = logger[pino.symbols.streamSym];
for (let i = 0; i < 600; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'line');
process.stderr.write(JSON.stringify({ terminal: stream.constructor.name, held: stream.pendingBytes }) + '\\n');
const errors = [];
stream.tty.on('error', (error) => errors.push(error.code));
process.stdin.once('data', () => {
  for (let i = 0; i < 200; i++) logger.info({ i, pad: ${JSON.stringify(LINE_PAD)} }, 'after');
  const loop = performance.eventLoopUtilization();
  setTimeout(() => {
    const report = { errors, busy: performance.eventLoopUtilization(loop).utilization < 0.5, dropped: droppedLogLines(logger), held: stream.pendingBytes };
    process.stderr.write(JSON.stringify(report) + '\\n');
  }, 300);
});
`;

it('a terminal that hangs up: the hub goes on, drops and counts its lines, and does not spin on the terminal', async () => {
  const run = await runOnTerminal(hangUpReader, hangUpChild);
  const [before, after] = run.stderr.split('\n').map((l) => (l === '' ? undefined : (JSON.parse(l) as Record<string, unknown>)));
  expect(before).toEqual({ terminal: 'TerminalLogStream', held: expect.any(Number) });
  expect(after).toEqual({ errors: ['EIO'], busy: true, dropped: expect.any(Number), held: 0 });
  expect(after?.dropped).toBeGreaterThanOrEqual(200);
});
