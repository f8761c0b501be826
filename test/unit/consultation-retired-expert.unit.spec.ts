import { DateTime } from 'luxon';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { planConsultationDownlink } from '../../src/application/consultation/consultation-downlink';
import { ConsultationService } from '../../src/application/consultation/consultation-service';
import { CHECKPOINT_EVERY, MAX_ATTEMPTS, RetiredExpertOffers } from '../../src/application/consultation/retired-expert-offers';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryCheckpointStore } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { StoredDocumentEntries } from '../../src/application/stored-document-entries';
import { storeDocument } from '../support/attachable-documents';

// An expert retires while a consultation's offer to them is open: the RetiredExpertOffers reactor takes the offer
// back at once and the case moves on (next candidate, or unassigned), instead of waiting out the deadline.
const QUESTION = 'Suspected aortic dissection; 64-year-old with chest pain';
const now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => uuidV5(`retired-offers/${n++}`) };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string): UplinkEnvelope =>
  ({ id: uuidV5(`retired/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${key}`, time: '2024-05-01T10:00:00Z', payload }) as unknown as UplinkEnvelope;

const ID1 = '11111111-2222-4333-8444-000000000001';
const ID2 = '11111111-2222-4333-8444-000000000002';
const LI = 'chengdu:li';
const WANG = 'beijing:wang';
const ZHAO = 'mianyang:zhao';

const setup = async () => {
  const logged: { level: string; obj: object; msg: string }[] = [];
  const logger = {
    info: (obj: object, msg: string) => void logged.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg: string) => void logged.push({ level: 'warn', obj, msg }),
    error: (obj: object, msg: string) => void logged.push({ level: 'error', obj, msg }),
  };
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const s of ['xian', 'chengdu', 'beijing', 'mianyang']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  for (const id of [LI, WANG, ZHAO]) {
    const [s, e] = id.split(':');
    await directory.uplink.handleUplink(up(s!, 'expert.registered', { localExpertId: e, profile }, `reg-${e}`));
  }
  const retire = (expertId: string) => {
    const [s, e] = expertId.split(':');
    return directory.uplink.handleUplink(up(s!, 'expert.retired', { localExpertId: e }, `ret-${e}`));
  };
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
  await storeDocument(store, '1.2.3');
  const module = createConsultationModule({ store, clock, ids, logger, directory, protection, policy: { defaultDeadlineSeconds: 30 * 24 * 3600, reportResend: { intervalSeconds: 600, maxAttempts: 3 } } });
  const request = (consultationId: string, candidates: readonly string[]) =>
    module.service.request({ consultationId, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates, clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] });
  const types = async (consultationId: string) => (await store.readStream(consultationStreamName(consultationId))).events.map((e) => e.type);
  return { store, directory, module, retire, request, types, logged, logger, protection };
};

