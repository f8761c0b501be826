import type { Pool, PoolClient, PoolConfig, QueryResult, QueryResultRow } from 'pg';
import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type AggregateOptions,
  type AggregateStreamResult,
  type AppendResult,
  type EventStore,
  type ExpectedVersion,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamResult,
  type RecordedEvent,
} from '../../../application/ports/event-store';
import { aggregateByReading } from '../aggregate-stream';
import { checkExpectedVersion, idempotencyOutcome, toJson, validateAppend } from '../append-rules';
import { AppendNotifier } from './append-notifier';
import { migrate, type PendingMigrations } from './migrate';
import { connectionConfig, createPool, inTransaction, isPgError, quoteIdent, rollback, UNIQUE_VIOLATION, vacuumTable, type PostgresTimeouts } from './sql';

/**
 * PostgreSQL adapter of the event store port.
 *
 * Global order, and why appends take one advisory lock
 * ----------------------------------------------------
 * The port promises positions strictly increasing in *commit* order, with a single bigint checkpoint. A bare
 * bigserial does not give that: the value is taken at INSERT, and transactions commit in another order. If tx A
 * takes position 10 and tx B takes 11 and commits first, a reader sees 11, stores checkpoint 11, and never reads 10.
 *
 * Every append therefore takes `pg_advisory_xact_lock(APPEND_LOCK_CLASS, hashtext(schema))` before it draws
 * positions and holds it until COMMIT. Positions are then drawn by one transaction at a time, and the holder
 * releases the lock only after its commit is visible (PostgreSQL ends the transaction in the proc array before
 * releasing locks). So at any instant every visible row has a lower position than any row still in flight, a
 * reader's snapshot always sees a gap-free prefix (gaps from rolled-back appends are never filled), and
 * "everything above my checkpoint" is a complete answer. The cost is that appends to *different* streams also
 * serialize (one fsync'd commit at a time); reads do not take the lock. Group commit (appendToStream) pays that
 * cost once per batch: each process gathers its appends in flight into one transaction under the lock, as the
 * SQLite store gathers them under its single writer.
 *
 * The alternative (store `pg_current_xact_id()` per row, read only rows of transactions below
 * `pg_snapshot_xmin(pg_current_snapshot())`, order by (xid, position), as Marten/Eventuous-style readers do) keeps
 * writes concurrent, but its checkpoint is the pair (xid, position): ordering by xid does not agree with ordering
 * by position, so it cannot be squeezed into the port's one bigint. If append throughput ever matters more than
 * that, the port's checkpoint type is what has to change first.
 *
 * Because the whole batch runs under the lock (idempotency check, head read, insert, notify), the head read is
 * always current and the UNIQUE constraints are only a backstop; a unique violation is still mapped to the port's
 * errors should anything ever insert without the lock.
 */

/** Advisory lock class for appends (two-key form: class, hashtext(schema)). */
export const APPEND_LOCK_CLASS = 0x52545302; // 'RTS' 02

export type PostgresEventStoreOptions = Readonly<{
  connectionString: string;
  /** Schema holding the store's tables; created if missing. Default `public`. */
  schema?: string;
  /** Pool size; default pg's (10). */
  maxConnections?: number;
  /** Connect and statement timeouts (sql.ts, PostgresTimeouts); defaults 10 s and 30 s. */
  timeouts?: PostgresTimeouts;
  /** Told of the schema migrations this open is about to apply, before it applies them (to log them). */
  onMigrations?: (pending: PendingMigrations) => void;
}>;

export type EventRow = {
  global_position: string;
  stream_name: string;
  stream_version: string;
  event_id: string;
  event_type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown> | null;
  recorded_at: Date;
};

export const EVENT_COLUMNS = 'global_position, stream_name, stream_version, event_id, event_type, data, metadata, recorded_at';

/** The most appends, and events, one group-commit transaction takes. */
const MAX_BATCH_APPENDS = 256;
const MAX_BATCH_EVENTS = 2_000;

