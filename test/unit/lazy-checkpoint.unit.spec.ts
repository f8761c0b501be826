import { randomUUID } from 'node:crypto';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { CHECKPOINT_LAG, LazyCheckpoint } from '../../src/application/lazy-checkpoint';
import type { CheckpointStore } from '../../src/application/ports/downlink-outbox';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { Projector, type ProjectionTarget } from '../../src/application/projector';

/**
 * Background subscribers store their checkpoint when a page changed something for them, and otherwise keep the
 * position in memory (stored once CHECKPOINT_LAG positions have gathered, and at stop): a write transaction per
 * page per subscriber was most of the hub's commits.
 */

/** A read model that counts its writes: what `apply` was called with, and its stored checkpoint. */
class CountingModel implements ProjectionTarget {
  stored = 0n;
  readonly applies: { types: string[]; checkpoint: bigint }[] = [];
  readonly seen: string[] = [];
  constructor(private readonly relevantType?: string) {}
  async checkpoint(): Promise<bigint> {
    return this.stored;
  }
  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    this.applies.push({ types: events.map((e) => e.type), checkpoint });
    for (const e of events) if (e.type === this.relevantType) this.seen.push(e.id);
    this.stored = checkpoint;
  }
  async reset(): Promise<void> {
    this.stored = 0n;
    this.seen.length = 0;
  }
}

/** A model that declares which events it handles. */
class SelectiveModel extends CountingModel {
  handles(e: RecordedEvent): boolean {
    return e.type === 'Relevant';
  }
}

const append = async (store: InMemoryEventStore, type: string, count = 1) => {
  for (let i = 0; i < count; i++) await store.appendToStream(`s-${type}`, [{ id: randomUUID(), type, data: {} }]);
};

describe('Projector: pages the model does not handle', () => {
  it('are passed without apply; the position is kept in memory and written at stop', async () => {
    const store = new InMemoryEventStore();
    const model = new SelectiveModel('Relevant');
    const projector = new Projector(store, model, undefined, 1000, 'test', 0);
    await append(store, 'Other', 3);
    await projector.catchUp();
    expect(model.applies).toEqual([]);
    expect(model.stored).toBe(0n);

    await append(store, 'Relevant');
    await projector.catchUp();
    // Only the page after the remembered position, and it is written with the rows.
    expect(model.applies).toEqual([{ types: ['Relevant'], checkpoint: 4n }]);
    expect(model.seen).toHaveLength(1);

    await append(store, 'Other', 2);
    await projector.catchUp();
    expect(model.stored).toBe(4n);
    await projector.stop();
    expect(model.applies.at(-1)).toEqual({ types: [], checkpoint: 6n });
    expect(model.stored).toBe(6n);
  });

  it('writes the checkpoint once CHECKPOINT_LAG positions have gathered', async () => {
    const store = new InMemoryEventStore();
    const model = new SelectiveModel('Relevant');
    const projector = new Projector(store, model, undefined, 1000, 'test', 0);
    await append(store, 'Other', Number(CHECKPOINT_LAG) + 1000);
    await projector.catchUp();
    expect(model.applies).toEqual([{ types: [], checkpoint: CHECKPOINT_LAG }]);
    expect(model.stored).toBe(CHECKPOINT_LAG);
  });

  it('applies every page to a model that does not say what it handles, as before', async () => {
    const store = new InMemoryEventStore();
    const model = new CountingModel('Relevant');
    const projector = new Projector(store, model, undefined, 1000, 'test', 0);
    await append(store, 'Other', 2);
    await projector.catchUp();
    expect(model.applies).toEqual([{ types: ['Other', 'Other'], checkpoint: 2n }]);
  });

  it('rebuild forgets the position in memory and replays from the start', async () => {
    const store = new InMemoryEventStore();
    const model = new SelectiveModel('Relevant');
    const projector = new Projector(store, model, undefined, 1000, 'test', 0);
    await append(store, 'Relevant');
    await append(store, 'Other', 2);
    await projector.catchUp();
    await projector.rebuild();
    expect(model.seen).toHaveLength(1);
    expect(model.applies.filter((a) => a.types.includes('Relevant'))).toHaveLength(2);
  });
});

describe('LazyCheckpoint', () => {
  const countingStore = () => {
    const positions = new Map<string, bigint>();
    const writes: bigint[] = [];
    const store: CheckpointStore = {
      get: async (name) => positions.get(name) ?? 0n,
      set: async (name, position) => {
        writes.push(position);
        positions.set(name, position);
      },
    };
    return { store, writes, positions };
  };

  it('stores saved positions at once, passed ones later, and reads the store again when nothing is kept', async () => {
    const { store, writes, positions } = countingStore();
    const checkpoint = new LazyCheckpoint(store, 'p');
    expect(await checkpoint.position()).toBe(0n);
    await checkpoint.save(5n);
    expect(writes).toEqual([5n]);
    await checkpoint.pass(9n);
    expect(writes).toEqual([5n]);
    expect(await checkpoint.position()).toBe(9n);
    await checkpoint.flush();
    expect(writes).toEqual([5n, 9n]);
    await checkpoint.flush(); // nothing kept any more
    expect(writes).toEqual([5n, 9n]);
    positions.set('p', 2n); // changed by someone else while nothing is kept: read again
    expect(await checkpoint.position()).toBe(2n);
    await checkpoint.pass(2n + CHECKPOINT_LAG);
    expect(writes).toEqual([5n, 9n, 2n + CHECKPOINT_LAG]);
  });

  it('stores a passed position when it has not read the store yet', async () => {
    const { store, writes } = countingStore();
    await new LazyCheckpoint(store, 'p').pass(3n);
    expect(writes).toEqual([3n]);
  });
});
