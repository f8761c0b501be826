import { randomUUID } from 'node:crypto';
import type { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { sqliteStoresForThisFile } from '../support/sqlite-stores';

/**
 * runExclusive and open() rules of the SQLite store that mutation testing found no test pinning: a job's
 * durability is what it asked for (full unless relaxed), fn must be synchronous outside a transaction too, a job
 * may return null, and an anonymous temporary database ('') opens without the WAL check of a file.
 */
const { open } = sqliteStoresForThisFile('rts-es-exclusive-');
const synchronous = (db: SqliteEventStore['database']) => db.pragma('synchronous', { simple: true }) as number;

describe('SQLite event store: runExclusive', () => {
  it('runs a job with synchronous=FULL unless it asks for relaxed (NORMAL), and FULL again after it', async () => {
    const store = open();
    expect(await store.runExclusive(synchronous)).toBe(2); // 2 = FULL
    expect(await store.runExclusive(synchronous, { durability: 'full' })).toBe(2);
    expect(await store.runExclusive(synchronous, { durability: 'relaxed' })).toBe(1); // 1 = NORMAL
    expect(await store.runExclusive(synchronous)).toBe(2);
    expect(synchronous(store.database)).toBe(2);
  });

  it('refuses an asynchronous fn outside a transaction as inside one', async () => {
    const store = open();
    await expect(store.runExclusive(async () => 1, { transaction: false })).rejects.toThrow(TypeError);
    await expect(store.runExclusive(async () => 1)).rejects.toThrow(TypeError);
  });

  it('resolves with what fn returns, null included', async () => {
    const store = open();
    await expect(store.runExclusive(() => null)).resolves.toBeNull();
    await expect(store.runExclusive(() => null, { transaction: false })).resolves.toBeNull();
    await expect(store.runExclusive(() => ({ then: 1 }))).resolves.toEqual({ then: 1 });
  });
});

describe('SQLite event store: open', () => {
  it("opens an anonymous temporary database ('') and stores events in it", async () => {
    const store = open('');
    await store.appendToStream('s', [{ id: randomUUID(), type: 'Happened', data: {} }]);
    expect((await store.readStream('s')).currentVersion).toBe(0n);
  });
});
