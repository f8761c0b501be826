import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DATA_FILES } from './data-dir';
import { makeDirectory } from './make-directory';

/**
 * One hub process per embedded data directory. Two on one SQLite store both ran, each with its own caches: one
 * that still held an erased patient's key took their uploads for another minute, and both published the same
 * downlink. The lock is an exclusive lock on a small SQLite file of its own (`hub.lock`), held by an open
 * connection in exclusive locking mode: the operating system drops it when the process ends, kill -9 included, so
 * a crashed hub never leaves a stale lock behind. Backups (`rts backup`) do not take it: they read a running hub's
 * files on purpose.
 */
export type DataDirLock = Readonly<{ release(): void }>;

export class DataDirInUseError extends Error {
  constructor() {
    super('the data directory is in use by another hub or library, in another process or in this one (one per embedded store, until it stops or closes)');
    this.name = 'DataDirInUseError';
  }
}

export const lockDataDir = (dataDir: string): DataDirLock => {
  makeDirectory(dataDir);
  const file = join(dataDir, DATA_FILES.hubLock);
  const db = new BetterSqlite3(file, { timeout: 0 });
  try {
    // Owner-only, as every file of the data directory (it holds nothing, but the README says all), and no
    // journal file beside it.
    chmodSync(file, 0o600);
    db.pragma('journal_mode = MEMORY');
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; in this locking mode it is held until the connection closes.
    db.exec('CREATE TABLE IF NOT EXISTS hub_lock (held INTEGER); DELETE FROM hub_lock;');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY') || (error as { code?: string }).code?.startsWith('SQLITE_LOCKED')) throw new DataDirInUseError();
    throw error;
  }
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      db.close();
    },
  };
};
