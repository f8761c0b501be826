import { FilesInPlace } from '../system/files-in-place';
import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { UnavailableError } from '../../domain/shared/errors';
import type { KeyTombstone, PatientKeyStore } from '../../application/ports/patient-data-protection';
import { PROBE_FREE_BYTES, asStorageFailure, freeBytesBeside, namedOpenFailure } from '../event-store/sqlite/storage-failure';
import { WAL_SIZE_LIMIT_BYTES, truncateWal } from '../event-store/sqlite/wal-checkpoint';
import type { PgTransactor } from '../registry/postgres-registry';

/**
 * The patients' data keys, kept apart from the events (a copy of the event store alone never holds them).
 * Erasing replaces the key by a tombstone `(patient_key, NULL, erased_at)` after overwriting its bytes in place.
 */

/** Tests and the in-memory library. */
export class InMemoryKeyStore implements PatientKeyStore {
  private readonly keys = new Map<string, Buffer | 'erased'>();
  async get(patientKey: string) {
    return this.keys.get(patientKey) ?? null;
  }
  async createIfAbsent(patientKey: string, key: Buffer) {
    const existing = this.keys.get(patientKey);
    if (existing) return existing;
    this.keys.set(patientKey, Buffer.from(key));
    return this.keys.get(patientKey)!;
  }
  /** The first erasure's time, as the SQL stores keep it: the tombstone an erasure's repeat is told apart by. */
  private readonly erasedTimes = new Map<string, string>();
  async erase(patientKey: string, erasedAt: string) {
    const existing = this.keys.get(patientKey);
    if (existing && existing !== 'erased') existing.fill(0);
    this.keys.set(patientKey, 'erased');
    if (!this.erasedTimes.has(patientKey)) this.erasedTimes.set(patientKey, erasedAt);
  }
  async erasedAt(patientKey: string) {
    return this.erasedTimes.get(patientKey) ?? null;
  }
  async tombstones(): Promise<readonly KeyTombstone[]> {
    return [...this.erasedTimes].map(([keyId, erasedAt]) => ({ keyId, erasedAt })).sort((a, b) => a.erasedAt.localeCompare(b.erasedAt) || a.keyId.localeCompare(b.keyId));
  }
  async close() {}
}

/**
 * A SQLite file of its own (default `$RTS_DATA_DIR/patient-keys.sqlite`, 0600), used with the SQLite and
 * EventStoreDB stores. synchronous=FULL: a key is durable before anything is sealed with it.
 *
 * WAL, so storing new keys costs one fsync per commit (a rollback journal took three, ~1.7 ms against ~0.5 ms
 * here, paid by every first upload of a patient). WAL frames keep old page versions, so erase() ends with a
 * TRUNCATE checkpoint: the pages as the erasure left them (the key overwritten, `secure_delete` zeroing freed
 * cells) are written into the file and the WAL is cut to nothing. Once erase() returns, neither file holds the
 * key; like the journal files a rollback journal deletes, the freed blocks of the file system may, until reused.
 */
/** How long a write waits for another connection's lock before it fails (storage_unavailable). */
const BUSY_TIMEOUT_MS = 5000;
/** How long an erasure's checkpoint waits for another connection's reader before it gives up (503, retry). */
const CHECKPOINT_WAIT_MS = 250;

export class SqliteKeyStore implements PatientKeyStore {
  private readonly db: Database.Database;
  private readonly statements;
  /** The file and its WAL as opened: a key written into files no path names any more would be lost (FilesInPlace). */
  private readonly files: FilesInPlace;
  private readonly file: string;
  /** Since the first write that failed for want of storage, until one commits again (writeFailure). */
  private failing: { code: string; since: string } | null = null;

