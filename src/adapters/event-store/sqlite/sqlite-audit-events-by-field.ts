import type { Statement } from 'better-sqlite3';
import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsByField, AuditIndexedField } from '../../../application/ports/audit-events-by-field';
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
 * The audit events of one chain that name a patient or a user, from the SQLite store's index of that field
 * (AUDIT_INDEX_OF_FIELD): a seek to (stream, value) and those rows in version order, never the chain's other rows.
 *
 * Read from the file, like readStream: an audit append resolves after its COMMIT (the trail's drain() waits for it),
 * so a read after it sees it. (The store's in-memory run of recent events serves readAll only.)
 */
export class SqliteAuditEventsByField implements AuditEventsByField {
  private readonly queries: Readonly<Record<AuditIndexedField, Query>>;

  constructor(store: SqliteEventStore) {
    // safeIntegers: versions and positions as bigint.
    const prepare = (field: AuditIndexedField): Query => store.database.prepare<[string, string, bigint, number]>(auditEventsByFieldSql(field)).safeIntegers(true);
    this.queries = { patientKey: prepare('patientKey'), subject: prepare('subject') };
  }

  async read(stream: string, fromVersion: bigint, field: AuditIndexedField, value: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    return (this.queries[field].all(stream, value, fromVersion, Math.max(0, maxCount)) as EventRow[]).map(toRecorded);
  }
}
