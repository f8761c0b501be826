import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore, type SqliteEventStoreOptions } from '../../src/adapters/event-store/sqlite/sqlite-event-store';

/**
 * SQLite event stores for one test file, each on a file of its own in a temp dir the file's tests share: made in
 * beforeAll, and every store opened closed and the dir removed in afterAll. Call at the top level of a test file.
 */
export const sqliteStoresForThisFile = (prefix: string) => {
  let dir = '';
  const opened: SqliteEventStore[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    for (const store of opened) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** A new file's path in the dir (no file made). */
  const dbFile = (): string => join(dir, `${randomUUID()}.db`);
  /** A store on `file` (a new one by default), closed after the file's tests. */
  const open = (file: string = dbFile(), options: Omit<SqliteEventStoreOptions, 'file'> = {}): SqliteEventStore => {
    const store = SqliteEventStore.open({ file, ...options });
    opened.push(store);
    return store;
  };
  return { dbFile, open };
};