  constructor(file: string) {
    this.file = file;
    if (file !== ':memory:' && file !== '') {
      // Owner-only before SQLite opens it: its -wal and -shm files are created with the database file's mode.
      closeSync(openSync(file, 'a', 0o600));
      chmodSync(file, 0o600);
    }
    this.db = SqliteKeyStore.opened(file);
    const journal = this.db.pragma('journal_mode = WAL', { simple: true }) as string;
    if (file !== ':memory:' && file !== '' && journal.toLowerCase() !== 'wal') {
      throw new Error(`key store: could not switch ${file} to WAL (journal_mode is ${journal})`);
    }
    this.db.pragma('synchronous = FULL');
    this.db.pragma('secure_delete = ON');
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // No statement journal in a temp file: it would hold old page contents, i.e. data keys, outside this file.
    this.db.pragma('temp_store = MEMORY');
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    this.db.exec('CREATE TABLE IF NOT EXISTS patient_keys (patient_key TEXT PRIMARY KEY, data_key BLOB, created_at TEXT NOT NULL, erased_at TEXT)');
    // The tombstones alone, for the start's look at them (tombstones()): one range of this index, not a scan of
    // every patient's key. Keys and times only, no key's bytes; a build before it ignores the index and keeps it up.
    this.db.exec('CREATE INDEX IF NOT EXISTS patient_keys_erased ON patient_keys (erased_at, patient_key) WHERE erased_at IS NOT NULL');
    this.files = new FilesInPlace([file, `${file}-wal`]);
    this.statements = {
      get: this.db.prepare('SELECT data_key, erased_at FROM patient_keys WHERE patient_key = ?'),
      insert: this.db.prepare('INSERT INTO patient_keys (patient_key, data_key, created_at) VALUES (?, ?, ?) ON CONFLICT (patient_key) DO NOTHING'),
      wipe: this.db.prepare('UPDATE patient_keys SET data_key = zeroblob(32) WHERE patient_key = ?'),
      // A repeat keeps the first time (as PostgresKeyStore's COALESCE): it is what erasedAt() answers.
      tombstone: this.db.prepare('UPDATE patient_keys SET data_key = NULL, erased_at = COALESCE(erased_at, ?) WHERE patient_key = ?'),
      insertTombstone: this.db.prepare('INSERT INTO patient_keys (patient_key, data_key, created_at, erased_at) VALUES (?, NULL, ?, ?) ON CONFLICT (patient_key) DO NOTHING'),
      tombstones: this.db.prepare('SELECT patient_key AS keyId, erased_at AS erasedAt FROM patient_keys INDEXED BY patient_keys_erased WHERE erased_at IS NOT NULL ORDER BY erased_at, patient_key'),
    };
  }

  async get(patientKey: string): Promise<Buffer | 'erased' | null> {
    const row = this.statements.get.get(patientKey) as { data_key: Buffer | null; erased_at: string | null } | undefined;
    if (!row) return null;
    return row.erased_at !== null || row.data_key === null ? 'erased' : row.data_key;
  }

