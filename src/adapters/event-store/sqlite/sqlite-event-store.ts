import { closeSync, existsSync, openSync } from 'node:fs';
import { FILES_MOVED_CODE, FilesInPlace } from '../../system/files-in-place';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import type {
  AggregateOptions,
  AggregateStreamResult,
  AppendResult,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadAllOptions,
  ReadStreamResult,
  RecordedEvent,
} from '../../../application/ports/event-store';
import { aggregateByReading } from '../aggregate-stream';
import { checkExpectedVersion, idempotencyOutcome, toJson, validateAppend, type StoredEventIdentity } from '../append-rules';
import { migrate, type PendingMigrations } from './schema';
import { PROBE_FREE_BYTES, asStorageFailure, freeBytesBeside, namedOpenFailure } from './storage-failure';
import { WAL_SIZE_LIMIT_BYTES } from './wal-checkpoint';

export type SqliteEventStoreOptions = Readonly<{
  /** Path of the database file; ':memory:' for a private in-memory database (tests). */
  file: string;
  /** How long a write waits for another process's write lock before failing (PRAGMA busy_timeout). */
  busyTimeoutMs?: number;
  /** Most appends flushed in one transaction. */
  maxBatchSize?: number;
  /** How often waitForAppend looks for commits made by other processes on the same file. */
  pollIntervalMs?: number;
  /** Newest committed events kept for readAll (see `recent`); 0 turns it off. */
  recentEvents?: number;
  /** Told of the schema migrations this open is about to apply, before it applies them (to log them). */
  onMigrations?: (pending: PendingMigrations) => void;
  /**
   * Other files whose leaving their place refuses this store's commits too (FilesInPlace): the hub's key store,
   * whose keys open what these events seal. With its -wal deleted, uploads of a patient who had a key went on (201,
   * /health ok), sealed with a key that only the unlinked -wal held: unreadable after a crash.
   */
  alsoInPlace?: readonly string[];
}>;

/** Counters for tests and metrics: how well group commit is batching. */
export type SqliteEventStoreStats = Readonly<{
  /** Write transactions committed (append batches and runExclusive calls). */
  commits: number;
  /** appendToStream calls that went through a batch (succeeded or failed on their own). */
  appends: number;
  /** Largest number of appends flushed in one transaction. */
  largestBatch: number;
  /** Batches an inline projection applied in the append's transaction, and batches it left to catch-up. */
  inlineApplied: number;
  inlineDeclined: number;
}>;

type AppendJob = {
  kind: 'append';
  streamName: string;
  events: readonly NewEvent[];
  expectedVersion: ExpectedVersion;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
};
/**
 * 'full': the transaction is fsynced at commit like every append. 'relaxed': committed without its own fsync
 * (synchronous=NORMAL for that one transaction); for data that can be rebuilt from the events, such as a
 * projection with its checkpoint in the same transaction. WAL keeps it atomic and ordered: a crash can only lose
 * the newest relaxed commits as a whole, and the next full commit's fsync makes them durable as well.
 */
export type ExclusiveDurability = 'full' | 'relaxed';

type ExclusiveJob = {
  kind: 'exclusive';
  durability: ExclusiveDurability;
  /** false: `run` is called outside any transaction (for what SQLite refuses inside one: wal_checkpoint). */
  transaction: boolean;
  /** How long its BEGIN waits for another process's lock, instead of the store's busy timeout (undefined: that). */
  lockWaitMs: number | undefined;
  run: (db: Database) => unknown;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
};
type Job = AppendJob | ExclusiveJob;

/**
 * A read model kept in the append's own transaction (an inline projection): one COMMIT, one fsync, for the
 * events and the rows derived from them, where a background projector needs a second write transaction and reads
 * the events back. It stays a projection: it has its own checkpoint and is rebuilt from the events; when it
 * cannot apply a batch (its checkpoint is behind, or it declines) the background projector catches it up, and
 * from then on the batches are inline again.
 */
