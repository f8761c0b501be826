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
}>;

export type HandleResult<Event> = Readonly<{ newEvents: readonly Event[]; nextExpectedVersion: bigint | null; lastGlobalPosition: bigint | null }>;

export const handleCommand = async <Command, Event extends { type: string; data: object }, State>(
  store: EventStore,
  streamName: string,
  decider: Decider<Command, Event, State>,
  command: Command,
  options: HandleOptions,
): Promise<HandleResult<Event>> => {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    const { state, currentVersion } = await store.aggregateStream<State>(streamName, {
      evolve: (s, e) => decider.evolve(s, { type: e.type, data: e.data } as unknown as Event),
      initialState: decider.initialState,
    });
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
        const stored = await store.aggregateStream<State>(streamName, {
          evolve: (s, e) => decider.evolve(s, { type: e.type, data: e.data } as unknown as Event),
          initialState: decider.initialState,
        });
        decider.decide(command, stored.state);
        return { newEvents: [], nextExpectedVersion: result.nextExpectedVersion, lastGlobalPosition: result.lastGlobalPosition };
      }
      return { newEvents: events, nextExpectedVersion: result.nextExpectedVersion, lastGlobalPosition: result.lastGlobalPosition };
    } catch (error) {
      if (error instanceof ExpectedVersionConflictError && attempt < retries) continue;
      throw error;
    }
  }
};