type AppendJob = {
  streamName: string;
  events: readonly NewEvent[];
  expected: ExpectedVersion;
  ids: string[];
  data: string[];
  metadata: string[];
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
};

/** SQLSTATE read_only_sql_transaction: what every append gets from a database that takes no writes now. */
export const READ_ONLY_CODE = '25006';

export class PostgresEventStore implements EventStore {
  private closing: Promise<void> | null = null;
  private readonly queue: AppendJob[] = [];
  private flushScheduled = false;
  private flushing = false;
  /** Wakes close() once the queue is empty and no flush runs. */
  private readonly idle: (() => void)[] = [];
  private readonly counters = { appends: 0, batches: 0, largestBatch: 0 };

  private constructor(
    private readonly pool: Pool,
    /** Schema holding the store's tables (projections may put theirs beside them). */
    readonly schema: string,
    private readonly notifier: AppendNotifier,
  ) {}

  /** Opens a pool and brings the schema up to date (idempotent; safe when several processes start together). */
  static async open(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
    const schema = options.schema ?? 'public';
    const config: PoolConfig = connectionConfig(options.connectionString, options.timeouts);
    if (options.maxConnections !== undefined) config.max = options.maxConnections;
    const pool = createPool(config);
    try {
      await migrate(pool, schema, undefined, options.onMigrations);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    const notifier = new AppendNotifier(connectionConfig(options.connectionString, options.timeouts), notifyChannel(schema));
    return new PostgresEventStore(pool, schema, notifier);
  }

  /** The qualified name of a table in the store's schema, e.g. for a projection's own tables. */
  table(name: string): string {
    return `${quoteIdent(this.schema)}.${quoteIdent(name)}`;
  }

  /**
   * Group commit: the append joins a queue, and one flush at a time takes what is queued (appends made in the same
   * tick, and all that arrived while the previous flush ran) into ONE transaction under the append lock: one
   * idempotency SELECT, one head SELECT, one INSERT of every row, one NOTIFY, one flushed COMMIT. Each append is
   * still checked on its own (idempotency, expected version, against the stream as earlier appends of the same
   * batch leave it), and only its own promise fails when it does. Every promise settles after the COMMIT.
   */
  appendToStream(streamName: string, events: readonly NewEvent[], options: { expectedVersion?: ExpectedVersion } = {}): Promise<AppendResult> {
    if (this.closing) return Promise.reject(new Error('event store is closed'));
    try {
      validateAppend(streamName, events);
      // Serialise before queueing: a bad payload fails its caller without touching the database.
      const job: AppendJob = {
        streamName,
        events,
        expected: options.expectedVersion ?? 'any',
        ids: events.map((event) => event.id),
        data: events.map((event) => toJson(event.data)),
        metadata: events.map((event) => toJson(event.metadata ?? {})),
        resolve: () => undefined,
        reject: () => undefined,
      };
      return new Promise<AppendResult>((resolve, reject) => {
        job.resolve = resolve;
        job.reject = reject;
        this.queue.push(job);
        this.scheduleFlush();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Appends and their transactions so far (a batch is one transaction; for tests and benchmarks). */
  stats(): Readonly<{ appends: number; batches: number; largestBatch: number }> {
    return { ...this.counters };
  }

  /** setImmediate: the appends of this tick join the batch; while a flush runs, the next one gathers. */
  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = true;
      void this.drain().finally(() => {
        this.flushing = false;
        this.scheduleFlush();
        if (!this.flushing && !this.flushScheduled && this.queue.length === 0) for (const wake of this.idle.splice(0)) wake();
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) await this.flush(this.takeBatch());
  }

  /**
   * Up to MAX_BATCH_APPENDS appends / MAX_BATCH_EVENTS events from the head of the queue, in order. An append that
   * shares an event id with one already taken waits for the next batch: it must see the other's rows as stored.
   */
  private takeBatch(): AppendJob[] {
    const batch: AppendJob[] = [];
    const ids = new Set<string>();
    let count = 0;
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH_APPENDS; ) {
      const job = this.queue[i]!;
      if (batch.length > 0 && count + job.ids.length > MAX_BATCH_EVENTS) break;
      if (job.ids.some((id) => ids.has(id))) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      batch.push(job);
      count += job.ids.length;
      for (const id of job.ids) ids.add(id);
    }
    return batch;
  }

  /** One transaction for the batch; if the batch as a whole fails, each append again alone (its own outcome). */
  private async flush(batch: readonly AppendJob[]): Promise<void> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      for (const job of batch) job.reject(error);
      return;
    }
    let broken: Error | undefined;
    let settle: (() => void)[];
    try {
      settle = await this.appendBatch(client, batch);
    } catch (error) {
      broken = await rollback(client, error);
      client.release(broken);
      if (batch.length > 1) {
        // One append PostgreSQL refuses (a value jsonb cannot hold, say) must not fail the others.
        for (const job of batch) await this.flush([job]);
        return;
      }
      const job = batch[0]!;
      job.reject(await this.inPortTerms(error, job));
      return;
    }
    client.release();
    this.counters.batches++;
    this.counters.appends += batch.length;
    this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
    for (const done of settle) done();
  }

  /** The batch's transaction; returns how each append settles, to be called after the COMMIT. */
  private async appendBatch(client: PoolClient, batch: readonly AppendJob[]): Promise<(() => void)[]> {
    // synchronous_commit=on: the append reports success only once its commit is flushed (a role or database
    // default of `off` must not weaken that for the log everything else is derived from).
    // READ COMMITTED, whatever default_transaction_isolation the role or database has: the idempotency and head
    // SELECTs below must see what the previous holder of the append lock committed. Under REPEATABLE READ the
    // snapshot is taken by the lock's own statement, before it waits, so a hub racing another with the same event
    // id (a retried upload) got ExpectedVersionConflictError even with expectedVersion 'any', not `idempotent`, and
    // every 'any' append to a stream another hub had just written failed; SERIALIZABLE failed them with 40001.
    // lock_timeout 0: waiting for the append lock is how hubs sharing the schema take turns, not a fault. A role's
    // or database's lock_timeout (a common DBA guard) failed an append that waited for another hub's commit longer
    // than that with a bare 55P03 (a 500). The wait stays bounded by the hub's own query timeout (sql.ts).
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on; SET LOCAL lock_timeout = 0');
    await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [APPEND_LOCK_CLASS, this.schema]);

    const known = await client.query<{ event_id: string; stream_name: string; stream_version: string; global_position: string }>(
      `SELECT event_id, stream_name, stream_version::text, global_position::text FROM ${this.table('events')} WHERE event_id = ANY($1::text[])`,
      [batch.flatMap((job) => job.ids)],
    );
    const byId = new Map(known.rows.map((row) => [row.event_id, row]));
    const streams = [...new Set(batch.map((job) => job.streamName))];
    const heads = await client.query<{ stream_name: string; v: string }>(
      `SELECT stream_name, max(stream_version)::text AS v FROM ${this.table('events')} WHERE stream_name = ANY($1::text[]) GROUP BY stream_name`,
      [streams],
    );
    const head = new Map<string, bigint>(heads.rows.map((row) => [row.stream_name, BigInt(row.v)]));

    const settle: (() => void)[] = [];
    const planned: { job: AppendJob; first: bigint }[] = [];
    for (const job of batch) {
      try {
        const outcome = idempotencyOutcome(
          job.streamName,
          job.events,
          job.ids.map((id) => {
            const row = byId.get(id);
            return row && { streamName: row.stream_name, streamVersion: BigInt(row.stream_version), globalPosition: BigInt(row.global_position) };
          }),
        );
        if (outcome !== 'new') {
          settle.push(() => job.resolve(outcome));
          continue;
        }
        const current = head.get(job.streamName) ?? null;
        checkExpectedVersion(job.streamName, job.expected, current);
        const first = current === null ? 0n : current + 1n;
        head.set(job.streamName, first + BigInt(job.ids.length) - 1n);
        planned.push({ job, first });
      } catch (error) {
        settle.push(() => job.reject(error));
      }
    }
    if (planned.length === 0) {
      await client.query('ROLLBACK');
      return settle;
    }

    const rows = planned.flatMap(({ job, first }) => job.ids.map((id, i) => ({ job, id, version: first + BigInt(i), i })));
    const inserted = await client.query<{ event_id: string; position: string }>(
      `WITH inserted AS (
         INSERT INTO ${this.table('events')} (stream_name, stream_version, event_id, event_type, data, metadata)
         SELECT n.stream, n.version::bigint, n.id, n.type, n.data::jsonb, n.metadata::jsonb
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS n(stream, version, id, type, data, metadata, ord)
          ORDER BY n.ord
         RETURNING event_id, global_position
       ), notified AS (SELECT pg_notify($7, max(global_position)::text) FROM inserted)
       SELECT i.event_id, i.global_position::text AS position FROM inserted i, notified`,
      [
        rows.map((r) => r.job.streamName),
        rows.map((r) => r.version.toString()),
        rows.map((r) => r.id),
        rows.map((r) => r.job.events[r.i]!.type),
        rows.map((r) => r.job.data[r.i]!),
        rows.map((r) => r.job.metadata[r.i]!),
        this.notifier.channel,
      ],
    );
    const position = new Map(inserted.rows.map((row) => [row.event_id, BigInt(row.position)]));
    await client.query('COMMIT');
    for (const { job, first } of planned) {
      const last = job.ids.reduce((max, id) => (position.get(id)! > max ? position.get(id)! : max), 0n);
      settle.push(() => job.resolve({ nextExpectedVersion: first + BigInt(job.ids.length) - 1n, lastGlobalPosition: last, idempotent: false }));
    }
    return settle;
  }

  /** A unique violation is only reachable if something wrote without the append lock; say it in the port's terms. */
  private async inPortTerms(error: unknown, job: AppendJob): Promise<unknown> {
    if (!isPgError(error) || error.code !== UNIQUE_VIOLATION) return error;
    if (error.constraint === 'events_event_id_key') return new IdempotencyViolationError(job.streamName, job.ids[0] ?? '');
    return new ExpectedVersionConflictError(job.streamName, job.expected, await this.streamHead(job.streamName).catch(() => null));
  }

  async readStream(streamName: string, options: { fromVersion?: bigint; maxCount?: number } = {}): Promise<ReadStreamResult> {
    // One statement, one snapshot: the head and the events agree, so an aggregate built from them can append with
    // that head as its expected version without losing an update.
    const { rows } = await this.pool.query<Partial<EventRow> & { current_version: string | null }>(
      `WITH head AS (SELECT max(stream_version) AS current_version FROM ${this.table('events')} WHERE stream_name = $1)
       SELECT head.current_version::text AS current_version, e.*
         FROM head
         LEFT JOIN LATERAL (
           SELECT ${EVENT_COLUMNS} FROM ${this.table('events')}
            WHERE stream_name = $1 AND stream_version >= $2::bigint
            ORDER BY stream_version
            LIMIT $3
         ) e ON true`,
      [streamName, (options.fromVersion ?? 0n).toString(), options.maxCount ?? null],
    );
    const currentVersion = toBigIntOrNull(rows[0]?.current_version ?? null);
    const events = rows.filter((row): row is EventRow & { current_version: string | null } => row.global_position != null).map(toRecordedEvent);
    return { events, currentVersion };
  }

  aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>> {
    return aggregateByReading(this, streamName, options);
  }

  async readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]> {
    const types = options.types === undefined ? null : [...options.types];
    const { rows } = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM ${this.table('events')}
        WHERE global_position > $1::bigint${types === null ? '' : ' AND event_type = ANY($3::text[])'}
        ORDER BY global_position
        LIMIT $2`,
      types === null ? [options.after.toString(), Math.max(0, options.maxCount)] : [options.after.toString(), Math.max(0, options.maxCount), types],
    );
    return rows.map(toRecordedEvent);
  }

  async waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    if (this.closing) return;
    await this.notifier.listen();
    await this.notifier.wait(after, timeoutMs, async () => (await this.headPosition()) > after);
  }

  /** The database server's clock, in epoch milliseconds (hubs sharing the store compare theirs with it). */
  async serverTimeMillis(): Promise<number> {
    const { rows } = await this.pool.query<{ ms: string }>(`SELECT (extract(epoch from clock_timestamp()) * 1000)::text AS ms`);
    return Number(rows[0]?.ms);
  }

  /** Since when the database has refused writes, while it does (writesRefused). */
  private writesRefusedSince: string | null = null;

  /**
   * Whether the database takes writes now, for /health (the SQLite store's writeFailure, asked of the server): a
   * standby (pg_is_in_recovery) or default_transaction_read_only on answers every append 25006 while reads go on, and
   * /health said ok, so a load balancer kept sending uploads that all got 503. Null while it takes them.
   */
  async writesRefused(): Promise<Readonly<{ code: string; since: string }> | null> {
    const { rows } = await this.pool.query<{ refused: boolean }>(`SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS refused`);
    if (rows[0]?.refused !== true) {
      this.writesRefusedSince = null;
      return null;
    }
    this.writesRefusedSince ??= new Date().toISOString();
    return { code: READ_ONLY_CODE, since: this.writesRefusedSince };
  }

  async headPosition(): Promise<bigint> {
    const { rows } = await this.pool.query<{ head: string | null }>(`SELECT max(global_position)::text AS head FROM ${this.table('events')}`);
    return BigInt(rows[0]?.head ?? '0');
  }

  /**
   * Runs `work` in one transaction on a pooled connection: COMMIT when it resolves, ROLLBACK when it throws. For
   * projections, which update their tables and their checkpoint together so a crash never splits the two.
   */
  async withTransaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  /** One statement on a pooled connection, as its own transaction (for adapters sharing the schema: key store). */
  query<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<QueryResult<R>> {
    return this.pool.query<R>(text, [...values]);
  }

  /** VACUUM a table of the schema (see vacuumTable in sql.ts). */
  vacuum(table: string): Promise<void> {
    return vacuumTable(this.pool, this.table(table));
  }

  /** A pooled connection of the caller's own until it releases it (a registry rebuild's session lock). */
  connect(): Promise<PoolClient> {
    return this.pool.connect();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // The appends already queued are written (their callers wait for them); new ones are refused.
      if (this.flushing || this.flushScheduled || this.queue.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
      await this.notifier.close();
      await this.pool.end();
    })();
    return this.closing;
  }

  private async streamHead(streamName: string): Promise<bigint | null> {
    const { rows } = await this.pool.query<{ v: string | null }>(
      `SELECT max(stream_version)::text AS v FROM ${this.table('events')} WHERE stream_name = $1`,
      [streamName],
    );
    return toBigIntOrNull(rows[0]?.v ?? null);
  }
}

/** LISTEN/NOTIFY channel of one store (per schema, so stores in different schemas do not wake each other). */
function notifyChannel(schema: string): string {
  return `rts_events_${schema}`.slice(0, 63);
}

function toBigIntOrNull(value: string | null): bigint | null {
  return value === null ? null : BigInt(value);
}

export function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    type: row.event_type,
    data: row.data,
    metadata: row.metadata ?? {},
    streamName: row.stream_name,
    streamVersion: BigInt(row.stream_version),
    globalPosition: BigInt(row.global_position),
    recordedAt: row.recorded_at.toISOString(),
  };
}
