import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsByField, AuditIndexedField } from '../../../application/ports/audit-events-by-field';
import type { RecordedEvent } from '../../../application/ports/event-store';
import { EVENT_COLUMNS, toRecordedEvent, type EventRow, type PostgresEventStore } from './postgres-event-store';

/**
 * The query of one field, for the store's events table: the expression and the type as that field's index names
 * them (events_audit_by_patient, migration 003; events_audit_by_subject, 004), the type as a literal, so the planner
 * sees that the rows are in the partial index.
 * Parameters: stream, value, fromVersion, maxCount.
 */
export const auditEventsByFieldSql = (events: string, field: AuditIndexedField): string =>
  `SELECT ${EVENT_COLUMNS} FROM ${events}
    WHERE stream_name = $1 AND (data->>'${field}') = $2 AND stream_version >= $3::bigint AND event_type = '${AUDIT_EVENT_TYPE}'
    ORDER BY stream_version
    LIMIT $4`;

/**
 * The audit events of one chain that name a patient or a user, from the PostgreSQL store's index of that field:
 * an index scan of those rows of that stream in version order, never the chain's other rows. One statement on the
 * pool, outside the append lock: an audit append resolves after its COMMIT, so a read after it sees it.
 */
export class PostgresAuditEventsByField implements AuditEventsByField {
  private readonly sql: Readonly<Record<AuditIndexedField, string>>;

  constructor(private readonly store: PostgresEventStore) {
    const events = store.table('events');
    this.sql = { patientKey: auditEventsByFieldSql(events, 'patientKey'), subject: auditEventsByFieldSql(events, 'subject') };
  }

  async read(stream: string, fromVersion: bigint, field: AuditIndexedField, value: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    const { rows } = await this.store.query<EventRow>(this.sql[field], [stream, value, fromVersion.toString(), Math.max(0, maxCount)]);
    return rows.map(toRecordedEvent);
  }
}