export interface SqliteInlineProjection {
  /** The event types it reads; events of other types are not handed over (they only move its checkpoint). */
  readonly eventTypes: ReadonlySet<string>;
  /**
   * Called inside the batch's write transaction, before COMMIT, when the batch appended events at positions
   * (from, to]: `events` are those of them whose type is in `eventTypes`, in order, with data and metadata read
   * back from the JSON written. Synchronous. Returns whether it applied them and moved its checkpoint from `from`
   * to `to`; false (or a throw, which rolls back only its own writes) leaves the batch to the background projector.
   * The appends commit either way.
   */
  applyInline(events: readonly RecordedEvent[], from: bigint, to: bigint): boolean;
  /** A throw from applyInline: the appends committed, the projection will catch up; say so. */
  onError?(error: unknown): void;
}

export type EventRow = {
  global_position: bigint;
  stream_name: string;
  stream_version: bigint;
  event_id: string;
  type: string;
  data: string;
  metadata: string;
  recorded_at: string;
  /** The row as a RecordedEvent, parsed once for every reader of a row this process wrote (see recordedOf). */
  recorded?: RecordedEvent;
};

export const COLUMNS = 'global_position, stream_name, stream_version, event_id, type, data, metadata, recorded_at';

/**
 * The embedded event store: one SQLite file in WAL mode, written by one connection per process.
 *
 * Group commit. appendToStream does not write at once: it queues the append and schedules a flush with
 * setImmediate. A flush takes up to `maxBatchSize` queued appends and runs them in ONE transaction
 * (BEGIN IMMEDIATE ... COMMIT, so one fsync with synchronous=FULL), each inside its own SAVEPOINT (an append of
 * one event needs none: its one INSERT is undone by SQLite if it fails), so a version conflict fails only its
 * own caller. An append whose failure makes SQLite roll the whole transaction back (SQLITE_FULL on its rows) fails
 * alone too: the others of the batch are written again without it; one that fills the disk at COMMIT (where a real
 * disk fills) splits the batch in halves, each written on its own, in order. Every caller's promise settles after
 * the COMMIT, never before.
 * Appends made while a flush runs wait for the next one. Expected versions and idempotency are checked against
 * the stream as it is inside the transaction, which includes earlier appends of the same batch.
 *
 * Sharing the file. The registry projection keeps its tables and checkpoint in the same file, and must commit
 * them atomically and without racing the writer:
 * - `database` is the better-sqlite3 connection. Reading from it at any time is safe (a read never sees a
 *   half-done batch, since batches run synchronously). Do NOT write through it directly, and do not
 *   change its connection settings.
 * - `runExclusive(fn)` queues `fn` in the writer's queue; it runs between append batches, inside its own
 *   BEGIN IMMEDIATE transaction that commits when fn returns and rolls back when it throws. fn must be
 *   synchronous (better-sqlite3 is); it may use db.transaction() inside, which nests as a savepoint.
 *
 * Other processes may open the same file (WAL allows one writer at a time, readers alongside). Their commits
 * are seen by waitForAppend through a short poll; busy_timeout makes our BEGIN IMMEDIATE wait for their lock.
 */
export class SqliteEventStore implements EventStore {
  private readonly queue: Job[] = [];
  private flushScheduled: NodeJS.Immediate | undefined;
  private closed = false;
  private readonly waiters = new Set<{ after: bigint; wake: () => void }>();
  private pollTimer: NodeJS.Timeout | undefined;
  private counters = { commits: 0, appends: 0, largestBatch: 0, inlineApplied: 0, inlineDeclined: 0 };
  /** The storage failure (disk full, I/O error, lock timeout) of the last write, until a write commits again. */
  private failing: { code: string; since: string } | null = null;
  /** The file and its WAL as opened: a commit into files no path names any more is refused (FilesInPlace). */
  private readonly files: FilesInPlace;
  private readonly inline: SqliteInlineProjection[] = [];
  /**
   * The rows of this process's newest committed batches, at consecutive positions from `recentFirst`: every
   * subscriber (projections, downlink publishers) reads right behind the head, and each used to SELECT and
   * JSON-parse the same new events again. readAll answers from here when the first position it asks for is held
   * (and asks the file for the rest of a page the run does not fill); the run is consecutive, so nothing in
   * between can be missed, and a batch that does not continue it (another process wrote in between) starts it
   * afresh. Readers share the parsed events, as the in-memory store does.
   *
   * Kept only while somebody reads events: until `readersUntil` (ms), which every readAll that returns events
   * moves READERS_WINDOW_MS ahead. With no reader behind the head (a library user with the registry kept inline:
   * the projector finds nothing to read) holding ~2,000 rows and their parsed data only made the garbage collector
   * copy them: ~8 % of an upload's CPU in-process. The first read after a quiet spell is answered from the file.
   */
  private recent: EventRow[] = [];
  private recentFirst = 0n;
  private readonly maxRecent: number;
  private readersUntil = 0;

