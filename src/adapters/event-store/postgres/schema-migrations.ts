/**
 * The PostgreSQL event store's migrations, in order, as TypeScript strings so the built program (dist/) carries
 * them: tsc copies no .sql files, and a hub started from dist/ must not depend on the source tree being present.
 *
 * Rules: never edit an applied migration (its checksum is recorded; migrate() refuses a changed one), add the
 * next one at the end instead. Each runs with search_path set to the store's schema, so names are unqualified.
 * A first line `-- rts:no-transaction` runs it alone, outside a transaction, as one statement (migrate.ts).
 */
export const SCHEMA_MIGRATIONS: ReadonlyArray<Readonly<{ name: string; sql: string }>> = [
  {
    name: '001_events',
    sql: `
-- The event log. Runs with search_path set to the store's schema (see migrate.ts), so names are unqualified.
--
-- global_position: bigserial, but appends assign it under a transaction-scoped advisory lock held until commit,
--   so positions are handed out in commit order (see postgres-event-store.ts for why). Rolled-back appends leave
--   gaps; readers skip them, nothing can ever fill them later.
-- (stream_name, stream_version): optimistic concurrency backstop; the append reads the head under the same lock.
-- event_id: unique across the store. An id belongs to one event; reusing it anywhere else is a caller bug that
--   the append reports as IdempotencyViolationError. Kept as text so ids round-trip exactly as given.
CREATE TABLE IF NOT EXISTS events (
  global_position bigserial   PRIMARY KEY,
  stream_name     text        NOT NULL,
  stream_version  bigint      NOT NULL CHECK (stream_version >= 0),
  event_id        text        NOT NULL,
  event_type      text        NOT NULL,
  data            jsonb       NOT NULL,
  metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT events_stream_version_key UNIQUE (stream_name, stream_version),
  CONSTRAINT events_event_id_key UNIQUE (event_id)
);
`.slice(1),
  },
  {
    name: '002_events_by_type',
    sql: `
-- rts:no-transaction
-- readAll of a few types (subscribers of rare types, e.g. the key book at every start) reads this index instead
-- of every row after its checkpoint. Built CONCURRENTLY, outside a transaction (see migrate.ts): a plain CREATE
-- INDEX on a large events table would block every append until it is done.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_by_type ON events (event_type, global_position);
`.slice(1),
  },
  // 003's comment names the reader's file as it was then: it is postgres-audit-events-by-field.ts now (the text of
  // an applied migration stays as it is, see above).
  {
    name: '003_events_audit_by_patient',
    sql: `
-- rts:no-transaction
-- A patient's audit search and export read the patient's own audit events of each day's chain from this index,
-- instead of the whole chain (one eighth of every patient's audited requests): an export cost the hub's audited
-- traffic times its age. Partial: only audit events are in it. The stream first: a day's audit events go into that
-- day's part of the index, not all over it. The expression and the WHERE must stay as the reader writes them
-- (postgres-audit-events-of-patient.ts). CONCURRENTLY, as 002: appends go on while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_audit_by_patient ON events (stream_name, (data->>'patientKey'), stream_version) WHERE event_type = 'AuditRecorded';
`.slice(1),
  },
  {
    name: '004_events_audit_by_subject',
    sql: `
-- rts:no-transaction
-- A user's audit search reads the user's own audit events of each day's chains from this index, instead of all
-- eight chains of every day asked for, whole (a week of a busy hub: millions of events for one user's few). Built
-- as 003 is: partial (only audit events are in it), the stream first. The expression and the WHERE must stay as
-- the reader writes them (postgres-audit-events-by-field.ts). CONCURRENTLY, as 002: appends go on while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_audit_by_subject ON events (stream_name, (data->>'subject'), stream_version) WHERE event_type = 'AuditRecorded';
`.slice(1),
  },
];
