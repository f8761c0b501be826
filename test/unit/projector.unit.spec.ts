import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { ProjectionBehind, Projector, type ProjectionTarget } from '../../src/application/projector';
import type { FailureLogger } from '../../src/application/repeated-failure-log';

/**
 * The Projector over a read model: rebuild() replays the store into an emptied model without a read ever seeing it
 * empty, and the background loop reads a backlog through to the head.
 */

/** Lets every promise chain that can go on run (a pass of the event loop); no time is measured. */
const turn = () => new Promise((resolve) => setImmediate(resolve));
const deferred = <T>() => {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
};

const event = (i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, type: 'Happened', data: { i } });
const storeWith = async (n: number) => {
  const store = new InMemoryEventStore();
  for (let i = 1; i <= n; i++) await store.appendToStream(`s-${i}`, [event(i)]);
  return store;
};

/** A read model of the events' `i`, with its checkpoint; `resets` counts its resets. */
const listModel = () => {
  const model = { rows: [] as number[], checkpoint: 0n, resets: 0, applies: [] as bigint[] };
  const target: ProjectionTarget = {
    checkpoint: async () => model.checkpoint,
    apply: async (events: readonly RecordedEvent[], at: bigint) => {
      model.rows.push(...events.map((e) => e.data['i'] as number));
      model.applies.push(at);
      model.checkpoint = at;
    },
    reset: async () => {
      model.rows = [];
      model.checkpoint = 0n;
      model.resets++;
    },
  };
  return { model, target };
};

describe('Projector', () => {
  it('rebuild() drops what the model holds and replays every event into it', async () => {
    const store = await storeWith(3);
    const { model, target } = listModel();
    const projector = new Projector(store, target);
    await projector.catchUp();
    model.rows.push(99); // a row no event made (a model damaged by hand, or by a bug since fixed)
    await projector.rebuild();
    expect(model.rows).toEqual([1, 2, 3]);
    expect(model.checkpoint).toBe(3n);
  });

  it('a rebuild waits for the reads in flight: the model is never emptied under a query', async () => {
    const store = await storeWith(3);
    const { model, target } = listModel();
    let queriesInFlight = 0;
    const resetsUnderAQuery: number[] = [];
    const projector = new Projector(store, { ...target, reset: async () => (resetsUnderAQuery.push(queriesInFlight), target.reset()) });
    const queried = deferred<void>();
    const gate = deferred<void>();
    const reading = projector.read(async () => {
      queriesInFlight++;
      queried.resolve();
      await gate.promise; // the query is in flight
      queriesInFlight--;
      return [...model.rows];
    });
    await queried.promise;
    const rebuilt = projector.rebuild();
    await turn();
    gate.resolve();
    expect(await reading).toEqual([1, 2, 3]);
    await rebuilt;
    expect(resetsUnderAQuery).toEqual([0]);
    expect(await projector.read(async () => [...model.rows])).toEqual([1, 2, 3]);
  });

  it('the background loop reads a backlog of full pages through to the head, without pausing between them', async () => {
    const store = await storeWith(7);
    const { model, target } = listModel();
    // Pages of 2, and a pause after each wake-up long enough that a pause between the pages would not end in this test.
    const projector = new Projector(store, target, undefined, 2, 'test', 600_000);
    projector.start();
    try {
      for (let i = 0; i < 100 && model.checkpoint < 7n; i++) await turn();
      expect(model.rows).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(model.applies).toEqual([2n, 4n, 6n, 7n]);
    } finally {
      await projector.stop();
      await store.close(); // wakes the loop's last wait for an append, so no timer outlives the test
    }
  });

  it('logs a failing projection as the registry projection unless named otherwise', async () => {
    const store = await storeWith(1);
    const { target } = listModel();
    const logged = deferred<string>();
    const logger: FailureLogger = { error: (_obj, msg) => logged.resolve(msg), warn: () => undefined };
    const failing: ProjectionTarget = { ...target, apply: async () => Promise.reject(new Error('disk full')) };
    const projector = new Projector(store, failing, logger);
    projector.start();
    try {
      expect(await logged.promise).toBe('registry projection failed; retrying');
    } finally {
      await projector.stop();
      await store.close(); // wakes the loop's last wait for an append, so no timer outlives the test
    }
  });
});

describe('Projector of a model that reads only some event types (eventTypes)', () => {
  it('a full page of those types moves the checkpoint to its last event, not to the head: the next page reads the rest', async () => {
    // Every third event is of the model's type; pages of 2. A short filtered page may move the checkpoint to the head
    // (nothing of those types up to it), a full one may not: the events of those types after it would be skipped.
    const store = new InMemoryEventStore();
    for (let i = 1; i <= 12; i++) await store.appendToStream(`s-${i}`, [{ ...event(i), type: i % 3 === 0 ? 'Rare' : 'Happened' }]);
    const { model, target } = listModel();
    const projector = new Projector(store, { ...target, eventTypes: new Set(['Rare']) }, undefined, 2, 'test');
    await projector.catchUp();
    expect(model.rows).toEqual([3, 6, 9, 12]);
    expect(model.applies).toEqual([6n, 12n]);
  });
});

