import { randomUUID } from 'node:crypto';
import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from '../../src/application/ports/event-store';
import { modelBasedAppends } from './event-store.model';

/**
 * The event store contract: port behaviour only, run against every adapter (in-memory, SQLite, PostgreSQL,
 * EventStoreDB). The store may be shared with other tests and other processes, so:
 * - every test uses fresh random stream names;
 * - readAll checks start from the head read before the test and look only at the test's own streams, except
 *   where a count is guaranteed by the test's own events (maxCount below the number it appended).
 */
export function eventStoreContract(
  name: string,
  open: () => Promise<{ store: EventStore; close(): Promise<void>; reopen?: () => Promise<EventStore> }>,
): void {
  describe(`EventStore contract: ${name}`, () => {
    let store: EventStore;
    let closeStore: () => Promise<void>;
    let reopenStore: (() => Promise<EventStore>) | undefined;

    beforeAll(async () => {
      const opened = await open();
      store = opened.store;
      closeStore = () => opened.close();
      reopenStore = opened.reopen;
    });
    afterAll(async () => {
      await closeStore();
    });

    describe('append and read', () => {
      it('round-trips type, data and metadata, with 0-based versions and an ISO UTC recordedAt', async () => {
        const stream = streamName();
        const before = Date.now();
        const events: NewEvent[] = [
          {
            id: randomUUID(),
            type: 'ObservationRecorded',
            data: { systolic: 120, diastolic: 80, unit: 'mmHg', ok: true, note: null, tags: ['home', 'bp'], nested: { a: { b: [1, 2.5, -3] } } },
            metadata: { correlationId: 'corr-1', causationId: 'cmd-1', source: 'test' },
          },
          { id: randomUUID(), type: 'ObservationCorrected', data: { systolic: 125 } },
        ];

        const result = await store.appendToStream(stream, events, { expectedVersion: 'no_stream' });
        const read = await store.readStream(stream);

        expect(result.idempotent).toBe(false);
        expect(result.nextExpectedVersion).toBe(1n);
        expect(read.currentVersion).toBe(1n);
        expect(read.events.map((e) => [e.id, e.type, e.streamName, e.streamVersion])).toEqual([
          [events[0]!.id, 'ObservationRecorded', stream, 0n],
          [events[1]!.id, 'ObservationCorrected', stream, 1n],
        ]);
        expect(read.events[0]!.data).toEqual(events[0]!.data);
        expect(read.events[0]!.metadata).toEqual({ correlationId: 'corr-1', causationId: 'cmd-1', source: 'test' });
        expect(read.events[1]!.data).toEqual({ systolic: 125 });
        expect(read.events[1]!.metadata).toEqual({});
        expect(read.events[1]!.globalPosition).toBe(result.lastGlobalPosition);
        expect(read.events[0]!.globalPosition).toBeLessThan(read.events[1]!.globalPosition);
        for (const e of read.events) {
          expect(typeof e.streamVersion).toBe('bigint');
          expect(typeof e.globalPosition).toBe('bigint');
          expect(e.globalPosition).toBeGreaterThan(0n);
          expect(e.recordedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:00)$/);
          const at = Date.parse(e.recordedAt);
          expect(Math.abs(at - before)).toBeLessThan(5 * 60_000); // allow a database server's clock skew
        }
      });

      it('continues versions across appends', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(2));
        const second = await store.appendToStream(stream, newEvents(3), { expectedVersion: 1n });
        const read = await store.readStream(stream);
        expect(second.nextExpectedVersion).toBe(4n);
        expect(read.events.map((e) => e.streamVersion)).toEqual([0n, 1n, 2n, 3n, 4n]);
      });

      it('reads a stream that does not exist as empty with no version', async () => {
        const read = await store.readStream(streamName());
        expect(read).toEqual({ events: [], currentVersion: null });
      });

      it('keeps streams apart', async () => {
        const a = streamName();
        const b = streamName();
        await store.appendToStream(a, newEvents(2));
        await store.appendToStream(b, newEvents(1));
        expect((await store.readStream(a)).events.map((e) => e.streamName)).toEqual([a, a]);
        expect((await store.readStream(b)).currentVersion).toBe(0n);
      });

      it('round-trips Unicode in data, metadata and type', async () => {
        const stream = streamName();
        const text = 'Æblegrød på Ærø · 日本語 · עברית · 🩺💉👩🏽‍⚕️ · e\u0301 · "quotes" \\ back\\slash \n\t tab';
        await store.appendToStream(stream, [
          { id: randomUUID(), type: 'NoteWritten', data: { text, [text]: 'key' }, metadata: { who: 'Søren Ødegård 🩺' } },
        ]);
        const [event] = (await store.readStream(stream)).events;
        expect(event!.data).toEqual({ text, [text]: 'key' });
        expect(event!.metadata).toEqual({ who: 'Søren Ødegård 🩺' });
      });

      it('round-trips a 100 KB payload', async () => {
        const stream = streamName();
        const blob = 'ø🩺x'.repeat(25_000); // 100 000 UTF-16 units, more UTF-8 bytes
        const readings = Array.from({ length: 500 }, (_, i) => ({ i, systolic: 100 + (i % 80), at: `2017-05-10T14:${String(i % 60).padStart(2, '0')}:00Z` }));
        await store.appendToStream(stream, [{ id: randomUUID(), type: 'BulkImported', data: { blob, readings } }]);
        const [event] = (await store.readStream(stream)).events;
        expect(event!.data['blob']).toBe(blob);
        expect(event!.data['readings']).toEqual(readings);
      });
    });

    describe('expectedVersion', () => {
      it('no_stream: appends to a new stream, fails on an existing one with its version', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(2), { expectedVersion: 'no_stream' });
        const error = await conflict(store.appendToStream(stream, newEvents(1), { expectedVersion: 'no_stream' }));
        expect(error.streamName).toBe(stream);
        expect(error.expected).toBe('no_stream');
        expect(error.actual).toBe(1n);
      });

      it('stream_exists: fails on a new stream with actual null, appends to an existing one', async () => {
        const stream = streamName();
        const error = await conflict(store.appendToStream(stream, newEvents(1), { expectedVersion: 'stream_exists' }));
        expect(error.actual).toBeNull();
        expect((await store.readStream(stream)).currentVersion).toBeNull();
        await store.appendToStream(stream, newEvents(1), { expectedVersion: 'any' });
        const result = await store.appendToStream(stream, newEvents(1), { expectedVersion: 'stream_exists' });
        expect(result.nextExpectedVersion).toBe(1n);
      });

      it('exact version: appends when it matches, fails when lower or higher, reports the actual version', async () => {
        const stream = streamName();
        const first = await store.appendToStream(stream, newEvents(3));
        expect(first.nextExpectedVersion).toBe(2n);
        expect((await conflict(store.appendToStream(stream, newEvents(1), { expectedVersion: 1n }))).actual).toBe(2n);
        expect((await conflict(store.appendToStream(stream, newEvents(1), { expectedVersion: 3n }))).actual).toBe(2n);
        const next = await store.appendToStream(stream, newEvents(1), { expectedVersion: first.nextExpectedVersion });
        expect(next.nextExpectedVersion).toBe(3n);
      });

      it('exact version on a stream that does not exist fails with actual null', async () => {
        const stream = streamName();
        const error = await conflict(store.appendToStream(stream, newEvents(1), { expectedVersion: 0n }));
        expect(error.expected).toBe(0n);
        expect(error.actual).toBeNull();
      });

      it('any (and no option at all) appends to new and existing streams', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(1), { expectedVersion: 'any' });
        await store.appendToStream(stream, newEvents(1), { expectedVersion: 'any' });
        await store.appendToStream(stream, newEvents(1));
        await store.appendToStream(stream, newEvents(1), {});
        expect((await store.readStream(stream)).currentVersion).toBe(3n);
      });

      it('an append is atomic: a payload that is not JSON fails the whole batch and writes nothing', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(1));
        const bad: NewEvent = { id: randomUUID(), type: 'Bad', data: { tooBig: 1n } };
        await expect(store.appendToStream(stream, [...newEvents(1), bad], { expectedVersion: 0n })).rejects.toThrow();
        const read = await store.readStream(stream);
        expect(read.currentVersion).toBe(0n);
        await expect(store.appendToStream(stream, newEvents(1), { expectedVersion: 0n })).resolves.toMatchObject({ nextExpectedVersion: 1n });
      });

      it('writes nothing when the expected version does not match', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(2));
        const before = await store.readStream(stream);
        await conflict(store.appendToStream(stream, newEvents(3), { expectedVersion: 0n }));
        expect(await store.readStream(stream)).toEqual(before);
      });
    });

    describe('idempotent append', () => {
      it('repeating an append (same ids, same stream) writes nothing and reports the same result', async () => {
        const stream = streamName();
        const events = newEvents(2);
        const first = await store.appendToStream(stream, events, { expectedVersion: 'no_stream' });
        const again = await store.appendToStream(stream, events, { expectedVersion: 'no_stream' });
        expect(again).toEqual({ nextExpectedVersion: first.nextExpectedVersion, lastGlobalPosition: first.lastGlobalPosition, idempotent: true });
        expect((await store.readStream(stream)).events.map((e) => e.id)).toEqual(events.map((e) => e.id));
      });

      it('is recognised even when the expected version has gone stale', async () => {
        const stream = streamName();
        const events = newEvents(2);
        const first = await store.appendToStream(stream, events, { expectedVersion: 'no_stream' });
        await store.appendToStream(stream, newEvents(2), { expectedVersion: 1n });
        const retry = await store.appendToStream(stream, events, { expectedVersion: 'no_stream' });
        expect(retry).toEqual({ nextExpectedVersion: 1n, lastGlobalPosition: first.lastGlobalPosition, idempotent: true });
        const retryAny = await store.appendToStream(stream, events, { expectedVersion: 'any' });
        expect(retryAny.idempotent).toBe(true);
        expect((await store.readStream(stream)).currentVersion).toBe(3n);
      });

      it('recognises a repeated middle append with an exact expected version', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(1));
        const middle = newEvents(1);
        const first = await store.appendToStream(stream, middle, { expectedVersion: 0n });
        await store.appendToStream(stream, newEvents(1), { expectedVersion: 1n });
        const retry = await store.appendToStream(stream, middle, { expectedVersion: 0n });
        expect(retry).toEqual({ nextExpectedVersion: 1n, lastGlobalPosition: first.lastGlobalPosition, idempotent: true });
        expect((await store.readStream(stream)).currentVersion).toBe(2n);
      });

      it('a one-event no_stream append: a repeat is recognised (also after the stream grew), an existing stream conflicts', async () => {
        const stream = streamName();
        const [event] = newEvents(1) as [NewEvent];
        const first = await store.appendToStream(stream, [event], { expectedVersion: 'no_stream' });
        expect(first).toMatchObject({ nextExpectedVersion: 0n, idempotent: false });
        expect(await store.appendToStream(stream, [event], { expectedVersion: 'no_stream' })).toEqual({ ...first, idempotent: true });
        await store.appendToStream(stream, newEvents(1), { expectedVersion: 0n });
        expect(await store.appendToStream(stream, [event], { expectedVersion: 'no_stream' })).toEqual({ ...first, idempotent: true });
        await expect(store.appendToStream(stream, newEvents(1), { expectedVersion: 'no_stream' })).rejects.toMatchObject({ actual: 1n });
        expect((await store.readStream(stream)).currentVersion).toBe(1n);
      });

      it('an event id stored in one stream, appended alone with no_stream to a new one: IdempotencyViolationError, no stream', async () => {
        const [event] = newEvents(1) as [NewEvent];
        await store.appendToStream(streamName(), [event], { expectedVersion: 'no_stream' });
        const other = streamName();
        await expect(store.appendToStream(other, [event], { expectedVersion: 'no_stream' })).rejects.toBeInstanceOf(IdempotencyViolationError);
        expect(await store.readStream(other)).toEqual({ events: [], currentVersion: null });
      });

      it('a batch that partly overlaps stored events raises IdempotencyViolationError and writes nothing', async () => {
        const stream = streamName();
        const [a, b] = newEvents(2) as [NewEvent, NewEvent];
        await store.appendToStream(stream, [a, b]);
        const fresh = newEvents(1)[0]!;
        await expect(store.appendToStream(stream, [b, fresh], { expectedVersion: 1n })).rejects.toBeInstanceOf(IdempotencyViolationError);
        await expect(store.appendToStream(stream, [fresh, a])).rejects.toBeInstanceOf(IdempotencyViolationError);
        const read = await store.readStream(stream);
        expect(read.events.map((e) => e.id)).toEqual([a.id, b.id]);
      });
    });

    describe('readStream and aggregateStream', () => {
      it('reads from a version and at most maxCount events, reporting the current version of the whole stream', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(5));
        const versions = async (options: { fromVersion?: bigint; maxCount?: number }) => {
          const read = await store.readStream(stream, options);
          expect(read.currentVersion).toBe(4n);
          return read.events.map((e) => e.streamVersion);
        };
        expect(await versions({ fromVersion: 2n })).toEqual([2n, 3n, 4n]);
        expect(await versions({ maxCount: 2 })).toEqual([0n, 1n]);
        expect(await versions({ fromVersion: 1n, maxCount: 2 })).toEqual([1n, 2n]);
        expect(await versions({ fromVersion: 4n, maxCount: 10 })).toEqual([4n]);
        expect(await versions({ fromVersion: 5n })).toEqual([]);
        expect(await versions({})).toEqual([0n, 1n, 2n, 3n, 4n]);
      });

      it('aggregates a stream with evolve, in version order', async () => {
        const stream = streamName();
        await store.appendToStream(stream, [
          { id: randomUUID(), type: 'Added', data: { n: 5 } },
          { id: randomUUID(), type: 'Added', data: { n: 7 } },
          { id: randomUUID(), type: 'Subtracted', data: { n: 2 } },
        ]);
        const seen: bigint[] = [];
        const result = await store.aggregateStream<{ total: number; count: number }>(stream, {
          initialState: () => ({ total: 0, count: 0 }),
          evolve: (state, event: RecordedEvent) => {
            seen.push(event.streamVersion);
            const n = event.data['n'] as number;
            return { total: state.total + (event.type === 'Added' ? n : -n), count: state.count + 1 };
          },
        });
        expect(result).toEqual({ state: { total: 10, count: 3 }, currentVersion: 2n });
        expect(seen).toEqual([0n, 1n, 2n]);
      });

      it('aggregates a stream that does not exist to the initial state', async () => {
        const result = await store.aggregateStream(streamName(), { initialState: () => 'empty', evolve: () => 'changed' });
        expect(result).toEqual({ state: 'empty', currentVersion: null });
      });
    });

    describe('readAll, headPosition, waitForAppend', () => {
      it('reads all in strictly increasing global order, after is exclusive, maxCount caps the page', async () => {
        const start = await store.headPosition();
        const stream = streamName();
        await store.appendToStream(stream, newEvents(4));

        const page = await store.readAll({ after: start, maxCount: 3 });
        expect(page).toHaveLength(3); // our 4 events lie after `start`, so a page of 3 is always full
        expectStrictlyIncreasing(page.map((e) => e.globalPosition));
        expect(page[0]!.globalPosition).toBeGreaterThan(start);

        const afterFirst = await store.readAll({ after: page[0]!.globalPosition, maxCount: 2 });
        expect(afterFirst.map((e) => e.globalPosition)).toEqual(page.slice(1).map((e) => e.globalPosition));
        expect(await store.readAll({ after: start, maxCount: 0 })).toEqual([]);

        const ours = (await readAllAfter(store, start)).filter((e) => e.streamName === stream);
        expect(ours.map((e) => e.streamVersion)).toEqual([0n, 1n, 2n, 3n]);
      });

      it('reads only the given types when asked: in global order, after exclusive, maxCount caps the page', async () => {
        const start = await store.headPosition();
        const [rareA, rareB, other] = [`RareA-${randomUUID()}`, `RareB-${randomUUID()}`, `Other-${randomUUID()}`];
        const typed = (...types: string[]): NewEvent[] => types.map((type, i) => ({ id: randomUUID(), type, data: { i } }));
        const [s1, s2] = [streamName(), streamName()];
        await store.appendToStream(s1, typed(other, rareA, other, other));
        await store.appendToStream(s2, typed(rareB, other));
        await store.appendToStream(s1, typed(other, rareA));
        const expected = (await readAllAfter(store, start)).filter((e) => e.type === rareA || e.type === rareB);
        expect(expected.map((e) => e.type)).toEqual([rareA, rareB, rareA]);

        const types = new Set([rareA, rareB]);
        const all = await store.readAll({ after: start, maxCount: 10, types });
        expect(all).toEqual(expected); // a short page: none of these types after the last one
        const page = await store.readAll({ after: start, maxCount: 2, types });
        expect(page).toEqual(expected.slice(0, 2));
        expect(await store.readAll({ after: page[0]!.globalPosition, maxCount: 10, types })).toEqual(expected.slice(1));
        expect(await store.readAll({ after: expected[2]!.globalPosition, maxCount: 10, types })).toEqual([]);
        expect(await store.readAll({ after: start, maxCount: 10, types: new Set([rareB]) })).toEqual([expected[1]]);
        expect(await store.readAll({ after: start, maxCount: 10, types: new Set() })).toEqual([]);
        expect(await store.readAll({ after: start, maxCount: 0, types })).toEqual([]);
      });

      it('returns the same events from readAll as from readStream', async () => {
        const start = await store.headPosition();
        const stream = streamName();
        await store.appendToStream(stream, [{ id: randomUUID(), type: 'T', data: { x: 'ü' }, metadata: { correlationId: 'c' } }]);
        const fromAll = (await readAllAfter(store, start)).filter((e) => e.streamName === stream);
        expect(fromAll).toEqual((await store.readStream(stream)).events);
      });

      it('sees the events of many streams in commit order', async () => {
        const start = await store.headPosition();
        const [a, b, c] = [streamName(), streamName(), streamName()];
        const order: [string, bigint][] = [];
        for (const s of [a, b, a, c, b, a]) {
          const r = await store.appendToStream(s, newEvents(1));
          order.push([s, r.nextExpectedVersion]);
        }
        const ours = (await readAllAfter(store, start)).filter((e) => [a, b, c].includes(e.streamName));
        expect(ours.map((e) => [e.streamName, e.streamVersion])).toEqual(order);
        expectStrictlyIncreasing(ours.map((e) => e.globalPosition));
      });

      it('headPosition is the position of the last committed event', async () => {
        const before = await store.headPosition();
        expect(typeof before).toBe('bigint');
        expect(before).toBeGreaterThanOrEqual(0n);
        const result = await store.appendToStream(streamName(), newEvents(2));
        expect(result.lastGlobalPosition).toBeGreaterThan(before);
        expect(await store.headPosition()).toBeGreaterThanOrEqual(result.lastGlobalPosition);
      });

      it('waitForAppend resolves soon after another caller appends', async () => {
        const head = await store.headPosition();
        const started = Date.now();
        const waiting = store.waitForAppend(head, 10_000);
        setTimeout(() => void store.appendToStream(streamName(), newEvents(1)), 30);
        await waiting;
        expect(Date.now() - started).toBeLessThan(3_000);
        expect(await store.headPosition()).toBeGreaterThan(head);
      });

      it('waitForAppend resolves at once when events after the position already exist', async () => {
        const head = await store.headPosition();
        await store.appendToStream(streamName(), newEvents(1));
        const started = Date.now();
        await store.waitForAppend(head, 10_000);
        expect(Date.now() - started).toBeLessThan(1_000);
      });

      it('waitForAppend resolves by timeout when nothing is appended', async () => {
        // A position far beyond anything another test could reach in the meantime.
        const after = (await store.headPosition()) + (1n << 40n);
        const started = Date.now();
        await store.waitForAppend(after, 200);
        const elapsed = Date.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(150);
        expect(elapsed).toBeLessThan(3_000);
      });
    });

    describe('concurrency', () => {
      it('of concurrent appends to one stream with the same expected version, exactly one wins', async () => {
        const stream = streamName();
        await store.appendToStream(stream, newEvents(1));
        const attempts = await Promise.allSettled(
          Array.from({ length: 10 }, () => store.appendToStream(stream, newEvents(2), { expectedVersion: 0n })),
        );
        const won = attempts.filter((a) => a.status === 'fulfilled');
        const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(9);
        for (const l of lost) expect(l.reason).toBeInstanceOf(ExpectedVersionConflictError);
        expect((await store.readStream(stream)).currentVersion).toBe(2n);
      });

      it('of concurrent creations of one stream with no_stream, exactly one wins', async () => {
        const stream = streamName();
        const attempts = await Promise.allSettled(
          Array.from({ length: 8 }, () => store.appendToStream(stream, newEvents(1), { expectedVersion: 'no_stream' })),
        );
        expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
        for (const a of attempts) if (a.status === 'rejected') expect(a.reason).toBeInstanceOf(ExpectedVersionConflictError);
        expect((await store.readStream(stream)).events).toHaveLength(1);
      });

      it('many concurrent appends to different streams all succeed and appear exactly once in readAll', async () => {
        const start = await store.headPosition();
        const streams = Array.from({ length: 60 }, () => streamName());
        const batches = streams.map(() => newEvents(3));
        const results = await Promise.all(streams.map((s, i) => store.appendToStream(s, batches[i]!, { expectedVersion: 'no_stream' })));
        for (const r of results) expect(r).toMatchObject({ nextExpectedVersion: 2n, idempotent: false });

        const mine = new Set(streams);
        const all = await readAllAfter(store, start);
        expectStrictlyIncreasing(all.map((e) => e.globalPosition));
        const ours = all.filter((e) => mine.has(e.streamName));
        expect(ours).toHaveLength(streams.length * 3);
        expect(new Set(ours.map((e) => e.id)).size).toBe(ours.length);
        streams.forEach((s, i) => {
          const inAll = ours.filter((e) => e.streamName === s);
          expect(inAll.map((e) => e.id)).toEqual(batches[i]!.map((e) => e.id));
          expect(inAll.map((e) => e.streamVersion)).toEqual([0n, 1n, 2n]);
          expect(inAll[2]!.globalPosition).toBe(results[i]!.lastGlobalPosition);
        });
      });
    });

    // A reopen step closes and opens the store where the adapter offers that (SQLite on a file, PostgreSQL);
    // elsewhere it only checks. RTS_MODEL_RUNS sets the number of runs for a longer search.
    describe('a model of the port (fast-check)', () => {
      modelBasedAppends(
        {
          store: () => store,
          reopen: async () => {
            if (reopenStore !== undefined) store = await reopenStore();
          },
        },
        Number(process.env['RTS_MODEL_RUNS'] ?? 100),
      );
    });
  });
}

/** A fresh stream name per test, so a shared database and parallel runs do not interfere. */
function streamName(): string {
  return `contract-${randomUUID()}`;
}

function newEvents(count: number): NewEvent[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Happened', data: { i } }));
}

async function conflict(append: Promise<unknown>): Promise<ExpectedVersionConflictError> {
  const error = await append.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ExpectedVersionConflictError);
  return error as ExpectedVersionConflictError;
}

/** Everything after `after`, page by page, until a short page. */
async function readAllAfter(store: EventStore, after: bigint): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let position = after;
  for (;;) {
    const page = await store.readAll({ after: position, maxCount: 100 });
    out.push(...page);
    if (page.length < 100) return out;
    position = page[page.length - 1]!.globalPosition;
  }
}

function expectStrictlyIncreasing(positions: readonly bigint[]): void {
  for (let i = 1; i < positions.length; i++) expect(positions[i]!).toBeGreaterThan(positions[i - 1]!);
}
