import { uuidV5 } from '../../src/application/ids';
import type { EventStore } from '../../src/application/ports/event-store';
import { documentStreamName } from '../../src/domain/documents/document-entry';

/**
 * Registry entries for consultation tests, written as the XDS backend writes them (a document's own stream), without
 * building an HL7 document: a consultation request checks its attachments against these streams
 * (StoredDocumentEntries). `patientKey` is a pseudonymous key (`p` and 32 hex digits), never a CPR number.
 */
export const PATIENT_A = `p${'a'.repeat(32)}`;
export const PATIENT_B = `p${'b'.repeat(32)}`;

const entry = (uniqueId: string, patientKey: string, replaces: string | null) => ({
  uniqueId,
  patientKey,
  repositoryUniqueId: '1.3.6.1.4.1.21367.2017.3',
  observationId: null,
  creationTime: '2024-05-01T09:00:00Z',
  serviceStartTime: '2024-05-01T08:00:00Z',
  serviceStopTime: '2024-05-01T08:00:00Z',
  mimeType: 'text/xml',
  classCode: 'c',
  typeCode: 't',
  formatCode: 'f',
  title: 'Blood pressure',
  languageCode: 'en-US',
  hash: '0'.repeat(64),
  size: 1,
  replaces,
  // The values as TeleMed records them beside the content, so a registry projection over the same store takes the
  // entry without parsing the (placeholder) document.
  summary: { systolic: 120, diastolic: 80 },
  content: '<ClinicalDocument/>',
});

/** A registered (Approved) document of `patientKey`. */
export const storeDocument = async (store: EventStore, uniqueId: string, patientKey: string = PATIENT_A, replaces: string | null = null): Promise<void> => {
  await store.appendToStream(documentStreamName(uniqueId), [{ id: uuidV5(`test-document/${uniqueId}`), type: 'DocumentSubmitted', data: entry(uniqueId, patientKey, replaces) }]);
};

/** `uniqueId` corrected (XDS RPLC): deprecated for `replacement`, which is registered as its successor. */
export const storeCorrection = async (store: EventStore, uniqueId: string, replacement: string, patientKey: string = PATIENT_A): Promise<void> => {
  await store.appendToStream(documentStreamName(uniqueId), [
    { id: uuidV5(`test-deprecation/${uniqueId}`), type: 'DocumentDeprecated', data: { uniqueId, replacedBy: replacement, deprecatedAt: '2024-05-01T09:30:00Z' } },
  ]);
  await storeDocument(store, replacement, patientKey, uniqueId);
};
