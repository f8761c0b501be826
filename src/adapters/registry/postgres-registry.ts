import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { openRow, openRows, sealedRowColumns, sealRowValues, type PgRegistryRow } from './sealed-registry-rows';
import type { RecordedEvent } from '../../application/ports/event-store';
import { ProjectionBehind } from '../../application/projector';
import type { PatientDataProtection } from '../../application/ports/patient-data-protection';
import type { RegistryPosition, RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, evolveRegistryEntry, type RegistryEntryView } from '../../application/projections/registry-projection';
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
  /**
   * VACUUM a table of the schema, outside any transaction (erasure: the deleted rows' dead versions stop being
   * reachable through the table and its indexes; their bytes stay in the freed space until reused).
   */
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
 *
 * A row's personal values are sealed in `sealed` (see sealed-registry-rows.ts for which, and why the others are
 * in clear); their clear columns are NULL on a sealed row and kept for the rows written before sealing (2026-12),
 * which open() re-seals. A table of that time gets `sealed` and loses the clear columns' NOT NULL in one ALTER,
 * run only when `sealed` is missing: it takes the table's exclusive lock, which every later start would
 * otherwise take again and wait for behind the other hubs' queries.
 */
export const REGISTRY_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS registry_entries (
  unique_id            text             PRIMARY KEY,
  patient_key          text             NOT NULL,
  repository_unique_id text             NOT NULL,
  status               text             NOT NULL CHECK (status IN ('Approved', 'Deprecated')),
  creation_time        text,
  service_start_time   text,
  service_start_epoch  bigint           NOT NULL,
  mime_type            text             NOT NULL,
  hash                 text,
  size                 integer,
  replaces             text,
  replaced_by          text,
  observation_id       text,
  systolic             double precision,
  diastolic            double precision,
  sealed               text
);
DO $migrate$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                  WHERE table_schema = current_schema() AND table_name = 'registry_entries' AND column_name = 'sealed') THEN
    ALTER TABLE registry_entries
      ADD COLUMN sealed text,
      ALTER COLUMN creation_time DROP NOT NULL,
      ALTER COLUMN service_start_time DROP NOT NULL,
      ALTER COLUMN hash DROP NOT NULL,
      ALTER COLUMN size DROP NOT NULL,
      ALTER COLUMN systolic DROP NOT NULL,
      ALTER COLUMN diastolic DROP NOT NULL;
  END IF;
