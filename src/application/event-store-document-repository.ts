import { documentStreamName } from '../domain/documents/document-entry';
import type { DocumentRepository } from './ports/document-repository';
import type { EventStore } from './ports/event-store';

/**
 * The embedded repository: a document's content is stored in its DocumentSubmitted event, the first event of
 * the document's own stream, so storing a document and registering it are one atomic append.
 */
export class EventStoreDocumentRepository implements DocumentRepository {
  constructor(
    readonly repositoryUniqueId: string,
    private readonly store: EventStore,
  ) {}

  async retrieve(uniqueId: string): Promise<string | null> {
    const { events } = await this.store.readStream(documentStreamName(uniqueId), { maxCount: 1 });
    const first = events[0];
    if (!first || first.type !== 'DocumentSubmitted') return null;
    const content = first.data['content'];
    return typeof content === 'string' ? content : null;
  }
}
