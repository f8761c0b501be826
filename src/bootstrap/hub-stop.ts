// The hub process's stop on SIGTERM/SIGINT once it serves (src/bootstrap/main.ts): drain, then exit through the log.
import type { Logger } from 'pino';
import { exitAfterLog } from './exit-after-log';
import type { RunningHub } from './main';

/** How long past RTS_SHUTDOWN_GRACE_MS the stop may take before the process exits 1 without it. */
export const FORCED_EXIT_MARGIN_MS = 5_000;

/**
 * Stops `hub` and exits: 0 once it stopped, 1 when the stop failed or had not ended `forceAfterMs` after the signal
 * ("shutdown grace period exceeded", then exit 1 whatever the stop does next).
 *
 * The exit code follows what the log says. A stop that ended first cancels the forced exit, so the grace is not said
 * to be exceeded while exitAfterLog waits for the last lines to be written (up to 2 s, a stalled log reader): that
 * exit was 0 after "grace exceeded" had been logged. A forced exit that came first stays 1 when the stop ends during
 * that wait (exitAfterLog keeps the first failure asked for).
 */
export const stopRunningHub = (hub: Pick<RunningHub, 'stop'>, logger: Logger, signal: string, forceAfterMs: number): void => {
  logger.info({ signal }, 'shutting down');
  const force = setTimeout(() => {
    logger.error('shutdown grace period exceeded; exiting');
    exitAfterLog(logger, 1);
  }, forceAfterMs);
  // Not unref'd: a stop that never ends while nothing else is left to run (it awaits an event from a connection
  // already closed) let the event loop empty, and the process ended with 0, the code of a clean stop, in silence.
  // Both ends of the stop clear it, so it holds the process only as long as the stop is unfinished.
  // A stop that throws rather than rejects is a failed stop too: it escaped the signal's listener as an uncaught
  // exception, exit 1 without "shutdown failed" and past exitAfterLog.
  new Promise<void>((stopped) => stopped(hub.stop())).then(
    () => {
      clearTimeout(force);
      exitAfterLog(logger, 0);
    },
    (err: unknown) => {
      clearTimeout(force);
      logger.error({ errType: (err as Error)?.name }, 'shutdown failed');
      exitAfterLog(logger, 1);
    },
  );
};
