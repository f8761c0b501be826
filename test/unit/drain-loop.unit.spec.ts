import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { BackgroundDrain, DrainLoop } from '../../src/application/drain-loop';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { Projector, type ProjectionTarget } from '../../src/application/projector';
import type { FailureLogger } from '../../src/application/repeated-failure-log';

/**
 * The loop behind every projector and downlink publisher: catchUp() must give read-your-writes (everything
 * appended before the call is handled when it resolves), and the background loop must let appends gather
 * instead of handling each commit's events in a transaction of their own.
 */

/** A subscriber over a list of positions: pages of `pageSize` from its checkpoint, with hooks inside the drain. */
const fakeSubscriber = (pageSize: number) => {
  const appended: number[] = [];
  const handled: number[] = [];
  let checkpoint = 0;
  const hooks: { afterRead?: () => void; afterCheck?: () => void } = {};
  const drain = async (keepGoing: () => boolean): Promise<boolean> => {
    for (;;) {
      await Promise.resolve(); // a read is asynchronous
      const page = appended.filter((p) => p > checkpoint).slice(0, pageSize);
      hooks.afterRead?.();
      if (page.length === 0) return true;
      handled.push(...page);
      checkpoint = page[page.length - 1]!;
      await Promise.resolve(); // so is handling
      const go = keepGoing();
      if (page.length < pageSize && !go) {
        hooks.afterCheck?.();
        return false;
      }
    }
  };
  return { appended, handled, hooks, drain };
};

describe('DrainLoop', () => {
  const loops: DrainLoop[] = [];
  afterEach(async () => {
    await Promise.all(loops.splice(0).map((l) => l.stop()));
  });
  const newLoop = (drain: (keepGoing: () => boolean) => Promise<boolean>): DrainLoop => {
    const loop = new DrainLoop({ drain, wait: () => new Promise((resolve) => setTimeout(resolve, 5)), onError: (e) => { throw e; } });
    loops.push(loop);
    return loop;
  };

  it('catchUp() sees an append made while a drain of the background loop was reading', async () => {
    const s = fakeSubscriber(10);
    const loop = newLoop(s.drain);
    s.appended.push(1);
    let caller: Promise<void> | undefined;
    // Inside the background drain, after it read its page: the caller appends and asks to catch up.
    s.hooks.afterRead = () => {
      s.hooks.afterRead = undefined;
      s.appended.push(2);
      caller = loop.catchUp();
    };
    loop.start();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await caller;
    expect(s.handled).toEqual([1, 2]);
  });

  it('catchUp() that joins a drain which has already decided to stop runs another one', async () => {
    const s = fakeSubscriber(10);
    const loop = newLoop(s.drain);
    s.appended.push(1);
    let caller: Promise<void> | undefined;
    let handledWhenCallerResolved: number[] = [];
    // The background drain has read [1] (a short page) and, with nobody waiting, decided to stop; before it has
    // settled, a caller appends and joins it. Joining alone would resolve without position 2.
    s.hooks.afterCheck = () => {
      s.hooks.afterCheck = undefined;
      s.appended.push(2);
      caller = loop.catchUp().then(() => {
        handledWhenCallerResolved = [...s.handled];
      });
    };
    loop.start();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await caller;
    expect(handledWhenCallerResolved).toEqual([1, 2]);
  });

  it('stop() ends the loop at once, not when its wait for the next append times out', async () => {
    const s = fakeSubscriber(10);
    const loop = new DrainLoop({ drain: s.drain, wait: () => new Promise(() => undefined), onError: (e) => { throw e; }, coalesceMs: 20 });
    loop.start();
    await new Promise((resolve) => setTimeout(resolve, 10)); // the loop now waits, for ever
    const stopped = loop.stop().then(() => 'stopped');
    const late = new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1000));
    await expect(Promise.race([stopped, late])).resolves.toBe('stopped');
  });

  it('concurrent callers each get everything appended before their own call', async () => {
    const s = fakeSubscriber(3);
    const loop = newLoop(s.drain);
    const seen: number[][] = [];
    const calls: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) {
      s.appended.push(i);
      const upTo = i;
      calls.push(loop.catchUp().then(() => void seen.push([upTo, Math.max(...s.handled)])));
      if (i % 3 === 0) await Promise.resolve();
    }
    await Promise.all(calls);
    for (const [upTo, handledMax] of seen) expect(handledMax).toBeGreaterThanOrEqual(upTo!);
    expect(s.handled).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});

