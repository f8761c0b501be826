import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { rowToView, viewToRow, type RegistryRow } from './registry-rows';
import type { RecordedEvent } from '../../application/ports/event-store';
import type { RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, type RegistryEntryView } from '../../application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../domain/documents/document-entry';
import { MIGRATION_LOCK_CLASS, pollForLock } from '../event-store/postgres/migrate';
import { connectionConfig, createPool, inTransaction, LONG_WORK, quoteIdent, vacuumTable, type PostgresTimeouts } from '../event-store/postgres/sql';

/**
 * What the registry needs of PostgreSQL: a schema, and transactions on it. The PostgreSQL event store is one
 * (the registry then lives beside the events, in the store's schema); PostgresDatabase below is another, for a
 * registry in PostgreSQL next to an event store elsewhere (EventStoreDB).
 */
export type PgTransactor = Readonly<{
  schema: string;
  /** Qualified name of a table in the schema. */
  table(name: string): string;
  /** Runs `work` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  withTransaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T>;
  /** One statement on a pooled connection, as its own transaction (one round trip instead of BEGIN, it, COMMIT). */
  query<R extends QueryResultRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>>;
  /** VACUUM a table of the schema, outside any transaction (erasure: dead row versions leave the pages). */
  vacuum(table: string): Promise<void>;
}>;

/**
 * Creates a read model's tables in the hub's schema if missing (idempotent; safe when several processes open
 * together): under the store's migration lock, polled rather than waited for in a statement, since the store's
 * migrations may be building an index concurrently (migrate.ts). `what` names the tables in the wait's message.
 */
