import { isoInstantMillis } from '../../domain/shared/iso-instant';
import { assertNever } from '../../domain/shared/decider';
import type { DocumentEvent, DocumentStatus, DocumentSubmitted } from '../../domain/documents/document-entry';
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
  /**
   * The successor named by the document's deprecation. While `status` is still Approved the successor is not
   * registered yet (a correction between its two appends, or one whose second append never happened): the document
   * is current, and the next correction of it registers that successor (XdsBackend.correctBuilt).
   */
  replacedBy: string | null;
  observationId: string | null;
  systolic: Quantity;
  diastolic: Quantity;
}>;

/**
 * Pure evolve of a document's own row: (row | null, event) -> row | null. The rows a correction changes in
 * another document go through evolveReplacedEntry; evolveRegistry applies both, and is what the adapters call.
 *
 * A correction (XDS RPLC) is two appends: DocumentDeprecated to the old document's stream, then the replacement's
 * DocumentSubmitted (with `replaces`) to its own. In XDS the two are one transaction, and so they are to a query:
 * the deprecation only records `replacedBy` on the old row, which stays Approved (current, in queries), and the
 * replacement's submission turns it Deprecated in the projection step that adds the replacement's row. Queries
 * never see neither reading nor both, and a replacement that is never registered (the second append failed) leaves
 * the old reading in queries. Either order of the two events ends in the same rows.
 */
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
      // Deprecated already: its replacement was projected first (or the row is from before replacements did it).
      if (!current || current.status === 'Deprecated') return current;
      // Still current until the replacement is registered: only the successor's id is recorded.
      return current.replacedBy === event.data.replacedBy ? current : { ...current, replacedBy: event.data.replacedBy };
    default:
      return assertNever(event);
  }
};

/**
 * Pure evolve of the row a replacement names in `replaces`: it leaves the queries now, as the replacement enters
 * them. Unchanged when it is Deprecated already, or when its deprecation recorded another successor (the write side
 * gave the correction to that one; this submission does not take it over).
 */
export const evolveReplacedEntry = (replaced: RegistryEntryView, replacement: DocumentSubmitted): RegistryEntryView => {
  const successor = replacement.data.uniqueId;
  if (replaced.uniqueId !== replacement.data.replaces || replaced.status === 'Deprecated') return replaced;
  if (replaced.replacedBy !== null && replaced.replacedBy !== successor) return replaced;
  return { ...replaced, status: 'Deprecated', replacedBy: successor };
};

/**
 * The rows one event changes, evolved: the document's own row and, for a replacement, the row it replaces (which is
 * left alone when it has none: a correction of an erased patient's document, or of one outside this registry).
 * `rowOf` gives the current row of a uniqueId, or null. Returns only rows that changed, the document's own first;
 * an adapter writes them in the same transaction as its checkpoint.
 */
export const evolveRegistry = (rowOf: (uniqueId: string) => RegistryEntryView | null, event: DocumentEvent): readonly RegistryEntryView[] => {
  const own = rowOf(event.data.uniqueId);
  const next = evolveRegistryEntry(own, event);
  const changed = next !== null && next !== own ? [next] : [];
  if (event.type !== 'DocumentSubmitted' || event.data.replaces === null || next === null) return changed;
  const replaced = rowOf(event.data.replaces);
  const flipped = replaced && evolveReplacedEntry(replaced, event);
  return flipped && flipped !== replaced ? [...changed, flipped] : changed;
};
