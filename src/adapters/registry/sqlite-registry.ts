import type { Database } from 'better-sqlite3';
import { rowToView, type RegistryRow } from './registry-rows';
import type { RecordedEvent } from '../../application/ports/event-store';
import { ProjectionBehind, type Replacement } from '../../application/projector';
import type { RegistryPosition, RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, type RegistryEntryView } from '../../application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../domain/documents/document-entry';
import type { SqliteInlineProjection } from '../event-store/sqlite/sqlite-event-store';
import { truncateWal } from '../event-store/sqlite/wal-checkpoint';
import { DIGEST_PREFIX } from '../../application/ports/patient-data-protection';

/** What the registry needs of the SQLite event store: its database, and a write slot serialized with appends. */
export type SqliteWriter = Readonly<{
  database: Database;
  runExclusive<T>(fn: (db: Database) => T, options?: { durability?: 'full' | 'relaxed'; transaction?: boolean }): Promise<T>;
}>;

/** registry_migrations' name of replaceClearHashes (when it last rewrote rows). */
const KEYED_HASHES = 'keyed-hashes';

/** How long an erasure's WAL checkpoint waits for another connection's reader (the event loop waits with it). */
const ERASURE_CHECKPOINT_WAIT_MS = 100;

/**
 * Where a registry's rows, erased patients and checkpoint live: the live registry's, or a rebuild's replacement
 * (rebuildBeside).
 */
type RegistryTables = Readonly<{ entries: string; erased: string; projection: string }>;

const LIVE: RegistryTables = { entries: 'registry_entries', erased: 'erased_patients', projection: 'registry' };
const REPLACEMENT: RegistryTables = { entries: 'registry_entries_rebuild', erased: 'erased_patients_rebuild', projection: 'registry-rebuild' };

