// The hub's stop (src/bootstrap/hub-stop.ts) in a process of its own, where what keeps the process alive matters: a
// stop that never ends while nothing else is left to run (it waits for an event from a connection already closed) let
// the event loop empty, and the process ended with 0, the code of a clean stop, without "telemed-rts stopped" and
// before the grace ran out: the forced exit's timer did not hold the process.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

jest.setTimeout(60_000);

const ROOT = resolve(__dirname, '..', '..');
const source = (file: string) => JSON.stringify(join(ROOT, 'src', 'bootstrap', file));

const neverEndingStop = `
const { createLogger } = require(${source('container.ts')});
const { stopRunningHub } = require(${source('hub-stop.ts')});
const logger = createLogger({ RTS_LOG_LEVEL: 'info' });
// A promise nothing will settle, and nothing else that keeps the process alive.
stopRunningHub({ stop: () => new Promise(() => undefined) }, logger, 'SIGTERM', 300);
`;

it('a stop that never ends, with nothing else left to run, exits 1 once the grace is exceeded (not 0, in silence)', async () => {
  const got = await new Promise<{ code: number | 'hung'; messages: string[] }>((done, fail) => {
    const p = spawn(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', neverEndingStop], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const hung = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', fail);
    p.on('close', (code) =>
      done({
        code: (clearTimeout(hung), code ?? 'hung'),
        messages: out
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => (JSON.parse(l) as { msg: string }).msg),
      }),
    );
  });
  expect(got).toEqual({ code: 1, messages: ['shutting down', 'shutdown grace period exceeded; exiting'] });
});
