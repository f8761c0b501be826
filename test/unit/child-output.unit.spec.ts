import { runChild, settled, spawnChild } from '../support/children';

/**
 * The test helpers hand back a child's exit only once its output is read to the end. Node's 'exit' comes when the
 * process ends, and its docs warn that the pipes may still hold output then: a test reading on 'exit' could miss a
 * hub's last log line ("telemed-rts stopped"). A grandchild that writes after its parent exited makes the gap
 * certain, so these tests use one.
 */
const lateWriter = (delayMs: number, text: string) =>
  `require('node:child_process').spawn(process.execPath, ['-e', "setTimeout(() => process.stdout.write('${text}'), ${delayMs})"], { stdio: ['ignore', 'inherit', 'ignore'] }).unref(); process.stdout.write('first;'); process.exitCode = 3`;

it('runChild returns what was written to the pipe up to its end, with the exit code', async () => {
  const run = await runChild(process.execPath, ['-e', lateWriter(50, 'last')], {});
  expect(run.code).toBe(3);
  expect(run.out).toBe('first;last'); // on 'exit': 'first;' alone
});

it('settled gives up waiting for the pipes after the grace when a grandchild keeps them open', async () => {
  const child = spawnChild(process.execPath, ['-e', lateWriter(20_000, 'never read')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const started = Date.now();
  expect(await settled(child, 300)).toEqual({ code: 3, signal: null });
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(out).toBe('first;');
});
