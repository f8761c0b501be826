import { readSync } from 'node:fs';
import { isatty } from 'node:tty';

/** The longest line `readStdinLine` takes; a CPR number is 11 characters. */
const MAX_LINE_BYTES = 256;

/**
 * The first line of stdin (without its line end), read synchronously a byte at a time so that nothing after it is
 * consumed and a terminal answers after Enter, not only at end of input. For `--patient -`: the CPR number then
 * reaches the program through neither its command line nor its environment.
 */
export const readStdinLine = (fd = 0): string => {
  const byte = Buffer.alloc(1);
  const bytes: number[] = [];
  while (bytes.length <= MAX_LINE_BYTES) {
    let n: number;
    try {
      n = readSync(fd, byte, 0, 1, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EOF') break;
      if (code !== 'EAGAIN') throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // a non-blocking pipe with nothing yet
      continue;
    }
    if (n === 0 || byte[0] === 0x0a) break;
    bytes.push(byte[0]!);
  }
  return Buffer.from(bytes).toString('utf8').replace(/\r$/, '');
};

/** `--patient -` as a program reads it: at a terminal it first says what to type (on stderr; shown as typed, but out of ps and the shell's history). */
export const readPatientLine = (): string => {
  if (isatty(0)) process.stderr.write("Patient's CPR number: ");
  return readStdinLine();
};
