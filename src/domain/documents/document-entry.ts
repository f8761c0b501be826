import { ConflictError, NotFoundError } from '../shared/errors';
import { assertNever, type Decider, type DomainEvent } from '../shared/decider';

/**
 * DocumentEntry: the XDS registry metadata of one document together with its content, one stream per document.
 * No stream is shared by all writes: a patient's series is found through the registry projection, not a stream.
 *
 * The entry holds the pseudonymous patient key, never the patient identifier itself: the identifier travels
 * only inside the document content.
 */
export type DocumentStatus = 'Approved' | 'Deprecated';

export type DocumentEntryData = Readonly<{
  uniqueId: string;
  patientKey: string;
  repositoryUniqueId: string;
  /** Client-supplied observation id, when there was one (the idempotency key of the upload). */
  observationId: string | null;
  creationTime: string;
  serviceStartTime: string;
  serviceStopTime: string;
  mimeType: string;
  classCode: string;
  typeCode: string;
  formatCode: string;
  title: string;
  languageCode: string;
  /** sha256 of the content, hex, as XDS metadata carries it. */
  hash: string;
  size: number;
  /** uniqueId of the document this one replaces (XDS RPLC), or null. */
  replaces: string | null;
  /**
   * The reading's values, when the submitter built the document from them (TeleMed's processAndStore does, with
   * one Director), so the registry need not parse the document it was just given. Absent: parsed from content.
   */
  summary?: Readonly<{ systolic: number; diastolic: number }> | null;
}>;

export type DocumentSubmitted = DomainEvent<'DocumentSubmitted', DocumentEntryData & { content: string }>;
export type DocumentDeprecated = DomainEvent<'DocumentDeprecated', { uniqueId: string; replacedBy: string; deprecatedAt: string }>;
export type DocumentEvent = DocumentSubmitted | DocumentDeprecated;

/**
 * `entry.hash` of a sealed document is a keyed digest (see PatientDataProtection.digest); `plainHash`, the
 * document's SHA-256, still recognises a retry of an upload stored before hashes were keyed. `earlierHashes`: the
 * hashes (keyed and plain) of the bytes an earlier build wrote for the same reading (effectiveTime without its
 * `+0000`), which recognise a retry of an upload or correction stored by that build.
 */
export type SubmitDocument = Readonly<{ type: 'SubmitDocument'; entry: DocumentEntryData; content: string; plainHash?: string; earlierHashes?: readonly string[] }>;
export type DeprecateDocument = Readonly<{ type: 'DeprecateDocument'; uniqueId: string; replacedBy: string; now: string }>;
export type DocumentCommand = SubmitDocument | DeprecateDocument;

export type DocumentState =
  | Readonly<{ status: 'None' }>
  | Readonly<{ status: 'Approved'; entry: DocumentEntryData }>
  | Readonly<{ status: 'Deprecated'; entry: DocumentEntryData; replacedBy: string }>;

const decide = (command: DocumentCommand, state: DocumentState): readonly DocumentEvent[] => {
  switch (command.type) {
    case 'SubmitDocument': {
      if (state.status === 'None') return [{ type: 'DocumentSubmitted', data: { ...command.entry, content: command.content } }];
      // The same upload again (a retry, a repeated request): nothing new happens.
      const sameDocument =
        state.entry.hash === command.entry.hash ||
        (command.plainHash !== undefined && state.entry.hash === command.plainHash) ||
        (command.earlierHashes?.includes(state.entry.hash) ?? false);
      if (sameDocument && state.entry.patientKey === command.entry.patientKey) return [];
      if (command.entry.replaces !== null) throw new ConflictError('correction_id_reused', 'this correction id was already used for a different correction');
      throw new ConflictError('observation_id_reused', 'this observation id was already used for a different reading');
    }
    case 'DeprecateDocument': {
      if (state.status === 'None') throw new NotFoundError('document_not_found', 'no document has this uniqueId');
      if (state.status === 'Deprecated') {
        if (state.replacedBy === command.replacedBy) return []; // a retried correction
        throw new ConflictError('document_deprecated', 'the document was already replaced by a correction; correct the current one');
      }
      return [{ type: 'DocumentDeprecated', data: { uniqueId: command.uniqueId, replacedBy: command.replacedBy, deprecatedAt: command.now } }];
    }
    default:
      return assertNever(command);
  }
};

const evolve = (state: DocumentState, event: DocumentEvent): DocumentState => {
  switch (event.type) {
    case 'DocumentSubmitted': {
      const { content: _content, ...entry } = event.data;
      return { status: 'Approved', entry };
    }
    case 'DocumentDeprecated':
      return state.status === 'None' ? state : { status: 'Deprecated', entry: state.entry, replacedBy: event.data.replacedBy };
    default:
      return assertNever(event);
  }
};

export const documentEntryDecider: Decider<DocumentCommand, DocumentEvent, DocumentState> = {
  decide,
  evolve,
  initialState: () => ({ status: 'None' }),
};

export const documentStreamName = (uniqueId: string): string => `document-${uniqueId}`;

export const isDocumentEvent = (e: { type: string }): e is DocumentEvent => e.type === 'DocumentSubmitted' || e.type === 'DocumentDeprecated';
