// The hub's exit, once its log lines are written (or cannot be).
//
// pino writes to stdout through sonic-boom, asynchronously, and flushes what is left on process exit with
// sonic-boom's flushSync. That loop retries a failed write for ever (sonic-boom 4: every error but EAGAIN/EBUSY
// is slept on and tried again): when the log's reader had gone (`rts ... | tee`, a log shipper that crashed:
// EPIPE) and a write was still under way at the exit, the hub hung inside process.exit after a SIGTERM, past the
// shutdown grace, whose own timer could no longer run (found by an outside review: stuck until SIGKILL). pino
// silences the stream itself once an EPIPE is reported, but that report comes asynchronously, after the write.
//
// So the exit waits, on the event loop, until what was logged is written ('drain') or the stream failed ('error'),
// for at most `waitMs`; then the exit hook's flush is made to do nothing: everything is written, or the reader is
// gone or stuck, and a hub that is stopping must stop. On a terminal (TerminalLogStream) the same wait, for 'drain'.
import pino, { type Logger } from 'pino';
import { TerminalLogStream } from './terminal-log-stream';

/** The parts of sonic-boom's SonicBoom read here; anything else (a stream given by an embedder) exits at once. */
type SonicBoomLike = {
  _writing: boolean;
  _len: number;
  flushSync: () => void;
  /** Whether to try again after EAGAIN (writing: bytes of this write; remaining: bytes behind it). */
  retryEAGAIN: (error: Error, writing: number, remaining: number) => boolean;
  once(event: 'drain' | 'error', listener: () => void): unknown;
  on(event: 'error' | 'write', listener: () => void): unknown;
};

const isSonicBoom = (stream: unknown): stream is SonicBoomLike =>
  typeof stream === 'object' &&
  stream !== null &&
  typeof (stream as SonicBoomLike).flushSync === 'function' &&
  typeof (stream as SonicBoomLike)._writing === 'boolean' &&
  typeof (stream as SonicBoomLike)._len === 'number';

export const EXIT_LOG_WAIT_MS = 2_000;

/** The exit under way on a log stream: its code may still be raised (a failure asked for while it waits). */
type PendingExit = { code: number };
const pendingExits = new WeakMap<object, PendingExit>();

/**
 * process.exit(code) once `logger`'s lines are written, or its stream failed, or `waitMs` passed.
 *
 * Called again while an exit waits (the stop finished, then the shutdown grace ran out; or the other way round), it
 * joins that exit rather than racing it: the first non-zero code asked for is the code, whichever wait ends first. A
 * failure that was logged ("shutdown grace period exceeded") is never undone by a success that came after it.
 */
export const exitAfterLog = (logger: Logger, code: number, waitMs: number = EXIT_LOG_WAIT_MS): void => {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (stream instanceof TerminalLogStream) {
    // Its writes wait for the terminal on the event loop, so the exit waits for 'drain' there; then the stream is told
    // the exit has come (a line the terminal got part of is finished with a newline, if it takes one; nothing more).
    return exitOnce(stream, code, waitMs, stream.pendingBytes === 0, ['drain'], () => stream.finishAtExit(0));
  }
  if (!isSonicBoom(stream)) {
    process.exit(code);
    return;
  }
  exitOnce(stream, code, waitMs, !stream._writing && stream._len === 0, ['drain', 'error'], () => {
    stream.flushSync = () => undefined;
  });
};

/**
 * The exit waiting on `stream`, joined when there is one (its code the first non-zero asked for), else started:
 * `finish`, then process.exit, at once when the stream holds nothing (`idle`), else at the first of `events` or after
 * `waitMs`.
 */
const exitOnce = (stream: { once(event: 'drain' | 'error', listener: () => void): unknown }, code: number, waitMs: number, idle: boolean, events: readonly ('drain' | 'error')[], finish: () => void): void => {
  const pending = pendingExits.get(stream);
  if (pending) {
    if (pending.code === 0) pending.code = code;
    return;
  }
  const state: PendingExit = { code };
  pendingExits.set(stream, state);
  let exiting = false;
  const exit = () => {
    if (exiting) return;
    exiting = true;
    finish();
    process.exit(state.code);
  };
  if (idle) return exit();
  // Not unref'd: the exit must not wait for an event loop that has nothing else left to run.
  const timer = setTimeout(exit, waitMs);
  const done = () => {
    clearTimeout(timer);
    exit();
  };
  for (const event of events) stream.once(event, done);
};

/**
 * A log line that cannot be written (stdout a file on a full disk: ENOSPC; EIO) is lost, and the hub goes on.
 * pino handles EPIPE alone and hands every other write error on as the stream's 'error': with no listener, the
 * first line written to a full disk was an uncaught exception, and the exit that followed hung for ever in pino's
 * exit flush (sonic-boom's flushSync sleeps and retries every error but EAGAIN without end): a hub that served
 * nothing, said nothing (the exception's message is printed after the exit hooks) and let no SIGTERM in (its main
 * thread asleep in the flush). Until a write succeeds again (lines kept in memory meanwhile are written then), an
 * exit does not flush.
 */
export const surviveLogWriteErrors = (logger: Logger): void => {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!isSonicBoom(stream)) return;
  let failing = false;
  stream.on('error', () => (failing = true));
  stream.on('write', () => (failing = false));
  // A reader that does not read (a stalled pipe, a terminal on Ctrl-S) answers the exit flush's writes with EAGAIN, on
  // which sonic-boom sleeps 100 ms and tries again, without end: an exit that is not the hub's own (an uncaught
  // exception, whose message is printed only after the flush) hung for ever. The flush tries for EXIT_FLUSH_EAGAIN_TRIES
  // such sleeps (about as long as exitAfterLog waits), then gives up: the lines not written are lost.
  let exitFlushTriesLeft: number | undefined;
  const retryEAGAIN = stream.retryEAGAIN;
  if (typeof retryEAGAIN === 'function') {
    stream.retryEAGAIN = (error, writing, remaining) => (exitFlushTriesLeft === undefined ? retryEAGAIN.call(stream, error, writing, remaining) : exitFlushTriesLeft-- > 0);
  }
  // pino replaces it with a no-op itself on EPIPE; exitAfterLog does at the hub's exits.
  const flushSync = stream.flushSync;
  stream.flushSync = () => {
    if (failing) return;
    exitFlushTriesLeft = EXIT_FLUSH_EAGAIN_TRIES;
    try {
      flushSync.call(stream);
    } catch {
      // Given up on EAGAIN (above): an exit must not fail on its log.
    } finally {
      exitFlushTriesLeft = undefined;
    }
  };
};

/** The 100 ms sleeps sonic-boom's exit flush may spend on a reader that does not read before it gives up. */
export const EXIT_FLUSH_EAGAIN_TRIES = 20;
