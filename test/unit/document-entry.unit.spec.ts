import {
  documentEntryDecider,
  documentStreamName,
  isDocumentEvent,
  type DocumentEntryData,
  type DocumentEvent,
  type DocumentSubmitted,
} from '../../src/domain/documents/document-entry';
import { ConflictError, NotFoundError } from '../../src/domain/shared/errors';
import { DeciderSpec } from '../support/decider-spec';

const spec = DeciderSpec.for(documentEntryDecider);

const OLD = '2.25.100';
const NEW = '2.25.200';
const OTHER = '2.25.300';

const entry: DocumentEntryData = {
  uniqueId: OLD,
  patientKey: 'p0123456789abcdef0123456789abcdef',
  repositoryUniqueId: '2.25.1',
  observationId: 'obs-1',
  creationTime: '2024-03-10T12:00:00Z',
  serviceStartTime: '2024-03-10T11:59:00Z',
  serviceStopTime: '2024-03-10T11:59:00Z',
  mimeType: 'text/xml',
  classCode: '8716-3',
  typeCode: '55284-4',
  formatCode: 'urn:telemed-rts:hl7:bp:1',
  title: 'Home blood pressure measurement',
  languageCode: 'en',
  hash: 'a'.repeat(64),
  size: 512,
  replaces: null,
};
const content = '<ClinicalDocument/>';

const submitted: DocumentSubmitted = { type: 'DocumentSubmitted', data: { ...entry, content } };
const deprecated = (replacedBy: string): DocumentEvent => ({ type: 'DocumentDeprecated', data: { uniqueId: OLD, replacedBy, deprecatedAt: '2024-03-10T12:30:00Z' } });
const deprecate = (replacedBy: string) => ({ type: 'DeprecateDocument' as const, uniqueId: OLD, replacedBy, now: '2024-03-10T12:30:00Z' });

describe('DocumentEntry decider', () => {
  describe('SubmitDocument', () => {
    it('on an empty stream: DocumentSubmitted with the entry and its content', () => {
      spec.given([]).when({ type: 'SubmitDocument', entry, content }).then([submitted]);
    });

    it('the same submission again (same hash and patient key): nothing happens', () => {
      spec.given([submitted]).when({ type: 'SubmitDocument', entry, content }).thenNothing();
    });

    it('a repeat that differs only in creation time is still the same submission', () => {
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: { ...entry, creationTime: '2024-03-10T13:00:00Z' }, content }).thenNothing();
    });

    it('another reading under the same uniqueId (different hash): observation_id_reused', () => {
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: { ...entry, hash: 'b'.repeat(64) }, content: '<other/>' }).thenThrows(ConflictError, 'observation_id_reused');
    });

    it("a retry with a keyed digest of an upload stored with the plain SHA-256 (before digests were keyed): its plainHash recognises it", () => {
      const keyed = { ...entry, hash: `hmac-sha256:${'c'.repeat(64)}` };
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: keyed, content, plainHash: entry.hash }).thenNothing();
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: keyed, content, plainHash: 'b'.repeat(64) }).thenThrows(ConflictError, 'observation_id_reused');
    });

    it('a retry in new bytes of a document an earlier build stored (effectiveTime without +0000): its earlierHashes recognise it', () => {
      const rebuilt = { ...entry, hash: 'd'.repeat(64) };
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: rebuilt, content, earlierHashes: ['e'.repeat(64), entry.hash] }).thenNothing();
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: rebuilt, content, earlierHashes: ['e'.repeat(64)] }).thenThrows(ConflictError, 'observation_id_reused');
      // Still the patient's own document only.
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: { ...rebuilt, patientKey: 'pffff' }, content, earlierHashes: [entry.hash] }).thenThrows(ConflictError, 'observation_id_reused');
    });

    it('the same content for another patient key: observation_id_reused', () => {
      spec.given([submitted]).when({ type: 'SubmitDocument', entry: { ...entry, patientKey: 'pffff' }, content }).thenThrows(ConflictError, 'observation_id_reused');
    });

    it('a repeat of a submission that has since been deprecated: still nothing', () => {
      spec.given([submitted, deprecated(NEW)]).when({ type: 'SubmitDocument', entry, content }).thenNothing();
    });
  });

  describe('DeprecateDocument', () => {
    it('an unknown document: NotFoundError document_not_found', () => {
      spec.given([]).when(deprecate(NEW)).thenThrows(NotFoundError, 'document_not_found');
    });

    it('an approved document: DocumentDeprecated with the replacement and the time of the command', () => {
      spec.given([submitted]).when(deprecate(NEW)).then([deprecated(NEW)]);
    });

    it('again with the same replacement (a retried correction): nothing happens', () => {
      spec.given([submitted, deprecated(NEW)]).when(deprecate(NEW)).thenNothing();
    });

    it('again with another replacement: ConflictError document_deprecated', () => {
      const error = spec.given([submitted, deprecated(NEW)]).when(deprecate(OTHER)).thenThrows(ConflictError, 'document_deprecated');
      expect(error.message).not.toContain(OTHER);
    });
  });

  describe('evolve', () => {
    it('keeps the entry without its content, and the replacement once deprecated', () => {
      const approved = documentEntryDecider.evolve(documentEntryDecider.initialState(), submitted);
      expect(approved).toEqual({ status: 'Approved', entry });
      expect(documentEntryDecider.evolve(approved, deprecated(NEW))).toEqual({ status: 'Deprecated', entry, replacedBy: NEW });
    });

    it('ignores a deprecation of a document it never saw', () => {
      expect(documentEntryDecider.evolve(documentEntryDecider.initialState(), deprecated(NEW))).toEqual({ status: 'None' });
    });
  });

  it('names one stream per document', () => {
    expect(documentStreamName(OLD)).toBe('document-2.25.100');
  });

  it("tells a document's events from other events (a projection picks its own from the stream of all events)", () => {
    expect(isDocumentEvent(submitted)).toBe(true);
    expect(isDocumentEvent(deprecated(NEW))).toBe(true);
    for (const type of ['ObservationRecorded', 'ExpertRegistered', 'ConsultationRequested', '']) expect(isDocumentEvent({ type })).toBe(false);
  });
});
