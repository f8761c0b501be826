import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type EventStore,
  type ExpectedVersion,
  type NewEvent,
  type RecordedEvent,
} from '../../src/application/ports/event-store';

/**
 * A model of the event store port, and random runs of appends checked against it (fast-check).
 *
 * The example tests of the contract pin one rule each; this runs them together, the way a hub does: groups of
 * appends in flight at once (so a group-committing store puts them in one transaction, a failing one among them),
 * repeats of earlier batches whole or in part (client retries, some into another stream), stale and wrong
 * expected versions, a batch with one id twice, a payload that is not JSON, and, where the adapter can, a close and
 * reopen of the store between groups. After every group it compares each stream, the results and errors, and the
 * store-wide order with the model.
 *
 * The appends of one group go to different streams, and an id not stored before the group (a new one, or one of
 * an earlier batch that was refused) is in at most one of them, so their outcomes do not depend on which of them
 * commits first: the model may apply them in any order. (Two retries of one refused batch into two streams in one
 * group race for its ids: on PostgreSQL, under load, the one planned second committed first.)
 */

type Relative = 'current' | 'below' | 'above';
type Expected = 'any' | 'no_stream' | 'stream_exists' | Relative | 'absent';

/** One append, as generated: which stream, what events, which expected version. */
type Op =
  | { kind: 'fresh'; stream: number; count: number; types: readonly boolean[]; expected: Expected }
  | { kind: 'repeat'; stream: number; batch: number; from: number; length: number; expected: Expected }
  | { kind: 'overlap'; stream: number; batch: number; freshFirst: boolean; expected: Expected }
  | { kind: 'twice'; stream: number }
  | { kind: 'poison'; stream: number; count: number; at: number; expected: Expected };

type Step = { kind: 'group'; ops: readonly Op[] } | { kind: 'reopen' };

type Outcome =
  | { ok: true; nextExpectedVersion: bigint; idempotent: boolean; lastId: string }
  | { ok: false; error: 'conflict'; actual: bigint | null }
  | { ok: false; error: 'idempotency' }
  | { ok: false; error: 'refused' };

type ModelEvent = { id: string; type: string; data: Record<string, unknown>; stream: string; version: bigint; group: number };

const STREAMS = 3;
const TYPES = ['Recorded', 'Corrected'] as const;

const expectedArb: fc.Arbitrary<Expected> = fc.constantFrom<Expected>('any', 'no_stream', 'stream_exists', 'current', 'current', 'below', 'above', 'absent');
const streamArb = fc.nat({ max: STREAMS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('fresh' as const), stream: streamArb, count: fc.integer({ min: 1, max: 3 }), types: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), expected: expectedArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('repeat' as const), stream: streamArb, batch: fc.nat(), from: fc.nat({ max: 2 }), length: fc.integer({ min: 1, max: 3 }), expected: expectedArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('overlap' as const), stream: streamArb, batch: fc.nat(), freshFirst: fc.boolean(), expected: expectedArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('twice' as const), stream: streamArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('poison' as const), stream: streamArb, count: fc.integer({ min: 1, max: 3 }), at: fc.nat({ max: 2 }), expected: expectedArb }) },
);
const stepArb = (canReopen: boolean): fc.Arbitrary<Step> =>
  canReopen
    ? fc.oneof({ weight: 6, arbitrary: fc.record({ kind: fc.constant('group' as const), ops: fc.array(opArb, { minLength: 1, maxLength: 4 }) }) }, { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) })
    : fc.record({ kind: fc.constant('group' as const), ops: fc.array(opArb, { minLength: 1, maxLength: 4 }) });

/** The port's rules (src/application/ports/event-store.ts, append-rules.ts), on plain maps. */
class Model {
  readonly streams = new Map<string, ModelEvent[]>();
  readonly byId = new Map<string, ModelEvent>();

  current(stream: string): bigint | null {
    const events = this.streams.get(stream);
    return events === undefined || events.length === 0 ? null : BigInt(events.length - 1);
  }

  /** What the store must answer to an append of JSON events, without changing the model. */
  predict(stream: string, events: readonly NewEvent[], expected: ExpectedVersion): Outcome {
    if (new Set(events.map((e) => e.id)).size !== events.length) return { ok: false, error: 'idempotency' };
    const stored = events.map((e) => this.byId.get(e.id));
    if (stored.some((s) => s !== undefined)) {
      const first = stored[0];
      const repeat = first !== undefined && stored.every((s, i) => s !== undefined && s.stream === stream && s.version === first.version + BigInt(i));
      if (!repeat) return { ok: false, error: 'idempotency' };
      const last = stored[stored.length - 1]!;
      return { ok: true, nextExpectedVersion: last.version, idempotent: true, lastId: last.id };
    }
    const current = this.current(stream);
    const fits =
      expected === 'any' ||
      (expected === 'no_stream' && current === null) ||
      (expected === 'stream_exists' && current !== null) ||
      (typeof expected === 'bigint' && expected === current);
    if (!fits) return { ok: false, error: 'conflict', actual: current };
    return { ok: true, nextExpectedVersion: (current ?? -1n) + BigInt(events.length), idempotent: false, lastId: events[events.length - 1]!.id };
  }

