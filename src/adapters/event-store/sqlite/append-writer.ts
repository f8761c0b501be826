import type { Database, Statement } from 'better-sqlite3';

/**
 * The write half of a group-commit batch, planned beforehand and checked here under the write lock.
 *
 * The store plans each append on its own connection (validation, idempotency, expected version: the rules of
 * append-rules.ts) and hands over only what to write: the stream, the version it found the stream at, and the
 * rows. This transaction then checks that nothing moved in between (another process may write the same file)
 * and writes. Keeping the decisions out of here lets it run on a worker thread, so that the page writes and the
 * fsync of COMMIT do not stop the event loop, while the rules stay in one place.
 *
 * This module imports nothing but types: the worker thread loads it without the rest of the program.
 */

/** [eventId, type, data JSON, metadata JSON]: one event row, versions assigned in order from expectedCurrent + 1. */
export type PlannedRow = readonly [string, string, string, string];

export type PlannedAppend = Readonly<{
  streamName: string;
  /** The stream's version when the append was planned (null: no stream). The write is refused if it moved. */
  expectedCurrent: bigint | null;
  rows: readonly PlannedRow[];
}>;

/**
 * 'written': committed, at these positions. 'stale': the stream moved or an id turned up since planning (rolled
 * back to its savepoint; plan again). 'failed': this append alone failed for another reason (rolled back).
 */
export type PlannedOutcome =
  | Readonly<{ kind: 'written'; nextExpectedVersion: bigint; lastGlobalPosition: bigint }>
  | Readonly<{ kind: 'stale' }>
  | Readonly<{ kind: 'failed'; error: WriterError }>;

/** An error as it crosses a thread: message and SQLite code (e.g. SQLITE_FULL). */
export type WriterError = Readonly<{ message: string; code?: string }>;

export type WriterStatements = Readonly<{
  streamVersion: Statement<[string]>;
  insert: Statement<[string, bigint, string, string, string, string, string]>;
}>;

export function prepareWriterStatements(db: Database): WriterStatements {
  return {
    streamVersion: db.prepare<[string]>('SELECT MAX(stream_version) FROM events WHERE stream_name = ?').pluck().safeIntegers(true),
    insert: db
      .prepare<[string, bigint, string, string, string, string, string]>(
        `INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .safeIntegers(true),
  };
}

/**
 * One transaction (BEGIN IMMEDIATE ... COMMIT: one fsync with synchronous=FULL) for the whole batch, each append
 * in its own SAVEPOINT so that one append's failure is its own. Throws (after ROLLBACK) only when the
 * transaction as a whole failed: nothing of the batch is written then.
 */
export function writePlannedBatch(
  db: Database,
  sql: WriterStatements,
  batch: readonly PlannedAppend[],
  recordedAt: string,
): PlannedOutcome[] {
  const outcomes: PlannedOutcome[] = [];
  try {
    db.exec('BEGIN IMMEDIATE');
    for (const append of batch) {
      db.exec('SAVEPOINT append');
      try {
        const outcome = writeOne(sql, append, recordedAt);
        db.exec(outcome.kind === 'written' ? 'RELEASE append' : 'ROLLBACK TO append; RELEASE append');
        outcomes.push(outcome);
      } catch (error) {
        if (!db.inTransaction) throw error; // SQLite rolled the whole transaction back (e.g. disk full)
        db.exec('ROLLBACK TO append; RELEASE append');
        outcomes.push(isUniqueViolation(error) ? { kind: 'stale' } : { kind: 'failed', error: toWriterError(error) });
      }
    }
    db.exec('COMMIT');
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw error;
  }
  return outcomes;
}

function writeOne(sql: WriterStatements, append: PlannedAppend, recordedAt: string): PlannedOutcome {
  const current = (sql.streamVersion.get(append.streamName) as bigint | null) ?? null;
  if (current !== append.expectedCurrent) return { kind: 'stale' };
  let version = current ?? -1n;
  let position = 0n;
  for (const [id, type, data, metadata] of append.rows) {
    version++;
    position = BigInt(sql.insert.run(append.streamName, version, id, type, data, metadata, recordedAt).lastInsertRowid);
  }
  return { kind: 'written', nextExpectedVersion: version, lastGlobalPosition: position };
}

/** An id stored meanwhile (UNIQUE event_id) or a version taken meanwhile (UNIQUE stream, version). */
function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export function toWriterError(error: unknown): WriterError {
  const code = (error as { code?: unknown }).code;
  return {
    message: error instanceof Error ? error.message : String(error),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

export function fromWriterError(error: WriterError): Error {
  return Object.assign(new Error(error.message), error.code === undefined ? {} : { code: error.code });
}
