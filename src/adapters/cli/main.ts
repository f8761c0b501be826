#!/usr/bin/env node
import './node-version-check';
import { runBackup } from './backup';
import { runDlq } from './dlq';
import { runErasures } from './erasures';
import { EXIT } from './exit-codes';
import { run } from './run';
import { readPatientLine } from './stdin';

/** The `rts` program (package.json "bin"): the process around `run`, which does the work. */
/** An upload under way: how to send it again (its id), said if the process ends with no answer. */
let resendHint = '';

const main = async (): Promise<void> => {
  // `rts review ... | head` closes the pipe early; that is not an error worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
    // A full disk or a broken device (`> /dev/full`): said, not a silent exit 1. An upload's result is on stdout, so
    // how to send it again goes with it.
    process.stderr.write(`rts: cannot write the output (${e.code ?? 'error'})\n${resendHint}`);
    process.exit(EXIT.internal);
  });
  // exitCode rather than exit(): stdout to a pipe is written asynchronously and must drain first.
  const argv = process.argv.slice(2);
  const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
  const [command, ...rest] = argv;
  process.exitCode =
    command === 'dlq'
      ? await runDlq(rest, io)
      : command === 'erasures'
        ? await runErasures(rest, io)
        : command === 'backup' || command === 'restore' ? await runBackup(command, rest, io) : await run(argv, { ...io, readStdin: readPatientLine, onUploadSending: (hint) => (resendHint = hint) });
};

if (require.main === module) {
  // A connection the other end closes without an answer can leave fetch's promise unsettled with nothing left for
  // the event loop to do: node would then exit 0 with no word, and a script would take the reading as stored.
  let settled = false;
  process.once('beforeExit', () => {
    if (settled) return;
    process.stderr.write(`rts: the connection to the hub ended without an answer (the hub, or something in front of it, closed it)\n${resendHint}`);
    process.exitCode = EXIT.unreachable;
  });
  // Ctrl-C while an upload waits for its answer: it may be stored, so how to send it again is said (it was lost with
  // a silent exit 130). Otherwise the default: 128 + SIGINT.
  process.once('SIGINT', () => {
    if (!settled && resendHint) process.stderr.write(`\nrts: interrupted while waiting for the hub's answer: the reading may be stored.\n${resendHint}`);
    process.exit(130);
  });
  main().finally(() => (settled = true)).catch(() => {
    process.stderr.write('rts: unexpected error\n');
    process.exitCode = EXIT.internal;
  });
}