describe('Projector in the background', () => {
  /** A read model whose apply takes a few ms, as a write transaction queued behind the group commit does. */
  const slowModel = (applyMs: number) => {
    let checkpoint = 0n;
    const applies: number[] = [];
    const target: ProjectionTarget = {
      checkpoint: async () => checkpoint,
      apply: async (events: readonly RecordedEvent[], at: bigint) => {
        await new Promise((resolve) => setTimeout(resolve, applyMs));
        applies.push(events.length);
        checkpoint = at;
      },
      reset: async () => {
        checkpoint = 0n;
      },
    };
    return { target, applies };
  };

  it('lets a steady stream of appends gather between drains instead of applying each commit on its own', async () => {
    const store = new InMemoryEventStore();
    const { target, applies } = slowModel(3);
    const projector = new Projector(store, target, undefined, 1000, 'test', 20);
    projector.start();
    const n = 200;
    try {
      for (let i = 0; i < n; i++) {
        await store.appendToStream(`s-${i}`, [{ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, type: 'Happened', data: { i } }]);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await projector.catchUp();
    } finally {
      await projector.stop();
    }
    expect(applies.reduce((a, b) => a + b, 0)).toBe(n);
    // Appends arrive every ~1 ms and an apply takes ~3 ms: a drain that ran on to an empty page would never find
    // one, and apply every ~3 events. Stopping at a short page and waiting 20 ms gathers ~20 per apply.
    expect(applies.length).toBeLessThan(n / 6);
  });
});

describe('Projector of a model that names its event types', () => {
  const typed = (type: string, i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, type, data: { i } });
  const model = () => {
    const seen: RecordedEvent[] = [];
    const checkpoints: bigint[] = [];
    let checkpoint = 0n;
    const target: ProjectionTarget = {
      eventTypes: new Set(['Wanted']),
      checkpoint: async () => checkpoint,
      apply: async (events, at) => {
        seen.push(...events);
        checkpoints.push(at);
        checkpoint = at;
      },
      reset: async () => {
        checkpoint = 0n;
      },
    };
    return { target, seen, checkpoints };
  };

  it('gets only those events, in pages, and its checkpoint moves to the head even past the last of them', async () => {
    const store = new InMemoryEventStore();
    for (let i = 0; i < 25; i++) await store.appendToStream(`s-${i}`, [typed(i % 10 === 3 ? 'Wanted' : 'Other', i)]);
    const readAll = jest.spyOn(store, 'readAll');
    const { target, seen, checkpoints } = model();
    const projector = new Projector(store, target, undefined, 2, 'typed');
    await projector.catchUp();
    expect(seen.map((e) => e.data)).toEqual([{ i: 3 }, { i: 13 }, { i: 23 }]);
    expect(readAll.mock.calls.every(([options]) => options.types?.has('Wanted') === true && options.types.size === 1)).toBe(true);
    expect(await target.checkpoint()).toBe(25n); // the head, though the last wanted event is at 24
    expect(checkpoints).toEqual([14n, 25n]); // a full page of two ends at its last event; the short one at the head

    // Nothing of its types since: the checkpoint still follows the head, with nothing to apply.
    for (let i = 25; i < 28; i++) await store.appendToStream(`s-${i}`, [typed('Other', i)]);
    await projector.catchUp();
    expect(seen).toHaveLength(3);
    expect(await target.checkpoint()).toBe(28n);
  });

  it('waits for appends in the background instead of reading again and again', async () => {
    const store = new InMemoryEventStore();
    for (let i = 0; i < 5; i++) await store.appendToStream(`s-${i}`, [typed('Other', i)]);
    const { target, seen } = model();
    const projector = new Projector(store, target, undefined, 100, 'typed', 0);
    const readAll = jest.spyOn(store, 'readAll');
    projector.start();
    try {
      await projector.catchUp();
      const reads = readAll.mock.calls.length;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(readAll.mock.calls.length).toBe(reads); // its checkpoint is at the head: it waits, it does not spin
      await store.appendToStream('late', [typed('Wanted', 99)]);
      await projector.catchUp();
      expect(seen.map((e) => e.data)).toEqual([{ i: 99 }]);
    } finally {
      await projector.stop();
    }
  });
});

