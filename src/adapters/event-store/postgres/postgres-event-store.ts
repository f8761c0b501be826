import { Pool, type PoolClient, type PoolConfig } from 'pg';
import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type AggregateOptions,
  type AggregateStreamResult,
  type AppendResult,
  type EventStore,
  type ExpectedVersion,
  type NewEvent,
  type ReadStreamResult,
  type RecordedEvent,
} from '../../../application/ports/event-store';
import { aggregateByReading } from '../aggregate-stream';
import { checkExpectedVersion, idempotencyOutcome, toJson, validateAppend } from '../append-rules';
import { AppendNotifier } from './append-notifier';
import { migrate } from './migrate';
import { inTransaction, isPgError, quoteIdent, UNIQUE_VIOLATION, vacuumTable } from './sql';

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
 * serialize (one fsync'd commit at a time); reads do not take the lock.
 *
 * The alternative (store `pg_current_xact_id()` per row, read only rows of transactions below
 * `pg_snapshot_xmin(pg_current_snapshot())`, order by (xid, position), as Marten/Eventuous-style readers do) keeps
 * writes concurrent, but its checkpoint is the pair (xid, position): ordering by xid does not agree with ordering
 * by position, so it cannot be squeezed into the port's one bigint. If append throughput ever matters more than
 * that, the port's checkpoint type is what has to change first.
 *
 * Because the whole append runs under the lock (idempotency check, head read, insert, notify), the head read is
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
}>;

type EventRow = {
  global_position: string;
  stream_name: string;
  stream_version: string;
  event_id: string;
  event_type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown> | null;
  recorded_at: Date;
};

const EVENT_COLUMNS = 'global_position, stream_name, stream_version, event_id, event_type, data, metadata, recorded_at';

export class PostgresEventStore implements EventStore {
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly pool: Pool,
    /** Schema holding the store's tables (projections may put theirs beside them). */
    readonly schema: string,
    private readonly notifier: AppendNotifier,
  ) {}

  /** Opens a pool and brings the schema up to date (idempotent; safe when several processes start together). */
  static async open(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
    const schema = options.schema ?? 'public';
    const config: PoolConfig = { connectionString: options.connectionString };
    if (options.maxConnections !== undefined) config.max = options.maxConnections;
    const pool = new Pool(config);
    pool.on('error', () => undefined); // an idle client died; the pool replaces it, queries report their own errors
    try {
      await migrate(pool, schema);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    const notifier = new AppendNotifier({ connectionString: options.connectionString }, notifyChannel(schema));
    return new PostgresEventStore(pool, schema, notifier);
  }

  /** The qualified name of a table in the store's schema, e.g. for a projection's own tables. */
  table(name: string): string {
    return `${quoteIdent(this.schema)}.${quoteIdent(name)}`;
  }

  async appendToStream(
    streamName: string,
    events: readonly NewEvent[],
    options: { expectedVersion?: ExpectedVersion } = {},
  ): Promise<AppendResult> {
    const expected = options.expectedVersion ?? 'any';
    validateAppend(streamName, events);
    const ids = events.map((event) => event.id);
    // Serialise before taking a connection and the lock: a bad payload fails without touching the database.
    const data = events.map((event) => toJson(event.data));
    const metadata = events.map((event) => toJson(event.metadata ?? {}));
    if (this.closing) throw new Error('event store is closed');

    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      // synchronous_commit=on: the append reports success only once its commit is flushed (a role or database
      // default of `off` must not weaken that for the log everything else is derived from).
      await client.query('BEGIN; SET LOCAL synchronous_commit = on');
      await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [APPEND_LOCK_CLASS, this.schema]);

      const known = await client.query<{ event_id: string; stream_name: string; stream_version: string; global_position: string }>(
        `SELECT event_id, stream_name, stream_version::text, global_position::text FROM ${this.table('events')} WHERE event_id = ANY($1::text[])`,
        [ids],
      );
      const byId = new Map(known.rows.map((row) => [row.event_id, row]));
      const outcome = idempotencyOutcome(
        streamName,
        events,
        ids.map((id) => {
          const row = byId.get(id);
          return row && { streamName: row.stream_name, streamVersion: BigInt(row.stream_version), globalPosition: BigInt(row.global_position) };
        }),
      );
      if (outcome !== 'new') {
        await client.query('ROLLBACK');
        return outcome;
      }
      const head = await client.query<{ v: string | null }>(
        `SELECT max(stream_version)::text AS v FROM ${this.table('events')} WHERE stream_name = $1`,
        [streamName],
      );
      const current = toBigIntOrNull(head.rows[0]?.v ?? null);
      checkExpectedVersion(streamName, expected, current);

      const first = current === null ? 0n : current + 1n;
      const inserted = await client.query<{ last: string }>(
        `WITH inserted AS (
           INSERT INTO ${this.table('events')} (stream_name, stream_version, event_id, event_type, data, metadata)
           SELECT $1, $2::bigint + n.ord - 1, n.id, n.type, n.data::jsonb, n.metadata::jsonb
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS n(id, type, data, metadata, ord)
            ORDER BY n.ord
           RETURNING global_position
         )
         SELECT max(global_position)::text AS last, pg_notify($7, max(global_position)::text) FROM inserted`,
        [
          streamName,
          first.toString(),
          ids,
          events.map((event) => event.type),
          data,
          metadata,
          this.notifier.channel,
        ],
      );
      await client.query('COMMIT');
      return {
        nextExpectedVersion: first + BigInt(events.length) - 1n,
        lastGlobalPosition: BigInt(inserted.rows[0]?.last ?? '0'),
        idempotent: false,
      };
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      if (isPgError(error) && error.code === UNIQUE_VIOLATION) {
        // Only reachable if something wrote without the append lock; report it in the port's terms.
        if (error.constraint === 'events_event_id_key') throw new IdempotencyViolationError(streamName, ids[0] ?? '');
        throw new ExpectedVersionConflictError(streamName, expected, await this.streamHead(streamName));
      }
      throw error;
    } finally {
      client.release(broken);
    }
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

  async readAll(options: { after: bigint; maxCount: number }): Promise<readonly RecordedEvent[]> {
    const { rows } = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM ${this.table('events')}
        WHERE global_position > $1::bigint
        ORDER BY global_position
        LIMIT $2`,
      [options.after.toString(), options.maxCount],
    );
    return rows.map(toRecordedEvent);
  }

  async waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    if (this.closing) return;
    await this.notifier.listen();
    await this.notifier.wait(after, timeoutMs, async () => (await this.headPosition()) > after);
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

  /** VACUUM a table of the schema (see vacuumTable in sql.ts). */
  vacuum(table: string): Promise<void> {
    return vacuumTable(this.pool, this.table(table));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
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

function toRecordedEvent(row: EventRow): RecordedEvent {
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
