// The hub's log stream: JSON lines on standard output through sonic-boom (pino's asynchronous destination), or on a
// terminal through TerminalLogStream (terminal-log-stream.ts), with a bound on what waits in memory for the log's
// reader, and no write that can block the process for good.
//
// A reader that stops reading (a stalled pipe, a blocked log shipper, a terminal on Ctrl-S) left sonic-boom keeping
// every line in memory, without bound: the hub grew with every line it logged. Past LOG_BUFFER_MAX_BYTES the lines
// are now dropped (sonic-boom's maxLength, or TerminalLogStream's), counted, and said once the reader takes lines again: one warning with how
// many (rts_log_lines_dropped_total on /metrics counts them too). Logging never blocks the event loop: sonic-boom
// writes asynchronously, and a full pipe answers EAGAIN, retried on a timer; TerminalLogStream waits for the terminal
// to take more on the event loop.
import { constants, openSync } from 'node:fs';
import { isatty } from 'node:tty';
import pino, { type DestinationStream, type Logger } from 'pino';
import { CONSULTATION_ERASURE_LOG_MESSAGE, ERASURE_LOG_MESSAGE } from '../adapters/backup/erasure-log-line';
import { TerminalLogStream } from './terminal-log-stream';

/**
 * What may wait in memory for the log's reader. A busy hub logs a few hundred KB a second, so this rides out a log
 * shipper's restart of several seconds; beyond it a stalled reader costs lines, not the hub's memory.
 */
export const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The terminal standard output is, opened again for the log alone, non-blocking (and O_APPEND, TerminalLogStream's
 * mark); undefined where that cannot be done (not Linux, not a terminal, a terminal this user may not open).
 *
 * Node keeps a terminal stdout in blocking mode (tty.WriteStream: setBlocking(true)), so a write of the log through
 * it waited for a terminal nobody read (Ctrl-S, a pty whose other end is not read): sonic-boom's in a thread-pool
 * thread, and the process could then not exit at all (libuv joins its thread-pool threads when the process exits).
 * A descriptor of the log's own leaves process.stdout's as it is. One per logger: a logger that is ended closes its
 * own (startHub in tests makes several; before, they shared one, and one logger's end closed it under the others).
 */
const openTerminal = (fd: number): number | undefined => {
  if (process.platform !== 'linux' || !isatty(fd)) return undefined;
  try {
    return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY | constants.O_APPEND);
  } catch {
    return undefined;
  }
};

/**
 * The hub's log destination: standard output, at most `maxBytes` waiting in memory for the reader. On a terminal,
 * a TerminalLogStream on a descriptor of its own (terminal-log-stream.ts: written as fast as the terminal is read);
 * elsewhere, or where libuv cannot write that terminal without blocking, sonic-boom (a pipe or socket stdout is made
 * non-blocking by libuv when process.stdout is touched, and a full one answers EAGAIN, retried on a timer).
 */
export const hubLogDestination = (maxBytes: number = LOG_BUFFER_MAX_BYTES): DestinationStream => {
  const stdout = process.stdout.fd ?? 1;
  const terminal = openTerminal(stdout);
  if (terminal === undefined) return pino.destination({ dest: stdout, sync: false, maxLength: maxBytes });
  try {
    return new TerminalLogStream(terminal, maxBytes);
  } catch (error) {
    // The terminal's descriptor is closed with the stream that failed: sonic-boom gets one of its own. Said once
    // (reportTerminalFallback): the log then reaches a read terminal at a few KiB per 100 ms, and drops lines sooner.
    const again = openTerminal(stdout);
    const destination = pino.destination({ dest: again ?? stdout, sync: false, maxLength: maxBytes });
    terminalFallbacks.set(destination, (error as Error)?.message ?? String(error));
    return destination;
  }
};

/** Destinations that are sonic-boom on a terminal because a TerminalLogStream could not be made, and why. */
const terminalFallbacks = new WeakMap<object, string>();
let terminalFallbackSaid = false;

/**
 * Says, once a process, that `logger` writes its terminal through sonic-boom because a TerminalLogStream could not
 * be made (a Node whose tty internals it does not know): the log still works, slower on a read terminal.
 */
