import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { openRow, openRows, sealedRowColumns, sealRowValues, type PgRegistryRow } from './sealed-registry-rows';
import type { RecordedEvent } from '../../application/ports/event-store';
import { ProjectionBehind, type Replacement } from '../../application/projector';
import type { PatientDataProtection } from '../../application/ports/patient-data-protection';
import type { RegistryPosition, RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, evolveRegistryEntry, type RegistryEntryView } from '../../application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../domain/documents/document-entry';
import { MIGRATION_LOCK_CLASS, pollForLock } from '../event-store/postgres/migrate';
import { BEGIN, connectionConfig, createPool, inTransaction, LONG_WORK, NO_SERVER_BOUNDS, quoteIdent, rollback, vacuumTable, type PostgresTimeouts } from '../event-store/postgres/sql';

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
  /**
   * A pooled connection of the caller's own until it releases it: a registry rebuild holds its session lock on one
   * (rebuildBeside).
   */
  connect(): Promise<PoolClient>;
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
    await client.query(NO_SERVER_BOUNDS.local); // an index added later is built over every existing row
    await client.query(ddl);
  });
};

/** Advisory lock class of registry writes (two-key form: class, hashtext(schema)). Distinct from the store's. */
export const REGISTRY_LOCK_CLASS = 0x52545303; // 'RTS' 03
/** SQLSTATE of a table that does not exist (a replacement swapped in or dropped meanwhile). */
const UNDEFINED_TABLE = '42P01';
/** Advisory lock class of a registry rebuild: session-level, held by the rebuild throughout (rebuildBeside). */
export const REGISTRY_REBUILD_LOCK_CLASS = 0x52545305; // 'RTS' 05

/**
 * Where a registry's rows, erased patients and checkpoint live: the live registry's, or a rebuild's replacement
 * (rebuildBeside), which its own lock key keeps apart from the live registry's applies.
 */
type RegistryTables = Readonly<{ entries: string; erased: string; projection: string; lockKey: (schema: string) => string }>;

const LIVE: RegistryTables = { entries: 'registry_entries', erased: 'erased_patients', projection: 'registry', lockKey: (schema) => schema };
const REPLACEMENT: RegistryTables = {
  entries: 'registry_entries_rebuild',
  erased: 'erased_patients_rebuild',
  projection: 'registry-rebuild',
  lockKey: (schema) => `${schema}/rebuild`,
};

/**
 * The rows' table (`table`, a name in the schema) with its index, as the live registry and a rebuild's replacement
 * (rebuildBeside) have it. The constraints and the index take their names from the table's: a replacement swapped in
 * gets the live names back (swapIn).
 */
const entriesTableSql = (table: string): string => `CREATE TABLE IF NOT EXISTS ${table} (
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
CREATE INDEX IF NOT EXISTS ${table}_by_patient_time ON ${table} (patient_key, status, service_start_epoch);`;

/** The erased patients' table (see forgetPatient), as entriesTableSql. */
const erasedTableSql = (table: string): string => `CREATE TABLE IF NOT EXISTS ${table} (
  patient_key text PRIMARY KEY
);`;

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
${entriesTableSql('registry_entries')}
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
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL
);
${erasedTableSql('erased_patients')}
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
 * Deprecated row turned back to Approved) or move the checkpoint backwards. The checkpoint only ever grows, but for
 * a rebuild's replacement forced in behind it (RegistryReplacement.swapIn): every hub's projector then applies the
 * events after it again.
 */
export class PostgresRegistry implements RegistryReadModel {
  private constructor(
    private readonly db: PgTransactor,
    private readonly protection: PatientDataProtection,
    private readonly tables: RegistryTables = LIVE,
  ) {}

  private get entries(): string {
    return this.db.table(this.tables.entries);
  }

  private get erased(): string {
    return this.db.table(this.tables.erased);
  }

