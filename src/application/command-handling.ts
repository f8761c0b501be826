import type { Decider } from '../domain/shared/decider';
import { ExpectedVersionConflictError, type EventMetadata, type EventStore } from './ports/event-store';
import { uuidV5 } from './ids';

/**
 * Aggregate the stream, decide, append with the version read. On a version conflict (another writer got there
 * first) the whole thing is retried from a fresh read, at most `retries` times: the decision is made again on
 * the new state, so a retry can never write a stale decision.
 */
export type HandleOptions = Readonly<{
  /** Id of the command: the events' ids are derived from it, so a repeat of the command is stored once. */
  commandId: string;
  metadata?: EventMetadata;
  retries?: number;
  /**
   * The stream is most likely new (an upload creates its document's stream): decide on the initial state and
   * append with 'no_stream' without reading first. If the stream exists after all, the append fails with a
   * conflict (or is recognised as a repeat) and the command is handled the usual way, from a fresh read.
   */
  expectNewStream?: boolean;
  /**
   * For a decider whose true repeats always decide to no events on what they stored: an id already stored whose
   * command still calls for events was used before for another command (another actor, other content). That
   * command is refused with this error rather than reported as done while nothing of it was recorded.
   */
  reusedId?: () => Error;
}>;

/**
 * The stream's state and version read just before (by a caller that had to decide on every stream of a group before
 * writing any): the first attempt decides on it instead of reading again; a conflict reads afresh as ever.
 */
export type ReadState<State> = Readonly<{ state: State; currentVersion: bigint | null }>;

export type HandleResult<Event> = Readonly<{ newEvents: readonly Event[]; nextExpectedVersion: bigint | null; lastGlobalPosition: bigint | null }>;

export const handleCommand = async <Command, Event extends { type: string; data: object }, State>(
  store: EventStore,
  streamName: string,
  decider: Decider<Command, Event, State>,
  command: Command,
  options: HandleOptions & Readonly<{ readState?: ReadState<State> }>,
): Promise<HandleResult<Event>> => {
  const retries = options.retries ?? 3;
  const read = () =>
    store.aggregateStream<State>(streamName, {
      evolve: (s, e) => decider.evolve(s, { type: e.type, data: e.data } as unknown as Event),
      initialState: decider.initialState,
    });
  for (let attempt = 0; ; attempt++) {
    const { state, currentVersion } =
      attempt === 0 && options.expectNewStream ? { state: decider.initialState(), currentVersion: null } : attempt === 0 && options.readState ? options.readState : await read();
    const events = decider.decide(command, state);
    if (events.length === 0) return { newEvents: [], nextExpectedVersion: currentVersion, lastGlobalPosition: null };
    try {
      const result = await store.appendToStream(
        streamName,
        events.map((e, i) => ({
          id: uuidV5(`${options.commandId}/${streamName}/${i}`),
          type: e.type,
          data: e.data as Record<string, unknown>,
          metadata: { ...options.metadata, causationId: options.commandId },
        })),
        { expectedVersion: currentVersion ?? 'no_stream' },
      );
      if (result.idempotent) {
        // The event ids were stored already: a true repeat, or a concurrent command with the same id that decided
        // on the same stale state but with other content. Decide again on what is stored, so the second is refused
        // (e.g. observation_id_reused) instead of being reported as done while its content was dropped.
        const again = decider.decide(command, (await read()).state);
        if (again.length > 0 && options.reusedId) throw options.reusedId();
        return { newEvents: [], nextExpectedVersion: result.nextExpectedVersion, lastGlobalPosition: result.lastGlobalPosition };
      }
      return { newEvents: events, nextExpectedVersion: result.nextExpectedVersion, lastGlobalPosition: result.lastGlobalPosition };
    } catch (error) {
      // A conflict on the unread first attempt of expectNewStream is the expected fallback, not a retry spent.
      if (error instanceof ExpectedVersionConflictError && (attempt < retries || (attempt === 0 && options.expectNewStream))) continue;
      throw error;
    }
  }
};
