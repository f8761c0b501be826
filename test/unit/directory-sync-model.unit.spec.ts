// The RTS paper's directory sync as a property: whatever city systems send (joins with bulk uploads, joins again,
// registrations, changes and retirements, before, during and after their joins) and however the downlink
// publisher is interrupted (a send that fails half-way through a page, a publisher started anew from its
// checkpoint), every joined system that applies its downlink queue as docs/messaging.md tells it to (keep the highest
// `revision` per `expertId`, snapshot parts included; a retirement is a revision too) ends up with the hub's
// directory: every active expert of every other joined system, with its current profile and revision, and no other.
// Random runs (fast-check) on the application core with in-memory doubles; the AMQP path is the integration tests'.
import { DateTime } from 'luxon';
import fc from 'fast-check';
import { DownlinkPublisher } from '../../src/application/directory/downlink-publisher';
import type { DownlinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import type { DownlinkOutbox } from '../../src/application/ports/downlink-outbox';
import { RtsError } from '../../src/domain/shared/errors';
import { inMemoryDirectoryCore, testExpert, testUplink } from '../support/directory-fixtures';

const SYSTEMS = ['alpha', 'beta', 'gamma'] as const;
const EXPERTS = 4; // local expert ids e-0 .. e-3 per system

type Step =
  | { kind: 'join'; system: number; experts: readonly number[]; batches: 1 | 2; version: number }
  | { kind: 'register' | 'change'; system: number; expert: number; version: number }
  | { kind: 'retire'; system: number; expert: number }
  | { kind: 'publish'; failAfter: number | null; fresh: boolean }
  /** The system's copy goes back to what it held `back` steps earlier (an old backup), and it joins again, as docs/messaging.md tells it to. */
  | { kind: 'restore'; system: number; back: number };

const systemArb = fc.nat({ max: SYSTEMS.length - 1 });
const expertArb = fc.nat({ max: EXPERTS - 1 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('join' as const),
      system: systemArb,
      experts: fc.uniqueArray(expertArb, { maxLength: EXPERTS }),
      batches: fc.constantFrom(1 as const, 2 as const),
      version: fc.nat({ max: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('register' as const, 'change' as const), system: systemArb, expert: expertArb, version: fc.nat({ max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retire' as const), system: systemArb, expert: expertArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('restore' as const), system: systemArb, back: fc.nat({ max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('publish' as const), failAfter: fc.option(fc.nat({ max: 6 }), { nil: null }), fresh: fc.boolean() }) },
);

/** A city system's copy of the directory, kept as docs/messaging.md says: the highest revision per expert wins. */
class Replica {
  clone(): Replica {
    const copy = new Replica();
    for (const [id, e] of this.experts) copy.experts.set(id, e);
    for (const id of this.seen) copy.seen.add(id);
    return copy;
  }

  private readonly experts = new Map<string, { revision: number; profile: unknown | null }>();
  private readonly seen = new Set<string>();

  apply(envelope: DownlinkEnvelope): void {
    if (this.seen.has(envelope.id)) return; // dedupe on the envelope id (a resend has the same one)
    this.seen.add(envelope.id);
    if (envelope.type === 'directory.expert.upserted') this.keep(envelope.payload.expertId, envelope.payload.revision, envelope.payload.profile);
    else if (envelope.type === 'directory.expert.retired') this.keep(envelope.payload.expertId, envelope.payload.revision, null);
    else if (envelope.type === 'directory.snapshot') for (const e of envelope.payload.experts) this.keep(e.expertId, e.revision, e.profile);
  }

  private keep(expertId: string, revision: number, profile: unknown | null): void {
    const known = this.experts.get(expertId);
    if (known === undefined || revision > known.revision) this.experts.set(expertId, { revision, profile });
  }

  active(): Record<string, { revision: number; profile: unknown }> {
    const out: Record<string, { revision: number; profile: unknown }> = {};
    for (const [id, e] of [...this.experts.entries()].sort(([a], [b]) => a.localeCompare(b))) if (e.profile !== null) out[id] = { revision: e.revision, profile: e.profile };
    return out;
  }
}

/** Delivers to the replicas, and fails the send after `failAfter` successful ones (null: never). */
class Deliveries implements DownlinkOutbox {
  failAfter: number | null = null;
  sent = 0;
  constructor(private readonly replicas: Map<string, Replica>) {}

  async send(queue: string, envelope: DownlinkEnvelope): Promise<void> {
    if (this.failAfter !== null && this.sent >= this.failAfter) throw new Error('broker refused the message (test)');
    this.sent++;
    const systemId = queue.replace(/^rts\.downlink\./, '');
    expect(envelope.systemId).toBe(systemId);
    let replica = this.replicas.get(systemId);
    if (replica === undefined) this.replicas.set(systemId, (replica = new Replica()));
    replica.apply(envelope);
  }
}

describe('directory sync (uplink, join, downlink) against what every joined system should hold', () => {
  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? 400);
  it(`every joined system ends with the hub directory of the other joined systems, whatever was sent and however publishing was cut (${runs} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 10, maxLength: 40 }), async (steps) => {
        let counter = 0;
        const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
        const ids = { uuid: () => uuidV5(`id/${counter++}`) };
        const { store, directory, projector, service, handler, checkpoints } = inMemoryDirectoryCore(clock, ids);
        const replicas = new Map<string, Replica>();
        const outbox = new Deliveries(replicas);
        let publisher = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
        for (const id of SYSTEMS) await service.registerSystem({ systemId: id, name: id, area: id });

        let key = 0;
        const send = async (message: Parameters<typeof handler.handleUplink>[0]): Promise<void> => {
          try {
            await handler.handleUplink(message);
          } catch (error) {
            if (!(error instanceof RtsError)) throw error; // a refusal is dead-lettered; anything else is a bug
          }
        };
        const earlier: Map<string, Replica>[] = []; // every system's copy before each step
        for (const step of steps) {
          earlier.push(new Map([...replicas].map(([id, copy]) => [id, copy.clone()])));
          if (step.kind === 'restore') {
            // An expert retired since the backup was in no message of the join again's snapshot: it stayed active in the copy.
            const systemId = SYSTEMS[step.system]!;
            const old = earlier[Math.max(0, earlier.length - 1 - step.back)]!.get(systemId);
            if (old) replicas.set(systemId, old.clone());
            else replicas.delete(systemId);
            await send({ ...testUplink(systemId, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${key++}`), correlationId: `restore-${key}` });
            continue;
          }
          if (step.kind === 'publish') {
            if (step.fresh) publisher = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
            outbox.failAfter = step.failAfter === null ? null : outbox.sent + step.failAfter;
            await publisher.catchUp().catch((error: Error) => expect(error.message).toMatch(/broker refused/));
            outbox.failAfter = null;
            continue;
          }
          const systemId = SYSTEMS[step.system]!;
          const correlationId = `join-${key}`;
          if (step.kind === 'join') {
            const experts = step.experts.map((i) => ({ localExpertId: `e-${i}`, ...testExpert(i, { title: `v${step.version}` }) }));
            // No experts: a join of no batches (the hub refuses an empty batch count with experts announced, and so on).
            const parts = experts.length === 0 ? [] : step.batches === 1 || experts.length < 2 ? [experts] : [experts.slice(0, 1), experts.slice(1)];
            const join = testUplink(systemId, 'system.join.requested', { expectedBatches: parts.length, expectedExperts: experts.length }, `join-${key++}`);
            await send({ ...join, correlationId });
            for (const [batchIndex, batch] of parts.entries()) {
              const message = testUplink(systemId, 'experts.batch', { batchIndex, batchCount: parts.length, experts: batch }, `batch-${key++}`);
              await send({ ...message, correlationId });
            }
          } else if (step.kind === 'retire') {
            await send(testUplink(systemId, 'expert.retired', { localExpertId: `e-${step.expert}` }, `retire-${key++}`));
          } else {
            const type = step.kind === 'register' ? 'expert.registered' : 'expert.changed';
            const profile = testExpert(step.expert, { title: `v${step.version}` });
            await send(testUplink(systemId, type, { localExpertId: `e-${step.expert}`, profile }, `${step.kind}-${key++}`));
          }
        }

        // Publishing runs to the end, then each joined system's copy is the hub's directory of the others.
        await publisher.catchUp();
        await projector.catchUp();
        const joined = (await directory.listSystemRows()).filter((s) => s.joinedPosition !== null).map((s) => s.systemId);
        const all = (await service.findExperts({ includeRetired: true, limit: 500 })).items;
        for (const systemId of joined) {
          const expected: Record<string, { revision: number; profile: unknown }> = {};
          for (const e of all) if (e.status === 'active' && e.homeSystemId !== systemId && joined.includes(e.homeSystemId)) expected[e.expertId] = { revision: e.revision, profile: e.profile };
          expect({ systemId, holds: replicas.get(systemId)?.active() ?? {} }).toEqual({ systemId, holds: expected });
        }
        // A system that never joined got nothing.
        for (const systemId of SYSTEMS) if (!joined.includes(systemId)) expect({ systemId, got: replicas.has(systemId) }).toEqual({ systemId, got: false });
      }),
      { numRuns: runs },
    );
  });
});
