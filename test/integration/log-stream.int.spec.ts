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

const ptyHolder = `
import json, os, pty, subprocess, sys
master, slave = pty.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
os.close(slave)
try:
    code = child.wait(timeout=20)
except subprocess.TimeoutExpired:
    code = 'hung'
    child.kill()
    child.wait()
print(json.dumps({'code': code, 'stderr': child.stderr.read().decode()}))
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
