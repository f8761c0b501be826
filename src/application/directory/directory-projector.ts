import type { EventStore } from '../ports/event-store';
import { Projector, type ProjectorLogger } from '../projector';
import type { DirectoryReadModel } from './directory-read-model';

export type DirectoryLogger = ProjectorLogger;

/**
 * Feeds the directory read model from the store's global order: the shared Projector. Queries call catchUp()
 * first (read-your-writes) and so does the downlink publisher before it plans from the model.
 */
export class DirectoryProjector extends Projector {
  constructor(store: EventStore, model: DirectoryReadModel, logger?: DirectoryLogger) {
    super(store, model, logger, 1000, 'directory');
  }
}