export const reportTerminalFallback = (logger: Logger): void => {
  const stream = streamOf(logger);
  const reason = typeof stream === 'object' && stream !== null ? terminalFallbacks.get(stream) : undefined;
  if (reason === undefined || terminalFallbackSaid) return;
  terminalFallbackSaid = true;
  logger.warn({ reason }, `the log is written to this terminal through sonic-boom (up to 100 ms per few KiB while the terminal is full), not through Node's tty stream: ${reason}`);
};

type DroppingStream = {
  on(event: 'drop', listener: (line: unknown) => void): unknown;
  on(event: 'write', listener: () => void): unknown;
  maxLength: number;
};

const streamOf = (logger: Logger): unknown => (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];

const isDroppingStream = (stream: unknown): stream is DroppingStream =>
  typeof stream === 'object' && stream !== null && typeof (stream as DroppingStream).on === 'function' && typeof (stream as DroppingStream).maxLength === 'number';

/** Lines dropped in all, by stream (read by the metric). */
const droppedTotals = new WeakMap<object, { lines: number }>();

const ERASURE_RECORD_MARKS = [ERASURE_LOG_MESSAGE, CONSULTATION_ERASURE_LOG_MESSAGE].map((msg) => `"msg":${JSON.stringify(msg)}`);

/**
 * Counts the lines `logger`'s stream drops at its bound, and says how many once a write succeeds again (the reader is
 * back): one warning, written at every level but silent (as the erasure record: an operator at RTS_LOG_LEVEL=error
 * must still learn that the log has a gap). Erasure-record lines among them are said apart: the log is a record of
 * erasures ("patient erased"), and GET /erasures is where the lost ones are.
 */
export const reportDroppedLogLines = (logger: Logger): void => {
  const stream = streamOf(logger);
  if (!isDroppingStream(stream) || stream.maxLength <= 0) return;
  const total = { lines: 0 };
  droppedTotals.set(stream, total);
  let unsaid = 0;
  let unsaidErasures = 0;
  let noticeQueued = false;
  stream.on('drop', (line: unknown) => {
    total.lines += 1;
    unsaid += 1;
    if (typeof line === 'string' && ERASURE_RECORD_MARKS.some((mark) => line.includes(mark))) unsaidErasures += 1;
  });
  stream.on('write', () => {
    if (unsaid === 0 || noticeQueued) return;
    noticeQueued = true;
    // After sonic-boom's write callback, which is still settling its buffer when it tells of the write.
    setImmediate(() => {
      noticeQueued = false;
      const lines = unsaid;
      const erasureLines = unsaidErasures;
      unsaid = 0;
      unsaidErasures = 0;
      if (logger.level === 'silent') return;
      const droppedBefore = total.lines;
      logger.child({}, { level: 'warn' }).warn(
        { droppedLines: lines, droppedErasureLines: erasureLines },
        `${lines} log lines were dropped: the log's reader (a pipe, a log shipper, a terminal) did not take them, and at most ${Math.round(stream.maxLength / 1024)} KiB of lines wait for it` +
          (erasureLines > 0 ? `; ${erasureLines} of them erasure records ("${ERASURE_LOG_MESSAGE}", "${CONSULTATION_ERASURE_LOG_MESSAGE}"): GET /erasures lists every erasure` : ''),
      );
      // Dropped itself (the reader stalled again at once; 'drop' is said within the write): its lines go to the next
      // notice, with the notice itself among them. Before, they were lost from every notice, and the notices said
      // fewer lines than the gap held and than rts_log_lines_dropped_total counted.
      if (total.lines > droppedBefore) {
        unsaid += lines;
        unsaidErasures += erasureLines;
      }
    });
  });
};

/** The lines `logger`'s stream dropped at its bound since it was made (0 for a stream without one). */
export const droppedLogLines = (logger: Logger): number => {
  const stream = streamOf(logger);
  return typeof stream === 'object' && stream !== null ? (droppedTotals.get(stream)?.lines ?? 0) : 0;
};