  private readonly maxBatchSize: number;
  private readonly pollIntervalMs: number;
  /** One read transaction so a stream's events and its current version agree (made once: reads are hot). */
  private readonly readStreamConsistently: (streamName: string, from: bigint, limit: number) => ReadStreamResult;
  private readonly sql: {
    streamVersion: Statement<[string]>;
    findEvent: Statement<[string]>;
    insert: Statement<[string, bigint, string, string, string, string, string]>;
    readStream: Statement<[string, bigint, number]>;
    readAll: Statement<[bigint, number]>;
    readAllOfTypes: Statement<[string, bigint, number]>;
    head: Statement<[]>;
  };

  private constructor(
    /** The connection; see the class comment for what other code may do with it. */
    readonly database: Database,
    options: SqliteEventStoreOptions,
  ) {
    this.maxBatchSize = options.maxBatchSize ?? 512;
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
    this.maxRecent = options.recentEvents ?? 1024;
    this.files = new FilesInPlace([options.file, `${options.file}-wal`, ...(options.alsoInPlace ?? [])]);
    const db = database;
    // safeIntegers: positions and versions come back as bigint, whatever their size.
    this.sql = {
      streamVersion: db.prepare<[string]>('SELECT MAX(stream_version) FROM events WHERE stream_name = ?').pluck().safeIntegers(true),
      findEvent: db.prepare<[string]>('SELECT stream_name, stream_version, global_position FROM events WHERE event_id = ?').safeIntegers(true),
      insert: db
        .prepare<[string, bigint, string, string, string, string, string]>(
          `INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .safeIntegers(true),
      readStream: db
        .prepare<[string, bigint, number]>(
          `SELECT ${COLUMNS} FROM events WHERE stream_name = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
        )
        .safeIntegers(true),
      readAll: db
        .prepare<[bigint, number]>(`SELECT ${COLUMNS} FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?`)
        .safeIntegers(true),
      // The types as a JSON array; INDEXED BY: the planner would otherwise walk the rowids in order, i.e. every row.
      readAllOfTypes: db
        .prepare<[string, bigint, number]>(
          `SELECT ${COLUMNS} FROM events INDEXED BY events_by_type
            WHERE type IN (SELECT value FROM json_each(?)) AND global_position > ? ORDER BY global_position LIMIT ?`,
        )
        .safeIntegers(true),
      head: db.prepare<[]>('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().safeIntegers(true),
    };
    this.readStreamConsistently = db.transaction(
      (streamName: string, from: bigint, limit: number): ReadStreamResult => ({
        events: (this.sql.readStream.all(streamName, from, limit) as EventRow[]).map(toRecorded),
        currentVersion: this.sql.streamVersion.get(streamName) as bigint | null,
      }),
    );
  }

  /** Open (and create or migrate) the store in `file`. Synchronous: better-sqlite3 is. */
  static open(options: SqliteEventStoreOptions): SqliteEventStore {
    // A new file is made owner-only before SQLite opens it (its -wal and -shm take the same mode): the registry
    // rows in it hold readings. An existing file keeps the mode it has.
    if (options.file !== ':memory:' && options.file !== '' && !existsSync(options.file)) closeSync(openSync(options.file, 'a', 0o600));
    let db: Database;
    try {
      db = new BetterSqlite3(options.file);
    } catch (error) {
      throw namedOpenFailure(options.file, error);
    }
    try {
      configure(db, options);
      migrate(db, undefined, options.onMigrations);
      return new SqliteEventStore(db, options);
    } catch (error) {
      db.close();
      throw namedOpenFailure(options.file, error);
    }
  }

  appendToStream(
    streamName: string,
    events: readonly NewEvent[],
    options: { expectedVersion?: ExpectedVersion } = {},
  ): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new Error('event store is closed'));
    return new Promise<AppendResult>((resolve, reject) => {
      this.enqueue({ kind: 'append', streamName, events, expectedVersion: options.expectedVersion ?? 'any', resolve, reject });
    });
  }

  /**
   * Run `fn` in its own write transaction, serialized with the group-commit writer (see the class comment).
   * `transaction: false` runs it between transactions instead, still in the writer's turn (no append interleaves).
   * `lockWaitMs`: how long its BEGIN waits for another process's write lock instead of the busy timeout (better-sqlite3
   * waits synchronously, holding the event loop).
   */
  runExclusive<T>(fn: (db: Database) => T, options: { durability?: ExclusiveDurability; transaction?: boolean; lockWaitMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error('event store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'exclusive', durability: options.durability ?? 'full', transaction: options.transaction ?? true, lockWaitMs: options.lockWaitMs, run: fn, resolve: resolve as (result: unknown) => void, reject });
    });
  }

  /**
   * Keep `projection` in the append transactions from now on (see SqliteInlineProjection). Register it before
   * appending, or let its background projector catch it up first: until its checkpoint reaches the head, it
   * declines.
   */
  addInlineProjection(projection: SqliteInlineProjection): void {
    this.inline.push(projection);
  }

  stats(): SqliteEventStoreStats {
    return { ...this.counters };
  }

  /**
   * Whether writes fail for want of storage: the SQLite code and since when, from the first such failure until a
   * write commits again; null while writes commit. For /health: a hub whose disk is full still answers reads.
   */
  writeFailure(): Readonly<{ code: string; since: string }> | null {
    return this.failing;
  }

  /**
   * While writes fail, try one small write of the store's own (a row of a table kept for this alone, created then,
   * committed with full durability): when it commits the failure is over, so /health recovers once the disk does
   * although no upload comes (a load balancer that took the hub out on its 503 sends none). Nothing while writes
   * commit; a probe that fails leaves the failure as it was. It does not wait for another process's lock (as the key
   * store's probe): waiting the busy timeout held the event loop 5 s per scrape or health check while one held it.
   */
  async probeWrites(): Promise<void> {
    if (this.closed) return;
    // The files gone from under the hub: said at once, though no write came (a load balancer's probe only reads).
    if (this.failing === null && this.files.moved() !== null) this.failing = { code: FILES_MOVED_CODE, since: new Date().toISOString() };
    if (this.failing === null || this.failing.code === FILES_MOVED_CODE) return;
    // A full disk: a small write may still commit into the WAL's space of earlier frames while an upload would not,
    // so the disk must have room again first (PROBE_FREE_BYTES), else /health went 200 and 503 in turns.
    if (this.failing.code === 'SQLITE_FULL' && freeBytesBeside(this.database.name) < PROBE_FREE_BYTES) return;
    await this.runExclusive((db) => {
      db.exec('CREATE TABLE IF NOT EXISTS store_write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at TEXT NOT NULL)');
      db.prepare('INSERT INTO store_write_probe (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at').run(new Date().toISOString());
    }, { lockWaitMs: 0 }).catch(() => undefined);
  }

  /** A write's error as callers get it: a storage failure becomes UnavailableError (storage-failure.ts). */
  private failed(error: unknown): unknown {
    if ((error as { cause?: { code?: unknown } } | null)?.cause?.code === FILES_MOVED_CODE) {
      this.failing ??= { code: FILES_MOVED_CODE, since: new Date().toISOString() };
      return error;
    }
    const failure = asStorageFailure(error);
    if (!failure) return error;
    this.failing ??= { code: String((error as { code: string }).code), since: new Date().toISOString() };
    return failure;
  }

  async readStream(streamName: string, options: { fromVersion?: bigint; maxCount?: number } = {}): Promise<ReadStreamResult> {
    const from = options.fromVersion ?? 0n;
    const limit = options.maxCount === undefined ? -1 : Math.max(0, options.maxCount);
    return this.readStreamConsistently(streamName, from, limit);
  }

  aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>> {
    return aggregateByReading(this, streamName, options);
  }

  async readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]> {
    const limit = Math.max(0, options.maxCount);
    const page = options.types === undefined ? this.readPage(options.after, limit) : this.readPageOfTypes(options.after, limit, options.types);
    if (page.length > 0) this.readersUntil = performance.now() + READERS_WINDOW_MS;
    return page;
  }

  /** readPage for some types: the recent run filtered, then the file's index of types from where the run ends. */
  private readPageOfTypes(after: bigint, limit: number, types: ReadonlySet<string>): RecordedEvent[] {
    const page: RecordedEvent[] = [];
    if (limit === 0) return page;
    let from = after;
    const at = after + 1n - this.recentFirst;
    if (this.recent.length > 0 && at >= 0n && at < BigInt(this.recent.length)) {
      for (let i = Number(at); i < this.recent.length && page.length < limit; i++) {
        const row = this.recent[i]!;
        if (types.has(row.type)) page.push(recordedOf(row));
      }
      if (page.length === limit) return page;
      from = this.recentFirst + BigInt(this.recent.length) - 1n; // past the run the file decides, as in readPage
    }
    const rows = this.sql.readAllOfTypes.all(JSON.stringify([...types]), from, limit - page.length) as EventRow[];
    for (const row of rows) page.push(toRecorded(row));
    return page;
  }

  private readPage(after: bigint, limit: number): RecordedEvent[] {
    const at = after + 1n - this.recentFirst;
    if (this.recent.length > 0 && at >= 0n && at < BigInt(this.recent.length)) {
      const from = Number(at);
      const page = this.recent.slice(from, from + limit).map(recordedOf);
      // Past the end of the run the file decides (another process may have written after it): a full page.
      if (page.length === limit) return page;
      return page.concat((this.sql.readAll.all(page[page.length - 1]!.globalPosition, limit - page.length) as EventRow[]).map(toRecorded));
    }
    return (this.sql.readAll.all(after, limit) as EventRow[]).map(toRecorded);
  }

  async headPosition(): Promise<bigint> {
    return this.sql.head.get() as bigint;
  }

  waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    if (this.closed || this.refreshHead() > after) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        after,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          if (this.waiters.size === 0) this.stopPolling();
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      this.waiters.add(waiter);
      this.startPolling();
    });
  }

  /** Flush every queued append and exclusive job, wake waiters, close the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushScheduled !== undefined) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    while (this.queue.length > 0) this.flushOnce();
    for (const waiter of [...this.waiters]) waiter.wake();
    this.stopPolling();
    this.database.close();
  }

  // ---- the writer ----

  private enqueue(job: Job): void {
    this.queue.push(job);
    this.scheduleFlush();
  }

  /** setImmediate: every append made in this tick (and while a flush runs) joins the next batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled !== undefined || this.queue.length === 0) return;
    this.flushScheduled = setImmediate(() => {
      this.flushScheduled = undefined;
      if (this.closed) return; // close() has drained the queue itself
      this.flushOnce();
      this.scheduleFlush();
    });
  }

  /** One transaction: either the exclusive job at the head of the queue, or a batch of appends. */
  private flushOnce(): void {
    const head = this.queue[0];
    if (head === undefined) return;
    if (head.kind === 'exclusive') {
      this.queue.shift();
      this.runExclusiveJob(head);
      return;
    }
    let count = 0;
    while (count < this.queue.length && count < this.maxBatchSize && this.queue[count]?.kind === 'append') count++;
    this.runBatch(this.queue.splice(0, count) as AppendJob[]);
  }

  private runBatch(batch: AppendJob[]): void {
    const db = this.database;
    const outcomes: ({ ok: true; result: AppendResult } | { ok: false; error: unknown })[] = [];
    // The rows written, for the inline projections and readAll's recent events (neither: nothing kept).
    const appended: EventRow[] | undefined = this.inline.length > 0 || this.maxRecent > 0 ? [] : undefined;
    // The append whose failure made SQLite roll the whole transaction back (SQLITE_FULL on its rows), if one did.
    let rolledBackBy: AppendJob | undefined;
    try {
      db.exec('BEGIN IMMEDIATE');
      const from = appended ? (this.sql.head.get() as bigint) : 0n;
      const recordedAt = new Date().toISOString();
      for (const job of batch) {
        // A savepoint only where an append writes more than one row: a single INSERT that fails is undone by
        // SQLite itself (statement rollback), and every check before it only reads.
        const guarded = job.events.length > 1;
        if (guarded) db.exec('SAVEPOINT append');
        const mark = appended?.length ?? 0;
        try {
          outcomes.push({ ok: true, result: this.appendInTransaction(job, recordedAt, appended) });
          if (guarded) db.exec('RELEASE append');
        } catch (error) {
          if (!db.inTransaction) {
            rolledBackBy = job; // SQLite rolled the whole transaction back (e.g. disk full)
            throw error;
          }
          if (guarded) db.exec('ROLLBACK TO append; RELEASE append');
          if (appended) appended.length = mark; // its rows are gone again
          outcomes.push({ ok: false, error: this.failed(error) });
        }
      }
      if (appended && appended.length > 0 && this.inline.length > 0) this.applyInline(appended, from);
      this.files.check();
      db.exec('COMMIT');
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      const failure = this.failed(error);
      if (batch.length > 1 && isDiskFull(error)) {
        if (rolledBackBy !== undefined) {
          // That append fails; the others are written again without it. They may well fit where its rows did not:
          // one large append on a nearly full disk failed every upload batched with it (503, nothing stored).
          const culprit = rolledBackBy;
          culprit.reject(failure);
          this.runBatch(batch.filter((job) => job !== culprit));
          return;
        }
        // Full at COMMIT, where a real disk fills (the pages go to the WAL then; max_page_count fails the INSERT
        // instead): which append did not fit is not known, so each half is written on its own, the first first.
        // At most 2n-1 transactions; an append that fails alone fails.
        const half = Math.ceil(batch.length / 2);
        this.runBatch(batch.slice(0, half));
        this.runBatch(batch.slice(half));
        return;
      }
      for (const job of batch) job.reject(failure);
      return;
    }
    if (appended && appended.length > 0) this.keepRecent(appended);
    this.failing = null;
    this.counters.commits++;
    this.counters.appends += batch.length;
    this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
    batch.forEach((job, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok === true) job.resolve(outcome.result);
      else job.reject(outcome?.error);
    });
    this.refreshHead();
  }

  /** Committed rows join the recent run when they continue it; otherwise they start a new one. */
  private keepRecent(rows: readonly EventRow[]): void {
    if (this.maxRecent <= 0) return;
    if (performance.now() > this.readersUntil) {
      this.recent = []; // nobody reads: keep nothing (a run restarts at the next batch after a read)
      return;
    }
    const first = rows[0]!.global_position;
    if (this.recent.length === 0 || first !== this.recentFirst + BigInt(this.recent.length)) {
      this.recent = [];
      this.recentFirst = first;
    }
    this.recent.push(...rows);
    if (this.recent.length > 2 * this.maxRecent) {
      const drop = this.recent.length - this.maxRecent;
      this.recent = this.recent.slice(drop);
      this.recentFirst += BigInt(drop);
    }
  }

  /** The inline projections, each in a savepoint of its own: a failure rolls back its writes, not the appends. */
  private applyInline(rows: readonly EventRow[], from: bigint): void {
    const db = this.database;
    const to = rows[rows.length - 1]!.global_position;
    for (const projection of this.inline) {
      const events = rows.filter((r) => projection.eventTypes.has(r.type)).map(recordedOf);
      db.exec('SAVEPOINT inline');
      let applied = false;
      try {
        applied = projection.applyInline(events, from, to);
        db.exec('RELEASE inline');
      } catch (error) {
        if (!db.inTransaction) throw error;
        db.exec('ROLLBACK TO inline; RELEASE inline');
        projection.onError?.(error);
      }
      if (applied) this.counters.inlineApplied++;
      else this.counters.inlineDeclined++;
    }
  }

  private appendInTransaction(job: AppendJob, recordedAt: string, appended?: EventRow[]): AppendResult {
    const { streamName, events } = job;
    validateAppend(streamName, events);
    if (job.expectedVersion === 'no_stream' && events.length === 1) {
      const created = this.createStreamOfOne(streamName, events[0]!, recordedAt, appended);
      if (created !== undefined) return created;
    }
    const stored = events.map((e) => {
      const row = this.sql.findEvent.get(e.id) as { stream_name: string; stream_version: bigint; global_position: bigint } | undefined;
      return row === undefined
        ? undefined
        : ({ streamName: row.stream_name, streamVersion: row.stream_version, globalPosition: row.global_position } satisfies StoredEventIdentity);
    });
    const outcome = idempotencyOutcome(streamName, events, stored);
    if (outcome !== 'new') return outcome;

    const current = this.sql.streamVersion.get(streamName) as bigint | null;
    checkExpectedVersion(streamName, job.expectedVersion, current);
    let version = current ?? -1n;
    let position = 0n;
    for (const event of events) {
      version++;
      position = this.insertEvent(streamName, version, event, recordedAt, appended);
    }
    return { nextExpectedVersion: version, lastGlobalPosition: position, idempotent: false };
  }

  /** One event row written at `version`; its position, and the row kept in `appended` for readers after COMMIT. */
  private insertEvent(streamName: string, version: bigint, event: NewEvent, recordedAt: string, appended?: EventRow[]): bigint {
    const data = toJson(event.data);
    const metadata = toJson(event.metadata ?? {});
    const position = BigInt(this.sql.insert.run(streamName, version, event.id, event.type, data, metadata, recordedAt).lastInsertRowid);
    appended?.push({ global_position: position, stream_name: streamName, stream_version: version, event_id: event.id, type: event.type, data, metadata, recorded_at: recordedAt });
    return position;
  }

  /**
   * The usual append of an upload: one event to a stream that must not exist. It is INSERTed at version 0 at once,
   * without the two look-ups before it: UNIQUE(stream_name, stream_version) and UNIQUE(event_id) make the INSERT
   * fail exactly when the stream exists or the id is stored (a repeat, or an id reused). SQLite then undoes the
   * statement alone, and undefined sends the append down the usual path, which tells those cases apart.
   */
  private createStreamOfOne(streamName: string, event: NewEvent, recordedAt: string, appended?: EventRow[]): AppendResult | undefined {
    let position: bigint;
    try {
      position = this.insertEvent(streamName, 0n, event, recordedAt, appended); // pushes to appended only on success
    } catch (error) {
      if ((error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') return undefined;
      throw error;
    }
    return { nextExpectedVersion: 0n, lastGlobalPosition: position, idempotent: false };
  }

  private runExclusiveJob(job: ExclusiveJob): void {
    const db = this.database;
    let result: unknown;
    if (!job.transaction) {
      try {
        result = job.run(db);
        if (isThenable(result)) throw new TypeError('runExclusive: fn must be synchronous (it returned a promise)');
      } catch (error) {
        job.reject(error);
        return;
      }
      job.resolve(result);
      return;
    }
    const relaxed = job.durability === 'relaxed';
    const busyTimeout = job.lockWaitMs === undefined ? undefined : (db.pragma('busy_timeout', { simple: true }) as number);
    try {
      if (relaxed) db.pragma('synchronous = NORMAL');
      if (job.lockWaitMs !== undefined) db.pragma(`busy_timeout = ${Math.max(0, Math.floor(job.lockWaitMs))}`);
      try {
        db.exec('BEGIN IMMEDIATE');
      } finally {
        if (busyTimeout !== undefined) db.pragma(`busy_timeout = ${busyTimeout}`);
      }
      result = job.run(db);
      if (isThenable(result)) throw new TypeError('runExclusive: fn must be synchronous (it returned a promise)');
      this.files.check();
      db.exec('COMMIT');
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      job.reject(this.failed(error));
      return;
    } finally {
      if (relaxed) db.pragma('synchronous = FULL');
    }
    this.failing = null;
    this.counters.commits++;
    job.resolve(result);
    this.refreshHead();
  }

  // ---- waiting for appends ----

  /** Read the committed head; wake the waiters it satisfies. */
  private refreshHead(): bigint {
    if (!this.database.open) return 0n;
    const head = this.sql.head.get() as bigint;
    for (const waiter of [...this.waiters]) if (head > waiter.after) waiter.wake();
    return head;
  }

  /** Another process's commits raise no event here, so while anyone waits, look every pollIntervalMs. */
  private startPolling(): void {
    if (this.pollTimer !== undefined) return;
    this.pollTimer = setInterval(() => this.refreshHead(), this.pollIntervalMs);
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }
}

/**
 * SQLITE_FULL (and its extended codes): the rows of a batch did not fit. Only that is retried in parts: a failing
 * disk (SQLITE_IOERR) or a lock held too long fails every append alike, and trying again at once helps none.
 */
const isDiskFull = (error: unknown): boolean => /^SQLITE_FULL(_|$)/.test(String((error as { code?: unknown } | null)?.code));

/** How long after a reader last got events from readAll the store keeps its recent events for readers. */
const READERS_WINDOW_MS = 5_000;

function configure(db: Database, options: SqliteEventStoreOptions): void {
  // busy_timeout first: the journal_mode switch itself may have to wait for another process.
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  const journal = db.pragma('journal_mode = WAL', { simple: true }) as string;
  if (options.file !== ':memory:' && options.file !== '' && journal.toLowerCase() !== 'wal') {
    throw new Error(`SQLite event store: could not switch ${options.file} to WAL (journal_mode is ${journal})`);
  }
  // WAL's usual pairing is NORMAL, which can lose the last commits on power loss; an acknowledged event must
  // survive, and group commit pays for the fsync once per batch.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Savepoint and statement journals in memory. With SQLite's default they spill to a temp file (/var/tmp) once
  // they pass 64 KiB, which a batch's inline projection savepoint does: ~150 pwrites per batch (a fifth of all
  // the hub's pwrites), and the old contents of registry pages (patient keys, readings) in a deleted file's blocks.
  db.pragma('temp_store = MEMORY');
  // Freed cells zeroed on every write, not only in an erasure's DELETE: an UPDATE of a registry row (a correction
  // deprecating it) or a page split leaves the old bytes in the page's free space, readings included, and an erasure
  // deleting the rows later did not reach those copies. Inserts, most of the writes, free nothing.
  db.pragma('secure_delete = ON');
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
}

export function toRecorded(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    type: row.type,
    data: JSON.parse(row.data) as RecordedEvent['data'],
    metadata: JSON.parse(row.metadata) as RecordedEvent['metadata'],
    streamName: row.stream_name,
    streamVersion: row.stream_version,
    globalPosition: row.global_position,
    recordedAt: row.recorded_at,
  };
}

/** A row this process wrote, parsed on its first read and shared by every reader after that. */
function recordedOf(row: EventRow): RecordedEvent {
  return (row.recorded ??= toRecorded(row));
}

function isThenable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

