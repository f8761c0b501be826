import { randomUUID } from 'node:crypto';
import { SqliteEventStore, type SqliteInlineProjection } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { ExpectedVersionConflictError, type NewEvent, type RecordedEvent } from '../../src/application/ports/event-store';
import { sqliteStoresForThisFile } from '../support/sqlite-stores';

/**
 * The SQLite store's batch writer and its run of recent events, where mutation testing found rules no test pinned:
 * readAll from the run must answer exactly as the file does (from every position, every page size, with and without
 * types, across another connection's writes and the run's trimming); the run stays bounded; and the writer works
 * with nothing kept (recentEvents 0), with a batch where every append fails, and with an inline projection that
 * throws and has no onError.
 */
const { dbFile, open } = sqliteStoresForThisFile('rts-es-recent-');
const events = (count: number, type = 'Happened'): NewEvent[] => Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type, data: { i } }));
const mixed = (types: string[]): NewEvent[] => types.map((type, i) => ({ id: randomUUID(), type, data: { i } }));

/** Every page a subscriber could ask for, from `reader` and from a connection that keeps nothing (the file). */
async function expectSameAsFile(reader: SqliteEventStore, file: string, types?: ReadonlySet<string>): Promise<void> {
  const disk = open(file, { recentEvents: 0 });
  const head = await disk.headPosition();
  for (let after = 0n; after <= head; after++) {
    for (const maxCount of [0, 1, 2, 3, 5, 100]) {
      const options = types === undefined ? { after, maxCount } : { after, maxCount, types };
      const got = (await reader.readAll(options)).map((e: RecordedEvent) => [e.globalPosition, e.id]);
      const want = (await disk.readAll(options)).map((e: RecordedEvent) => [e.globalPosition, e.id]);
      expect({ after, maxCount, got }).toEqual({ after, maxCount, got: want });
    }
  }
}

