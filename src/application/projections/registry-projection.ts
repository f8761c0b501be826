import { isoInstantMillis } from '../../domain/shared/iso-instant';
import { assertNever } from '../../domain/shared/decider';
import type { DocumentEvent, DocumentStatus } from '../../domain/documents/document-entry';
import { parseHl7Observation } from '../../domain/documents/hl7';
import { MMHG, type Quantity } from '../../domain/monitoring/tele-observation';

/**
 * The registry's query side: one row per document, found by patient key and service time.
 *
 * The reading's values are taken from the HL7 content once, when the document is projected, rather than by
 * parsing every document on every query: the seed's "retrieve and parse" still happens, once per document.
 */
export type RegistryEntryView = Readonly<{
  uniqueId: string;
  patientKey: string;
  repositoryUniqueId: string;
  status: DocumentStatus;
  creationTime: string;
  serviceStartTime: string;
  /** serviceStartTime as epoch seconds, the indexed column of interval queries. */
  serviceStartEpoch: number;
  mimeType: string;
  hash: string;
  size: number;
  replaces: string | null;
  replacedBy: string | null;
  observationId: string | null;
  systolic: Quantity;
  diastolic: Quantity;
}>;

/** Pure evolve of one row: (row | null, event) -> row | null. Storage adapters apply it; tests call it directly. */
export const evolveRegistryEntry = (current: RegistryEntryView | null, event: DocumentEvent): RegistryEntryView | null => {
  switch (event.type) {
    case 'DocumentSubmitted': {
      if (current) return current; // a row is never overwritten by a second submission of the same uniqueId
      const d = event.data;
      const observation = d.summary
        ? { systolic: { value: d.summary.systolic, unit: MMHG }, diastolic: { value: d.summary.diastolic, unit: MMHG } }
        : parseHl7Observation(d.content);
      return {
        uniqueId: d.uniqueId,
        patientKey: d.patientKey,
        repositoryUniqueId: d.repositoryUniqueId,
        status: 'Approved',
        creationTime: d.creationTime,
        serviceStartTime: d.serviceStartTime,
        serviceStartEpoch: Math.floor(isoInstantMillis(d.serviceStartTime) / 1000),
        mimeType: d.mimeType,
        hash: d.hash,
        size: d.size,
        replaces: d.replaces,
        replacedBy: null,
        observationId: d.observationId,
        systolic: observation.systolic,
        diastolic: observation.diastolic,
      };
    }
    case 'DocumentDeprecated':
      return current ? { ...current, status: 'Deprecated', replacedBy: event.data.replacedBy } : current;
    default:
      return assertNever(event);
  }
};