const insertRow = (table: string): string => `INSERT INTO ${table} (unique_id, patient_key, repository_unique_id, status, creation_time, service_start_time,
  service_start_epoch, mime_type, hash, size, replaces, replaced_by, observation_id, systolic, diastolic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

const entriesTableSql = (table: string): string => `CREATE TABLE IF NOT EXISTS ${table} (
  unique_id TEXT PRIMARY KEY,
  patient_key TEXT NOT NULL,
  repository_unique_id TEXT NOT NULL,
  status TEXT NOT NULL,
  creation_time TEXT NOT NULL,
  service_start_time TEXT NOT NULL,
  service_start_epoch INTEGER NOT NULL,
  mime_type TEXT NOT NULL,
  hash TEXT NOT NULL,
  size INTEGER NOT NULL,
  replaces TEXT,
  replaced_by TEXT,
  observation_id TEXT,
  systolic REAL NOT NULL,
  diastolic REAL NOT NULL
);`;
/** The index of the queries. SQLite cannot rename an index: a replacement gets it when swapped in (swapIn). */
const BY_PATIENT_TIME = 'CREATE INDEX IF NOT EXISTS registry_entries_by_patient_time ON registry_entries (patient_key, status, service_start_epoch);';
const erasedTableSql = (table: string): string => `CREATE TABLE IF NOT EXISTS ${table} (patient_key TEXT PRIMARY KEY);`;

const SCHEMA = `
${entriesTableSql(LIVE.entries)}
${BY_PATIENT_TIME}
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
${erasedTableSql(LIVE.erased)}
`;

/**
 * The registry projection in the same SQLite file as the events. Rows and checkpoint change in one transaction,
 * taken through the store's writer so projection writes never interleave with a group commit.
 */
export class SqliteRegistry implements RegistryReadModel {
  private readonly db: Database;
  private readonly statements;
  /** The projection's write statements, prepared once (they run inside the writer's transactions). */
  private readonly writes;

  constructor(
    private readonly writer: SqliteWriter,
    private readonly tables: RegistryTables = LIVE,
  ) {
    this.db = writer.database;
    if (tables === LIVE) {
      this.db.exec(SCHEMA);
      this.keyedHashesReplaced = this.replaceClearHashes();
    }
    const { entries, erased } = tables;
    // Prepared once: the query path is measured against a bare SELECT (bench/).
    this.statements = {
      findCurrent: this.db.prepare(
        `SELECT * FROM ${entries} WHERE patient_key = ? AND status = 'Approved' AND service_start_epoch >= ? AND service_start_epoch < ?
         ORDER BY service_start_epoch, unique_id LIMIT ?`,
      ),
      // The patient's whole record, any status (the index's patient_key prefix; a patient's rows are few).
      findAllOf: this.db.prepare(
        `SELECT * FROM ${entries} WHERE patient_key = ? AND (service_start_epoch, unique_id) > (?, ?)
         ORDER BY service_start_epoch, unique_id LIMIT ?`,
      ),
      allOf: this.db.prepare(`SELECT * FROM ${entries} WHERE patient_key = ? ORDER BY service_start_epoch, unique_id`),
      get: this.db.prepare(`SELECT * FROM ${entries} WHERE unique_id = ?`),
      knowsPatient: this.db.prepare(`SELECT 1 FROM ${entries} WHERE patient_key = ? LIMIT 1`),
      erased: this.db.prepare(`SELECT 1 FROM ${erased} WHERE patient_key = ?`).pluck(),
      checkpoint: this.db.prepare('SELECT position FROM projection_checkpoints WHERE name = ?').safeIntegers(true),
    };
    this.writes = {
      // Positional parameters: binding 15 named ones from an object costs ~3 us more per row (bench/).
      upsert: this.db.prepare(`${insertRow(entries)} ON CONFLICT (unique_id) DO UPDATE SET status = excluded.status, replaced_by = excluded.replaced_by`),
      // A submission never overwrites a row (evolveRegistryEntry keeps the current one): no SELECT needed first.
      insertNew: this.db.prepare(`${insertRow(entries)} ON CONFLICT (unique_id) DO NOTHING`),
      setCheckpoint: this.db.prepare('INSERT INTO projection_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position'),
    };
  }

  /** How many rows this open's replaceClearHashes rewrote (0 when none held a plain hash their event keys). */
  readonly keyedHashesReplaced: number = 0;

  /**
   * At every open: rows whose hash is the document's plain SHA-256 while their event holds a keyed digest get the
   * event's digest. Builds before this one wrote the plain SHA-256 into the row, in clear beside the reading's time and
   * values: the HL7 document is the hub's fixed rendering of those and the CPR number, so the row gave the CPR
   * number back to anyone with a copy of the file (one birth year in ~5 s). Not once per file: such a build may open
   * the store again after this one did (a rollback; store format 3 is readable from 1), and its projector and
   * rebuild write plain hashes again. Only rows without a keyed digest are looked at, each by its event's stream
   * (a scan of the hash column, ~50 ms at 200,000 rows, when none is left); documents stored before their events
   * held a keyed digest keep the plain SHA-256 the event holds too. The old cells are overwritten (secure_delete) and
   * the WAL is truncated after; copies and backups of the file made before keep them.
   */
  private replaceClearHashes(): number {
    // registry_migrations: kept for the builds that read it (30aa637 recorded its mend there); not a reason to skip.
    this.db.exec('CREATE TABLE IF NOT EXISTS registry_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    const tables = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)").pluck().all(LIVE.entries, REPLACEMENT.entries) as string[];
    // The row first, then its event by stream (CROSS JOIN: the planner otherwise walked events by type for each row).
    const keyedOf = (table: string): string => `SELECT r.unique_id AS unique_id, json_extract(e.data, '$.hash') AS hash
      FROM ${table} r CROSS JOIN events e ON e.stream_name = 'document-' || r.unique_id
      WHERE r.hash NOT LIKE '${DIGEST_PREFIX}%' AND +e.type = 'DocumentSubmitted' AND json_extract(e.data, '$.hash') LIKE '${DIGEST_PREFIX}%'`;
    const stale = tables.some((table) => this.db.prepare(`SELECT 1 FROM (${keyedOf(table)}) LIMIT 1`).get() !== undefined);
    if (!stale) return 0;
    const replaced = this.db
      .transaction(() => {
        let changes = 0;
        for (const table of tables) {
          changes += this.db.prepare(`UPDATE ${table} SET hash = k.hash FROM (${keyedOf(table)}) AS k WHERE ${table}.unique_id = k.unique_id`).run().changes;
        }
        this.db.prepare('INSERT INTO registry_migrations (name, applied_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET applied_at = excluded.applied_at').run(KEYED_HASHES, new Date().toISOString());
        return changes;
      })
      .immediate();
    if (replaced > 0) truncateWal(this.db, ERASURE_CHECKPOINT_WAIT_MS);
    return replaced;
  }

  /**
   * Rows still holding a plain SHA-256 after replaceClearHashes: documents whose events hold one too (stored by builds
   * before the keyed digest), rows of a build that projected them since. Each gets the keyed digest `digestOf` makes
   * of the document (null: it cannot be opened, the row is left as it is), in pages, each page's rows in one write;
   * the WAL is truncated after, so the old cells leave the files. The live rows, and those of a stopped rebuild's
   * replacement left in the file (an older build's rebuild wrote plain hashes there, and the table stays until the
   * next rebuild). Pages by rowid, the table's own order: when no row is left this is one scan of the table (~50 ms
   * at 200,000 rows), where by unique_id it looked each row up through the key's index (~0.4 s), at every start.
   * How many rows were mended, and how many left.
   */
  async keyPlainHashes(
    digestOf: (uniqueId: string, patientKey: string) => Promise<string | null>,
    options: Readonly<{ pageSize?: number; onRowsFound?: (rows: number) => void }> = {},
  ): Promise<{ mended: number; left: number }> {
    const pageSize = options.pageSize ?? 500;
    const tables = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)").pluck().all(LIVE.entries, REPLACEMENT.entries) as string[];
    let mended = 0;
    let left = 0;
    // Once there is work (a first start after an upgrade may take minutes on a big store): how much, said before it is done.
    let told = false;
    const tell = (): void => {
      if (told) return;
      told = true;
      const count = tables.reduce((n, table) => n + (this.db.prepare(`SELECT count(*) FROM ${table} WHERE hash NOT LIKE '${DIGEST_PREFIX}%'`).pluck().get() as number), 0);
      options.onRowsFound?.(count);
    };
    for (const table of tables) {
      const page = this.db.prepare(`SELECT rowid AS at, unique_id, patient_key FROM ${table} WHERE rowid > ? AND hash NOT LIKE '${DIGEST_PREFIX}%' ORDER BY rowid LIMIT ?`);
      const set = this.db.prepare(`UPDATE ${table} SET hash = ? WHERE unique_id = ? AND hash NOT LIKE '${DIGEST_PREFIX}%'`);
      let after = 0;
      for (;;) {
        const rows = page.all(after, pageSize) as { at: number; unique_id: string; patient_key: string }[];
        if (rows.length === 0) break;
        tell();
        after = rows[rows.length - 1]!.at;
        const digests: [string, string][] = [];
        for (const r of rows) {
          const digest = await digestOf(r.unique_id, r.patient_key);
          if (digest === null || !digest.startsWith(DIGEST_PREFIX)) left++;
          else digests.push([digest, r.unique_id]);
        }
        if (digests.length > 0) mended += await this.writer.runExclusive(() => digests.reduce((n, [digest, uniqueId]) => n + set.run(digest, uniqueId).changes, 0));
      }
    }
    if (mended > 0) await this.writer.runExclusive((db) => truncateWal(db, ERASURE_CHECKPOINT_WAIT_MS), { transaction: false });
    return { mended, left };
  }

  async checkpoint(): Promise<bigint> {
    return this.storedCheckpoint();
  }

  /**
   * Rows and checkpoint in one relaxed write transaction. Events at or before the stored checkpoint are skipped and
   * the checkpoint never moves back: the inline path (projectInline) may have applied them since they were read.
   */
  async apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void> {
    await this.writer.runExclusive(() => {
      const current = this.storedCheckpoint();
      if (from !== undefined && current < from) throw new ProjectionBehind(current, from); // reset since the page was read
      if (checkpoint <= current) return;
      this.project(events, current);
      this.writes.setCheckpoint.run(this.tables.projection, checkpoint);
      // Relaxed: the projection is rebuilt from the events, so its commit needs no fsync of its own; rows and
      // checkpoint still commit atomically, and the next append's fsync makes them durable too.
    }, { durability: 'relaxed' });
  }

  /**
   * The inline path: called inside an append batch's transaction (SqliteInlineProjection) with the document events
   * of positions (from, to] already opened. Applies them only when the checkpoint is exactly `from`, i.e. every
   * earlier event is projected; otherwise returns false and the background projector catches up.
   */
  projectInline(events: readonly RecordedEvent[], from: bigint, to: bigint): boolean {
    if (this.storedCheckpoint() !== from) return false;
    this.project(events, from);
    this.writes.setCheckpoint.run(this.tables.projection, to);
    return true;
  }

  private storedCheckpoint(): bigint {
    const row = this.statements.checkpoint.get(this.tables.projection) as { position: bigint } | undefined;
    return row ? BigInt(row.position) : 0n;
  }

  /** Synchronous: inside a write transaction of the store's writer. */
  private project(events: readonly RecordedEvent[], after: bigint): void {
    const { get: select, erased } = this.statements;
    const { upsert, insertNew } = this.writes;
    for (const e of events) {
      if (e.globalPosition <= after || !isDocumentEvent(e)) continue;
      const event = { type: e.type, data: e.data } as DocumentEvent;
      const submitted = event.type === 'DocumentSubmitted';
      // A document of an erased patient gets no row, whoever projects it: another hub process that still held the
      // patient's key (it forgets it within its cache's 60 s) could seal an upload after the erasure. (A document it
      // replaces is the same patient's, so has no row either.)
      if (submitted && erased.get(event.data.patientKey) !== undefined) continue;
      // A submission's own row is not read: it evolves from no row, and an existing row wins (DO NOTHING). The row
      // it replaces, and a deprecated document's, are read: they change.
      const rowOf = (uniqueId: string): RegistryEntryView | null => {
        if (submitted && uniqueId === event.data.uniqueId) return null;
        const row = select.get(uniqueId) as RegistryRow | undefined;
        return row ? rowToView(row) : null;
      };
      for (const next of evolveRegistry(rowOf, event)) {
        (submitted && next.uniqueId === event.data.uniqueId ? insertNew : upsert).run(
          next.uniqueId, next.patientKey, next.repositoryUniqueId, next.status, next.creationTime, next.serviceStartTime, next.serviceStartEpoch,
          next.mimeType, next.hash, next.size, next.replaces, next.replacedBy, next.observationId, next.systolic.value, next.diastolic.value,
        );
      }
    }
  }

  async findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    const rows = this.statements.findCurrent.all(patientKey, fromEpoch, toEpoch, limit) as RegistryRow[];
    return rows.map(rowToView);
  }

  async findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]> {
    // From the first: below every epoch a row can have (a reading is after its patient's birth, after 1800).
    const rows = this.statements.findAllOf.all(patientKey, after?.serviceStartEpoch ?? Number.MIN_SAFE_INTEGER, after?.uniqueId ?? '', limit) as RegistryRow[];
    return rows.map(rowToView);
  }

  /**
   * One statement: SQLite reads it in one read transaction, so it is one snapshot (nothing of this process, the
   * appends' inline projection or the projector's apply, runs during it; another process's commit meanwhile is not
   * seen, WAL). `pageSize` is not used: pages read one after the other without yielding, in one transaction, were the
   * same snapshot at a far higher cost, each page searching and sorting all of the patient's rows again (the index
   * has status before the time): ~0.9 s of blocked event loop for a patient of 50,000 readings, ~0.25 s in one read.
   * The event loop still waits for the whole read.
   */
  async allEntriesOf(patientKey: string, _pageSize: number): Promise<readonly RegistryEntryView[]> {
    return (this.statements.allOf.all(patientKey) as RegistryRow[]).map(rowToView);
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    const row = this.statements.get.get(uniqueId) as RegistryRow | undefined;
    return row ? rowToView(row) : null;
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    return this.statements.knowsPatient.get(patientKey) !== undefined;
  }

  /**
   * Erasure: every row of the patient goes, and the patient is marked erased, so that a document of theirs that
   * comes later in the events (sealed by another process before it learnt of the erasure) gets no row. The connection's secure_delete (configure, sqlite-event-store.ts)
   * overwrites the freed cells instead of leaving them in free pages; with a full fsync, as the erasure is reported done once this resolves.
   *
   * Older WAL frames still hold the rows as they were (readings under the patient's pseudonymous key) until the
   * WAL is written over, which on a quiet hub can take days. So the WAL is then folded into the file and
   * truncated (wal_checkpoint(TRUNCATE), in the writer's turn). Best effort: if another connection's reader holds
   * it up past a short wait, the frames stay until the WAL wraps; returns whether it completed. It does not throw:
   * this runs in the projector, and a retry loop there would stall the registry for everyone.
   */
  async forgetPatient(patientKey: string): Promise<boolean> {
    const deleted = await this.writer.runExclusive((db) => {
      let rows = 0;
      for (const { entries, erased } of this.tables === LIVE ? [LIVE, ...replacementIn(db)] : [this.tables]) {
        rows += db.prepare(`DELETE FROM ${entries} WHERE patient_key = ?`).run(patientKey).changes;
        db.prepare(`INSERT INTO ${erased} (patient_key) VALUES (?) ON CONFLICT DO NOTHING`).run(patientKey);
      }
      return rows;
    });
    // A replacement's replay of an erasure deletes nothing as a rule (the live registry's erasure already forgot the
    // patient there, and a replay cannot open an erased patient's documents): then no frame of theirs to fold away.
    if (this.tables !== LIVE && deleted === 0) return true;
    return this.writer.runExclusive((db) => truncateWal(db, ERASURE_CHECKPOINT_WAIT_MS), { transaction: false });
  }

  async reset(): Promise<void> {
    const { entries, erased, projection } = this.tables;
    await this.writer.runExclusive((db) => {
      db.prepare(`DELETE FROM ${entries}`).run();
      db.prepare(`DELETE FROM ${erased}`).run(); // the rebuild replays the erasures
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(projection);
    });
  }

  /**
   * A rebuild during which this registry goes on answering (Projector.rebuild then holds no query): the
   * replacement's tables are created empty beside the live ones and fed from the first event by the projector,
   * while uploads go on into the live ones, and are swapped in by name once they hold all the live ones hold
   * (SqliteRegistryReplacement.swapIn). A replacement a stopped rebuild left in the file is dropped first: it may
   * have followed an older build's rules. One rebuild at a time (the Projector's).
   */
  async rebuildBeside(): Promise<Replacement<SqliteRegistry>> {
    if (this.tables !== LIVE) throw new Error('registry: a replacement has no rebuild of its own');
    await this.writer.runExclusive((db) => {
      db.exec(`DROP TABLE IF EXISTS ${REPLACEMENT.entries}; DROP TABLE IF EXISTS ${REPLACEMENT.erased};`);
      db.exec(`${entriesTableSql(REPLACEMENT.entries)}\n${erasedTableSql(REPLACEMENT.erased)}`);
      // Every erasure the live registry has applied, from the start: the live one may forget a patient before their
      // key is gone everywhere (its projector applies the PatientErased as soon as it is appended, before the
      // erasure deletes the key; another process's cache keeps it up to its TTL), and the replay, opening their
      // documents meanwhile, would give them rows here until it reached the PatientErased. Erasure is for good, as
      // the swap's union says; the live registry's later erasures come in through forgetPatient.
      db.exec(`INSERT INTO ${REPLACEMENT.erased} (patient_key) SELECT patient_key FROM ${LIVE.erased} WHERE true ON CONFLICT DO NOTHING;`);
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(REPLACEMENT.projection);
    });
    return new SqliteRegistryReplacement(this.writer, new SqliteRegistry(this.writer, REPLACEMENT));
  }
}

/**
 * The replacement's tables when the file has them: a rebuild's in the making, or one a stopped process left. The
 * live registry's erasure forgets the patient there too, in its own transaction and before its WAL truncation: the
 * replay put the rows of every document it passed there in clear, and would keep them until it reached the
 * PatientErased (a backup meanwhile copied them), or for good when the rebuild stopped (its tables stay in the file
 * until the next rebuild), while the patient's key, and so every other copy, was gone.
 */
const replacementIn = (db: Database): RegistryTables[] => {
  const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)`).pluck().all(REPLACEMENT.entries, REPLACEMENT.erased);
  return names.length === 2 ? [REPLACEMENT] : [];
};