  /** The file opened, and read once: a damaged one (not a database) is said here, naming it, not at the first key. */
  private static opened(file: string): Database.Database {
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      db.pragma('schema_version', { simple: true });
      return db;
    } catch (error) {
      db?.close();
      throw namedOpenFailure(file, error);
    }
  }

  /**
   * New keys are written in groups: every createIfAbsent of one tick shares one transaction (one set of fsyncs
   * of the WAL), so a burst of first uploads by many patients does not pay a sync each.
   */
  createIfAbsent(patientKey: string, key: Buffer): Promise<Buffer | 'erased'> {
    return new Promise((resolve, reject) => {
      this.pending.push({ patientKey, key, resolve, reject });
      this.flushScheduled ??= setImmediate(() => this.flush());
    });
  }

  private pending: { patientKey: string; key: Buffer; resolve: (k: Buffer | 'erased') => void; reject: (e: unknown) => void }[] = [];
  private flushScheduled: NodeJS.Immediate | undefined;

  private flush(): void {
    this.flushScheduled = undefined;
    const batch = this.pending;
    this.pending = [];
    try {
      const now = new Date().toISOString();
      this.db.transaction(() => {
        for (const p of batch) this.statements.insert.run(p.patientKey, p.key, now);
        this.files.check(); // a key lost with its file would leave every document sealed with it unreadable
      })();
    } catch (error) {
      const failure = this.failed(error); // disk full: 503, retry later (no key stored, nothing sealed)
      for (const p of batch) p.reject(failure);
      return;
    }
    this.failing = null;
    for (const p of batch) {
      const row = this.statements.get.get(p.patientKey) as { data_key: Buffer | null; erased_at: string | null };
      p.resolve(row.erased_at !== null || row.data_key === null ? 'erased' : row.data_key);
    }
  }

  async erasedAt(patientKey: string): Promise<string | null> {
    const row = this.statements.get.get(patientKey) as { data_key: Buffer | null; erased_at: string | null } | undefined;
    return row?.erased_at ?? null;
  }

  async tombstones(): Promise<readonly KeyTombstone[]> {
    return this.statements.tombstones.all() as KeyTombstone[];
  }

  async erase(patientKey: string, erasedAt: string): Promise<void> {
    try {
      this.db.transaction(() => {
        // Overwrite in place first, then drop: secure_delete zeroes the freed cells as well.
        this.statements.wipe.run(patientKey);
        this.statements.tombstone.run(erasedAt, patientKey);
        this.statements.insertTombstone.run(patientKey, erasedAt, erasedAt);
        this.files.check();
      })();
    } catch (error) {
      // Locked past the busy timeout, or the disk full: storage_unavailable, as flush() says it (a raw SqliteError
      // reached the library's caller with no kind); the erasure is repeated later, every step is idempotent.
      throw this.failed(error);
    }
    this.failing = null;
    // Older frames of the WAL still hold the key: fold everything into the file and truncate the WAL. A reader
    // of another process can hold it up; it is waited for briefly (this blocks the event loop), and past that the
    // erasure is not done and says so (retry it: every step above is idempotent).
    if (!truncateWal(this.db, CHECKPOINT_WAIT_MS)) {
      throw new UnavailableError('erasure_incomplete', 'the key store could not checkpoint its WAL after the erasure (another connection is reading it); retry the erasure');
    }
  }

  /**
   * Whether writes fail for want of storage (locked past the busy timeout, the disk full or failing): the SQLite code
   * and since when, until a write commits again; null while they commit. For /health, as the event store's: this file
   * is apart from telemed.sqlite, and another process holding its lock (a `sqlite3` shell in a transaction) made every
   * new patient's upload and every erasure 503 while /health said ok.
   */
  writeFailure(): Readonly<{ code: string; since: string }> | null {
    return this.failing;
  }

  /**
   * While writes fail, try one small write of the store's own (a row of a table kept for this alone, made then), so
   * /health recovers once the file takes writes again though no upload comes. It does not wait for a lock: a health
   * check must not stop the process for the busy timeout. Nothing while writes commit.
   */
  async probeWrites(): Promise<void> {
    if (this.failing === null || !this.db.open) return;
    // A full disk: a small write may fit where a new key's does not (as the event store's probe).
    if (this.failing.code === 'SQLITE_FULL' && freeBytesBeside(this.file) < PROBE_FREE_BYTES) return;
    this.db.pragma('busy_timeout = 0');
    try {
      this.db.transaction(() => {
        this.db.exec('CREATE TABLE IF NOT EXISTS store_write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at TEXT NOT NULL)');
        this.db.prepare('INSERT INTO store_write_probe (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at').run(new Date().toISOString());
        this.files.check();
      })();
      this.failing = null;
    } catch {
      // Still failing: left as it was.
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /** A write's error as callers get it; a storage failure also marks the store failing (writeFailure). */
  private failed(error: unknown): unknown {
    const failure = asStorageFailure(error);
    if (!failure) return error;
    this.failing ??= { code: String((error as { code: string }).code), since: new Date().toISOString() };
    return failure;
  }

  async close(): Promise<void> {
    if (this.flushScheduled !== undefined) {
      clearImmediate(this.flushScheduled);
      this.flush();
    }
    this.db.close();
  }
}

/**
 * A table `patient_keys` in the PostgreSQL schema, shared by every hub process on it. PostgreSQL keeps the old row
 * version until VACUUM; erase() therefore runs `VACUUM patient_keys` afterwards, so the key's bytes leave the
 * table's pages (tested by reading the table's files). Not covered: PostgreSQL's WAL segments and any base
 * backup or WAL archive taken while the key existed; they age out with the retention of those copies.
 */
export class PostgresKeyStore implements PatientKeyStore {
  private constructor(private readonly db: PgTransactor) {}

  static async open(db: PgTransactor): Promise<PostgresKeyStore> {
    await db.withTransaction(async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('rts_patient_keys_schema'))`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${db.table('patient_keys')} (patient_key TEXT PRIMARY KEY, data_key BYTEA, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), erased_at TIMESTAMPTZ)`);
    });
    return new PostgresKeyStore(db);
  }

  // One statement each, on its own (a single statement is a transaction): every patient's first upload waits for
  // these, and BEGIN ... COMMIT around them tripled the round trips (9 for a new patient, now 2).
  async get(patientKey: string): Promise<Buffer | 'erased' | null> {
    const { rows } = await this.db.query<{ data_key: Buffer | null; erased_at: Date | null }>(`SELECT data_key, erased_at FROM ${this.db.table('patient_keys')} WHERE patient_key = $1`, [patientKey]);
    const row = rows[0];
    if (!row) return null;
    return row.erased_at !== null || row.data_key === null ? 'erased' : row.data_key;
  }

  async createIfAbsent(patientKey: string, key: Buffer): Promise<Buffer | 'erased'> {
    const { rows } = await this.db.query(`INSERT INTO ${this.db.table('patient_keys')} (patient_key, data_key) VALUES ($1, $2) ON CONFLICT (patient_key) DO NOTHING RETURNING patient_key`, [patientKey, key]);
    if (rows.length > 0) return key;
    // Another process stored a key first (or the patient was erased): that one counts. A new statement, so it sees
    // the row the conflict waited for.
    return (await this.get(patientKey))!;
  }

  // No tombstones(): with RTS_EVENT_STORE=postgres the keys are in the events' own database, and one pg_dump is one
  // snapshot of both. An erasure commits its event before it deletes the key, so a dump that holds the tombstone
  // holds the event too, and a start has no erasure to complete (erasures-at-start.ts). Not covered: EventStoreDB's
  // events beside this table, two stores copied apart, where a copy can hold the tombstone without the event.

  async erasedAt(patientKey: string): Promise<string | null> {
    const { rows } = await this.db.query<{ erased_at: Date | null }>(`SELECT erased_at FROM ${this.db.table('patient_keys')} WHERE patient_key = $1`, [patientKey]);
    return rows[0]?.erased_at ? rows[0].erased_at.toISOString() : null;
  }

  async erase(patientKey: string, erasedAt: string): Promise<void> {
    await this.db.withTransaction((client) =>
      client.query(
        `INSERT INTO ${this.db.table('patient_keys')} (patient_key, data_key, erased_at) VALUES ($1, NULL, $2)
         ON CONFLICT (patient_key) DO UPDATE SET data_key = NULL, erased_at = COALESCE(${this.db.table('patient_keys')}.erased_at, excluded.erased_at)`,
        [patientKey, erasedAt],
      ),
    );
    // The UPDATE leaves the old row version, key and all, in the table's page until a vacuum removes it.
    await this.db.vacuum('patient_keys');
  }

  async close(): Promise<void> {}
}