/** Lets every promise chain that can go on run (a pass of the event loop); no time is measured. */
const turn = () => new Promise((resolve) => setImmediate(resolve));
const deferred = <T>() => {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
const forever = () => new Promise<never>(() => undefined);

describe('DrainLoop: catchUp, start, stop and failures', () => {
  const loops: DrainLoop[] = [];
  afterEach(async () => {
    await Promise.all(loops.splice(0).map((l) => l.stop()));
  });
  const newLoop = (options: ConstructorParameters<typeof DrainLoop>[0]): DrainLoop => {
    const loop = new DrainLoop(options);
    loops.push(loop);
    return loop;
  };
  const rethrow = (e: unknown) => {
    throw e;
  };

  it('catchUp() does not resolve after a drain that stopped before the head: it drains again until one reaches it', async () => {
    let drains = 0;
    const loop = newLoop({ drain: async () => ++drains > 1, wait: forever, onError: rethrow });
    await loop.catchUp();
    expect(drains).toBe(2);
  });

  it("tells a drain a catchUp() caller waits for to keep going, and the background loop's own drain not to", async () => {
    const told: boolean[] = [];
    const loop = newLoop({ drain: async (keepGoing) => (told.push(keepGoing()), true), wait: forever, onError: rethrow });
    await loop.catchUp();
    loop.start();
    await turn();
    expect(told).toEqual([true, false]);
  });

  it("stop() clears the pause it ended, after a pass and after a failure: no timer of the loop keeps the process alive", async () => {
    // A stopped loop left its pause's timer behind (here ten minutes), which kept a test worker, or an embedder's
    // process after close(), alive until it ran out.
    const turns = async () => {
      for (let i = 0; i < 50; i++) await Promise.resolve();
    };
    jest.useFakeTimers();
    try {
      for (const failing of [false, true]) {
        const loop = newLoop({
          drain: async () => (failing ? Promise.reject(new Error('disk full')) : true),
          wait: async () => undefined,
          onError: () => undefined,
          coalesceMs: 600_000,
          retryMs: 600_000,
        });
        loop.start();
        await turns();
        expect({ failing, timers: jest.getTimerCount() }).toEqual({ failing, timers: 1 }); // in its pause
        await loop.stop();
        expect({ failing, timers: jest.getTimerCount() }).toEqual({ failing, timers: 0 });
      }
    } finally {
      jest.useRealTimers();
    }
  });

  it('start() on a running loop does not start a second one', async () => {
    let drains = 0;
    let waits = 0;
    const loop = newLoop({ drain: async () => (drains++, true), wait: () => (waits++, forever()), onError: rethrow });
    loop.start();
    loop.start();
    await turn();
    expect({ drains, waits }).toEqual({ drains: 1, waits: 1 });
  });

  it('stop() resolves once the drain in hand has ended', async () => {
    const gate = deferred<boolean>();
    let ended = false;
    const loop = newLoop({ drain: async () => ((ended = await gate.promise), true), wait: forever, onError: rethrow });
    const caller = loop.catchUp();
    const endedWhenStopped = loop.stop().then(() => ended);
    await turn();
    gate.resolve(true);
    expect(await endedWhenStopped).toBe(true);
    await caller;
  });

  it('after stop() the loop is stopped and drains no more, whatever its wait does', async () => {
    let drains = 0;
    const waits: (() => void)[] = [];
    const loop = newLoop({ drain: async () => (drains++, true), wait: () => new Promise<void>((resolve) => waits.push(resolve)), onError: rethrow });
    loop.start();
    await turn();
    expect(drains).toBe(1);
    await loop.stop();
    expect(loop.isStopped).toBe(true);
    for (const wake of waits) wake();
    await turn();
    await turn();
    expect(drains).toBe(1);
  });

  it('does not report a failure of the drain that stop() ended (there is no retry)', async () => {
    const gate = deferred<boolean>();
    const errors: unknown[] = [];
    const loop = newLoop({ drain: () => gate.promise, wait: forever, onError: (e) => errors.push(e) });
    loop.start();
    const stopped = loop.stop();
    gate.reject(new Error('connection closed by the stop'));
    await stopped;
    expect(errors).toEqual([]);
  });

  it('reports the first pass that succeeds after failures to onRecovered, once; a loop that never failed, never', async () => {
    const run = async (failures: number) => {
      let drains = 0;
      let waits = 0;
      let recovered = 0;
      const errors: unknown[] = [];
      const fourthWait = deferred<void>();
      const loop = newLoop({
        drain: async () => {
          drains++;
          if (drains <= failures) throw new Error(`drain ${drains} failed`);
          return true;
        },
        // Three waits end (three passes that succeed), the fourth lasts until the stop.
        wait: () => {
          waits++;
          if (waits < 4) return Promise.resolve();
          fourthWait.resolve();
          return forever();
        },
        onError: (e) => errors.push(e),
        onRecovered: () => recovered++,
        retryMs: 0,
      });
      loop.start();
      await fourthWait.promise;
      await loop.stop();
      return { errors: errors.length, recovered };
    };
    expect(await run(0)).toEqual({ errors: 0, recovered: 0 });
    expect(await run(2)).toEqual({ errors: 2, recovered: 1 });
  });
});

describe('BackgroundDrain', () => {
  type Line = [level: string, msg: string];
  const loggerOf = (lines: Line[]): FailureLogger => ({
    error: (_obj, msg) => void lines.push(['error', msg]),
    warn: (_obj, msg) => void lines.push(['warn', msg]),
    info: (_obj, msg) => void lines.push(['info', msg]),
  });

  /** A subscriber over `items` work items, one step each; its first `failures` drains fail. */
  class Steps extends BackgroundDrain {
    handled = 0;
    drains = 0;
    waits = 0;
    readonly firstStep = deferred<void>();
    readonly idleWait = deferred<void>();
    constructor(lines: Line[], private readonly items: number, private readonly failures = 0) {
      super(loggerOf(lines), { failed: 'steps failed; retrying', recovered: 'steps work again' }, { retryMs: 0 });
    }
    protected async drain(): Promise<boolean> {
      this.drains++;
      if (this.drains <= this.failures) throw Object.assign(new Error('store unreachable'), { code: 'ECONNREFUSED' });
      while (this.handled < this.items) {
        if (this.stopRequested) return false;
        await turn();
        this.handled++;
        this.firstStep.resolve();
      }
      return true;
    }
    protected async waitForWork(): Promise<unknown> {
      this.waits++;
      if (this.waits === 1) return undefined;
      this.idleWait.resolve();
      return forever();
    }
  }

  it('logs a failing drain, and once that it works again', async () => {
    const lines: Line[] = [];
    const steps = new Steps(lines, 1, 1);
    steps.start();
    await steps.idleWait.promise;
    await steps.stop();
    expect(lines).toEqual([
      ['error', 'steps failed; retrying'],
      ['info', 'steps work again'],
    ]);
  });

  it('stop() ends the drain in hand at its next step, and nothing runs after it', async () => {
    const steps = new Steps([], 100);
    steps.start();
    await steps.firstStep.promise;
    await steps.stop();
    const handledAtStop = steps.handled;
    expect(handledAtStop).toBeLessThan(100);
    await turn();
    await turn();
    expect({ handled: steps.handled, drains: steps.drains }).toEqual({ handled: handledAtStop, drains: 1 });
  });
});
