// A cross-area teleconsultation under random steps (fast-check): accepts, declines, reports, acknowledgements and
// cancellations by the right and the wrong systems, repeats of a step, clocks that run past offer deadlines and
// report resends, experts who retire mid-case, and the content erased. Whatever the order, after every step:
// a refusal is an RtsError (never a crash); the read model shows what the stream folds to; offers go down the
// candidates in order (passing by retired ones), each at most once, at most one open; a case ends at most once and stays ended; there is a
// report only from the accepted expert; and every downlink message goes to a party of the case, the report only to
// the applicant. Unit tier: the application core over the in-memory store (the AMQP path is the integration tests').
import { DateTime } from 'luxon';
import fc from 'fast-check';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { consultationParties } from '../../src/application/consultation/consultation-projection';
import { consultationViewFromStream } from '../../src/application/consultation/consultation-view-from-stream';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { RtsError } from '../../src/domain/shared/errors';
import { storeDocument } from '../support/attachable-documents';

const ID = '11111111-2222-4333-8444-555555555555';
const APPLICANT = 'xian';
const EXPERTS = ['chengdu:li', 'beijing:wang', 'mianyang:zhao'] as const;
const SYSTEMS = [APPLICANT, 'chengdu', 'beijing', 'mianyang'] as const;
const ENDED = new Set(['acknowledged', 'unassigned', 'cancelled']);
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
const logger = { warn: () => undefined, error: () => undefined };