describe('SQLite event store: readAll from the recent run answers as the file does', () => {
  it('from every position and page size, with and without types, across another connection’s writes and trimming', async () => {
    const file = dbFile();
    const a = open(file, { recentEvents: 3 });
    const b = open(file);
    await a.appendToStream('a-0', events(1));
    expect(await a.readAll({ after: 0n, maxCount: 1 })).toHaveLength(1); // a reader: a keeps its batches from now on
    await a.appendToStream('a-1', mixed(['X', 'Y', 'X']));
    await a.appendToStream('a-2', mixed(['Y', 'X']));
    await b.appendToStream('b-1', mixed(['X', 'Y'])); // between a's batches: a's next batch starts a new run
    await a.appendToStream('a-3', mixed(['X', 'X', 'Y', 'Y']));
    await Promise.all([a.appendToStream('a-4', mixed(['Y'])), a.appendToStream('a-5', mixed(['X', 'Y', 'X']))]);
    await a.appendToStream('a-6', mixed(['X', 'Y', 'Y', 'X', 'Y'])); // past 2 × recentEvents: trimmed
    await b.appendToStream('b-2', mixed(['X', 'Y', 'X'])); // after a's run: a full page goes on into the file
    await expectSameAsFile(a, file);
    await expectSameAsFile(a, file, new Set(['X']));
    await expectSameAsFile(a, file, new Set(['Y', 'Happened']));
  });

  it('of some types, from a run that starts right after the first event', async () => {
    const file = dbFile();
    const store = open(file);
    await store.appendToStream('first', events(1, 'X'));
    expect(await store.readAll({ after: 0n, maxCount: 1 })).toHaveLength(1);
    await store.appendToStream('run', mixed(['X', 'Y', 'X', 'X', 'Y', 'X'])); // the run: positions 2..7
    await expectSameAsFile(store, file, new Set(['X']));
  });

  it('drops its run after a quiet spell with no reader: what it then answers still comes from the file', async () => {
    jest.useFakeTimers({ doNotFake: ['Date', 'hrtime', 'nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      const file = dbFile();
      const store = open(file);
      await store.appendToStream('first', events(1));
      expect(await store.readAll({ after: 0n, maxCount: 1 })).toHaveLength(1);
      await store.appendToStream('kept', events(3)); // the run: positions 2..4
      jest.advanceTimersByTime(60_000); // performance.now() only: no reader for a minute
      await store.appendToStream('unread', events(2));
      await expectSameAsFile(store, file);
    } finally {
      jest.useRealTimers();
    }
  });

  it('keeps the run bounded: once trimmed, older positions are read from the file again, the newest are shared', async () => {
    const file = dbFile();
    const store = open(file, { recentEvents: 2 });
    await store.appendToStream('first', events(1));
    expect(await store.readAll({ after: 0n, maxCount: 1 })).toHaveLength(1);
    for (let i = 0; i < 5; i++) await store.appendToStream(`s-${i}`, events(1)); // positions 2..6: the run trims to 2
    const old1 = await store.readAll({ after: 1n, maxCount: 1 });
    const old2 = await store.readAll({ after: 1n, maxCount: 1 });
    expect(old2).toEqual(old1);
    expect(old2[0]).not.toBe(old1[0]); // parsed from the file each time: no longer held
    const new1 = await store.readAll({ after: 5n, maxCount: 1 });
    const new2 = await store.readAll({ after: 5n, maxCount: 1 });
    expect(new1[0]!.globalPosition).toBe(6n);
    expect(new2[0]).toBe(new1[0]); // still held
  });
});

describe('SQLite event store: the batch writer in its edge cases', () => {
  it('with recentEvents 0 and no inline projection: appends of one and many events commit, and a failed one fails alone', async () => {
    const store = open(dbFile(), { recentEvents: 0 });
    await store.appendToStream('taken', events(1));
    const results = await Promise.allSettled([
      store.appendToStream('one', events(1)),
      store.appendToStream('taken', events(1), { expectedVersion: 'no_stream' }),
      store.appendToStream('taken', events(2), { expectedVersion: 'no_stream' }),
      store.appendToStream('many', events(3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ExpectedVersionConflictError);
    expect((await store.readAll({ after: 0n, maxCount: 10 })).map((e) => e.streamName)).toEqual(['taken', 'one', 'many', 'many', 'many']);
  });

  it('a batch in which every append fails, while a reader reads: each caller gets its own error, and the store goes on', async () => {
    const store = open(dbFile());
    await store.appendToStream('taken', events(1));
    expect(await store.readAll({ after: 0n, maxCount: 10 })).toHaveLength(1);
    const results = await Promise.allSettled([
      store.appendToStream('taken', events(1), { expectedVersion: 'no_stream' }),
      store.appendToStream('taken', events(2), { expectedVersion: 5n }),
    ]);
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof ExpectedVersionConflictError)).toEqual([true, true]);
    await store.appendToStream('next', events(1));
    expect((await store.readAll({ after: 1n, maxCount: 10 })).map((e) => e.streamName)).toEqual(['next']);
  });

  it('an inline projection is applied with recentEvents 0 too', async () => {
    const store = open(dbFile(), { recentEvents: 0 });
    const seen: string[] = [];
    store.addInlineProjection({
      eventTypes: new Set(['Happened']),
      applyInline: (batch) => (seen.push(...batch.map((e) => e.streamName)), true),
    });
    await store.appendToStream('s', events(2));
    expect(seen).toEqual(['s', 's']);
    expect(store.stats()).toMatchObject({ inlineApplied: 1, inlineDeclined: 0 });
  });

  it('an inline projection that throws and has no onError: the appends commit, its writes are undone', async () => {
    const store = open(dbFile());
    store.database.exec('CREATE TABLE seen (stream TEXT NOT NULL)');
    const projection: SqliteInlineProjection = {
      eventTypes: new Set(['Happened']),
      applyInline: (batch) => {
        for (const e of batch) store.database.prepare('INSERT INTO seen (stream) VALUES (?)').run(e.streamName);
        throw new Error('projection broke');
      },
    };
    store.addInlineProjection(projection);
    await expect(store.appendToStream('s', events(2))).resolves.toMatchObject({ nextExpectedVersion: 1n });
    expect((await store.readStream('s')).currentVersion).toBe(1n);
    expect(store.database.prepare('SELECT COUNT(*) FROM seen').pluck().get()).toBe(0);
    expect(store.stats()).toMatchObject({ inlineApplied: 0, inlineDeclined: 1 });
  });
});
