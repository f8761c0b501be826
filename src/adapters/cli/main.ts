#!/usr/bin/env node
import { runBackup } from './backup';
import { runDlq } from './dlq';
import { EXIT } from './exit-codes';
import { run } from './run';

/** The `rts` program (package.json "bin"): the process around `run`, which does the work. */
const main = async (): Promise<void> => {
  // `rts review ... | head` closes the pipe early; that is not an error worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    process.exit(e.code === 'EPIPE' ? (process.exitCode ?? EXIT.ok) : EXIT.internal);
  });
  // exitCode rather than exit(): stdout to a pipe is written asynchronously and must drain first.
  const argv = process.argv.slice(2);
  const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
  const [command, ...rest] = argv;
  process.exitCode =
    command === 'dlq' ? await runDlq(rest, io) : command === 'backup' || command === 'restore' ? await runBackup(command, rest, io) : await run(argv, io);
};

if (require.main === module) {
  main().catch(() => {
    process.stderr.write('rts: unexpected error\n');
    process.exitCode = EXIT.internal;
  });
}
