import { DateTime } from 'luxon';
import { Deadlines } from '../../src/application/consultation/deadlines';

/**
 * The Deadlines runner's loop (start / stop): a stop() that came during a poll found no sleep to end, and the loop
 * slept a whole interval more before stop() returned (a hub's shutdown waited out the poll interval).
 */
type Line = readonly [level: string, message: string];

const runner = (poll: () => Promise<void>, intervalMs: number, lines: Line[] = []) =>
  new Deadlines({
    consultations: { dueTimers: async () => [] },
    projector: { catchUp: poll },
    service: {} as never,
    clock: { now: () => DateTime.utc() },
    intervalMs,
    logger: {
      warn: (_: object, message: string) => void lines.push(['warn', message]),
      error: (_: object, message: string) => void lines.push(['error', message]),
      info: (_: object, message: string) => void lines.push(['info', message]),
    },
  });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Deadlines start / stop', () => {
  it('stop() during a poll returns as soon as that poll ends: no sleep of intervalMs after it, no other poll', async () => {
    // No clock in the assertions (a loaded machine made a sleep(50) take 120 ms, and a bound on stop()'s time failed):
    // the poll ends when the test says so, and an interval of an hour after it would outlast the test's timeout.
    let polls = 0;
    let pollStarted!: () => void;
    const inPoll = new Promise<void>((resolve) => (pollStarted = resolve));
    let endPoll!: () => void;
    const pollMayEnd = new Promise<void>((resolve) => (endPoll = resolve));
    const deadlines = runner(async () => {
      polls++;
      pollStarted();
      await pollMayEnd;
    }, 3_600_000);
    deadlines.start();
    await inPoll;
    let stopped = false;
    const stopping = deadlines.stop().then(() => void (stopped = true));
    await sleep(20);
    expect(stopped).toBe(false); // it waits for the poll in hand
    endPoll();
    await stopping; // and then returns (with an hour's sleep after the poll, this would time out)
    expect(polls).toBe(1);
  });

  it('stop() while sleeping returns at once; start() again polls again', async () => {
    let polls = 0;
    const deadlines = runner(async () => void polls++, 3_600_000);
    deadlines.start();
    await sleep(20); // the poll ended: it sleeps
    expect(polls).toBe(1);
    await deadlines.stop(); // returns at once: with an hour's sleep to wait out, this would time out
    deadlines.start();
    await sleep(20);
    expect(polls).toBe(2);
    await deadlines.stop();
    expect(polls).toBe(2);
  });

  it('logs a failing poll and the recovery after it, polling every intervalMs, but not the failure of a poll stop() ended', async () => {
    const lines: Line[] = [];
    let polls = 0;
    const startedAt: number[] = [];
    let stopNow: (() => void) | null = null;
    const deadlines = runner(async () => {
      polls++;
      startedAt.push(performance.now());
      if (polls === 1) throw new Error('store down');
      if (polls === 3) {
        stopNow?.(); // stop() during this poll, which then fails
        await sleep(20);
        throw new Error('store down again');
      }
    }, 30, lines);
    const stopped = new Promise<void>((resolve) => {
      stopNow = () => void deadlines.stop().then(resolve);
    });
    deadlines.start();
    await stopped;
    expect(polls).toBe(3);
    expect(startedAt[1]! - startedAt[0]!).toBeGreaterThanOrEqual(25); // the interval after a failure too
    expect(lines).toEqual([
      ['error', 'consultation deadlines failed; retrying'],
      ['info', 'consultation deadlines work again'],
    ]);
  });
});
