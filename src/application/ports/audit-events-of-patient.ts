import type { RecordedEvent } from './event-store';

/**
 * A store's index of audit events by patient: what lets a patient's audit search and export read the patient's own
 * audit events instead of whole partition chains, one eighth of every patient's audited requests of each day.
 * Optional: a store without such an index (in-memory, EventStoreDB) leaves AuditTrail to read the chains.
 */
export interface AuditEventsOfPatient {
  /**
   * The events of stream `stream` of type AuditRecorded (AUDIT_EVENT_TYPE) whose data's patientKey is `patientKey`,
   * with stream version >= `fromVersion`, in version order, at most `maxCount`. Every such event committed before
   * the call is in the answer (an append whose promise has resolved included).
   */
  read(stream: string, fromVersion: bigint, patientKey: string, maxCount: number): Promise<readonly RecordedEvent[]>;
}
