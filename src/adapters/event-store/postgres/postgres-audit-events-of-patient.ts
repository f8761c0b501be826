import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsOfPatient } from '../../../application/ports/audit-events-of-patient';
import type { RecordedEvent } from '../../../application/ports/event-store';
import { EVENT_COLUMNS, toRecordedEvent, type EventRow, type PostgresEventStore } from './postgres-event-store';

/**
 * The query, for the store's events table: the expression and the type as the index events_audit_by_patient names
 * them (migration 003), the type as a literal, so the planner sees that the rows are in the partial index.
 * Parameters: stream, patientKey, fromVersion, maxCount.
 */
export const auditEventsOfPatientSql = (events: string): string =>
  `SELECT ${EVENT_COLUMNS} FROM ${events}
    WHERE stream_name = $1 AND (data->>'patientKey') = $2 AND stream_version >= $3::bigint AND event_type = '${AUDIT_EVENT_TYPE}'
    ORDER BY stream_version
    LIMIT $4`;

/**
 * A patient's audit events of one chain, from the PostgreSQL store's index events_audit_by_patient: an index scan
 * of the patient's rows of that stream in version order, never the chain's other rows. One statement on the pool,
 * outside the append lock: an audit append resolves after its COMMIT, so a read after it sees it.
 */
export class PostgresAuditEventsOfPatient implements AuditEventsOfPatient {
  private readonly sql: string;

  constructor(private readonly store: PostgresEventStore) {
    this.sql = auditEventsOfPatientSql(store.table('events'));
  }

  async read(stream: string, fromVersion: bigint, patientKey: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    const { rows } = await this.store.query<EventRow>(this.sql, [stream, patientKey, fromVersion.toString(), Math.max(0, maxCount)]);
    return rows.map(toRecordedEvent);
  }
}