describe('RetiredExpertOffers: an open offer to an expert who retires is withdrawn at once', () => {
  it('an accept given before the expert retired, coming again (redelivery, resend), is a duplicate, not refused', async () => {
    const { module, retire, request, types } = await setup();
    await request(ID1, [LI]);
    const step = { expertId: LI, bySystemId: 'chengdu', sentAt: '2024-05-01T10:00:00Z' };
    expect((await module.service.accept(ID1, step, { commandId: 'accept-1' })).changed).toBe(true);
    await retire(LI);
    await expect(module.service.accept(ID1, step, { commandId: 'accept-1' })).resolves.toMatchObject({ changed: false });
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationAccepted']);
    // An offer the retired expert had not accepted is still refused (the reactor has not withdrawn it yet here).
    await request(ID2, [WANG]);
    await retire(WANG);
    await expect(module.service.accept(ID2, { expertId: WANG, bySystemId: 'beijing' }, { commandId: 'accept-2' })).rejects.toMatchObject({ code: 'expert_retired' });
  });

  it("another system's accept for a retired expert is refused expert_retired whether or not that expert accepted the case (no oracle)", async () => {
    const { module, retire, request } = await setup();
    await request(ID1, [LI]);
    await module.service.accept(ID1, { expertId: LI, bySystemId: 'chengdu' }, { commandId: 'accept-li' });
    await request(ID2, [WANG, LI]);
    await retire(LI);
    // A system that is not LI's (over AMQP the sender is the envelope's, the expert the payload's): the same answer
    // for the case LI accepted and for one LI did not, as before the repeat check.
    await expect(module.service.accept(ID1, { expertId: LI, bySystemId: 'mianyang' }, { commandId: 'probe-1' })).rejects.toMatchObject({ code: 'expert_retired' });
    await expect(module.service.accept(ID2, { expertId: LI, bySystemId: 'mianyang' }, { commandId: 'probe-2' })).rejects.toMatchObject({ code: 'expert_retired' });
  });

  it('offers the case to the next candidate, tells the applicant and the retired expert\'s system, and ends that system\'s access', async () => {
    const { store, module, retire, request, types } = await setup();
    await request(ID1, [LI, WANG]);
    await retire(LI);
    await module.retiredExpertOffers.catchUp();
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationOfferWithdrawn', 'ConsultationOffered']);
    const view = await module.service.get(ID1);
    expect(view).toMatchObject({ status: 'offered', expertId: WANG, expertSystemId: 'beijing' });
    expect(view.offers[0]).toMatchObject({ expertId: LI, outcome: 'withdrawn', reason: 'expert_retired' });
    // chengdu's clinicians read the attachments through consultations "with" chengdu: none now.
    expect((await module.readModel.list({ systemId: 'chengdu', role: 'expert', limit: 10 })).items).toEqual([]);

    const events = (await store.readStream(consultationStreamName(ID1))).events;
    const messages = events.flatMap((e) => planConsultationDownlink(e, { consultation: view, queueFor: (s) => `q.${s}` }));
    const fromWithdrawal = planConsultationDownlink(events[2]!, { consultation: view, queueFor: (s) => `q.${s}` });
    expect(fromWithdrawal.map((m) => [m.queue, m.envelope.type])).toEqual([['q.xian', 'consultation.declined'], ['q.chengdu', 'consultation.cancelled']]);
    expect(fromWithdrawal[0]!.envelope.payload).toMatchObject({ consultationId: ID1, expertId: LI, outcome: 'declined', reason: 'expert_retired' });
    expect(fromWithdrawal[1]!.envelope.payload).toMatchObject({ consultationId: ID1, expertId: LI, reason: expect.stringMatching(/^expert_retired: /) });
    expect(JSON.stringify(fromWithdrawal)).not.toContain(QUESTION);
    expect(messages.filter((m) => m.envelope.type === 'consultation.offered').map((m) => m.queue)).toEqual(['q.chengdu', 'q.beijing']);
  });

  it('leaves the case unassigned when no active candidate is left, passing by one who retired before', async () => {
    const { module, retire, request, types } = await setup();
    await request(ID1, [LI, WANG]);
    await retire(WANG);
    await module.retiredExpertOffers.catchUp();
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered']); // nothing open to wang
    await retire(LI);
    await module.retiredExpertOffers.catchUp();
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationOfferWithdrawn', 'ConsultationUnassigned']);
    expect(await module.service.get(ID1)).toMatchObject({ status: 'unassigned', expertSystemId: null });
  });

  it('withdraws every open offer of the expert, and leaves answered ones alone', async () => {
    const { module, retire, request, types } = await setup();
    await request(ID1, [LI, ZHAO]);
    await request(ID2, [LI, WANG]);
    const accepted = '11111111-2222-4333-8444-000000000003';
    await request(accepted, [LI]);
    await module.service.accept(accepted, { expertId: LI, bySystemId: 'chengdu' });
    await retire(LI);
    await module.retiredExpertOffers.catchUp();
    expect((await module.service.get(ID1)).expertId).toBe(ZHAO);
    expect((await module.service.get(ID2)).expertId).toBe(WANG);
    expect(await types(accepted)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationAccepted']);
  });

  it('replays and restarts record nothing more (checkpoint, deterministic command ids)', async () => {
    const { store, directory, module, retire, request, types } = await setup();
    await request(ID1, [LI, WANG]);
    await retire(LI);
    await module.retiredExpertOffers.catchUp();
    const head = await store.headPosition();
    // A restart: a new reactor on the same checkpoint store reads nothing new.
    const calls: string[] = [];
    const counting = { withdrawOffer: (...args: Parameters<typeof module.service.withdrawOffer>) => (calls.push(args[0]), module.service.withdrawOffer(...args)) };
    const deps = { store, consultations: module.readModel, projector: module.projector, directory: directory.readModel, directoryProjector: directory.projector, service: counting };
    await new RetiredExpertOffers({ ...deps, checkpoints: directory.checkpoints }).catchUp();
    expect(calls).toEqual([]);
    // A replay from the start (a lost checkpoint, a second hub process): the decider finds nothing open to withdraw.
    await new RetiredExpertOffers({ ...deps, checkpoints: new InMemoryCheckpointStore() }).catchUp();
    expect(await store.headPosition()).toBe(head);
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationOfferWithdrawn', 'ConsultationOffered']);
  });

  it('stores its checkpoint when a page held its events or every CHECKPOINT_EVERY positions, not at every wake', async () => {
    const { store, directory, module, retire, request } = await setup();
    const sets: bigint[] = [];
    const inner = new InMemoryCheckpointStore();
    const checkpoints = { get: (name: string) => inner.get(name), set: (name: string, at: bigint) => (sets.push(at), inner.set(name, at)) };
    const deps = { store, consultations: module.readModel, projector: module.projector, directory: directory.readModel, directoryProjector: directory.projector, service: module.service, checkpoints };
    const reactor = new RetiredExpertOffers(deps);
    await reactor.catchUp(); // the setup's events: no offer yet, but retirements? none either
    const afterSetup = sets.length;
    // Uploads and other events wake it at each commit; none of its types: nothing stored.
    for (let i = 0; i < 20; i++) {
      await store.appendToStream(`other-${i}`, [{ id: uuidV5(`other-${i}`), type: 'SomethingElse', data: {} }]);
      await reactor.catchUp();
    }
    expect(sets.length).toBe(afterSetup);
    // A page with an offer (and then a retirement) in it: stored, at the head.
    await request(ID1, [LI, WANG]);
    await retire(LI);
    await reactor.catchUp();
    expect(sets.length).toBeGreaterThan(afterSetup);
    expect(sets[sets.length - 1]).toBe(await store.headPosition());
    // Far enough without its events: stored anyway.
    const before = sets.length;
    for (let i = 0; i < Number(CHECKPOINT_EVERY) + 5; i += 500) {
      await store.appendToStream(`bulk-${i}`, Array.from({ length: 500 }, (_, j) => ({ id: uuidV5(`bulk-${i}-${j}`), type: 'SomethingElse', data: {} })));
    }
    await reactor.catchUp();
    expect(sets.length).toBe(before + 1);
    // A new reactor on the same store starts from the stored checkpoint and withdraws nothing twice.
    const head = await store.headPosition();
    await new RetiredExpertOffers(deps).catchUp();
    expect(await store.headPosition()).toBe(head);
  });

  it('withdraws an offer made after the retirement by a step that did not see it yet (the race with a decline)', async () => {
    const { store, directory, module, retire, request, types, protection } = await setup();
    await request(ID1, [LI, WANG, ZHAO]);
    await module.retiredExpertOffers.catchUp();
    // A decline decided on a directory that had not seen wang's retirement: it offers the case to wang after it.
    const stale = new ConsultationService({
      store,
      consultations: module.readModel,
      projector: module.projector,
      directory: { getExpert: async (id) => ({ ...(await directory.readModel.getExpert(id))!, status: 'active' }), getSystem: (id) => directory.readModel.getSystem(id) },
      directoryProjector: directory.projector,
      protection,
      documents: new StoredDocumentEntries(store),
      clock,
      ids,
    });
    await retire(WANG);
    await stale.decline(ID1, { expertId: LI, bySystemId: 'chengdu', reason: 'busy' });
    expect((await module.service.get(ID1)).expertId).toBe(WANG);
    await module.retiredExpertOffers.catchUp();
    expect(await types(ID1)).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationDeclined', 'ConsultationOffered', 'ConsultationOfferWithdrawn', 'ConsultationOffered']);
    expect((await module.service.get(ID1)).expertId).toBe(ZHAO);
  });

  it('an expert retired before the request: refused as a candidate of a new request, passed by on a decline (as before)', async () => {
    const { module, retire, request } = await setup();
    await retire(WANG);
    await expect(request(ID1, [WANG, ZHAO])).rejects.toMatchObject({ code: 'candidate_retired' });
    await request(ID2, [LI, ZHAO]);
    await module.retiredExpertOffers.catchUp();
    expect((await module.service.get(ID2)).expertId).toBe(LI);
  });

  it('goes on past a consultation whose withdrawal keeps failing: retried, then logged without patient data and left', async () => {
    const { store, directory, module, retire, request, logged, logger } = await setup();
    await request(ID1, [LI, WANG]);
    await request(ID2, [LI, ZHAO]);
    await retire(LI);
    const tries: string[] = [];
    const flaky = {
      withdrawOffer: async (...args: Parameters<typeof module.service.withdrawOffer>) => {
        tries.push(args[0]);
        if (args[0] === ID1) throw new Error(`disk I/O error`);
        return module.service.withdrawOffer(...args);
      },
    };
    const checkpoints = new InMemoryCheckpointStore();
    const reactor = new RetiredExpertOffers({ store, checkpoints, consultations: module.readModel, projector: module.projector, directory: directory.readModel, directoryProjector: directory.projector, service: flaky, logger });
    for (let round = 1; round < MAX_ATTEMPTS; round++) await expect(reactor.catchUp()).rejects.toThrow(/withdrawal/);
    await reactor.catchUp();
    expect(tries.filter((t) => t === ID1)).toHaveLength(MAX_ATTEMPTS);
    expect((await module.service.get(ID2)).expertId).toBe(ZHAO); // withdrawn in the first round
    expect((await module.service.get(ID1)).expertId).toBe(LI); // left open: it runs out at its deadline
    const gaveUp = logged.filter((l) => l.level === 'error');
    expect(gaveUp).toHaveLength(1);
    expect(gaveUp[0]!.obj).toMatchObject({ consultationId: ID1, offerIndex: 0, attempts: MAX_ATTEMPTS });
    expect(JSON.stringify(logged.map((l) => ({ ...l.obj, err: String((l.obj as { err?: unknown }).err) })))).not.toContain(QUESTION);
    // Past it now: a later round does not try it again.
    await reactor.catchUp();
    expect(tries.filter((t) => t === ID1)).toHaveLength(MAX_ATTEMPTS);
  });
});
