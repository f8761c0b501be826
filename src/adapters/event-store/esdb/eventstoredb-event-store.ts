import {
  BACKWARDS,
  END,
  ErrorType,
  EventStoreDBClient,
  FORWARDS,
  isCommandError,
  jsonEvent,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type ReadPosition,
  type ResolvedEvent,
} from '@eventstore/db-client';
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
import { checkExpectedVersion, idempotencyOutcome, toJson, validateAppend, type StoredEventIdentity } from '../append-rules';
import { toConflictError, toEsdbExpectedRevision, toGlobalPosition, toReadPosition, toRecordedEvent } from './esdb-mapping';

/**
 * EventStoreDB adapter of the event store port (@eventstore/db-client, gRPC).
 *
 * Appends: how the port's rules are kept
 * - ESDB dedupes a repeated append natively, but only when the expected revision is the one the first attempt
 *   used (it compares the ids at the positions right after it), best-effort for `any` (a bounded id cache), it
 *   reports the repeat as an ordinary success (no "idempotent" flag), and it happily writes an id a second time at
 *   a new position. The port wants more: a repeat is recognised whatever expected version the retry carries,
 *   reported as `idempotent`, and a batch that reuses some ids is refused.
 * - So each append first reads the stream's tail backwards (up to `tailScanLimit` events, one round trip), applies
 *   the shared rules (append-rules.ts: idempotency, then the expected version) to what it read, and then appends
 *   with the *exact* revision it saw (or no_stream). ESDB's own check then guarantees nothing was written between
 *   our read and our write; if something was (WrongExpectedVersionError), we decide again on fresh state. An
 *   exact or no_stream expectation then fails with the actual version; `any`/`stream_exists` simply retry.
 * - Differences that remain: ids are looked up only in the scanned tail of the same stream (ESDB has no index by
 *   event id), so reuse of an id in another stream, or beyond the tail window, is not detected; and if another
 *   process appends the very same batch between our read and our write, ESDB dedupes it and we report
 *   `idempotent: false` for what was in fact a repeat (the versions and position returned are still right).
 *
 * readAll / checkpoints: the port's bigint is the commit position (see esdb-mapping.ts for the mapping and its
 * caveats). System events are filtered out client-side: the client's readAll has no server-side filter.
 *
 * waitForAppend polls the head of $all every `pollMs` (default 100 ms) until it passes `after` or time is up.
 */

export type EventStoreDbEventStoreOptions = Readonly<{
  /** e.g. esdb://admin:changeit@localhost:2113?tls=false; reading $all needs a user allowed to (admin by default). */
  connectionString: string;
  /** How many of a stream's last events an append checks for repeated ids. Default 1000. */
  tailScanLimit?: number;
  /** Poll interval of waitForAppend. Default 100 ms. */
  pollMs?: number;
}>;

const MAX_APPEND_ATTEMPTS = 20;

export class EventStoreDbEventStore implements EventStore {
  private closed = false;
  private readonly sleepers = new Set<() => void>();

  private constructor(
    private readonly client: EventStoreDBClient,
    private readonly tailScanLimit: number,
    private readonly pollMs: number,
  ) {}

  /** Connects and checks the server answers (reads the head of $all), so a bad address fails at startup. */
  static async open(options: EventStoreDbEventStoreOptions): Promise<EventStoreDbEventStore> {
    const client = EventStoreDBClient.connectionString(options.connectionString);
    const store = new EventStoreDbEventStore(client, options.tailScanLimit ?? 1000, options.pollMs ?? 100);
    try {
      await store.headPosition();
    } catch (error) {
      await client.dispose().catch(() => undefined);
      throw error;
    }
    return store;
  }

  async appendToStream(
    streamName: string,
    events: readonly NewEvent[],
    options: { expectedVersion?: ExpectedVersion } = {},
  ): Promise<AppendResult> {
    if (this.closed) throw new Error('event store is closed');
    const expected = options.expectedVersion ?? 'any';
    validateAppend(streamName, events);
    const payload = events.map((event) =>
      jsonEvent({
        id: event.id,
        type: event.type,
        data: JSON.parse(toJson(event.data)) as Record<string, unknown>,
        metadata: JSON.parse(toJson(event.metadata ?? {})) as Record<string, unknown>,
      }),
    );

    for (let attempt = 1; ; attempt++) {
      const tail = await this.readTail(streamName);
      const outcome = idempotencyOutcome(streamName, events, events.map((event) => tail.byId.get(event.id)));
      if (outcome !== 'new') return outcome;
      checkExpectedVersion(streamName, expected, tail.head);
      try {
        const result = await this.client.appendToStream(streamName, payload, {
          expectedRevision: toEsdbExpectedRevision(tail.head === null ? 'no_stream' : tail.head),
        });
        const lastGlobalPosition = result.position
          ? toGlobalPosition(result.position)
          : ((await this.readStream(streamName, { fromVersion: result.nextExpectedRevision, maxCount: 1 })).events[0]?.globalPosition ?? 0n);
        return { nextExpectedVersion: result.nextExpectedRevision, lastGlobalPosition, idempotent: false };
      } catch (error) {
        if (!(error instanceof WrongExpectedVersionError)) throw error;
        // Someone appended between our read and our write: decide again on what is there now.
        if (attempt >= MAX_APPEND_ATTEMPTS) throw toConflictError(error, streamName, expected);
      }
    }
  }

