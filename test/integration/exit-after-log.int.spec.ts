// The hub's exit when the reader of its log has gone (`... | head`, a log shipper that crashed): pino flushes the
// lines still under way at process.exit with sonic-boom's flushSync, which retries a write that failed with EPIPE
// for ever, so a SIGTERM left the hub hung inside process.exit, past its shutdown grace (an outside review: stuck
// until SIGKILL, 3 runs in 5). exitAfterLog (src/bootstrap/exit-after-log.ts) waits for the write's outcome on the
// event loop first. Here the race is made certain: two lines are logged in one turn (the first one's write under
// way, the second waiting behind it) to a pipe whose reader is closed, and the exit follows at once.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

jest.setTimeout(60_000);

const ROOT = resolve(__dirname, '..', '..');

const child = (exit: 'exitAfterLog' | 'process.exit') => `
const pino = require('pino');
const { exitAfterLog } = require(${JSON.stringify(join(ROOT, 'src', 'bootstrap', 'exit-after-log.ts'))});
const logger = pino();
process.stdin.once('data', () => {
  logger.info('shutting down');
  logger.info('telemed-rts stopped');
  ${exit === 'exitAfterLog' ? 'exitAfterLog(logger, 0);' : 'process.exit(0);'}
});
process.stderr.write('ready\\n');
`;

/** The child's exit code, or 'hung' when it had not exited 10 s after it was told to log and exit (then killed). */
const run = (exit: 'exitAfterLog' | 'process.exit'): Promise<number | 'hung'> =>
  new Promise((done, fail) => {
    const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', child(exit)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let hung: NodeJS.Timeout | undefined;
    p.on('error', fail);
    // Killed (below), it has no code.
    p.on('exit', (code) => (clearTimeout(hung), done(code ?? 'hung')));
    p.stderr.once('data', () => {
      // The log's reader goes away: the read end of the child's stdout is closed, so its writes fail with EPIPE.
      p.stdout.destroy();
      p.stdin.write('go\n');
      hung = setTimeout(() => {
        hung = undefined;
        p.kill('SIGKILL');
      }, 10_000);
    });
  });

it('exits, with its code, when the log reader has gone and a line is still being written', async () => {
  expect(await run('exitAfterLog')).toBe(0);
});

it('(the cause, shown) a bare process.exit there hangs in pino\'s exit flush', async () => {
  expect(await run('process.exit')).toBe('hung');
});

// stdout a file on a full disk (here /dev/full: every write fails with ENOSPC). pino hands every write error but
// EPIPE on as the stream's 'error': unlistened, the first line was an uncaught exception, and its exit hung for ever
// in pino's exit flush (sonic-boom's flushSync retries ENOSPC without end), silent, deaf to SIGTERM.
const onFullDisk = `
const { createLogger } = require(${JSON.stringify(join(ROOT, 'src', 'bootstrap', 'container.ts'))});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
logger.info('telemed-rts listening');
setTimeout(() => {
  logger.info('still serving');
  process.stderr.write('alive\\n');
  process.exit(0);
}, 200);
`;

it('a log that cannot be written (stdout on a full disk) loses its lines: the hub goes on, and exits', async () => {
  const stdout = openSync('/dev/full', 'w');
  const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
    const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', onFullDisk], { cwd: ROOT, stdio: ['ignore', stdout, 'pipe'] });
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const hung = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', fail);
    p.on('exit', (code) => (clearTimeout(hung), done({ code: code ?? 'hung', stderr })));
  });
  closeSync(stdout);
  expect(got).toEqual({ code: 0, stderr: 'alive\n' });
});

// The hub program itself (src/bootstrap/main.ts), on a start that fails with something it has no name for (exit 1,
// "failed to start"), with the log's reader gone: that exit was a bare process.exit(1), and hung in pino's exit
// flush as the stop's did. The failure is put in by a preloaded module that makes the store's opening log two lines
// (the first one's write under way, the second waiting behind it) and throw, so the exit meets a write in flight.
const failingStart = `
const container = require(${JSON.stringify(join(ROOT, 'src', 'bootstrap', 'container.ts'))});
container.openContainer = async (_config, logger) => {
  logger.info('opening the store');
  logger.info('still opening the store');
  throw new Error('a failure with no name');
};
`;

it('the hub\'s "failed to start" exit (1) does not hang when the log reader has gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rts-exit-after-log-'));
  const preload = join(dir, 'failing-start.js');
  writeFileSync(preload, failingStart);
  try {
    const got = await new Promise<{ code: number | 'hung'; stderr: string }>((done, fail) => {
      const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-r', preload, join(ROOT, 'src', 'bootstrap', 'main.ts')], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', RTS_DATA_DIR: join(dir, 'data'), RTS_HTTP_PORT: '0', RTS_AUTH: 'off' },
      });
      // The log's reader goes away before the hub has written anything (it takes a second to load its modules).
      p.stdout.destroy();
      let stderr = '';
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const hung = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('error', fail);
      p.on('exit', (code) => (clearTimeout(hung), done({ code: code ?? 'hung', stderr })));
    });
    expect(got).toEqual({ code: 1, stderr: expect.stringContaining('telemed-rts: failed to start: a failure with no name') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