  /** This registry's advisory lock, in the transaction of `client` (see the class's comment). */
  private async lock(client: PoolClient): Promise<void> {
    await waitForRegistryLock(client, this.tables.lockKey(this.db.schema));
  }

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
          `SELECT * FROM ${this.entries} WHERE sealed IS NULL AND unique_id > $1 ORDER BY unique_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
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
            `UPDATE ${this.entries} AS r
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
      await this.lock(client);
      const stored = await this.storedCheckpoint(client);
      // Reset since the page was read (a rebuild here or in another process): see ProjectionBehind.
      if (from !== undefined && stored < from) throw new ProjectionBehind(stored, from);
      if (checkpoint <= stored) return; // another process applied these already
      const fresh = events.filter((e) => e.globalPosition > stored && isDocumentEvent(e));
      if (fresh.length > 0) {
        // Each event's own row, and the row a replacement takes out of the queries.
        const ids = [...new Set(fresh.flatMap((e) => rowsTouchedBy(e.data as { uniqueId: string; replaces?: string | null })))];
        const { rows } = await client.query<PgRegistryRow>(`SELECT * FROM ${this.entries} WHERE unique_id = ANY($1::text[])`, [ids]);
        const inTable = new Set(rows.map((r) => r.unique_id));
        const current = new Map((await openRows(this.protection, rows)).map((v) => [v.uniqueId, v]));
        // Documents of erased patients get no row (see forgetPatient).
        const submittedKeys = [...new Set(fresh.filter((e) => e.type === 'DocumentSubmitted').map((e) => String(e.data['patientKey'])))];
        const erased = new Set(
          submittedKeys.length === 0
            ? []
            : (await client.query<{ patient_key: string }>(`SELECT patient_key FROM ${this.erased} WHERE patient_key = ANY($1::text[])`, [submittedKeys])).rows.map((r) => r.patient_key),
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
            `INSERT INTO ${this.entries} (${WRITTEN_NAMES})
             SELECT ${WRITTEN_NAMES} FROM jsonb_to_recordset($1::jsonb) AS x(${WRITTEN})
             ON CONFLICT (unique_id) DO UPDATE SET status = excluded.status, replaced_by = excluded.replaced_by`,
            [JSON.stringify(written)],
          );
        }
      }
      await client.query(
        `INSERT INTO ${this.db.table('projection_checkpoints')} (name, position) VALUES ($1, $2::bigint)
         ON CONFLICT (name) DO UPDATE SET position = GREATEST(${this.db.table('projection_checkpoints')}.position, excluded.position)`,
        [this.tables.projection, checkpoint.toString()],
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
        `SELECT * FROM ${this.entries}
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
    const rows = await this.db.withTransaction((client) => this.pageOf(client, patientKey, after?.serviceStartEpoch ?? Number.MIN_SAFE_INTEGER, after?.uniqueId ?? '', limit));
    return openRows(this.protection, rows);
  }

  /** A patient's rows after (epoch, uniqueId) in the registry's order, at most `limit`: findAllOf's and allEntriesOf's page. */
  private async pageOf(client: PoolClient, patientKey: string, afterEpoch: number | string, afterId: string, limit: number): Promise<PgRegistryRow[]> {
    const { rows } = await client.query<PgRegistryRow>(
      `SELECT * FROM ${this.entries}
        WHERE patient_key = $1 AND (service_start_epoch, unique_id COLLATE "C") > ($2::bigint, $3::text COLLATE "C")
        ORDER BY service_start_epoch, unique_id COLLATE "C"
        LIMIT $4`,
      [patientKey, afterEpoch, afterId, limit],
    );
    return rows;
  }

  /**
   * Every page in one REPEATABLE READ transaction: each sees the rows as of its first page, whatever this or another
   * hub's projector commits meanwhile (READ COMMITTED, the store's default, gave each page the rows of its own moment).
   * Read only: it takes no lock a projector waits for. The rows are opened after it, as the other queries do.
   */
  async allEntriesOf(patientKey: string, pageSize: number): Promise<readonly RegistryEntryView[]> {
    const rows = await this.db.withTransaction(async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const all: PgRegistryRow[] = [];
      for (let last: PgRegistryRow | undefined; ; last = all[all.length - 1]) {
        const rows = await this.pageOf(client, patientKey, last?.service_start_epoch ?? Number.MIN_SAFE_INTEGER, last?.unique_id ?? '', pageSize);
        all.push(...rows);
        if (rows.length < pageSize) return all;
      }
    });
    return openRows(this.protection, rows);
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    const row = await this.db.withTransaction(async (client) => {
      const { rows } = await client.query<PgRegistryRow>(`SELECT * FROM ${this.entries} WHERE unique_id = $1`, [uniqueId]);
      return rows[0];
    });
    return row ? openRow(this.protection, row) : null;
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    return this.db.withTransaction(async (client) => {
      const { rows } = await client.query(`SELECT 1 FROM ${this.entries} WHERE patient_key = $1 LIMIT 1`, [patientKey]);
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
    const inReplacement = await this.db.withTransaction(async (client) => {
      await this.lock(client);
      await client.query(`DELETE FROM ${this.entries} WHERE patient_key = $1`, [patientKey]);
      await client.query(`INSERT INTO ${this.erased} (patient_key) VALUES ($1) ON CONFLICT DO NOTHING`, [patientKey]);
      return this.tables === LIVE ? this.forgetInReplacement(client, patientKey) : 0;
    });
    // The replacement's dead rows too, as the live ones below; it may have been swapped in or dropped meanwhile.
    if (inReplacement > 0) {
      await this.db.vacuum(REPLACEMENT.entries).catch((error: unknown) => {
        if ((error as { code?: unknown } | null)?.code !== UNDEFINED_TABLE && (error as { cause?: { code?: unknown } } | null)?.cause?.code !== UNDEFINED_TABLE) throw error;
      });
    }
    // A replacement's dead rows go in one VACUUM once it is swapped in (RegistryReplacement): a VACUUM per
    // erasure replayed may wait seconds for other sessions each.
    if (this.tables === LIVE) await this.db.vacuum(this.tables.entries);
    else this.forgotAny = true;
  }

  /**
   * The live registry's erasure forgets the patient in a rebuild's replacement too, when the schema has one (being
   * built, or left by a rebuild that stopped), in the same transaction: the replay put the rows of every document of
   * theirs it passed there, and would keep them until it reached the PatientErased (a pg_dump meanwhile copied
   * them), or for good when the rebuild stopped. Under the replacement's lock, taken after the live one (the order
   * every caller keeps), so that no replay apply, creation or drop of the replacement runs meanwhile.
   */
  private async forgetInReplacement(client: PoolClient, patientKey: string): Promise<number> {
    await waitForRegistryLock(client, REPLACEMENT.lockKey(this.db.schema));
    const entries = this.db.table(REPLACEMENT.entries);
    const erased = this.db.table(REPLACEMENT.erased);
    const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS present', [entries, erased]);
    if (!rows[0]?.present) return 0;
    const { rowCount } = await client.query(`DELETE FROM ${entries} WHERE patient_key = $1`, [patientKey]);
    await client.query(`INSERT INTO ${erased} (patient_key) VALUES ($1) ON CONFLICT DO NOTHING`, [patientKey]);
    return rowCount ?? 0;
  }

  /** A replacement's: whether it forgot any patient (its rows then want a VACUUM once swapped in). */
  forgotAny = false;

  /**
   * A rebuild that leaves this registry whole, for this hub and every other on the schema, while it runs. The
   * replacement's tables are created empty beside the live ones, fed from the first event by the rebuilding hub's
   * projector while the live ones go on serving and being fed by every hub's, and swapped in by name once they
   * hold all the live ones hold (RegistryReplacement.swapIn): the live tables are dropped, so their files, with
   * every dead row version in them (erased patients' rows, rows once written in clear), leave the disk.
   *
   * One rebuild per schema at a time: it holds a session lock on a connection of its own from here to close(); a
   * second rebuild, in this process or another, waits for it. A replacement left by a rebuild whose process ended
   * is dropped first: it may have followed an older build's rules.
   */
  async rebuildBeside(): Promise<Replacement<PostgresRegistry>> {
    if (this.tables !== LIVE) throw new Error('registry: a replacement has no rebuild of its own');
    const client = await this.db.connect();
    try {
      await pollForLock(
        async () =>
          (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [REGISTRY_REBUILD_LOCK_CLASS, this.db.schema])).rows[0]!.ok,
        `the registry rebuild of schema ${this.db.schema}`,
      );
      await onConnection(client, this.db.schema, async () => {
        await waitForRegistryLock(client, REPLACEMENT.lockKey(this.db.schema)); // see forgetInReplacement
        await client.query(`DROP TABLE IF EXISTS ${REPLACEMENT.entries}, ${REPLACEMENT.erased}`);
        await client.query(entriesTableSql(REPLACEMENT.entries));
        await client.query(erasedTableSql(REPLACEMENT.erased));
        // Every erasure the live registry has applied, from the start: the live one may forget a patient before
        // their key is gone everywhere (a hub's projector applies the PatientErased as soon as it is appended, before
        // the erasing hub deletes the key; another hub's cache keeps it until its subscriber sees the event, up to
        // its TTL), and the replay, opening their documents meanwhile, would give them rows here until it reached the
        // PatientErased. Erasure is for good, as the swap's union says. An erasure committing meanwhile waits for this
        // transaction under the replacement's lock (forgetInReplacement) and then forgets the patient here itself.
        await client.query(`INSERT INTO ${REPLACEMENT.erased} (patient_key) SELECT patient_key FROM erased_patients ON CONFLICT DO NOTHING`);
        await client.query('DELETE FROM projection_checkpoints WHERE name = $1', [REPLACEMENT.projection]);
      });
    } catch (error) {
      client.release(error instanceof Error ? error : new Error(String(error))); // the session, and its lock, end
      throw error;
    }
    return new RegistryReplacement(client, this.db.schema, new PostgresRegistry(this.db, this.protection, REPLACEMENT), () => this.db.vacuum(LIVE.entries));
  }

  async reset(): Promise<void> {
    await this.db.withTransaction(async (client) => {
      await this.lock(client);
      // LONG_WORK: a rebuild of a large registry deletes every row, which may rightly take longer than a request.
      await client.query(NO_SERVER_BOUNDS.local);
      await client.query({ text: `DELETE FROM ${this.entries}`, ...LONG_WORK });
      await client.query({ text: `DELETE FROM ${this.erased}`, ...LONG_WORK }); // the rebuild replays the erasures
      await client.query(`DELETE FROM ${this.db.table('projection_checkpoints')} WHERE name = $1`, [this.tables.projection]);
    });
  }

  private async storedCheckpoint(client: PoolClient): Promise<bigint> {
    const { rows } = await client.query<{ position: string }>(
      `SELECT position::text AS position FROM ${this.db.table('projection_checkpoints')} WHERE name = $1`,
      [this.tables.projection],
    );
    return rows[0] ? BigInt(rows[0].position) : 0n;
  }
}

/**
 * `work` in one transaction on `client`, a connection the caller holds, with the schema first on the search path
 * (SET LOCAL: it reverts at the end). `lost` hears of a session whose rollback failed: it is not to be used again.
 */
async function onConnection<T>(client: PoolClient, schema: string, work: () => Promise<T>, lost: (error: Error) => void = () => undefined): Promise<T> {
  try {
    await client.query(BEGIN); // READ COMMITTED (sql.ts): it reads under the registry's lock what the last holder wrote
    await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    const broken = await rollback(client, error);
    if (broken) lost(broken);
    throw error;
  }
}

/** How long a swap waits for the live tables (readers wait behind it as long) before it gives up for this try. */
const SWAP_LOCK_TIMEOUT_MS = 500;
/**
 * Waits, in the transaction of `client`, for the registry lock named by `lockKey`. Waiting for it is how the hubs
 * sharing a schema take turns (each apply holds it for its page), not a fault: a lock_timeout the DBA set on the role
 * or database (a common guard) cut the wait with 55P03, and the projector logged the failure and tried the page again,
 * for as long as another hub held the lock. So lock_timeout 0 for the rest of the transaction (SET LOCAL), as in the
 * append; the wait stays bounded by the hub's own client-side query timeout. A step that wants a bound of its own
 * sets it after this (swapIn).
 */
async function waitForRegistryLock(client: PoolClient, lockKey: string): Promise<void> {
  await client.query('SET LOCAL lock_timeout = 0');
  await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [REGISTRY_LOCK_CLASS, lockKey]);
}

/** SQLSTATE of a lock not had within lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * A registry's replacement in the making (PostgresRegistry.rebuildBeside): its tables, fed through `target`, and
 * the connection that holds the rebuild's session lock, on which it is swapped in and dropped.
 */
class RegistryReplacement implements Replacement<PostgresRegistry> {
  private broken: Error | undefined;
  private swapped = false;

  constructor(
    private readonly client: PoolClient,
    private readonly schema: string,
    readonly target: PostgresRegistry,
    private readonly vacuumLive: () => Promise<void>,
  ) {}

  /**
   * Under the live registry's lock (no hub applies to it meanwhile): when the replacement's checkpoint is at or
   * past the live one's (or `force`), the live tables are dropped and the replacement's take their names,
   * constraints and index names included, and its checkpoint becomes the registry's, in one transaction. Hubs
   * reading the registry meanwhile wait for it (the DROP takes the table's exclusive lock), and then read the
   * replacement. On the lock's own connection: if that session ended, another rebuild may own the replacement
   * tables by now, and this one fails instead of swapping in what it does not own.
   */
  async swapIn(force: boolean): Promise<boolean> {
    const live = LIVE;
    const next = REPLACEMENT;
    const swapped = await this.run(async () => {
      await waitForRegistryLock(this.client, live.lockKey(this.schema));
      const { rows } = await this.client.query<{ name: string; position: string }>(
        'SELECT name, position::text AS position FROM projection_checkpoints WHERE name = ANY($1::text[])',
        [[live.projection, next.projection]],
      );
      const at = (name: string): bigint => BigInt(rows.find((r) => r.name === name)?.position ?? '0');
      if (at(next.projection) < at(live.projection) && !force) return false;
      // The DROP waits for every transaction reading the live tables (a pg_dump holds them for its whole run), and
      // every hub's reads queue behind it meanwhile, and every apply behind the registry's lock. Bounded on the
      // server: a client-side query_timeout leaves the waiting DROP, and the lock, on the server until the lock
      // is granted (a backend waiting for a lock does not notice its client is gone). Not had at once: tried again.
      await this.client.query(`SET LOCAL lock_timeout = '${SWAP_LOCK_TIMEOUT_MS}ms'`);
      // The live registry's erasures, kept: a hub forgets a patient in one transaction and moves the checkpoint
      // past the PatientErased in the next (OpeningRegistry), so the live one may hold an erasure its checkpoint
      // does not show yet, and that hub's next apply, on the replacement, would not forget the patient again.
      // Erasure is for good, so the union is right whatever the checkpoints say.
      await this.client.query(`INSERT INTO ${next.erased} (patient_key) SELECT patient_key FROM ${live.erased} ON CONFLICT DO NOTHING`);
      const { rowCount } = await this.client.query(`DELETE FROM ${next.entries} r USING ${live.erased} e WHERE r.patient_key = e.patient_key`);
      if ((rowCount ?? 0) > 0) this.target.forgotAny = true;
      await this.client.query(`DROP TABLE ${live.entries}, ${live.erased}`);
      await this.client.query(`ALTER TABLE ${next.entries} RENAME TO ${live.entries}`);
      await this.client.query(`ALTER TABLE ${live.entries} RENAME CONSTRAINT ${next.entries}_pkey TO ${live.entries}_pkey`);
      await this.client.query(`ALTER TABLE ${live.entries} RENAME CONSTRAINT ${next.entries}_status_check TO ${live.entries}_status_check`);
      await this.client.query(`ALTER INDEX ${next.entries}_by_patient_time RENAME TO ${live.entries}_by_patient_time`);
      await this.client.query(`ALTER TABLE ${next.erased} RENAME TO ${live.erased}`);
      await this.client.query(`ALTER TABLE ${live.erased} RENAME CONSTRAINT ${next.erased}_pkey TO ${live.erased}_pkey`);
      await this.client.query('DELETE FROM projection_checkpoints WHERE name = $1', [live.projection]);
      await this.client.query('UPDATE projection_checkpoints SET name = $1 WHERE name = $2', [live.projection, next.projection]);
      return true;
    }).catch((error: unknown) => {
      if ((error as { code?: unknown } | null)?.code === LOCK_NOT_AVAILABLE) return false;
      throw error;
    });
    if (!swapped) return false;
    this.swapped = true;
    if (this.target.forgotAny) await this.vacuumLive(); // the erased patients' dead rows (see forgetPatient)
    return true;
  }

  /** Drops the replacement unless it was swapped in, ends the session lock and gives the connection back. */
  async close(): Promise<void> {
    try {
      if (!this.swapped && this.broken === undefined) {
        await this.run(async () => {
          await waitForRegistryLock(this.client, REPLACEMENT.lockKey(this.schema)); // see forgetInReplacement
          await this.client.query(`DROP TABLE IF EXISTS ${REPLACEMENT.entries}, ${REPLACEMENT.erased}`);
          await this.client.query('DELETE FROM projection_checkpoints WHERE name = $1', [REPLACEMENT.projection]);
        });
      }
      if (this.broken === undefined) {
        await this.client.query('SELECT pg_advisory_unlock($1::int, hashtext($2))', [REGISTRY_REBUILD_LOCK_CLASS, this.schema]);
      }
    } catch (error) {
      this.broken ??= error instanceof Error ? error : new Error(String(error));
    } finally {
      this.client.release(this.broken); // a broken session is closed: its lock and tables go with it or wait for the next rebuild
    }
  }

  /** `work` in one transaction on the lock's connection; a session whose rollback failed is not used again. */
  private run<T>(work: () => Promise<T>): Promise<T> {
    if (this.broken) return Promise.reject(this.broken);
    return onConnection(this.client, this.schema, work, (error) => (this.broken = error));
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

  connect(): Promise<PoolClient> {
    return this.pool.connect();
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }
}
