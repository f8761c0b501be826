import { assertNever } from '../../domain/shared/decider';
import { EXPERT_EVENT_TYPES, type ExpertEvent, type ExpertProfile } from '../../domain/directory/expert';
import { CONNECTED_SYSTEM_EVENT_TYPES, type ConnectedSystemEvent, type SystemStatus } from '../../domain/directory/connected-system';

/** The event types the directory read model uses (experts and connected systems); the rest only move its checkpoint. */
export const DIRECTORY_EVENT_TYPES: ReadonlySet<string> = new Set<string>([...EXPERT_EVENT_TYPES, ...CONNECTED_SYSTEM_EVENT_TYPES]);

/**
 * The directory's query side, as pure evolve functions: one row per expert, one row per connected system.
 * Storage adapters (in-memory, SQLite) apply them; tests call them directly.
 *
 * Rows keep the global positions at which an expert appeared and was retired, and at which a system joined, so
 * the downlink publisher can ask "who was in the directory as of event p" of a model that has moved past p
 * (`DirectoryReadModel.expertsAsOf`), and its plans stay the same when it re-plans after a restart.
 */
export type ExpertView = Readonly<{
  expertId: string;
  homeSystemId: string;
  localExpertId: string;
  profile: ExpertProfile;
  status: 'active' | 'retired';
  /**
   * The stream version + 1 of the last event that changed the expert (registration 1, then each change or
   * retirement): the revision the downlink last sent for it, so a system's copy and the hub agree. An `unchanged`
   * ExpertProfileChanged (a message that sent the profile the expert had, expert.ts) leaves it, and the next change
   * skips the version that one took.
   */
  revision: number;
  registeredAt: string;
  /** When the profile or status last changed: an `unchanged` event leaves it. */
  updatedAt: string;
  retiredAt: string | null;
  registeredPosition: bigint;
  retiredPosition: bigint | null;
}>;

export type JoinProgress = Readonly<{
  expectedBatches: number;
  expectedExperts: number;
  batchesImported: number;
  expertsImported: number;
  startedAt: string;
}>;

/** A system row as the projection keeps it. */
export type SystemRow = Readonly<{
  systemId: string;
  name: string;
  area: string;
  downlinkQueue: string;
  status: SystemStatus;
  registeredAt: string;
  join: JoinProgress | null;
  joinedAt: string | null;
  joinedPosition: bigint | null;
}>;

/** A system as queries return it: the row and the number of its active experts. */
export type SystemView = SystemRow & Readonly<{ activeExperts: number }>;

/** Where an event sits: its place in the store's order and in its stream. */
export type EventPosition = Readonly<{ globalPosition: bigint; streamVersion: bigint }>;

/** The key of a search term: specialties, cities and languages match ignoring case and width. */
export const searchKey = (value: string): string => value.normalize('NFKC').trim().toLowerCase();

export const evolveExpertView = (current: ExpertView | null, event: ExpertEvent, at: EventPosition): ExpertView | null => {
  const revision = Number(at.streamVersion) + 1;
  switch (event.type) {
    case 'ExpertRegistered': {
      if (current) return current;
      const d = event.data;
      return {
        expertId: d.expertId,
        homeSystemId: d.homeSystemId,
        localExpertId: d.localExpertId,
        profile: d.profile,
        status: 'active',
        revision,
        registeredAt: d.registeredAt,
        updatedAt: d.registeredAt,
        retiredAt: null,
        registeredPosition: at.globalPosition,
        retiredPosition: null,
      };
    }
    case 'ExpertProfileChanged':
      if (!current) return current;
      // The same profile again (it records a message id only): nothing moves, nothing was sent for it.
      if (event.data.unchanged === true) return current;
      return { ...current, profile: event.data.profile, revision, updatedAt: event.data.changedAt };
    case 'ExpertRetired':
      return current ? { ...current, status: 'retired', revision, updatedAt: event.data.retiredAt, retiredAt: event.data.retiredAt, retiredPosition: at.globalPosition } : current;
    default:
      return assertNever(event);
  }
};

export const evolveSystemRow = (current: SystemRow | null, event: ConnectedSystemEvent, at: EventPosition): SystemRow | null => {
  switch (event.type) {
    case 'SystemRegistered': {
      if (current) return current;
      const d = event.data;
      return { systemId: d.systemId, name: d.name, area: d.area, downlinkQueue: d.downlinkQueue, status: 'registered', registeredAt: d.registeredAt, join: null, joinedAt: null, joinedPosition: null };
    }
    case 'SystemJoinStarted': {
      if (!current) return current;
      const d = event.data;
      return { ...current, status: 'joining', join: { expectedBatches: d.expectedBatches, expectedExperts: d.expectedExperts, batchesImported: 0, expertsImported: 0, startedAt: d.startedAt } };
    }
    case 'ExpertBatchImported':
      if (!current?.join) return current;
      return { ...current, join: { ...current.join, batchesImported: current.join.batchesImported + 1, expertsImported: current.join.expertsImported + event.data.count } };
    case 'SystemJoined':
      // A join again (a full sync) keeps the first join's time and position: the system has been getting the
      // directory's changes since then, and a downlink planner behind the new join must still send them.
      return current ? { ...current, status: 'joined', joinedAt: current.joinedAt ?? event.data.joinedAt, joinedPosition: current.joinedPosition ?? at.globalPosition } : current;
    default:
      return assertNever(event);
  }
};

/** Whether the expert was in the directory (registered, not yet retired) just after the event at `position`. */
export const expertActiveAt = (e: ExpertView, position: bigint): boolean =>
  e.registeredPosition <= position && (e.retiredPosition === null || e.retiredPosition > position);

/** Whether the system had joined just after the event at `position`. */
export const systemJoinedAt = (s: SystemRow, position: bigint): boolean => s.joinedPosition !== null && s.joinedPosition <= position;
