import type { DocumentStatus } from '../../domain/documents/document-entry';

/**
 * What the consultations need of the hub's XDS registry: one document's entry, by uniqueId. A consultation request
 * checks its attachments with it (registered, current, one patient), and a consultation's answer shows each
 * attachment's status as the registry has it at read time.
 *
 * `status` follows the registry's rule (GET /documents/{uniqueId}): a document turns Deprecated when its
 * replacement is registered; one whose correction is under way (or whose correction's second step failed) is still
 * Approved, and `replacedBy` is null until then. `patientKey` is the pseudonymous key (never a CPR number); it is
 * kept after the patient's erasure, which the caller checks on its own.
 */
export type DocumentEntryStatus = Readonly<{ uniqueId: string; patientKey: string; status: DocumentStatus; replacedBy: string | null }>;

export interface DocumentEntries {
  /** The document's entry, or null when no document of this hub has this uniqueId. */
  entryOf(uniqueId: string): Promise<DocumentEntryStatus | null>;
}
