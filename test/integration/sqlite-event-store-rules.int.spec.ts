import { randomUUID } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import type { NewEvent } from '../../src/application/ports/event-store';
import { UnavailableError } from '../../src/domain/shared/errors';
import { sqliteStoresForThisFile } from '../support/sqlite-stores';

/**
 * Rules of the SQLite event store that mutation testing found no test pinning (the contract suite and
 * sqlite-event-store.int.spec.ts pass with them broken): what writeFailure() reports for /health, the busy timeout
 * as configured, and the edges of its answers that only this adapter computes.
 */
const { dbFile, open } = sqliteStoresForThisFile('rts-es-rules-');
const events = (count: number): NewEvent[] => Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Happened', data: { i } }));

/** Another connection holding the file's write lock until release(): our BEGIN IMMEDIATE gets SQLITE_BUSY. */
const holdWriteLock = (file: string): { release(): void } => {
  const other = new BetterSqlite3(file);
  other.exec('BEGIN IMMEDIATE');
  return {
    release() {
      other.exec('ROLLBACK');
      other.close();
    },
  };
};

describe('SQLite event store: writeFailure() (what /health says of storage)', () => {
  it('is null while writes commit; a write that cannot get the lock sets it (code, since) and fails as storage_unavailable', async () => {
    const file = dbFile();
    const store = open(file, { busyTimeoutMs: 0 });
    await store.appendToStream('s', events(1));
    expect(store.writeFailure()).toBeNull();

    const lock = holdWriteLock(file);
    let since: string;
    try {
      const failed = store.appendToStream('s', events(2));
      await expect(failed).rejects.toBeInstanceOf(UnavailableError);
      await expect(failed).rejects.toMatchObject({ code: 'storage_unavailable' });
      const failure = store.writeFailure();
      expect(failure).toMatchObject({ code: 'SQLITE_BUSY' });
      since = failure!.since;
      expect(new Date(since).toISOString()).toBe(since);

      // A second failure keeps the first one's `since`: the failure started then.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await expect(store.runExclusive(() => 1)).rejects.toMatchObject({ code: 'storage_unavailable' });
      expect(store.writeFailure()).toEqual({ code: 'SQLITE_BUSY', since });
    } finally {
      lock.release();
    }

    // The next append that commits clears it.
    await store.appendToStream('s', events(1));
    expect(store.writeFailure()).toBeNull();
    expect((await store.readStream('s')).currentVersion).toBe(1n); // the failed append wrote nothing
  });

  it('a runExclusive job that commits clears it too, and one failing on its own (not storage) does not set it', async () => {
    const file = dbFile();
    const store = open(file, { busyTimeoutMs: 0 });
    const lock = holdWriteLock(file);
    try {
      await expect(store.runExclusive(() => 1)).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      lock.release();
    }
    expect(store.writeFailure()).toMatchObject({ code: 'SQLITE_BUSY' });
    await expect(store.runExclusive(() => 2)).resolves.toBe(2);
    expect(store.writeFailure()).toBeNull();
    await expect(
      store.runExclusive(() => {
        throw new Error('the job says no');
      }),
    ).rejects.toThrow('the job says no');
    expect(store.writeFailure()).toBeNull();
  });
});

describe('SQLite event store: busy timeout', () => {
  it('is the option, whole milliseconds, never negative', () => {
    expect(open(dbFile(), { busyTimeoutMs: 1234.9 }).database.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(open(dbFile(), { busyTimeoutMs: -5 }).database.pragma('busy_timeout', { simple: true })).toBe(0);
  });
});

describe('SQLite event store: probeWrites (before /health answers and before each /metrics scrape)', () => {
  it("does not wait for another process's lock: its BEGIN runs with busy_timeout 0, and the store's own timeout is back after", async () => {
    const file = dbFile();
    const store = open(file, { busyTimeoutMs: 0 });
    const lock = holdWriteLock(file);
    try {
      await expect(store.appendToStream('s', events(1))).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      lock.release();
    }
    expect(store.writeFailure()).toMatchObject({ code: 'SQLITE_BUSY' });
    // The hub's store waits 5 s for a lock: better-sqlite3 waits synchronously, so a probe that waited so held the
    // event loop (every request) for 5 s per scrape or health check while a sqlite3 shell held the lock.
    const db = store.database;
    db.pragma('busy_timeout = 5000');
    const atBegin: unknown[] = [];
    const exec = db.exec.bind(db);
    db.exec = ((sql: string) => {
      if (/^BEGIN/.test(sql)) atBegin.push(db.pragma('busy_timeout', { simple: true }));
      return exec(sql);
    }) as typeof db.exec;
    await store.probeWrites();
    expect(atBegin).toEqual([0]);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(store.writeFailure()).toBeNull(); // the lock is gone: the probe committed
  });
});
