import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import type { EventStore, RecordedEvent } from '../../src/application/ports/event-store';
import { Projector, type ProjectionTarget } from '../../src/application/projector';
import { RepeatedFailureLog } from '../../src/application/repeated-failure-log';
import { UnavailableError } from '../../src/domain/shared/errors';

/**
 * A database that is down fails every retry of every background loop alike: 10 minutes of it were ~5,000 log lines
 * (each projection twice a second). One line per 10 s per loop, with the count of those not logged, and one line
 * when it works again.
 */
type Line = { level: 'error' | 'warn' | 'info'; obj: Record<string, unknown>; msg: string };
const recorder = () => {
  const lines: Line[] = [];
  const push = (level: Line['level']) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, logger: { error: push('error'), warn: push('warn'), info: push('info') } };
};

const down = () => new UnavailableError('storage_unavailable', 'the hub cannot reach its database now (ECONNREFUSED)');

describe('RepeatedFailureLog', () => {
  it('logs a repeated failure once per 10 s with the count not logged, another failure at once, and the recovery once', () => {
    let now = 0;
    const { lines, logger } = recorder();
    const log = new RepeatedFailureLog(logger, { failed: 'x failed; retrying', recovered: 'x works again' }, { now: () => now });
    log.succeeded(); // nothing was failing: nothing to say
    for (; now < 25_000; now += 500) log.failed(down());
    expect(lines.map((l) => [l.msg, l.obj['notLoggedSince']])).toEqual([
      ['x failed; retrying', undefined],
      ['x failed; retrying', 19],
      ['x failed; retrying', 19],
    ]);
    // An outage is a warning with its code and cause, and no stack (a database that was down gave a stack per loop).
    expect(lines[0]).toEqual({ level: 'warn', obj: { code: 'storage_unavailable' }, msg: 'x failed; retrying' });
    log.failed(new Error('relation "x" does not exist')); // another failure: said at once, an error with its stack
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ level: 'error', obj: { err: expect.any(Error) } });
    log.failed(new Error('relation "x" does not exist'));
    log.succeeded();
    log.succeeded();
    expect(lines.slice(4)).toEqual([{ level: 'info', obj: { failedForMs: 25_000, notLoggedSince: 1 }, msg: 'x works again' }]);
    log.failed(down()); // a new outage is logged at once
    expect(lines).toHaveLength(6);
  });
});

describe('RepeatedFailureLog of a database that cannot be reached', () => {
  it('names the cause and where it points (code, address, port), not the message written for HTTP callers, nor a stack', () => {
    const { lines, logger } = recorder();
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:18432'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 18432 });
    const error = Object.assign(down(), { cause: refused });
    new RepeatedFailureLog(logger, { failed: 'registry projection failed; retrying', recovered: 'registry projection works again' }).failed(error);
    expect(lines).toEqual([
      { level: 'warn', obj: { code: 'storage_unavailable', cause: 'ECONNREFUSED', address: '127.0.0.1', port: 18432 }, msg: 'registry projection failed; retrying' },
    ]);
  });
});

describe('Projector while its store cannot be reached', () => {
  afterEach(() => jest.useRealTimers());

  it('logs 10 minutes of failed retries in one line per 10 s, and the recovery in one line', async () => {
    jest.useFakeTimers();
    const real = new InMemoryEventStore();
    let reachable = false;
    const guarded = <T>(f: () => Promise<T>) => (reachable ? f() : Promise.reject(down()));
    const store: EventStore = Object.assign(Object.create(real) as EventStore, {
      readAll: (o: Parameters<EventStore['readAll']>[0]) => guarded(() => real.readAll(o)),
      headPosition: () => guarded(() => real.headPosition()),
      waitForAppend: (after: bigint, ms: number) => guarded(() => real.waitForAppend(after, ms)),
    });
    let checkpoint = 0n;
    const model: ProjectionTarget = {
      checkpoint: async () => checkpoint,
      apply: async (_events: readonly RecordedEvent[], to: bigint) => void (checkpoint = to),
      reset: async () => void (checkpoint = 0n),
    };
    const { lines, logger } = recorder();
    const projector = new Projector(store, model, logger, 1000, 'registry');
    projector.start();
    for (let t = 0; t < 600_000; t += 100) await jest.advanceTimersByTimeAsync(100);
    const failed = lines.filter((l) => l.msg === 'registry projection failed; retrying');
    expect(failed.length).toBeGreaterThanOrEqual(59);
    expect(failed.length).toBeLessThanOrEqual(61);
    const counted = failed.reduce((n, l) => n + 1 + ((l.obj['notLoggedSince'] as number | undefined) ?? 0), 0);
    expect(counted).toBeGreaterThan(1000); // retried twice a second all along, just not logged each time

    reachable = true;
    for (let t = 0; t < 3000; t += 100) await jest.advanceTimersByTimeAsync(100);
    expect(lines.filter((l) => l.msg === 'registry projection works again')).toEqual([
      { level: 'info', obj: expect.objectContaining({ failedForMs: expect.any(Number) }), msg: 'registry projection works again' },
    ]);
    const stopped = projector.stop();
    await jest.advanceTimersByTimeAsync(2000);
    await stopped;
  });
});
