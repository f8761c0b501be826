import { randomUUID } from 'node:crypto';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import type { NewEvent } from '../../src/application/ports/event-store';

/**
 * What the in-memory store promises beyond the contract suite, which passed with each of these broken (mutation
 * testing): the core's unit tests rely on it behaving as the durable stores do.
 */
const events = (count: number): NewEvent[] => Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Happened', data: { i, nested: { list: [i] } } }));
const ticks = async (n = 10) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe('InMemoryEventStore', () => {
  it('starts empty: head 0, and the first event at position 1', async () => {
    const store = new InMemoryEventStore();
    expect(await store.headPosition()).toBe(0n);
    expect(await store.readAll({ after: 0n, maxCount: 10 })).toEqual([]);
    const result = await store.appendToStream('s', events(1));
    expect(result.lastGlobalPosition).toBe(1n);
    expect(await store.headPosition()).toBe(1n);
    await store.close();
  });

  it('hands out recorded events frozen all the way down, so a reader cannot change what another reads', async () => {
    const store = new InMemoryEventStore();
    await store.appendToStream('s', events(1));
    const [event] = (await store.readStream('s')).events;
    expect(Object.isFrozen(event)).toBe(true);
    expect(Object.isFrozen(event!.data)).toBe(true);
    expect(Object.isFrozen((event!.data as { nested: object }).nested)).toBe(true);
    expect(Object.isFrozen((event!.data as { nested: { list: unknown[] } }).nested.list)).toBe(true);
    expect(Object.isFrozen(event!.metadata)).toBe(true);
    expect(() => ((event!.data as { i: number }).i = 99)).toThrow(TypeError);
    expect((await store.readAll({ after: 0n, maxCount: 1 }))[0]!.data).toEqual({ i: 0, nested: { list: [0] } });
    await store.close();
  });

  it('reads all from the start when `after` is below 0', async () => {
    const store = new InMemoryEventStore();
    await store.appendToStream('s', events(3));
    const page = await store.readAll({ after: -1n, maxCount: 2 });
    expect(page.map((e) => e.globalPosition)).toEqual([1n, 2n]);
    await store.close();
  });

  it('refuses appends once closed, and writes nothing', async () => {
    const store = new InMemoryEventStore();
    await store.close();
    await expect(store.appendToStream('s', events(1))).rejects.toThrow('closed');
    expect(await store.headPosition()).toBe(0n);
  });

  it('wakes a waiter only when an event lands above the position it waits after', async () => {
    const store = new InMemoryEventStore();
    await store.appendToStream('s', events(1)); // head 1
    let woken = false;
    const waiting = store.waitForAppend(2n, 60_000).then(() => (woken = true));
    await store.appendToStream('s', events(1)); // head 2: not above 2
    await ticks();
    expect(woken).toBe(false);
    await store.appendToStream('s', events(1)); // head 3
    await waiting;
    expect(woken).toBe(true);
    await store.close();
  });
});