type Step =
  | { kind: 'accept' | 'decline' | 'report'; expert: number | 'current'; fromHome: boolean; text: number }
  | { kind: 'acknowledge' | 'cancel'; system: number }
  | { kind: 'wait'; minutes: number }
  | { kind: 'retire'; expert: number }
  | { kind: 'erase' }
  | { kind: 'repeat' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constantFrom('accept' as const, 'decline' as const, 'report' as const), expert: fc.oneof({ weight: 3, arbitrary: fc.constant('current' as const) }, { weight: 1, arbitrary: fc.nat({ max: 2 }) }), fromHome: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), text: fc.nat({ max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('acknowledge' as const), system: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('acknowledge' as const, 'cancel' as const), system: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), minutes: fc.integer({ min: 1, max: 90 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('retire' as const), expert: fc.nat({ max: 2 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'erase' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'repeat' as const }) },
);

describe('a consultation under random steps keeps its invariants', () => {
  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? 150);
  it(`read model = stream, offers in order, one ending, reports only from the accepted expert, messages only to parties (${runs} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 20 }), async (steps) => {
        let now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
        const clock = { now: () => now };
        let n = 0;
        const ids = { uuid: () => uuidV5(`consult-invariants/${n++}`) };
        const up = (systemId: string, type: string, payload: unknown, key: string) =>
          ({ id: uuidV5(`inv/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${key}`, time: '2024-05-01T10:00:00Z', payload }) as unknown as UplinkEnvelope;
        const store = new InMemoryEventStore();
        const directory = createDirectoryModule({ store, clock, ids, logger });
        for (const s of SYSTEMS) {
          await directory.service.registerSystem({ systemId: s, name: s, area: s });
          await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
        }
        for (const e of EXPERTS) {
          const [home, local] = e.split(':') as [string, string];
          await directory.uplink.handleUplink(up(home, 'expert.registered', { localExpertId: local, profile }, `reg-${local}`));
        }
        await storeDocument(store, '1.2.3');
        const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
        const module = createConsultationModule({ store, clock, ids, logger, directory, protection, policy: { defaultDeadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 2 } } });
        const svc = module.service;
        await svc.request({ consultationId: ID, applicantSystemId: APPLICANT, applicantClinician: 'dr-chen', candidates: [...EXPERTS], clinicalQuestion: 'Chest pain, suspected dissection', summary: 'CT', attachments: ['1.2.3'] });

        let last: (() => Promise<unknown>) | null = null;
        let endedAs: string | null = null;
        for (const [index, step] of steps.entries()) {
          const context = { index, step };
          let call: (() => Promise<unknown>) | null = null;
          if (step.kind === 'accept' || step.kind === 'decline' || step.kind === 'report') {
            // 'current': the expert the case is with now (offered or accepted), as a well-behaved system sends.
            const expertId = step.expert === 'current' ? ((await svc.get(ID)).expertId ?? EXPERTS[0]) : EXPERTS[step.expert]!;
            const home = expertId.split(':')[0]!;
            const bySystemId = step.fromHome ? home : SYSTEMS[(SYSTEMS.indexOf(home as never) + 1) % SYSTEMS.length]!;
            const key = `${step.kind}-${index}`;
            call =
              step.kind === 'accept'
                ? () => svc.accept(ID, { expertId, bySystemId }, { commandId: key })
                : step.kind === 'decline'
                  ? () => svc.decline(ID, { expertId, bySystemId, reason: `busy ${step.text}` }, { commandId: key })
                  : () => svc.issueReport(ID, { expertId, bySystemId, diagnosis: `d${step.text}`, recommendations: 'r' }, { commandId: key });
          } else if (step.kind === 'acknowledge' || step.kind === 'cancel') {
            const bySystemId = SYSTEMS[step.system]!;
            call = step.kind === 'acknowledge' ? () => svc.acknowledge(ID, { bySystemId }) : () => svc.cancel(ID, { bySystemId, reason: 'not needed' });
          } else if (step.kind === 'wait') {
            now = now.plus({ minutes: step.minutes });
            call = () => module.deadlines.runOnce();
          } else if (step.kind === 'retire') {
            const [home, local] = EXPERTS[step.expert]!.split(':') as [string, string];
            call = async () => {
              await directory.uplink.handleUplink(up(home, 'expert.retired', { localExpertId: local }, `ret-${local}`));
              await module.retiredExpertOffers.catchUp();
            };
          } else if (step.kind === 'erase') {
            call = () => svc.eraseContent(ID, { by: 'dpo' });
          } else {
            call = last; // the previous step again, same command id: changes nothing new
          }
          if (call === null) continue;
          last = call;
          try {
            await call();
          } catch (error) {
            if (!(error instanceof RtsError)) throw error; // a refusal, with its code; anything else is a defect
          }

          const view = await svc.get(ID);
          const folded = await consultationViewFromStream(store, protection, ID);
          expect({ ...context, view }).toEqual({ ...context, view: folded });
          // Offers go down the candidates in order (passing by one who retired), each at most once, at most one open.
          const order = view.offers.map((o) => EXPERTS.indexOf(o.expertId as never));
          expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!))).toBe(true);
          expect(view.offers.filter((o) => o.settledAt === null).length).toBeLessThanOrEqual(1);
          // Ended once, and stays as it ended.
          if (endedAs !== null) expect({ ...context, status: view.status }).toEqual({ ...context, status: endedAs });
          if (ENDED.has(view.status)) endedAs = view.status;
          // A report only from the accepted expert; an accepted expert is one the case was offered to.
          if (view.expertId !== null && (view.status === 'accepted' || view.status === 'reported' || view.status === 'acknowledged')) {
            expect(view.offers.map((o) => o.expertId)).toContain(view.expertId);
          }
          if (view.report !== null) expect(view.report.expertId).toBe(view.expertId);
          if (view.status === 'reported' || view.status === 'acknowledged') expect(view.report).not.toBeNull();
        }

        // The stream holds one acceptance at most, and every downlink message goes to a party of the case.
        const types = (await store.readStream(consultationStreamName(ID))).events.map((e) => e.type);
        expect(types.filter((t) => t === 'ConsultationAccepted').length).toBeLessThanOrEqual(1);
        const sent: { queue: string; type: string }[] = [];
        await module.downlinkPublisher({ send: async (queue, envelope) => void sent.push({ queue, type: envelope.type }) }).catchUp();
        const parties = consultationParties(await svc.get(ID)).map((s) => directory.service.downlinkQueueFor(s));
        for (const m of sent) expect({ message: m, parties }).toEqual({ message: m, parties: expect.arrayContaining([m.queue]) });
        for (const m of sent.filter((s) => s.type === 'consultation.report')) expect(m.queue).toBe(directory.service.downlinkQueueFor(APPLICANT));
      }),
      { numRuns: runs },
    );
  });
});
