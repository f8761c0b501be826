import type { Statement } from 'better-sqlite3';
import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsByField, AuditIndexedField, AuditScannedField } from '../../../application/ports/audit-events-by-field';
import type { RecordedEvent } from '../../../application/ports/event-store';
import { COLUMNS, toRecorded, type EventRow, type SqliteEventStore } from './sqlite-event-store';

/** Each indexed field's index (schema.ts): events_audit_by_patient (migration 3), events_audit_by_subject (4). */
export const AUDIT_INDEX_OF_FIELD: Readonly<Record<AuditIndexedField, string>> = {
  patientKey: 'events_audit_by_patient',
  subject: 'events_audit_by_subject',
};

/**
 * The query of one field: the expression and the type as its index names them, the type as a literal (a bound
 * parameter would not show SQLite that the rows are in the partial index). INDEXED BY: a statement SQLite cannot
 * answer from the index fails when prepared instead of scanning the chain. Parameters: stream, value, fromVersion,
 * maxCount.
 */
export const auditEventsByFieldSql = (field: AuditIndexedField): string => `SELECT ${COLUMNS} FROM events INDEXED BY ${AUDIT_INDEX_OF_FIELD[field]}
  WHERE stream_name = ? AND json_extract(data, '$.${field}') = ? AND stream_version >= ? AND type = '${AUDIT_EVENT_TYPE}'
  ORDER BY stream_version LIMIT ?`;

type Query = Statement<[string, string, bigint, number]>;

/**
 * The index of the events' (stream_name, stream_version), from migration 1's UNIQUE constraint (SQLite names it; the
 * table's first UNIQUE is event_id's). A scan reads a window of a chain's versions through it.
 */
export const STREAM_VERSION_INDEX = 'sqlite_autoindex_events_2';

/**
 * The scan of one field without an index of it (AuditScannedField): a window of versions of one chain through the
 * index by stream and version, the field compared in SQLite, so only the matches come out (and are JSON-parsed).
 * INDEXED BY: SQLite takes this index on its own today, but the partial audit indexes lead with the stream too, and
 * through one of them (PostgreSQL's planner chose that for the same query) a window would read the chain's whole part
 * of it; a statement SQLite cannot answer from this index fails when prepared instead. Parameters: stream,
 * fromVersion, toVersion (exclusive), value.
 */
export const auditEventsScanSql = (field: AuditScannedField): string => `SELECT ${COLUMNS} FROM events INDEXED BY ${STREAM_VERSION_INDEX}
  WHERE stream_name = ? AND stream_version >= ? AND stream_version < ? AND type = '${AUDIT_EVENT_TYPE}' AND json_extract(data, '$.${field}') = ?
  ORDER BY stream_version`;

type Scan = Statement<[string, bigint, bigint, string]>;

/** The first audit chain at or after a stream name, through the partial index by patient (its leading column). */
export const auditChainFromSql = `SELECT stream_name FROM events INDEXED BY ${AUDIT_INDEX_OF_FIELD.patientKey}
  WHERE type = '${AUDIT_EVENT_TYPE}' AND stream_name >= ? ORDER BY stream_name LIMIT 1`;

/**
 * The audit events of one chain that name a patient or a user, from the SQLite store's index of that field
 * (AUDIT_INDEX_OF_FIELD): a seek to (stream, value) and those rows in version order, never the chain's other rows.
 * Those that name a resource or a request (scan): a window of the chain's rows, compared in SQLite.
 *
 * Read from the file, like readStream: an audit append resolves after its COMMIT (the trail's drain() waits for it),
 * so a read after it sees it. (The store's in-memory run of recent events serves readAll only.)
 */
export class SqliteAuditEventsByField implements AuditEventsByField {
  private readonly queries: Readonly<Record<AuditIndexedField, Query>>;
  private readonly scans: Readonly<Record<AuditScannedField, Scan>>;
  private readonly chainFrom: Statement<[string]>;

  constructor(store: SqliteEventStore) {
    // safeIntegers: versions and positions as bigint.
    const prepare = (field: AuditIndexedField): Query => store.database.prepare<[string, string, bigint, number]>(auditEventsByFieldSql(field)).safeIntegers(true);
    this.queries = { patientKey: prepare('patientKey'), subject: prepare('subject') };
    const prepareScan = (field: AuditScannedField): Scan => store.database.prepare<[string, bigint, bigint, string]>(auditEventsScanSql(field)).safeIntegers(true);
    this.scans = { resource: prepareScan('resource'), requestId: prepareScan('requestId') };
    // The partial index by patient leads with the stream: one seek to the first row at or after a name (no sort).
    this.chainFrom = store.database.prepare<[string]>(auditChainFromSql).pluck();
  }

  async firstChainFrom(streamName: string): Promise<string | null> {
    return (this.chainFrom.get(streamName) as string | undefined) ?? null;
  }

  async scan(stream: string, fromVersion: bigint, toVersion: bigint, field: AuditScannedField, value: string): Promise<readonly RecordedEvent[]> {
    return (this.scans[field].all(stream, fromVersion, toVersion, value) as EventRow[]).map(toRecorded);
  }

  async read(stream: string, fromVersion: bigint, field: AuditIndexedField, value: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    return (this.queries[field].all(stream, value, fromVersion, Math.max(0, maxCount)) as EventRow[]).map(toRecorded);
  }
}
