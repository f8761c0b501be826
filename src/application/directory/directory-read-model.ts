import type { RecordedEvent } from '../ports/event-store';
import type { ExpertView, SystemRow, SystemView } from '../projections/directory-projection';

/**
 * Storage of the directory projection (experts and connected systems). Like the registry: an adapter applies a
 * batch of events and advances its checkpoint in one transaction, and can be dropped and rebuilt at any time.
 * Adapters: src/adapters/registry/in-memory-directory.ts, src/adapters/registry/sqlite-directory.ts.
 *
 * Search terms (specialty, city, language) match whole values ignoring case (`searchKey`). Pages are ordered by
 * expert id; `after` is the last expert id of the previous page (keyset paging: stable while rows change).
 */
export type ExpertQuery = Readonly<{
  specialty?: string;
  city?: string;
  language?: string;
  homeSystemId?: string;
  /** Retired experts are left out unless asked for. */
  includeRetired?: boolean;
  /** Expert id after which the page starts (exclusive). */
  after?: string;
  limit: number;
}>;

export type ExpertPage = Readonly<{ items: readonly ExpertView[]; hasMore: boolean }>;

export interface DirectoryReadModel {
  /** Global position of the last event applied (0n when empty). */
  checkpoint(): Promise<bigint>;
  /** Apply events (all of them, in order; types it does not know are skipped) and set the checkpoint, atomically. */
  apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void>;
  /** The types it uses (DIRECTORY_EVENT_TYPES): its projector reads only those (see ProjectionTarget.eventTypes). */
  readonly eventTypes?: ReadonlySet<string>;
  /** Forget every row and the checkpoint, for a rebuild. */
  reset(): Promise<void>;

  getExpert(expertId: string): Promise<ExpertView | null>;
  findExperts(query: ExpertQuery): Promise<ExpertPage>;
  /**
   * Every expert that was in the directory just after the event at `position` (registered at or before it, not
   * retired at or before it), ordered by expert id, with its current profile and revision. Needs a model whose
   * checkpoint is at or past `position`.
   */
  expertsAsOf(position: bigint): Promise<readonly ExpertView[]>;
  /**
   * Every expert retired at or before the event at `position`, ordered by expert id, in one pass (a join again tells
   * the joiner of each: downlink-planner.ts). Needs a model whose checkpoint is at or past `position`.
   */
  retiredAsOf(position: bigint): Promise<readonly ExpertView[]>;

  getSystem(systemId: string): Promise<SystemView | null>;
  /** Every system, ordered by id. */
  listSystems(): Promise<readonly SystemView[]>;
  /** Every system without its expert count (which costs a pass over the experts): for routing downlink messages. */
  listSystemRows(): Promise<readonly SystemRow[]>;
}
