import type { Database } from 'better-sqlite3';

/**
 * `wal_checkpoint(TRUNCATE)`: every WAL frame into the database file, then the WAL cut to nothing, so no old
 * frame keeps erased data. A reader on another connection can hold it up: it is waited for at most `waitMs`
 * (synchronously: the event loop waits too), then the connection's own busy timeout is restored. Whether every
 * frame went into the file.
 */
export const truncateWal = (db: Database, waitMs: number): boolean => {
  const previous = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(waitMs))}`);
  try {
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    return result === undefined || (result.busy === 0 && result.checkpointed === result.log);
  } finally {
    db.pragma(`busy_timeout = ${previous}`);
  }
};

/**
 * The WAL file is cut back to this once a checkpoint has emptied it (journal_size_limit). Without a limit it kept the
 * size a long reader (a backup, a verification, an export) let it grow to, 60 MB in a capacity test, until the hub
 * stopped.
 */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;
