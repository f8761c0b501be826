import { connectedSystemDecider, systemStreamName } from '../../domain/directory/connected-system';
import { NotFoundError, ValidationError } from '../../domain/shared/errors';
import { handleCommand } from '../command-handling';
import type { Clock } from '../ports/clock';
import type { EventStore } from '../ports/event-store';
import type { IdGenerator } from '../ports/id-generator';
import type { ExpertView, SystemView } from '../projections/directory-projection';
import type { DirectoryProjector } from './directory-projector';
import type { DirectoryReadModel, ExpertQuery } from './directory-read-model';

/**
 * The directory's operator commands and queries (the HTTP read side calls these).
 *
 *   registerSystem({ systemId, name, area }, { commandId?, correlationId? }) -> { system, created }
 *     operator registers a connected system; its downlink queue is `${downlinkQueuePrefix}${systemId}`
 *     ('rts.downlink.<id>' by default). The same details again -> created: false; other details ->
 *     ConflictError 'system_already_registered'; a bad id -> ValidationError 'invalid_system_id'.
 *   findExperts({ specialty?, city?, language?, homeSystemId?, includeRetired?, limit?, cursor? })
 *     -> { items, nextCursor } (keyset pages by expert id; `cursor` is opaque; a bad one -> ValidationError
 *     'invalid_cursor'; limit 1..MAX_PAGE_SIZE, default DEFAULT_PAGE_SIZE)
 *   getExpert(expertId) -> ExpertView, or NotFoundError 'expert_not_found'
 *   listSystems() -> SystemView[];  getSystem(systemId) -> SystemView, or NotFoundError 'system_not_found'
 *
 * Every query catches the projection up first, so a caller reads its own writes.
 */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_DOWNLINK_QUEUE_PREFIX = 'rts.downlink.';

export type DirectoryServiceDependencies = Readonly<{
  store: EventStore;
  directory: DirectoryReadModel;
  projector: Pick<DirectoryProjector, 'catchUp'>;
  clock: Clock;
  ids: IdGenerator;
  downlinkQueuePrefix?: string;
}>;

export type FindExpertsInput = Omit<ExpertQuery, 'after' | 'limit'> & Readonly<{ limit?: number; cursor?: string }>;
export type ExpertsPage = Readonly<{ items: readonly ExpertView[]; nextCursor: string | null }>;

export const encodeCursor = (expertId: string): string => Buffer.from(`e:${expertId}`, 'utf8').toString('base64url');
export const decodeCursor = (cursor: string): string => {
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!text.startsWith('e:') || text.length < 3) {
    throw new ValidationError('invalid_cursor', 'the cursor is not one this API gave out', [{ path: 'query.cursor', message: 'unknown cursor' }]);
  }
  return text.slice(2);
};

export class DirectoryService {
  constructor(private readonly deps: DirectoryServiceDependencies) {}

  downlinkQueueFor(systemId: string): string {
    return `${this.deps.downlinkQueuePrefix ?? DEFAULT_DOWNLINK_QUEUE_PREFIX}${systemId}`;
  }

  async registerSystem(
    input: Readonly<{ systemId: string; name: string; area: string }>,
    options: Readonly<{ commandId?: string; correlationId?: string }> = {},
  ): Promise<{ system: SystemView; created: boolean }> {
    const { newEvents } = await handleCommand(
      this.deps.store,
      systemStreamName(input.systemId),
      connectedSystemDecider,
      {
        type: 'RegisterSystem',
        systemId: input.systemId,
        name: input.name,
        area: input.area,
        downlinkQueue: this.downlinkQueueFor(input.systemId),
        now: this.deps.clock.now().toUTC().toISO()!,
      },
      { commandId: options.commandId ?? this.deps.ids.uuid(), metadata: options.correlationId ? { correlationId: options.correlationId } : {} },
    );
    return { system: await this.getSystem(input.systemId), created: newEvents.length > 0 };
  }

  async findExperts(input: FindExpertsInput): Promise<ExpertsPage> {
    const limit = input.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new ValidationError('invalid_request', `limit must be 1..${MAX_PAGE_SIZE}`, [{ path: 'query.limit', message: `must be 1..${MAX_PAGE_SIZE}` }]);
    }
    const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    await this.deps.projector.catchUp();
    const { cursor: _cursor, ...filters } = input;
    const page = await this.deps.directory.findExperts({ ...filters, limit, after });
    const last = page.items[page.items.length - 1];
    return { items: page.items, nextCursor: page.hasMore && last ? encodeCursor(last.expertId) : null };
  }

  async getExpert(expertId: string): Promise<ExpertView> {
    await this.deps.projector.catchUp();
    const expert = await this.deps.directory.getExpert(expertId);
    if (!expert) throw new NotFoundError('expert_not_found', 'no expert has this id');
    return expert;
  }

  async listSystems(): Promise<readonly SystemView[]> {
    await this.deps.projector.catchUp();
    return this.deps.directory.listSystems();
  }

  async getSystem(systemId: string): Promise<SystemView> {
    await this.deps.projector.catchUp();
    const system = await this.deps.directory.getSystem(systemId);
    if (!system) throw new NotFoundError('system_not_found', 'no system is registered with this id');
    return system;
  }
}