export const createInSchema = async (db: PgTransactor, what: string, ddl: string | QueryConfig): Promise<void> => {
  await db.withTransaction(async (client) => {
    await pollForLock(
      async () => (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)) AS ok', [MIGRATION_LOCK_CLASS, db.schema])).rows[0]!.ok,
      `${what} of schema ${db.schema}`,
    );
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(db.schema)}`);
    await client.query(`SET LOCAL search_path TO ${quoteIdent(db.schema)}`);
    await client.query(ddl);
  });
};

/** Advisory lock class of registry writes (two-key form: class, hashtext(schema)). Distinct from the store's. */
export const REGISTRY_LOCK_CLASS = 0x52545303; // 'RTS' 03

const PROJECTION = 'registry';

/**
 * The registry's tables, created idempotently at open under the migration advisory lock (so two hub processes
 * starting together do not race on CREATE TABLE IF NOT EXISTS). Kept as a string so dist/ carries it. Runs with
 * search_path set to the schema. A later change goes in as a new statement that is itself idempotent.
 */
export const REGISTRY_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS registry_entries (
  unique_id            text             PRIMARY KEY,
  patient_key          text             NOT NULL,
  repository_unique_id text             NOT NULL,
  status               text             NOT NULL CHECK (status IN ('Approved', 'Deprecated')),
  creation_time        text             NOT NULL,
  service_start_time   text             NOT NULL,
  service_start_epoch  bigint           NOT NULL,
  mime_type            text             NOT NULL,
  hash                 text             NOT NULL,
  size                 integer          NOT NULL,
  replaces             text,
  replaced_by          text,
  observation_id       text,
  systolic             double precision NOT NULL,
  diastolic            double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_entries_by_patient_time ON registry_entries (patient_key, status, service_start_epoch);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS erased_patients (
  patient_key text PRIMARY KEY
);
`;


/** The rows an event's data can change: its document's own, and the one a replacement replaces. */
const rowsTouchedBy = (data: { uniqueId: string; replaces?: string | null }): string[] =>
  typeof data.replaces === 'string' ? [data.uniqueId, data.replaces] : [data.uniqueId];

const COLUMNS = `unique_id text, patient_key text, repository_unique_id text, status text, creation_time text, service_start_time text,
  service_start_epoch bigint, mime_type text, hash text, size integer, replaces text, replaced_by text, observation_id text,
  systolic double precision, diastolic double precision`;



/**
 * The registry projection in PostgreSQL. Rows and checkpoint change in one transaction (PgTransactor), so a
 * crash never leaves them disagreeing.
 *
 * Several hub processes share one schema, so several projectors feed the same tables. Each apply therefore takes
 * a transaction-scoped advisory lock, re-reads the stored checkpoint under it and applies only the events above
 * it: without that, a slower process could write a row computed from a state read before another's commit (a
 * Deprecated row turned back to Approved) or move the checkpoint backwards. The checkpoint only ever grows.
 */
export class PostgresRegistry implements RegistryReadModel {
  private constructor(private readonly db: PgTransactor) {}

  /** Creates the tables if missing (idempotent; safe when several processes open together). */
  static async open(db: PgTransactor): Promise<PostgresRegistry> {
    // LONG_WORK: an index added later is built over every existing row.
    await createInSchema(db, 'the registry tables', { text: REGISTRY_SCHEMA_SQL, ...LONG_WORK });
    return new PostgresRegistry(db);
  }

  async checkpoint(): Promise<bigint> {
    return this.db.withTransaction((client) => this.storedCheckpoint(client));
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    await this.db.withTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [REGISTRY_LOCK_CLASS, this.db.schema]);
      const stored = await this.storedCheckpoint(client);
      if (checkpoint <= stored) return; // another process applied these already
      const fresh = events.filter((e) => e.globalPosition > stored && isDocumentEvent(e));
      if (fresh.length > 0) {
        // Each event's own row, and the row a replacement takes out of the queries.
        const ids = [...new Set(fresh.flatMap((e) => rowsTouchedBy(e.data as { uniqueId: string; replaces?: string | null })))];
        const { rows } = await client.query<RegistryRow>(`SELECT * FROM ${this.db.table('registry_entries')} WHERE unique_id = ANY($1::text[])`, [ids]);
        const current = new Map(rows.map((r) => [r.unique_id, rowToView(r)]));
        // Documents of erased patients get no row (see forgetPatient).
        const submittedKeys = [...new Set(fresh.filter((e) => e.type === 'DocumentSubmitted').map((e) => String(e.data['patientKey'])))];
        const erased = new Set(
          submittedKeys.length === 0
            ? []
            : (await client.query<{ patient_key: string }>(`SELECT patient_key FROM ${this.db.table('erased_patients')} WHERE patient_key = ANY($1::text[])`, [submittedKeys])).rows.map((r) => r.patient_key),
        );
        const changed = new Map<string, RegistryEntryView>();
        for (const e of fresh) {
          const event = { type: e.type, data: e.data } as DocumentEvent;
          if (event.type === 'DocumentSubmitted' && erased.has(event.data.patientKey)) continue;
          for (const next of evolveRegistry((id) => current.get(id) ?? null, event)) {
            current.set(next.uniqueId, next);
            changed.set(next.uniqueId, next);
          }
        }
        if (changed.size > 0) {
          // One statement for the whole batch. A row's identity columns never change after it is inserted.
          await client.query(
            `INSERT INTO ${this.db.table('registry_entries')}
             SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(${COLUMNS})
             ON CONFLICT (unique_id) DO UPDATE SET status = excluded.status, replaced_by = excluded.replaced_by`,
            [JSON.stringify([...changed.values()].map(viewToRow))],
          );
        }
      }
      await client.query(
        `INSERT INTO ${this.db.table('projection_checkpoints')} (name, position) VALUES ($1, $2::bigint)
         ON CONFLICT (name) DO UPDATE SET position = GREATEST(${this.db.table('projection_checkpoints')}.position, excluded.position)`,
        [PROJECTION, checkpoint.toString()],
      );
    });
  }

  async findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    return this.db.withTransaction(async (client) => {
      const { rows } = await client.query<RegistryRow>(
        `SELECT * FROM ${this.db.table('registry_entries')}
          WHERE patient_key = $1 AND status = 'Approved' AND service_start_epoch >= $2::bigint AND service_start_epoch < $3::bigint
          ORDER BY service_start_epoch, unique_id COLLATE "C"
          LIMIT $4`,
        [patientKey, fromEpoch, toEpoch, limit],
      );
      return rows.map(rowToView);
    });
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    return this.db.withTransaction(async (client) => {
      const { rows } = await client.query<RegistryRow>(`SELECT * FROM ${this.db.table('registry_entries')} WHERE unique_id = $1`, [uniqueId]);
      return rows[0] ? rowToView(rows[0]) : null;
    });
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    return this.db.withTransaction(async (client) => {
      const { rows } = await client.query(`SELECT 1 FROM ${this.db.table('registry_entries')} WHERE patient_key = $1 LIMIT 1`, [patientKey]);
      return rows.length > 0;
    });
  }

  /**
   * Erasure: every row of the patient goes, and a VACUUM takes their dead row versions out of the pages. The
   * patient is marked erased in the same transaction, under the registry's lock: a document of theirs later in the
   * events gets no row, whichever hub projects it. Another hub that still held the patient's key (its cache forgets
   * it within 60 s) could seal an upload after the erasure; the upload stays unreadable, and out of the registry.
   */
  async forgetPatient(patientKey: string): Promise<void> {
    await this.db.withTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [REGISTRY_LOCK_CLASS, this.db.schema]);
      await client.query(`DELETE FROM ${this.db.table('registry_entries')} WHERE patient_key = $1`, [patientKey]);
      await client.query(`INSERT INTO ${this.db.table('erased_patients')} (patient_key) VALUES ($1) ON CONFLICT DO NOTHING`, [patientKey]);
    });
    await this.db.vacuum('registry_entries');
  }

  async reset(): Promise<void> {
    await this.db.withTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [REGISTRY_LOCK_CLASS, this.db.schema]);
      // LONG_WORK: a rebuild of a large registry deletes every row, which may rightly take longer than a request.
      await client.query({ text: `DELETE FROM ${this.db.table('registry_entries')}`, ...LONG_WORK });
      await client.query({ text: `DELETE FROM ${this.db.table('erased_patients')}`, ...LONG_WORK }); // the rebuild replays the erasures
      await client.query(`DELETE FROM ${this.db.table('projection_checkpoints')} WHERE name = $1`, [PROJECTION]);
    });
  }

  private async storedCheckpoint(client: PoolClient): Promise<bigint> {
    const { rows } = await client.query<{ position: string }>(
      `SELECT position::text AS position FROM ${this.db.table('projection_checkpoints')} WHERE name = $1`,
      [PROJECTION],
    );
    return rows[0] ? BigInt(rows[0].position) : 0n;
  }
}

/**
 * A PostgreSQL schema reached through its own pool: for the registry of a hub whose events are in EventStoreDB.
 * (With the PostgreSQL event store, pass the store itself.)
 */
export class PostgresDatabase implements PgTransactor {
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly pool: Pool,
    readonly schema: string,
  ) {}

  static open(options: Readonly<{ connectionString: string; schema?: string; maxConnections?: number; timeouts?: PostgresTimeouts }>): PostgresDatabase {
    const pool = createPool({ ...connectionConfig(options.connectionString, options.timeouts), ...(options.maxConnections ? { max: options.maxConnections } : {}) });
    return new PostgresDatabase(pool, options.schema ?? 'public');
  }

  table(name: string): string {
    return `${quoteIdent(this.schema)}.${quoteIdent(name)}`;
  }

  async withTransaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  query<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<QueryResult<R>> {
    return this.pool.query<R>(text, [...values]);
  }

  /** VACUUM a table of the schema (see vacuumTable in sql.ts). */
  vacuum(table: string): Promise<void> {
    return vacuumTable(this.pool, this.table(table));
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }
}
