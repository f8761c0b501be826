import { AUDIT_EVENT_TYPE } from '../../../application/audit/audit-chain';
import type { AuditEventsByField, AuditIndexedField, AuditScannedField } from '../../../application/ports/audit-events-by-field';
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
 * The scan of one field without an index of it (AuditScannedField): a window of versions of one chain, through the
 * index by stream and version (events_stream_version_key), the field compared in the server, so only the matches are
 * sent and parsed. Parameters: stream, fromVersion, toVersion (exclusive), value.
 *
 * No event type in the WHERE (the reader checks it): with `event_type = 'AuditRecorded'` the planner took the smaller
 * partial indexes by patient or subject, whose stream_version is behind the patient or subject, so each window read
 * the chain's whole part of that index (a bitmap scan filtering on the version). Without it they do not apply.
 */
export const auditEventsScanSql = (events: string, field: AuditScannedField): string =>
  `SELECT ${EVENT_COLUMNS} FROM ${events}
    WHERE stream_name = $1 AND stream_version >= $2::bigint AND stream_version < $3::bigint AND (data->>'${field}') = $4
    ORDER BY stream_version`;

/**
 * The days holding audit chains in one statement (a loose index scan of the partial index by patient): each step
 * seeks the next day's prefix, `audit-<day + 1>`, so the chains of a day are passed over in one seek.
 */
export const auditChainDaysSql = (events: string): string => `WITH RECURSIVE d(name) AS (
        (SELECT stream_name FROM ${events} WHERE event_type = '${AUDIT_EVENT_TYPE}' AND stream_name >= 'audit-' ORDER BY stream_name LIMIT 1)
        UNION ALL
        SELECT (SELECT e.stream_name FROM ${events} e
                 WHERE e.event_type = '${AUDIT_EVENT_TYPE}'
                   AND e.stream_name >= 'audit-' || to_char(to_date(substr(d.name, 7, 10), 'YYYY-MM-DD') + 1, 'YYYY-MM-DD')
                 ORDER BY e.stream_name LIMIT 1)
          FROM d WHERE d.name ~ '^audit-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]+$'
      )
      SELECT substr(name, 7, 10) AS day FROM d WHERE name ~ '^audit-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]+$'`;

/**
 * The audit events of one chain that name a patient or a user, from the PostgreSQL store's index of that field:
 * an index scan of those rows of that stream in version order, never the chain's other rows. Those that name a
 * resource or a request (scan): a window of the chain's rows, compared in the server. One statement on the
 * pool, outside the append lock: an audit append resolves after its COMMIT, so a read after it sees it.
 */
export class PostgresAuditEventsByField implements AuditEventsByField {
  private readonly sql: Readonly<Record<AuditIndexedField, string>>;
  private readonly scans: Readonly<Record<AuditScannedField, string>>;
  private readonly chainFrom: string;
  private readonly days: string;

  constructor(private readonly store: PostgresEventStore) {
    const events = store.table('events');
    this.sql = { patientKey: auditEventsByFieldSql(events, 'patientKey'), subject: auditEventsByFieldSql(events, 'subject') };
    this.scans = { resource: auditEventsScanSql(events, 'resource'), requestId: auditEventsScanSql(events, 'requestId') };
    // One seek in the partial index by patient (its leading column). Names are ASCII of one form
    // (audit-YYYY-MM-DD-p), in day order under any collation; a day's prefix sorts before its chains under any too.
    this.chainFrom = `SELECT stream_name FROM ${events} WHERE event_type = '${AUDIT_EVENT_TYPE}' AND stream_name >= $1 ORDER BY stream_name LIMIT 1`;
    this.days = auditChainDaysSql(events);
  }

  async chainDays(): Promise<readonly string[]> {
    const { rows } = await this.store.query<{ day: string }>(this.days, []);
    return rows.map((r) => r.day);
  }

  async firstChainFrom(streamName: string): Promise<string | null> {
    const { rows } = await this.store.query<{ stream_name: string }>(this.chainFrom, [streamName]);
    return rows[0]?.stream_name ?? null;
  }

  async scan(stream: string, fromVersion: bigint, toVersion: bigint, field: AuditScannedField, value: string): Promise<readonly RecordedEvent[]> {
    const { rows } = await this.store.query<EventRow>(this.scans[field], [stream, fromVersion.toString(), toVersion.toString(), value]);
    return rows.map(toRecordedEvent).filter((e) => e.type === AUDIT_EVENT_TYPE);
  }

  async read(stream: string, fromVersion: bigint, field: AuditIndexedField, value: string, maxCount: number): Promise<readonly RecordedEvent[]> {
    const { rows } = await this.store.query<EventRow>(this.sql[field], [stream, value, fromVersion.toString(), Math.max(0, maxCount)]);
    return rows.map(toRecordedEvent);
  }
}