  /** The events of an append the store took (a new one, not a repeat). */
  commit(stream: string, events: readonly NewEvent[], group: number): void {
    const list = this.streams.get(stream) ?? [];
    this.streams.set(stream, list);
    for (const e of events) {
      const stored = { id: e.id, type: e.type, data: e.data as Record<string, unknown>, stream, version: BigInt(list.length), group };
      list.push(stored);
      this.byId.set(e.id, stored);
    }
  }
}

function freshEvent(type: string, i: number): NewEvent {
  return { id: randomUUID(), type, data: { i, note: `é ${i}` }, metadata: { causationId: `cmd-${i}` } };
}

/** What the store threw, in the model's words. */
function outcomeOfError(error: unknown): Outcome {
  if (error instanceof ExpectedVersionConflictError) return { ok: false, error: 'conflict', actual: error.actual };
  if (error instanceof IdempotencyViolationError) return { ok: false, error: 'idempotency' };
  return { ok: false, error: 'refused' };
}

export type ModelledStore = { store(): EventStore; reopen?: () => Promise<void> };

/**
 * Registers the model-based test in the calling describe. `runs` random runs of up to 8 steps; `reopen`, when the
 * adapter has one, closes and opens the store on the same data between groups.
 */
export function modelBasedAppends(target: ModelledStore, runs: number): void {
  it(`random groups of concurrent appends, retries and refusals agree with the model, step by step (${runs} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb(target.reopen !== undefined), { minLength: 1, maxLength: 8 }), async (steps) => {
        const run = randomUUID().slice(0, 8);
        const names = Array.from({ length: STREAMS }, (_, i) => `model-${run}-${i}`);
        const model = new Model();
        const batches: NewEvent[][] = []; // every batch sent before the current group, in order
        const positions = new Map<string, bigint>(); // event id -> global position, as read back
        const start = await target.store().headPosition();
        let counter = 0;
        let group = 0;

        for (const step of steps) {
          if (step.kind === 'reopen') {
            await target.reopen!();
            await expectStoreMatches(target.store(), model, names, start, positions);
            continue;
          }
          group++;
          const used = new Set<number>();
          const claimed = new Set<string>(); // ids not stored before the group that an append of it already carries
          const planned: { stream: string; events: NewEvent[]; expected: ExpectedVersion; poisoned: boolean; op: Op }[] = [];
          for (const op of step.ops) {
            if (used.has(op.stream)) continue; // one append per stream in a group: see the note at the top
            used.add(op.stream);
            const stream = names[op.stream]!;
            const current = model.current(stream);
            const expected = resolveExpected('expected' in op ? op.expected : 'any', current);
            let events: NewEvent[];
            let poisoned = false;
            if (op.kind === 'fresh') {
              events = Array.from({ length: op.count }, (_, i) => freshEvent(TYPES[op.types[i] === true ? 1 : 0], counter++));
            } else if (op.kind === 'repeat' || op.kind === 'overlap') {
              const earlier = batches.length === 0 ? undefined : batches[op.batch % batches.length];
              if (earlier === undefined) continue;
              if (op.kind === 'repeat') {
                const from = op.from % earlier.length;
                events = earlier.slice(from, from + op.length);
              } else {
                const fresh = freshEvent(TYPES[0], counter++);
                events = op.freshFirst ? [fresh, earlier[0]!] : [earlier[earlier.length - 1]!, fresh];
              }
              poisoned = events.some(isPoisoned);
            } else if (op.kind === 'twice') {
              const event = freshEvent(TYPES[0], counter++);
              events = [event, { ...event, data: { again: true } }];
            } else {
              events = Array.from({ length: op.count }, (_, i) => freshEvent(TYPES[0], counter++));
              const at = op.at % events.length;
              events[at] = { ...events[at]!, data: { notJson: BigInt(at) } };
              poisoned = true;
            }
            const unstored = events.map((e) => e.id).filter((id) => !model.byId.has(id));
            if (unstored.some((id) => claimed.has(id))) {
              used.delete(op.stream);
              continue;
            }
            for (const id of unstored) claimed.add(id);
            planned.push({ stream, events, expected, poisoned, op });
          }
          if (planned.length === 0) continue;

          const settled = await Promise.allSettled(planned.map((p) => target.store().appendToStream(p.stream, p.events, { expectedVersion: p.expected })));
          const head = await target.store().headPosition();
          const lastPositions: [string, bigint][] = [];
          planned.forEach((p, i) => {
            const valid = model.predict(p.stream, p.events, p.expected);
            // A payload that is not JSON is refused; where among its checks the store looks at it is its own
            // affair, so an append that would have failed anyway may fail for that reason instead.
            const predicted: Outcome = p.poisoned && valid.ok ? { ok: false, error: 'refused' } : valid;
            const result = settled[i]!;
            const actual: Outcome =
              result.status === 'fulfilled'
                ? { ok: true, nextExpectedVersion: result.value.nextExpectedVersion, idempotent: result.value.idempotent, lastId: predicted.ok ? predicted.lastId : '?' }
                : outcomeOfError(result.reason);
            const context = { run, group, stream: p.stream, op: p.op, ids: p.events.map((e) => e.id) };
            const refusedInstead = p.poisoned && !actual.ok && actual.error === 'refused';
            expect({ ...context, outcome: actual }).toEqual({ ...context, outcome: refusedInstead ? actual : predicted });
            if (predicted.ok && !predicted.idempotent) model.commit(p.stream, p.events, group);
            if (result.status === 'fulfilled') {
              expect(result.value.lastGlobalPosition).toBeLessThanOrEqual(head);
              lastPositions.push([predicted.ok ? predicted.lastId : '', result.value.lastGlobalPosition]);
            }
          });
          for (const p of planned) batches.push(p.events);
          await expectStoreMatches(target.store(), model, names, start, positions);
          for (const [id, position] of lastPositions) expect({ id, position: positions.get(id) }).toEqual({ id, position });
        }
      }),
      { numRuns: runs },
    );
  });
}

function isPoisoned(event: NewEvent): boolean {
  return Object.values(event.data).some((v) => typeof v === 'bigint');
}

function resolveExpected(expected: Expected, current: bigint | null): ExpectedVersion {
  switch (expected) {
    case 'current':
      return current ?? 'no_stream';
    case 'below':
      return current === null || current === 0n ? 5n : current - 1n;
    case 'above':
      return (current ?? -1n) + 1n;
    case 'absent':
      return 0n; // an exact version that holds only for a stream of exactly one event
    default:
      return expected;
  }
}

/**
 * The store against the model: each stream whole and in slices, and the store-wide order (readAll, with and
 * without a type filter) after `start`: every modelled event once, in version order per stream, and the groups in
 * the order they were sent. Records each event's global position in `positions`.
 */
async function expectStoreMatches(store: EventStore, model: Model, names: readonly string[], start: bigint, positions: Map<string, bigint>): Promise<void> {
  for (const name of names) {
    const read = await store.readStream(name);
    const expected = model.streams.get(name) ?? [];
    expect({ stream: name, currentVersion: read.currentVersion, events: read.events.map(shape) }).toEqual({
      stream: name,
      currentVersion: model.current(name),
      events: expected.map((e) => ({ id: e.id, type: e.type, data: e.data, streamName: name, streamVersion: e.version })),
    });
    if (expected.length > 1) {
      const slice = await store.readStream(name, { fromVersion: 1n, maxCount: 1 });
      expect(slice.events.map((e) => e.id)).toEqual([expected[1]!.id]);
      expect(slice.currentVersion).toBe(model.current(name));
    }
  }
  if (names.length === 0) return;
  const all = (await readAll(store, start, undefined)).filter((e) => model.byId.has(e.id) || e.streamName.startsWith(names[0]!.slice(0, -1)));
  const ids = all.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.slice().sort()).toEqual([...model.byId.keys()].sort());
  for (let i = 1; i < all.length; i++) {
    expect(all[i]!.globalPosition).toBeGreaterThan(all[i - 1]!.globalPosition);
    const [before, after] = [model.byId.get(all[i - 1]!.id)!, model.byId.get(all[i]!.id)!];
    expect(before.group).toBeLessThanOrEqual(after.group);
    if (before.stream === after.stream) expect(after.version).toBe(before.version + 1n);
  }
  for (const e of all) positions.set(e.id, e.globalPosition);
  const onlyCorrected = await readAll(store, start, new Set([TYPES[1]]));
  expect(onlyCorrected.filter((e) => model.byId.has(e.id)).map((e) => e.id)).toEqual(all.filter((e) => e.type === TYPES[1]).map((e) => e.id));
}

function shape(e: RecordedEvent): object {
  return { id: e.id, type: e.type, data: e.data, streamName: e.streamName, streamVersion: e.streamVersion };
}

async function readAll(store: EventStore, after: bigint, types: ReadonlySet<string> | undefined): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let position = after;
  for (;;) {
    const page = await store.readAll({ after: position, maxCount: 7, ...(types ? { types } : {}) });
    out.push(...page);
    if (page.length < 7) return out;
    position = page[page.length - 1]!.globalPosition;
  }
}