  async readStream(streamName: string, options: { fromVersion?: bigint; maxCount?: number } = {}): Promise<ReadStreamResult> {
    // Head first, then the events up to it: the two agree, so an aggregate built from them may append with that
    // head as its expected version (reading the head second could pair stale events with a newer version).
    const head = await this.streamHead(streamName);
    if (head === null) return { events: [], currentVersion: null };
    const from = options.fromVersion ?? 0n;
    const limit = options.maxCount === undefined ? head - from + 1n : BigInt(Math.max(0, options.maxCount));
    if (from > head || limit <= 0n) return { events: [], currentVersion: head };
    const resolved = await collect(this.client.readStream(streamName, { fromRevision: from, maxCount: limit, direction: FORWARDS }));
    const events: RecordedEvent[] = [];
    for (const r of resolved ?? []) {
      if (!r.event || r.event.revision > head) continue;
      const event = toRecordedEvent(r.event, r.commitPosition);
      if (event) events.push(event);
    }
    return { events, currentVersion: head };
  }

  aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>> {
    return aggregateByReading(this, streamName, options);
  }

  /** `types` are filtered here, page by page (a server-side filter would also skip them on the wire; not needed yet). */
  async readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    if (options.maxCount <= 0) return out;
    // System events are dropped client-side, so a page may yield fewer of ours than it read: keep paging.
    const pageSize = Math.min(Math.max(options.maxCount + 1, 100), 4096);
    let from: ReadPosition = toReadPosition(options.after);
    let atOrBelow = options.after; // $all reads include the start position itself
    for (;;) {
      const page = (await collect(this.client.readAll({ fromPosition: from, maxCount: pageSize, direction: FORWARDS, resolveLinkTos: false }))) ?? [];
      for (const resolved of page) {
        const raw = resolved.event;
        if (!raw) continue;
        if (toGlobalPosition(raw.position) <= atOrBelow) continue;
        from = raw.position;
        atOrBelow = toGlobalPosition(raw.position);
        const event = toRecordedEvent(raw);
        if (event && (options.types === undefined || options.types.has(event.type))) out.push(event);
        if (out.length >= options.maxCount) return out;
      }
      if (page.length < pageSize) return out;
    }
  }

  async waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.closed) {
      if ((await this.headPosition()) > after) return;
      const left = deadline - performance.now();
      if (left <= 0) return;
      await this.sleep(Math.min(this.pollMs, left));
    }
  }

  async headPosition(): Promise<bigint> {
    const [last] = (await collect(this.client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 1 }))) ?? [];
    return last?.event ? toGlobalPosition(last.event.position) : 0n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
    await this.client.dispose();
  }

  /** The stream's head and where its last `tailScanLimit` event ids are stored. */
  private async readTail(streamName: string): Promise<{ head: bigint | null; byId: Map<string, StoredEventIdentity> }> {
    const resolved = await collect(this.client.readStream(streamName, { fromRevision: END, direction: BACKWARDS, maxCount: this.tailScanLimit }));
    const byId = new Map<string, StoredEventIdentity>();
    let head: bigint | null = null;
    for (const r of resolved ?? []) {
      if (!r.event) continue;
      if (head === null || r.event.revision > head) head = r.event.revision;
      byId.set(r.event.id, {
        streamName,
        streamVersion: r.event.revision,
        globalPosition: r.event.position ? toGlobalPosition(r.event.position) : (r.commitPosition ?? 0n),
      });
    }
    return { head, byId };
  }

  private async streamHead(streamName: string): Promise<bigint | null> {
    const [last] = (await collect(this.client.readStream(streamName, { fromRevision: END, direction: BACKWARDS, maxCount: 1 }))) ?? [];
    return last?.event ? last.event.revision : null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}

/** All items of a read, or null when the stream does not exist (or was deleted). */
async function collect<T extends ResolvedEvent | AllStreamResolvedEvent>(read: AsyncIterable<T>): Promise<T[] | null> {
  const out: T[] = [];
  try {
    for await (const item of read) out.push(item);
    return out;
  } catch (error) {
    if (error instanceof Error && isCommandError(error) && (error.type === ErrorType.STREAM_NOT_FOUND || error.type === ErrorType.STREAM_DELETED)) {
      return null;
    }
    throw error;
  }
}