describe('Projector under appends and resets elsewhere', () => {
  it('catchUp() ends once past the head as it began, even while every apply lets more events commit', async () => {
    // A registry rebuild on SQLite during uploads: each apply is a writer turn, an upload commits between two of them,
    // so no page was ever empty and the catch-up (and every query held behind the rebuild) never ended.
    const store = await storeWith(5);
    const { model, target } = listModel();
    let appending = true;
    let appended = 5;
    const busy: ProjectionTarget = {
      ...target,
      apply: async (events, at, from) => {
        await target.apply(events, at, from);
        await turn(); // an apply takes its time (a writer turn): the timers of this test get theirs
        if (appending) await store.appendToStream(`s-${++appended}`, [event(appended)]);
      },
    };
    const projector = new Projector(store, busy, undefined, 1);
    const done = projector.catchUp().then(() => 'caught up');
    const outcome = await Promise.race([done, new Promise((resolve) => setTimeout(() => resolve('still draining'), 2000))]);
    appending = false; // whatever happened, the uploads stop
    expect(outcome).toBe('caught up');
    expect(model.rows.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    await done;
  });

  it('reads again from the model when it was reset after the page was read (ProjectionBehind): nothing skipped', async () => {
    // Another hub on the schema rebuilt the registry between this drain's read and its apply: applied, the page's
    // few rows went in with the checkpoint at the head, over everything the reset emptied.
    const store = await storeWith(6);
    const { model, target } = listModel();
    let resetBeforeNextApply = false;
    const projector = new Projector(store, {
      ...target,
      apply: async (events, at, from) => {
        if (resetBeforeNextApply) {
          resetBeforeNextApply = false;
          await target.reset(); // the other process's reset, committed while this page was in hand
        }
        if (from !== undefined && model.checkpoint < from) throw new ProjectionBehind(model.checkpoint, from);
        await target.apply(events, at, from);
      },
    }, undefined, 2);
    await projector.catchUp();
    expect(model.rows).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 7; i <= 8; i++) await store.appendToStream(`s-${i}`, [event(i)]);
    resetBeforeNextApply = true;
    await projector.catchUp();
    expect(model.rows).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(model.checkpoint).toBe(8n);
  });
});

describe('Projector.rebuild beside the model (rebuildBeside)', () => {
  /** A model with a replacement: `swaps` answers each swapIn(force) in turn (true: swapped in). */
  const besideModel = (swaps: (force: boolean, attempt: number) => boolean) => {
    const live = listModel();
    const next = listModel();
    const calls = { forced: [] as boolean[], closed: 0, begun: 0 };
    const target: ProjectionTarget = {
      ...live.target,
      rebuildBeside: async () => {
        calls.begun++;
        next.model.rows = [];
        next.model.checkpoint = 0n;
        return {
          target: next.target,
          swapIn: async (force: boolean) => {
            calls.forced.push(force);
            const swapped = swaps(force, calls.forced.length);
            if (swapped) {
              live.model.rows = [...next.model.rows];
              live.model.checkpoint = next.model.checkpoint;
            }
            return swapped;
          },
          close: async () => {
            calls.closed++;
          },
        };
      },
    };
    return { live: live.model, next: next.model, calls, target };
  };

  it('feeds the replacement to the head and swaps it in; the model is never reset, reads are not held', async () => {
    const store = await storeWith(3);
    const { live, calls, target } = besideModel(() => true);
    const projector = new Projector(store, target);
    await projector.catchUp();
    live.rows.push(99);
    // The replacement's feeding paused: a read meanwhile is answered, from the model as it was.
    const replacementFed = deferred<void>();
    const begin = target.rebuildBeside!.bind(target);
    target.rebuildBeside = async () => {
      const r = await begin();
      const apply = r.target.apply.bind(r.target);
      return { ...r, target: { ...r.target, apply: async (events, at, from) => (await replacementFed.promise, apply(events, at, from)) } };
    };
    const rebuilt = projector.rebuild();
    await turn();
    expect(await projector.read(async () => [...live.rows])).toEqual([1, 2, 3, 99]);
    replacementFed.resolve();
    await rebuilt;
    expect(live.rows).toEqual([1, 2, 3]);
    expect(live.resets).toBe(0);
    expect(calls).toEqual({ forced: [false], closed: 1, begun: 1 });
  });

  it('asks again while the model moved on, forces it in after 20 tries, and gives up after 200 with the model as it was', async () => {
    const store = await storeWith(2);
    const forcedAt = besideModel((force) => force);
    await new Projector(store, forcedAt.target).rebuild();
    expect(forcedAt.calls.forced.indexOf(true)).toBe(19);
    expect(forcedAt.calls.closed).toBe(1);

    const never = besideModel(() => false); // e.g. a pg_dump holding the tables for longer than the tries take
    const projector = new Projector(store, never.target);
    await projector.catchUp();
    await expect(projector.rebuild()).rejects.toThrow(/could not be swapped in after 200 tries/);
    expect(never.calls.forced).toHaveLength(200);
    expect(never.calls.closed).toBe(1);
    expect(never.live.rows).toEqual([1, 2]);
  });

  it('two rebuilds at once run one after the other (a second would drop the first replacement under it)', async () => {
    const store = await storeWith(2);
    let open = 0;
    let most = 0;
    const { calls, target } = besideModel(() => true);
    const begin = target.rebuildBeside!.bind(target);
    target.rebuildBeside = async () => {
      const r = await begin();
      most = Math.max(most, ++open);
      return { ...r, close: async () => { open--; await r.close(); } };
    };
    const projector = new Projector(store, target);
    await Promise.all([projector.rebuild(), projector.rebuild()]);
    expect(calls.begun).toBe(2);
    expect(most).toBe(1);
  });
});
