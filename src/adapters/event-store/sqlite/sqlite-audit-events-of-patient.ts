import type { Statement } from 'better-sqlite3';
import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsOfPatient } from '../../../application/ports/audit-events-of-patient';
import type { RecordedEvent } from '../../../application/ports/event-store';
import { COLUMNS, toRecorded, type EventRow, type SqliteEventStore } from './sqlite-event-store';

/**
 * The query: the expression and the type as the index names them, the type as a literal (a bound parameter would not
 * show SQLite that the rows are in the partial index). INDEXED BY: a statement SQLite cannot answer from the index
 * fails when prepared instead of scanning the chain. Parameters: stream, patientKey, fromVersion, maxCount.
 */
export const AUDIT_EVENTS_OF_PATIENT_SQL = `SELECT ${COLUMNS} FROM events INDEXED BY events_audit_by_patient
  WHERE stream_name = ? AND json_extract(data, '$.patientKey') = ? AND stream_version >= ? AND type = '${AUDIT_EVENT_TYPE}'
  ORDER BY stream_version LIMIT ?`;

/**
 * A patient's audit events of one chain, from the SQLite store's index events_audit_by_patient (migration 3,
 * schema.ts): a seek to (stream, patientKey) and the patient's rows in version order, never the chain's other rows.
 *
 * Read from the file, like readStream: an audit append resolves after its COMMIT (the trail's drain() waits for it),
 * so a read after it sees it. (The store's in-memory run of recent events serves readAll only.)
 */
export class SqliteAuditEventsOfPatient implements AuditEventsOfPatient {
  private readonly query: Statement<[string, string, bigint, number]>;

  constructor(store: SqliteEventStore) {
    // safeIntegers: versions and positions as bigint.
    this.query = store.database.prepare<[string, string, bigint, number]>(AUDIT_EVENTS_OF_PATIENT_SQL).safeIntegers(true);
  }

  async read(stream: string, fromVersion: bigint, patientKey: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    return (this.query.all(stream, patientKey, fromVersion, Math.max(0, maxCount)) as EventRow[]).map(toRecorded);
  }
}
