import type { Database } from 'better-sqlite3';

/**
 * Schema of the SQLite event store, as numbered migrations. Applied versions are kept in a table of their own
 * (not PRAGMA user_version) because other components, such as the registry projection, keep their tables in
 * the same file and may need migrations of their own.
 */
export type Migration = Readonly<{ version: number; description: string; sql: string }>;

export const EVENT_STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'events table: one row per event, global order by rowid',
    // AUTOINCREMENT: a position is never handed out twice, even if the last rows were ever removed.
    // UNIQUE(stream_name, stream_version) is the optimistic-concurrency guard and the stream read index;
    // UNIQUE(event_id) is the idempotency lookup.
    sql: `
      CREATE TABLE events (
        global_position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_name     TEXT    NOT NULL,
        stream_version  INTEGER NOT NULL CHECK (stream_version >= 0),
        event_id        TEXT    NOT NULL UNIQUE,
        type            TEXT    NOT NULL,
        data            TEXT    NOT NULL,
        metadata        TEXT    NOT NULL,
        recorded_at     TEXT    NOT NULL,
        UNIQUE (stream_name, stream_version)
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: 'events by type: readAll of a few types skips the others in the index',
    // For subscribers of rare types (the key book reads SystemKey* events at every start): without it, their
    // catch-up reads every row of the file. Positions grow, so each type's entries are appended at its end.
    sql: `CREATE INDEX IF NOT EXISTS events_by_type ON events (type, global_position);`,
  },
  {
    version: 3,
    description: 'audit events by patient: a patient\'s audit search and export read only the patient\'s own events',
    // Without it they read the patient's partition chain of every day whole (one eighth of all patients' audited
    // requests) and filtered it: an export cost the hub's audited traffic times its age. Partial: only audit events
    // are in it, so other appends do not pay for it. The stream first: a day's audit events go into that day's part
    // of the index only (patient key first spread them over the whole index, every day's, and measured no cheaper).
    // The expression and the WHERE must stay as the reader writes them (sqlite-audit-events-by-field.ts), or
    // SQLite cannot use it. The data of an audit event is JSON text.
    sql: `CREATE INDEX IF NOT EXISTS events_audit_by_patient ON events (stream_name, json_extract(data, '$.patientKey'), stream_version)
            WHERE type = 'AuditRecorded';`,
  },
  {
    version: 4,
    description: 'audit events by subject: a user\'s audit search reads only the user\'s own events',
    // Without it a user's search read all eight chains of every day asked for whole and filtered them (a week of a
    // busy hub: millions of events for one user's few). Built as 3 is, for the same reasons: partial (audit events
    // only), the stream first. The expression and the WHERE must stay as the reader writes them
    // (sqlite-audit-events-by-field.ts), or SQLite cannot use it.
    sql: `CREATE INDEX IF NOT EXISTS events_audit_by_subject ON events (stream_name, json_extract(data, '$.subject'), stream_version)
            WHERE type = 'AuditRecorded';`,
  },
];

/**
 * What a start is about to apply, told before it applies it (`from` 0: a new store): on a large store an index
 * migration takes seconds, which were seconds of silence at start.
 */
export type PendingMigrations = Readonly<{ from: number; to: number; migrations: readonly string[] }>;

/**
 * Apply the migrations not yet applied, in one IMMEDIATE transaction so two processes opening the same new
 * file do not both create the table. `onPending` hears of them first (not called when there are none).
 */
export function migrate(db: Database, migrations: readonly Migration[] = EVENT_STORE_MIGRATIONS, onPending?: (pending: PendingMigrations) => void): void {
  db.exec(`CREATE TABLE IF NOT EXISTS event_store_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL
  ) STRICT`);
  const applied = db.prepare('SELECT version FROM event_store_migrations').pluck();
  const record = db.prepare('INSERT INTO event_store_migrations (version, description, applied_at) VALUES (?, ?, ?)');
  db.transaction(() => {
    const done = new Set(applied.all() as number[]);
    const pending = migrations.filter((m) => !done.has(m.version));
    if (pending.length > 0) {
      onPending?.({ from: Math.max(0, ...done), to: Math.max(...pending.map((m) => m.version)), migrations: pending.map((m) => `${m.version} ${m.description}`) });
    }
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.description, new Date().toISOString());
    }
  }).immediate();
}
