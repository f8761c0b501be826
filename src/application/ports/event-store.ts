/**
 * The event store port: the four well-known calls (readStream, aggregateStream, appendToStream, and an ordered
 * read of all events from a checkpoint that subscriptions are built on). Every adapter (in-memory, SQLite,
 * PostgreSQL, EventStoreDB) passes the same contract suite in test/contract/event-store.contract.ts.
 *
 * Conventions
 * - Stream versions are 0-based: the first event of a stream has version 0; an empty stream has no version.
 * - Global positions are bigint, strictly increasing in commit order, starting above 0n. A checkpoint is the
 *   position of the last event a reader has processed; 0n means "from the beginning".
 * - Event ids are UUIDs chosen by the caller (deterministic from the command or message id). Appending events
 *   whose ids are already stored in that stream, at the same versions, is a no-op that reports `idempotent`.
 */

/** Expected version of a stream for optimistic concurrency. */
export type ExpectedVersion =
  | bigint // exact version of the last event in the stream; appends fail otherwise
  | 'no_stream' // the stream must not exist
  | 'stream_exists' // the stream must have at least one event
  | 'any'; // no check

export type EventMetadata = Readonly<{
  /** Correlation id that follows one business flow across commands, messages and events. */
  correlationId?: string;
  /** Id of the command or message that caused the event. */
  causationId?: string;
  [key: string]: unknown;
}>;

export type NewEvent = Readonly<{
  /** UUID; deterministic from the causing command/message so a repeat is detected. */
  id: string;
  type: string;
  data: Readonly<Record<string, unknown>>;
  metadata?: EventMetadata;
}>;

export type RecordedEvent = Readonly<{
  id: string;
  type: string;
  data: Readonly<Record<string, unknown>>;
  metadata: EventMetadata;
  streamName: string;
  /** 0-based version of this event in its stream. */
  streamVersion: bigint;
  /** Position in the store-wide order; strictly increasing in commit order. */
  globalPosition: bigint;
  /** When the store recorded the event, ISO-8601 UTC. */
  recordedAt: string;
}>;

export type AppendResult = Readonly<{
  /** Version of the last event in the stream after the append (pass it as expectedVersion next time). */
  nextExpectedVersion: bigint;
  /** Global position of the last event appended (or of the already-stored last event when idempotent). */
  lastGlobalPosition: bigint;
  /** True when every event was already stored (same ids, same stream): nothing was written. */
  idempotent: boolean;
}>;

export type ReadStreamResult = Readonly<{
  events: readonly RecordedEvent[];
  /** Version of the last event in the stream, or null when the stream does not exist. */
  currentVersion: bigint | null;
}>;

export type AggregateStreamResult<State> = Readonly<{
  state: State;
  currentVersion: bigint | null;
}>;

/** How aggregateStream folds a stream: the state before any event, and one event applied to a state. */
export type AggregateOptions<State> = Readonly<{ evolve: (state: State, event: RecordedEvent) => State; initialState: () => State }>;

export type ReadAllOptions = Readonly<{ after: bigint; maxCount: number; types?: ReadonlySet<string> }>;

export interface EventStore {
  appendToStream(
    streamName: string,
    events: readonly NewEvent[],
    options?: { expectedVersion?: ExpectedVersion },
  ): Promise<AppendResult>;

  readStream(streamName: string, options?: { fromVersion?: bigint; maxCount?: number }): Promise<ReadStreamResult>;

  aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>>;

  /**
   * Events after `after` (exclusive) in global order, at most `maxCount`. The basis of every subscription.
   *
   * `types`: only events of these types, skipped over in the store instead of read into the caller (for a
   * subscriber of a few rare types, e.g. the key book, which would otherwise read every document ever stored).
   * A filtered page shorter than `maxCount` says there is no other event of those types up to the head as it was
   * when the call began (`headPosition()` read before the call), so a subscriber may move its checkpoint there.
   */
  readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]>;

  /**
   * Resolves when an event with a global position above `after` may exist, or after `timeoutMs`.
   * Lets subscribers wait without busy polling; a store without notifications may simply sleep.
   */
  waitForAppend(after: bigint, timeoutMs: number): Promise<void>;

  /** Position of the last committed event (0n when empty). */
  headPosition(): Promise<bigint>;

  close(): Promise<void>;
}

/**
 * The one error every adapter raises when the expected version does not match, whatever the store calls it
 * (SQLite/PostgreSQL unique violation, EventStoreDB WrongExpectedVersionError).
 */
export class ExpectedVersionConflictError extends Error {
  readonly code = 'expected_version_conflict';
  constructor(
    readonly streamName: string,
    readonly expected: ExpectedVersion,
    readonly actual: bigint | null,
  ) {
    super(`expected version ${String(expected)} of stream ${streamName}, but it is at ${actual === null ? 'no stream' : String(actual)}`);
    this.name = 'ExpectedVersionConflictError';
  }
}

/** Some but not all of the event ids of an append are already stored: the caller reused an id for other events. */
export class IdempotencyViolationError extends Error {
  readonly code = 'idempotency_violation';
  constructor(readonly streamName: string, readonly eventId: string) {
    super(`event id ${eventId} is already stored in stream ${streamName} with a different position or batch`);
    this.name = 'IdempotencyViolationError';
  }
}