END
$migrate$;
CREATE INDEX IF NOT EXISTS registry_entries_by_patient_time ON registry_entries (patient_key, status, service_start_epoch);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS erased_patients (
  patient_key text PRIMARY KEY
);
`;

/** Rows re-sealed per transaction at open (see resealClearRows). */
const RESEAL_BATCH = 500;

/** The rows an event's data can change: its document's own, and the one a replacement replaces. */
const rowsTouchedBy = (data: { uniqueId: string; replaces?: string | null }): string[] =>
  typeof data.replaces === 'string' ? [data.uniqueId, data.replaces] : [data.uniqueId];

/** The columns a new row is written with (sealedRowColumns); the clear personal ones stay NULL. */
const WRITTEN = `unique_id text, patient_key text, repository_unique_id text, status text, service_start_epoch bigint, mime_type text,
  replaces text, replaced_by text, sealed text`;
const WRITTEN_NAMES = 'unique_id, patient_key, repository_unique_id, status, service_start_epoch, mime_type, replaces, replaced_by, sealed';

const isPatientErased = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === 'patient_erased';



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
  private constructor(
    private readonly db: PgTransactor,
    private readonly protection: PatientDataProtection,
  ) {}

  /**
   * Creates the tables if missing (idempotent; safe when several processes open together), then re-seals the rows
   * still in clear (resealClearRows). `protection` must be the hub's own (the one its documents are sealed and its
   * patients erased with): the rows are sealed under the same keys. `onResealed` hears how many were, when any:
   * the operator has to know (their clear versions stay in the table's files until a VACUUM FULL).
   */
  static async open(db: PgTransactor, protection: PatientDataProtection, onResealed?: (rows: number) => void): Promise<PostgresRegistry> {
    // LONG_WORK: an index added later is built over every existing row.
    await createInSchema(db, 'the registry tables', { text: REGISTRY_SCHEMA_SQL, ...LONG_WORK });
    const registry = new PostgresRegistry(db, protection);
    const resealed = await registry.resealClearRows();
    if (resealed > 0) onResealed?.(resealed);
    return registry;
  }

  /**
   * Seals the rows written in clear before sealing (their values then leave the clear columns), in transactions
   * of RESEAL_BATCH rows; returns how many. Safe beside running hubs and another hub doing the same: the rows are
   * locked FOR UPDATE SKIP LOCKED (two starting hubs share the work), the UPDATE touches only `sealed` and the
   * clear columns (a projection's upsert sets status and replaced_by), and skips a row sealed meanwhile. A row
   * whose patient is erased is left for forgetPatient, which deletes it. Only the live rows change: the clear
   * versions stay in free space and WAL until overwritten, as any deleted row (README).
   */
  async resealClearRows(): Promise<number> {
    let after = '';
    let sealedCount = 0;
    for (;;) {
      const page = await this.db.withTransaction(async (client) => {
        const { rows } = await client.query<PgRegistryRow>(
          `SELECT * FROM ${this.db.table('registry_entries')} WHERE sealed IS NULL AND unique_id > $1 ORDER BY unique_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [after, RESEAL_BATCH],
        );
        const updates: { unique_id: string; sealed: string }[] = [];
        for (const row of rows) {
          const view = await openRow(this.protection, row);
          if (view === null) continue;
          try {
            updates.push({ unique_id: row.unique_id, sealed: await sealRowValues(this.protection, view) });
          } catch (error) {
            if (!isPatientErased(error)) throw error;
          }
        }
        if (updates.length > 0) {
          await client.query(
            `UPDATE ${this.db.table('registry_entries')} AS r
                SET sealed = x.sealed, creation_time = NULL, service_start_time = NULL, hash = NULL, size = NULL,
                    observation_id = NULL, systolic = NULL, diastolic = NULL
               FROM jsonb_to_recordset($1::jsonb) AS x(unique_id text, sealed text)
              WHERE r.unique_id = x.unique_id AND r.sealed IS NULL`,
            [JSON.stringify(updates)],
          );
        }
        return { count: updates.length, last: rows.at(-1)?.unique_id, full: rows.length === RESEAL_BATCH };
      });
      sealedCount += page.count;
      if (!page.full || page.last === undefined) return sealedCount;
      after = page.last;
    }
  }

  async checkpoint(): Promise<bigint> {
    return this.db.withTransaction((client) => this.storedCheckpoint(client));
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void> {
    // New rows' values are sealed before the transaction, so that fetching a key is not waited for under the
    // registry's lock. A submission whose patient is erased meanwhile gets no envelope, and no row.
    const envelopes = await this.sealSubmissions(events);
    await this.db.withTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [REGISTRY_LOCK_CLASS, this.db.schema]);
      const stored = await this.storedCheckpoint(client);
      // Reset since the page was read (a rebuild here or in another process): see ProjectionBehind.
      if (from !== undefined && stored < from) throw new ProjectionBehind(stored, from);
      if (checkpoint <= stored) return; // another process applied these already
      const fresh = events.filter((e) => e.globalPosition > stored && isDocumentEvent(e));
      if (fresh.length > 0) {
        // Each event's own row, and the row a replacement takes out of the queries.
        const ids = [...new Set(fresh.flatMap((e) => rowsTouchedBy(e.data as { uniqueId: string; replaces?: string | null })))];
        const { rows } = await client.query<PgRegistryRow>(`SELECT * FROM ${this.db.table('registry_entries')} WHERE unique_id = ANY($1::text[])`, [ids]);
        const inTable = new Set(rows.map((r) => r.unique_id));
        const current = new Map((await openRows(this.protection, rows)).map((v) => [v.uniqueId, v]));
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
          if (event.type === 'DocumentSubmitted' && (erased.has(event.data.patientKey) || !envelopes.has(event.data.uniqueId))) continue;
          for (const next of evolveRegistry((id) => current.get(id) ?? null, event)) {
            current.set(next.uniqueId, next);
            changed.set(next.uniqueId, next);
          }
        }
        if (changed.size > 0) {
          // One statement for the whole batch. A row's identity columns and sealed values never change after it is
          // inserted, so a stored row's update needs no envelope (the INSERT's values are discarded on conflict).
          const written = [...changed.values()].map((v) => {
            const sealed = envelopes.get(v.uniqueId) ?? null;
            if (sealed === null && !inTable.has(v.uniqueId)) throw new Error(`registry: new row ${v.uniqueId} has no sealed values`);
            return sealedRowColumns(v, sealed);
          });
          await client.query(
            `INSERT INTO ${this.db.table('registry_entries')} (${WRITTEN_NAMES})
             SELECT ${WRITTEN_NAMES} FROM jsonb_to_recordset($1::jsonb) AS x(${WRITTEN})
             ON CONFLICT (unique_id) DO UPDATE SET status = excluded.status, replaced_by = excluded.replaced_by`,
            [JSON.stringify(written)],
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

  /** The sealed values of each submission's row, by uniqueId (the row a submission creates depends on it alone). */
  private async sealSubmissions(events: readonly RecordedEvent[]): Promise<Map<string, string>> {
    const envelopes = new Map<string, string>();
    for (const e of events) {
      if (e.type !== 'DocumentSubmitted' || !isDocumentEvent(e)) continue;
      const row = evolveRegistryEntry(null, { type: e.type, data: e.data } as DocumentEvent);
      if (row === null || envelopes.has(row.uniqueId)) continue;
      try {
        envelopes.set(row.uniqueId, await sealRowValues(this.protection, row));
      } catch (error) {
        if (!isPatientErased(error)) throw error;
      }
    }
    return envelopes;
  }

  // The queries open the rows after their transaction: a key fetched from the key store takes a connection of its
  // own, and is not waited for while holding one.
  async findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    const rows = await this.db.withTransaction(async (client) => {
      const { rows } = await client.query<PgRegistryRow>(
        `SELECT * FROM ${this.db.table('registry_entries')}
          WHERE patient_key = $1 AND status = 'Approved' AND service_start_epoch >= $2::bigint AND service_start_epoch < $3::bigint
          ORDER BY service_start_epoch, unique_id COLLATE "C"
          LIMIT $4`,
        [patientKey, fromEpoch, toEpoch, limit],
      );
      return rows;
    });
    return openRows(this.protection, rows);
  }

  async findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]> {
    const rows = await this.db.withTransaction(async (client) => {
      const { rows } = await client.query<PgRegistryRow>(
        `SELECT * FROM ${this.db.table('registry_entries')}
          WHERE patient_key = $1 AND (service_start_epoch, unique_id COLLATE "C") > ($2::bigint, $3::text COLLATE "C")
          ORDER BY service_start_epoch, unique_id COLLATE "C"
          LIMIT $4`,
        [patientKey, after?.serviceStartEpoch ?? Number.MIN_SAFE_INTEGER, after?.uniqueId ?? '', limit],
      );
      return rows;
    });
    return openRows(this.protection, rows);
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    const row = await this.db.withTransaction(async (client) => {
      const { rows } = await client.query<PgRegistryRow>(`SELECT * FROM ${this.db.table('registry_entries')} WHERE unique_id = $1`, [uniqueId]);
      return rows[0];
    });
    return row ? openRow(this.protection, row) : null;
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    return this.db.withTransaction(async (client) => {
      const { rows } = await client.query(`SELECT 1 FROM ${this.db.table('registry_entries')} WHERE patient_key = $1 LIMIT 1`, [patientKey]);
      return rows.length > 0;
    });
  }

  /**
   * Erasure: every row of the patient goes. The patient is marked erased in the same transaction, under the
   * registry's lock: a document of theirs later in the events gets no row, whichever hub projects it. Another hub
   * that still held the patient's key (its cache forgets it within 60 s) could seal an upload after the erasure;
   * the upload stays unreadable, and out of the registry.
   *
   * What keeps the deleted rows' values from being read is the erasure of the patient's data key: they are sealed
   * under it. The DELETE does not remove them from the disk: PostgreSQL never overwrites freed space, so the old
   * row versions stay in the table's pages (VACUUM marks their space free, it does not zero it) until reused, and
   * in the WAL, WAL archives and base backups. The VACUUM is kept for what it does do: the dead rows and their
   * index entries stop being reachable through the table at once, instead of at autovacuum's next pass. Their
   * clear columns (pseudonymous key, uniqueId, status, measurement time in seconds) stay readable in those
   * copies: see sealed-registry-rows.ts. Rows written in clear before sealing leave their old values there too.
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