/** A registry's replacement in the making (SqliteRegistry.rebuildBeside): its tables, fed through `target`. */
class SqliteRegistryReplacement implements Replacement<SqliteRegistry> {
  private swapped = false;

  constructor(
    private readonly writer: SqliteWriter,
    readonly target: SqliteRegistry,
  ) {}

  /**
   * In the writer's turn (no append, inline projection or projector writes meanwhile): when the replacement's
   * checkpoint is at or past the live one's (or `force`), the live tables are dropped, the replacement's take their
   * names and get the queries' index, and its checkpoint becomes the registry's, in one transaction. The queries'
   * prepared statements read the new table from their next run (SQLite prepares them again on a schema change).
   * Dropping the live table frees its pages, which secure_delete (configure, sqlite-event-store.ts) overwrites: the
   * writer's turn lasts as long as writing them, and building the index, take.
   */
  async swapIn(force: boolean): Promise<boolean> {
    const swapped = await this.writer.runExclusive((db) => {
      const at = (name: string): bigint => {
        const row = db.prepare('SELECT position FROM projection_checkpoints WHERE name = ?').safeIntegers(true).get(name) as { position: bigint } | undefined;
        return row ? BigInt(row.position) : 0n;
      };
      if (at(REPLACEMENT.projection) < at(LIVE.projection) && !force) return false;
      // The live registry's erasures, kept: OpeningRegistry forgets a patient in one transaction and moves the
      // checkpoint past the PatientErased in the next, so the live one may hold an erasure its checkpoint does not
      // show yet, which the next apply, on the replacement, would not repeat. Erasure is for good: the union is right.
      db.exec(`INSERT INTO ${REPLACEMENT.erased} (patient_key) SELECT patient_key FROM ${LIVE.erased} WHERE true ON CONFLICT DO NOTHING;
        DELETE FROM ${REPLACEMENT.entries} WHERE patient_key IN (SELECT patient_key FROM ${LIVE.erased});`);
      db.exec(`DROP TABLE ${LIVE.entries}; DROP TABLE ${LIVE.erased};`);
      db.exec(`ALTER TABLE ${REPLACEMENT.entries} RENAME TO ${LIVE.entries}; ALTER TABLE ${REPLACEMENT.erased} RENAME TO ${LIVE.erased};`);
      db.exec(BY_PATIENT_TIME);
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(LIVE.projection);
      db.prepare('UPDATE projection_checkpoints SET name = ? WHERE name = ?').run(LIVE.projection, REPLACEMENT.projection);
      return true;
    });
    this.swapped ||= swapped;
    return swapped;
  }

  /** Drops the replacement unless it was swapped in. */
  async close(): Promise<void> {
    if (this.swapped) return;
    await this.writer.runExclusive((db) => {
      db.exec(`DROP TABLE IF EXISTS ${REPLACEMENT.entries}; DROP TABLE IF EXISTS ${REPLACEMENT.erased};`);
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(REPLACEMENT.projection);
    });
  }
}

/**
 * The registry kept in the append transactions of the SQLite store (SqliteEventStore.addInlineProjection): the
 * rows of an upload commit with its event, in one fsync, and the background projector only catches up what this
 * declines. `open` turns the batch's events into what the evolve reads (documents opened), or gives undefined
 * when that cannot be done without waiting; `eventTypes` are the types it needs to see.
 */
export const inlineRegistryProjection = (
  registry: SqliteRegistry,
  eventTypes: ReadonlySet<string>,
  open: (events: readonly RecordedEvent[]) => readonly RecordedEvent[] | undefined,
  onError?: (error: unknown) => void,
): SqliteInlineProjection => ({
  eventTypes,
  applyInline(events, from, to) {
    const opened = open(events);
    return opened !== undefined && registry.projectInline(opened, from, to);
  },
  ...(onError ? { onError } : {}),
});
