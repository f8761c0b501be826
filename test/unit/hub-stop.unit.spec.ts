// The hub's exit code on a stop (src/bootstrap/hub-stop.ts, exit-after-log.ts) when the forced exit (the shutdown
// grace) and the stop's end come within exitAfterLog's wait for the log: the code says what the log says, whichever
// ends first. The timing is held by hand: fake timers for the grace and the log wait, a stop whose promise the test
// settles, a log stream that drains when the test says so, and process.exit recorded instead of run.
import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';
import { exitAfterLog, EXIT_LOG_WAIT_MS } from '../../src/bootstrap/exit-after-log';
import { stopRunningHub } from '../../src/bootstrap/hub-stop';

/** The parts of sonic-boom exitAfterLog reads: a write is under way until drain() is called. */
class HeldLogStream extends EventEmitter {
  _writing = false;
  _len = 0;
  readonly lines: string[] = [];
  flushSync = (): void => undefined;
  write(line: string): boolean {
    this.lines.push(JSON.parse(line).msg);
    this._writing = true;
    this._len += line.length;
    return true;
  }
  drain(): void {
    this._writing = false;
    this._len = 0;
    this.emit('drain');
  }
}

const GRACE_MS = 10_000;
let exits: number[];
let stream: HeldLogStream;
let logger: Logger;

beforeEach(() => {
  jest.useFakeTimers();
  exits = [];
  jest.spyOn(process, 'exit').mockImplementation(((code: number) => void exits.push(code)) as never);
  stream = new HeldLogStream();
  logger = pino({}, stream);
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

const heldStop = () => {
  let finish!: () => void;
  const stopped = new Promise<void>((resolve) => (finish = resolve));
  return { hub: { stop: () => stopped }, finish };
};

/** Lets the stop's promise callbacks run (they are microtasks; fake timers do not hold them). */
const settled = () => jest.advanceTimersByTimeAsync(0);

it('a stop that ended before the grace exits 0, and the grace is not said to be exceeded while the log is written', async () => {
  const { hub, finish } = heldStop();
  stopRunningHub(hub, logger, 'SIGTERM', GRACE_MS);
  finish();
  await settled();
  // The log's last lines are still being written (a slow reader) when the grace runs out.
  jest.advanceTimersByTime(GRACE_MS);
  stream.drain();
  expect({ exits, lines: stream.lines }).toEqual({ exits: [0], lines: ['shutting down'] });
});

it('a grace exceeded exits 1, also when the stop ends while the log is being written', async () => {
  const { hub, finish } = heldStop();
  stopRunningHub(hub, logger, 'SIGTERM', GRACE_MS);
  jest.advanceTimersByTime(GRACE_MS);
  finish();
  await settled();
  stream.drain();
  expect({ exits, lines: stream.lines }).toEqual({ exits: [1], lines: ['shutting down', 'shutdown grace period exceeded; exiting'] });
});

it('a grace exceeded exits 1 when the log is never written either (the wait for it runs out)', async () => {
  const { hub, finish } = heldStop();
  stopRunningHub(hub, logger, 'SIGTERM', GRACE_MS);
  jest.advanceTimersByTime(GRACE_MS);
  finish();
  await settled();
  jest.advanceTimersByTime(EXIT_LOG_WAIT_MS);
  expect(exits).toEqual([1]);
});

it('exitAfterLog: a failure asked for while an exit 0 waits for the log makes it an exit 1, and one exit only', () => {
  logger.info('telemed-rts stopped');
  exitAfterLog(logger, 0);
  exitAfterLog(logger, 1);
  exitAfterLog(logger, 0);
  stream.drain();
  expect(exits).toEqual([1]);
});

it('a stop that throws (rather than rejects) is a failed stop: "shutdown failed", exit 1, one exit', async () => {
  const hub = {
    stop: (): Promise<void> => {
      throw new TypeError('stop went wrong');
    },
  };
  expect(() => stopRunningHub(hub, logger, 'SIGTERM', GRACE_MS)).not.toThrow();
  await settled();
  stream.drain();
  jest.advanceTimersByTime(GRACE_MS + EXIT_LOG_WAIT_MS);
  expect({ exits, lines: stream.lines }).toEqual({ exits: [1], lines: ['shutting down', 'shutdown failed'] });
});
