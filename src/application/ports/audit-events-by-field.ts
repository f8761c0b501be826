import type { RecordedEvent } from './event-store';

/**
 * The fields of an audit event's data (AuditEntry) that a store indexes audit events by: the patient's pseudonymous
 * key (a patient's search and export) and the user's token subject (a user's search).
 */
export type AuditIndexedField = 'patientKey' | 'subject';

/**
 * The fields a store compares in a chain without an index of them: a resource (document or consultation) and a
 * request id, the investigator's occasional searches. Every audited request would pay an index entry for each on its
 * append; the store reads the chain's rows by its index of stream and version instead and hands back the matches only.
 */
export type AuditScannedField = 'resource' | 'requestId';

/**
 * A store's indexes of audit events by a field of their data, one index per field: what lets a patient's or a
 * user's audit search read only the audit events that name that patient or user instead of whole chains (a
 * patient's partition chain of each day holds one eighth of every patient's audited requests; a user's search
 * walked all eight chains of each day). Optional: a store without such indexes (in-memory, EventStoreDB) leaves
 * AuditTrail to read the chains.
 */
export interface AuditEventsByField {
  /**
   * The events of stream `stream` of type AuditRecorded (AUDIT_EVENT_TYPE) whose data's `field` is the string
   * `value`, with stream version >= `fromVersion`, in version order, at most `maxCount`. Every such event committed
   * before the call is in the answer (an append whose promise has resolved included).
   */
  read(stream: string, fromVersion: bigint, field: AuditIndexedField, value: string, maxCount: number): Promise<readonly RecordedEvent[]>;

  /**
   * The events of stream `stream` of type AuditRecorded with stream version in [fromVersion, toVersion) whose data's
   * `field` is the string `value`, in version order. No index of the field: the store reads those versions of the
   * chain and compares the field itself, so that only the matches are decoded and handed back (a chain walk in the
   * hub decoded every event of the chain). The window bounds what one call reads. Every such event committed before
   * the call is in the answer. Optional: without it AuditTrail walks the chains.
   */
  scan?(stream: string, fromVersion: bigint, toVersion: bigint, field: AuditScannedField, value: string): Promise<readonly RecordedEvent[]>;

  /**
   * The first stream name at or after `streamName` (in the index's order) that holds an AuditRecorded event, or null:
   * one seek in the store's index, so that the days holding audit chains can be found one by one, skipping the days
   * between (a clock set wrong puts some outside the store's other times). Optional: without it the trail cannot
   * tell (AuditTrail.chainDaysOutside).
   */
  firstChainFrom?(streamName: string): Promise<string | null>;

  /**
   * The days ('YYYY-MM-DD', in order) that hold audit chains, the same seeks as firstChainFrom's in one call where a
   * call costs a round trip (PostgreSQL: one statement instead of one per day). Optional: AuditTrail seeks by itself.
   */
  chainDays?(): Promise<readonly string[]>;
}
