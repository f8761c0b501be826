import { documentStreamName } from '../domain/documents/document-entry';
import type { DocumentEntries, DocumentEntryStatus } from './ports/document-entries';
import type { EventStore } from './ports/event-store';

/**
 * DocumentEntries read from the documents' own streams: no projection to wait for, so a request sees a correction
 * committed just before it, and a document whose patient was erased (its registry row is gone) still has its
 * patient's key. A stream holds DocumentSubmitted and, once corrected, DocumentDeprecated naming the replacement;
 * the document counts as Deprecated only once that replacement is registered (its own stream's DocumentSubmitted
 * replaces this one), as the registry projection has it (evolveReplacedEntry).
 */
export class StoredDocumentEntries implements DocumentEntries {
  constructor(private readonly store: EventStore) {}

  async entryOf(uniqueId: string): Promise<DocumentEntryStatus | null> {
    const { events } = await this.store.readStream(documentStreamName(uniqueId));
    const first = events[0];
    const patientKey = first?.type === 'DocumentSubmitted' ? first.data['patientKey'] : undefined;
    if (typeof patientKey !== 'string') return null;
    const deprecation = events.find((e) => e.type === 'DocumentDeprecated');
    const successor = deprecation?.data['replacedBy'];
    if (typeof successor === 'string' && (await this.replaces(successor, uniqueId))) {
      return { uniqueId, patientKey, status: 'Deprecated', replacedBy: successor };
    }
    return { uniqueId, patientKey, status: 'Approved', replacedBy: null };
  }

  private async replaces(successor: string, uniqueId: string): Promise<boolean> {
    const { events } = await this.store.readStream(documentStreamName(successor), { maxCount: 1 });
    return events[0]?.type === 'DocumentSubmitted' && events[0].data['replaces'] === uniqueId;
  }
}
