import type {
  AggregateOptions,
  AggregateStreamResult,
  AppendResult,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadAllOptions,
  ReadStreamResult,
  RecordedEvent,
} from '../../../application/ports/event-store';
import { aggregateByReading } from '../aggregate-stream';
import { checkExpectedVersion, idempotencyOutcome, toJson, validateAppend } from '../append-rules';

/**
 * An event store in a process's memory, for unit tests of the core. It follows the contract suite exactly,
 * including the JSON round trip of data and metadata, so a handler that stores a Date or a Map fails here
 * as it would against SQLite. Each append is atomic because it runs without awaiting anything.
 */
export class InMemoryEventStore implements EventStore {
  private readonly all: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();
  private readonly byId = new Map<string, RecordedEvent>();
  private readonly waiters = new Set<{ after: bigint; wake: () => void }>();
  private closed = false;

  constructor(private readonly now: () => Date = () => new Date()) {}

  async appendToStream(
    streamName: string,
    events: readonly NewEvent[],
    options: { expectedVersion?: ExpectedVersion } = {},
  ): Promise<AppendResult> {
    if (this.closed) throw new Error('event store is closed');
    validateAppend(streamName, events);
    const outcome = idempotencyOutcome(
      streamName,
      events,
      events.map((e) => this.byId.get(e.id)),
    );
    if (outcome !== 'new') return outcome;

    const stream = this.streams.get(streamName) ?? [];
    const current = stream.length === 0 ? null : BigInt(stream.length - 1);
    checkExpectedVersion(streamName, options.expectedVersion ?? 'any', current);

    // Serialise everything before touching state, so a bad payload leaves nothing half-written.
    const recordedAt = this.now().toISOString();
    const recorded = events.map((e, i): RecordedEvent => ({
      id: e.id,
      type: e.type,
      data: JSON.parse(toJson(e.data)) as RecordedEvent['data'],
      metadata: JSON.parse(toJson(e.metadata ?? {})) as RecordedEvent['metadata'],
      streamName,
      streamVersion: BigInt(stream.length + i),
      globalPosition: BigInt(this.all.length + i + 1),
      recordedAt,
    }));
    for (const event of recorded) {
      deepFreeze(event);
      stream.push(event);
      this.all.push(event);
      this.byId.set(event.id, event);
    }
    this.streams.set(streamName, stream);
    const last = recorded[recorded.length - 1] as RecordedEvent;
    this.wake(last.globalPosition);
    return { nextExpectedVersion: last.streamVersion, lastGlobalPosition: last.globalPosition, idempotent: false };
  }

  async readStream(streamName: string, options: { fromVersion?: bigint; maxCount?: number } = {}): Promise<ReadStreamResult> {
    const stream = this.streams.get(streamName) ?? [];
    const from = Number(options.fromVersion ?? 0n);
    const to = options.maxCount === undefined ? undefined : from + Math.max(0, options.maxCount);
    return {
      events: stream.slice(Math.max(0, from), to),
      currentVersion: stream.length === 0 ? null : BigInt(stream.length - 1),
    };
  }

  aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>> {
    return aggregateByReading(this, streamName, options);
  }

  async readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]> {
    // Positions are 1..n, so the event after position p sits at index p.
    const from = Number(options.after < 0n ? 0n : options.after);
    const limit = Math.max(0, options.maxCount);
    const types = options.types;
    if (types === undefined) return this.all.slice(from, from + limit);
    const page: RecordedEvent[] = [];
    for (let i = from; i < this.all.length && page.length < limit; i++) if (types.has(this.all[i]!.type)) page.push(this.all[i]!);
    return page;
  }

  async headPosition(): Promise<bigint> {
    return BigInt(this.all.length);
  }

  waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    if (this.closed || BigInt(this.all.length) > after) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        after,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.wake();
  }

  private wake(head: bigint): void {
    for (const waiter of [...this.waiters]) if (head > waiter.after) waiter.wake();
  }
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
}
