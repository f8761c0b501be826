import { DateTime } from 'luxon';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { planConsultationDownlink } from '../../src/application/consultation/consultation-downlink';
import type { AuditEntry } from '../../src/application/audit/audit-chain';
import { evolveConsultationView, evolveMonthlyCounts, monthSeries } from '../../src/application/consultation/consultation-projection';
import { expireDue } from '../../src/application/consultation/deadlines';
import { ConsultationService } from '../../src/application/consultation/consultation-service';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { parseConsultationDownlink, parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import type { ConsultationEvent } from '../../src/domain/consultation/consultation';
import { ConflictError, ForbiddenError } from '../../src/domain/shared/errors';
import { PATIENT_A, PATIENT_B, storeCorrection, storeDocument } from '../support/attachable-documents';
import { PATIENT_ERASED, patientStreamName } from '../../src/application/sealed-documents';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { EventStoreDocumentRepository } from '../../src/application/event-store-document-repository';
import { Projector } from '../../src/application/projector';
import { OpeningRegistry } from '../../src/application/sealed-documents';
import { TeleMedService } from '../../src/application/telemed';
import { XdsBackend } from '../../src/application/xds-backend';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';

const QUESTION = 'Suspected aortic dissection; 64-year-old with chest pain';
let now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => uuidV5(`consult-flow/${n++}`) };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- one helper builds envelopes of both contracts
const up = (systemId: string, type: string, payload: unknown, key: string): any =>
  ({ id: uuidV5(`flow/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${key}`, time: '2024-05-01T10:00:00Z', payload });

const setup = async () => {
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const s of ['xian', 'chengdu', 'beijing', 'mianyang']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`) as UplinkEnvelope);
  }
  for (const [s, e] of [['chengdu', 'li'], ['beijing', 'wang'], ['mianyang', 'zhao'], ['mianyang', 'old']]) {
    await directory.uplink.handleUplink(up(s!, 'expert.registered', { localExpertId: e, profile }, `reg-${e}`) as UplinkEnvelope);
  }
  await directory.uplink.handleUplink(up('mianyang', 'expert.retired', { localExpertId: 'old' }, 'ret-old') as UplinkEnvelope);
  await storeDocument(store, '1.2.3');
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
  const module = createConsultationModule({ store, clock, ids, logger, directory, protection, policy: { defaultDeadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 3 } } });
  return { store, directory, module, protection };
};

const ID = '11111111-2222-4333-8444-555555555555';
const requestInput = { consultationId: ID, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li', 'beijing:wang', 'mianyang:zhao'], clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] };

describe('ConsultationService over the in-memory store', () => {
  beforeEach(() => {
    now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
  });

  it('passes by a candidate who retired since the request, on a decline and on an expiry; a retired expert cannot accept', async () => {
    const { directory, module } = await setup();
    const svc = module.service;
    await svc.request(requestInput);
    // beijing:wang retires while chengdu:li holds the offer: the decline goes on to mianyang:zhao.
    await directory.uplink.handleUplink(up('beijing', 'expert.retired', { localExpertId: 'wang' }, 'ret-wang') as UplinkEnvelope);
    await svc.decline(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: 'on leave' });
    const view = await svc.get(ID);
    expect(view).toMatchObject({ status: 'offered', expertId: 'mianyang:zhao' });
    expect(view.offers.map((o) => o.expertId)).toEqual(['chengdu:li', 'mianyang:zhao']);
    // The one holding the offer retires: it cannot accept, and the expiry closes the case (nobody left).
    await directory.uplink.handleUplink(up('mianyang', 'expert.retired', { localExpertId: 'zhao' }, 'ret-zhao') as UplinkEnvelope);
    await expect(svc.accept(ID, { expertId: 'mianyang:zhao', bySystemId: 'mianyang' })).rejects.toMatchObject({ code: 'expert_retired' });
    now = now.plus({ minutes: 61 });
    expect(await module.deadlines.runOnce()).toBe(1);
    expect((await svc.get(ID)).status).toBe('unassigned');
  });

  it('a retry of a stored request is answered as the first was after a candidate retired; a new request, or another under that id, is still checked', async () => {
    const { directory, module } = await setup();
    const first = await module.service.request(requestInput, { commandId: 'cmd-1' });
    expect(first.created).toBe(true);
    // The answer was lost; meanwhile a candidate retired. The retry (HTTP) and the redelivery (uplink) are repeats.
    await directory.uplink.handleUplink(up('beijing', 'expert.retired', { localExpertId: 'wang' }, 'ret-wang') as UplinkEnvelope);
    const again = await module.service.request(requestInput, { commandId: 'cmd-1' });
    expect(again).toMatchObject({ created: false, consultation: { consultationId: ID, status: 'offered', expertId: 'chengdu:li', candidates: requestInput.candidates } });
    const viaUplink = { consultationId: ID, applicantClinician: requestInput.applicantClinician, candidates: requestInput.candidates, clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] };
    expect(await module.handleUplink(up('xian', 'consultation.requested', viaUplink, 'rq-1'))).toEqual({ outcome: 'duplicate' });
    // Texts are compared as stored (normalised): surrounding blanks still make a repeat.
    expect((await module.service.request({ ...requestInput, clinicalQuestion: ` ${QUESTION} ` })).created).toBe(false);
    // A new request naming the retired candidate is refused, as before; so is another request under the stored id
    // (the participant checks come first for it, as before the fix).
    const other = '11111111-2222-4333-8444-666666666666';
    await expect(module.service.request({ ...requestInput, consultationId: other })).rejects.toMatchObject({ code: 'candidate_retired', details: [{ path: 'candidates.1' }] });
    await expect(module.service.request({ ...requestInput, summary: 'MRI' })).rejects.toMatchObject({ code: 'candidate_retired' });
    await expect(module.service.request({ ...requestInput, summary: 'MRI', candidates: ['chengdu:li'] })).rejects.toMatchObject({ code: 'consultation_id_reused' });
  });

  it('a retry of a request whose texts were erased is 410 consultation_erased, also after a candidate retired', async () => {
    const { directory, module } = await setup();
    await module.service.request(requestInput);
    await module.service.eraseContent(ID, { by: 'dpo' });
    await directory.uplink.handleUplink(up('beijing', 'expert.retired', { localExpertId: 'wang' }, 'ret-wang') as UplinkEnvelope);
    await expect(module.service.request(requestInput)).rejects.toMatchObject({ code: 'consultation_erased' });
    await expect(module.service.request({ ...requestInput, summary: 'MRI' })).rejects.toMatchObject({ code: 'consultation_erased' });
  });

  it("a repeat of a request whose attachment's patient was erased is 410 consultation_erased, as docs/messaging.md says (it was patient_erased)", async () => {
    const { store, module } = await setup();
    await module.service.request(requestInput);
    // The patient's erasure: recorded in the patient's stream, then the consultations' texts erased.
    await store.appendToStream(patientStreamName(PATIENT_A), [{ id: uuidV5('flow/erased-a'), type: PATIENT_ERASED, data: { patientKey: PATIENT_A, erasedAt: '2024-05-01T10:05:00Z' } }]);
    await module.service.eraseContent(ID, { by: 'hub' });
    await expect(module.service.request(requestInput)).rejects.toMatchObject({ code: 'consultation_erased' });
    const viaUplink = { consultationId: ID, applicantClinician: requestInput.applicantClinician, candidates: requestInput.candidates, clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] };
    await expect(module.handleUplink(up('xian', 'consultation.requested', viaUplink, 'rq-erased'))).rejects.toMatchObject({ code: 'consultation_erased' }); // dead-lettered with it
    // A new request attaching the erased patient's document is still patient_erased.
    await expect(module.service.request({ ...requestInput, consultationId: '11111111-2222-4333-8444-777777777777' })).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('a request under a stored id with another deadline is consultation_id_reused naming deadlineSeconds; one naming none takes the stored deadline', async () => {
    const { store, directory, module, protection } = await setup();
    await module.service.request({ ...requestInput, deadlineSeconds: 600 });
    const error = await module.service.request({ ...requestInput, deadlineSeconds: 7200 }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({ code: 'consultation_id_reused', details: [{ path: 'deadlineSeconds', message: "differs from the stored request's (600)" }] });
    expect((error as Error).message).toContain('deadlineSeconds 600');
    expect((error as Error).message).not.toContain(QUESTION);
    expect((await module.service.request({ ...requestInput, deadlineSeconds: 600 })).created).toBe(false);
    // No deadline named: a retry of a request that named one, or one after the hub's default changed, is a repeat.
    expect((await module.service.request(requestInput)).created).toBe(false);
    const restarted = createConsultationModule({ store, clock, ids, logger, directory, protection, policy: { defaultDeadlineSeconds: 1800, reportResend: { intervalSeconds: 600, maxAttempts: 3 } } });
    expect((await restarted.service.request(requestInput)).created).toBe(false);
    const offers = (await module.service.get(ID)).offers;
    expect(offers.map((o) => [o.offeredAt, o.expiresAt])).toEqual([['2024-05-01T10:00:00.000Z', '2024-05-01T10:10:00.000Z']]);
    // Another content is the plain conflict, which names no field (a stranger reusing an id learns nothing of the stored request).
    await expect(module.service.request({ ...requestInput, summary: 'MRI', deadlineSeconds: 7200 })).rejects.toMatchObject({ code: 'consultation_id_reused', details: [] });
  });

  it('says so in one warning when a report went unacknowledged past its last resend (and not before, nor after an acknowledgement)', async () => {
    const warnings: [Record<string, unknown>, string][] = [];
    const store = new InMemoryEventStore();
    const directory = createDirectoryModule({ store, clock, ids, logger });
    for (const s of ['xian', 'mianyang']) {
      await directory.service.registerSystem({ systemId: s, name: s, area: s });
      await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`) as UplinkEnvelope);
    }
    await directory.uplink.handleUplink(up('mianyang', 'expert.registered', { localExpertId: 'zhao', profile }, 'reg-zhao') as UplinkEnvelope);
    await storeDocument(store, '1.2.3');
    const watched = { warn: (o: Record<string, unknown>, m: string) => void warnings.push([o, m]), error: () => undefined };
    const module = createConsultationModule({ store, clock, ids, logger: watched, directory, protection: new PatientCipher({ keys: new InMemoryKeyStore() }), policy: { defaultDeadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 2 } } });
    await module.service.request({ ...requestInput, candidates: ['mianyang:zhao'] }, { correlationId: 'corr-R' });
    await module.service.accept(ID, { expertId: 'mianyang:zhao', bySystemId: 'mianyang' });
    await module.service.issueReport(ID, { expertId: 'mianyang:zhao', bySystemId: 'mianyang', diagnosis: 'd', recommendations: 'r' });
    const given = () => warnings.filter(([, m]) => /not acknowledged after its last resend/.test(m));
    now = now.plus({ minutes: 11 });
    expect(await module.deadlines.runOnce()).toBe(1); // resend 1 of 2
    expect(given()).toEqual([]);
    now = now.plus({ minutes: 11 });
    expect(await module.deadlines.runOnce()).toBe(1); // resend 2 of 2: the last
    expect(given()).toEqual([[{ consultationId: ID, correlationId: 'corr-R', resends: 2 }, expect.stringContaining('ask the applicant system')]]);
    now = now.plus({ hours: 1 });
    expect(await module.deadlines.runOnce()).toBe(0);
    expect(given()).toHaveLength(1);
    expect(JSON.stringify(warnings)).not.toContain(QUESTION);
  });

  it('full flow: first declines, second times out, third accepts, reports, resent until acknowledged; messages to the right queues', async () => {
    const { store, module } = await setup();
    const svc = module.service;
    const created = await svc.request(requestInput, { correlationId: 'corr-A', commandId: 'cmd-1' });
    expect(created.created).toBe(true);
    expect(created.consultation).toMatchObject({ status: 'offered', expertId: 'chengdu:li', correlationId: 'corr-A' });
    expect((await svc.request(requestInput, { correlationId: 'corr-A', commandId: 'cmd-1' })).created).toBe(false);

    await svc.decline(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: 'on leave' });
    expect((await svc.get(ID)).expertId).toBe('beijing:wang');

    now = now.plus({ minutes: 61 });
    expect(await module.deadlines.runOnce()).toBe(1);
    expect(await module.deadlines.runOnce()).toBe(0); // the same timer again: nothing
    const third = await svc.get(ID);
    expect(third.offers.map((o) => o.outcome)).toEqual(['declined', 'expired', 'open']);
    await expect(svc.accept(ID, { expertId: 'beijing:wang', bySystemId: 'beijing' })).rejects.toMatchObject({ code: 'offer_expired' });
    await svc.accept(ID, { expertId: 'mianyang:zhao', bySystemId: 'mianyang' });
    await expect(svc.issueReport(ID, { expertId: 'mianyang:zhao', bySystemId: 'beijing', diagnosis: 'x', recommendations: '' })).rejects.toBeInstanceOf(ForbiddenError);
    await svc.issueReport(ID, { expertId: 'mianyang:zhao', bySystemId: 'mianyang', diagnosis: 'Type B dissection', recommendations: 'Transfer' });

    now = now.plus({ minutes: 11 });
    expect(await module.deadlines.runOnce()).toBe(1);
    expect((await svc.get(ID)).report).toMatchObject({ resends: 1 });
    await svc.acknowledge(ID, { bySystemId: 'xian' });
    now = now.plus({ hours: 2 });
    expect(await module.deadlines.runOnce()).toBe(0);
    expect((await svc.get(ID)).status).toBe('acknowledged');

    // Every event of the consultation carries its correlation id; none names the patient text outside the data.
    const all = await store.readAll({ after: 0n, maxCount: 1000 });
    const mine = all.filter((e) => e.streamName === `consultation-${ID}`);
    expect(mine.map((e) => e.type)).toEqual([
      'ConsultationRequested', 'ConsultationOffered', 'ConsultationDeclined', 'ConsultationOffered', 'ConsultationExpired', 'ConsultationOffered',
      'ConsultationAccepted', 'ReportIssued', 'ReportResent', 'ReportAcknowledged',
    ]);
    expect(new Set(mine.map((e) => e.metadata.correlationId))).toEqual(new Set(['corr-A']));
    expect(JSON.stringify(mine.map((e) => [e.streamName, e.metadata]))).not.toContain('aortic');

    // Downlink planning: queue and type per event, all valid against the contract.
    const view = await svc.get(ID);
    const planned = mine.flatMap((e) => planConsultationDownlink(e, { consultation: view, queueFor: (s) => `rts.downlink.${s}` }));
    expect(planned.map((m) => [m.queue, m.envelope.type])).toEqual([
      ['rts.downlink.chengdu', 'consultation.offered'],
      ['rts.downlink.xian', 'consultation.declined'],
      ['rts.downlink.beijing', 'consultation.offered'],
      ['rts.downlink.xian', 'consultation.declined'],
      // The expired offer's system is told too, so it drops the stale offer.
      ['rts.downlink.beijing', 'consultation.cancelled'],
      ['rts.downlink.mianyang', 'consultation.offered'],
      ['rts.downlink.xian', 'consultation.accepted'],
      ['rts.downlink.xian', 'consultation.report'],
      ['rts.downlink.xian', 'consultation.report'],
    ]);
    for (const m of planned) {
      expect(m.envelope.correlationId).toBe('corr-A');
      expect(parseConsultationDownlink(JSON.stringify(m.envelope))).toMatchObject({ ok: true });
    }
    expect(planned.map((m) => (m.envelope.payload as { attempt?: number }).attempt).filter((a) => a !== undefined)).toEqual([0, 1]);
    expect(planned[3]!.envelope.payload).toMatchObject({ outcome: 'expired', reason: 'offer_expired' });
    expect(planned[4]!.envelope.payload).toMatchObject({ expertId: 'beijing:wang', reason: expect.stringMatching(/^offer_expired: /) });
    // Planning again gives the same ids.
    expect(mine.flatMap((e) => planConsultationDownlink(e, { consultation: view, queueFor: (s) => s })).map((m) => m.envelope.id)).toEqual(planned.map((m) => m.envelope.id));
  });

  it('cancel tells the expert it was with, and unassigned tells the applicant', async () => {
    const { store, module } = await setup();
    await module.service.request(requestInput);
    await module.service.accept(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    await expect(module.service.cancel(ID, { bySystemId: 'beijing' })).rejects.toMatchObject({ code: 'not_your_consultation' });
    expect((await module.service.cancel(ID, { bySystemId: 'xian', reason: 'transferred' })).consultation.status).toBe('cancelled');
    const view = await module.service.get(ID);
    const events = (await store.readStream(`consultation-${ID}`)).events;
    const last = planConsultationDownlink(events[events.length - 1]!, { consultation: view, queueFor: (s) => s });
    expect(last.map((m) => [m.queue, m.envelope.type, (m.envelope.payload as { expertId: string }).expertId])).toEqual([['chengdu', 'consultation.cancelled', 'chengdu:li']]);

    const id2 = '99999999-2222-4333-8444-555555555555';
    await module.service.request({ ...requestInput, consultationId: id2, candidates: ['chengdu:li'] });
    await module.service.decline(id2, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: '' });
    expect((await module.service.get(id2)).status).toBe('unassigned');
    const list = await module.service.list({ systemId: 'xian', role: 'applicant' });
    expect(list.items.map((c) => c.consultationId).sort()).toEqual([ID, id2].sort());
    expect((await module.service.list({ systemId: 'xian', status: 'unassigned' })).items.map((c) => c.consultationId)).toEqual([id2]);
    expect((await module.service.list({ systemId: 'chengdu', role: 'expert' })).items.map((c) => c.consultationId)).toEqual([ID]);
    expect(await module.service.consultationsPerMonth()).toEqual([{ month: '2024-05', requested: 2 }]);

    // Cancelled while offered: the open offer ends 'cancelled', and its expert's system is told.
    const id3 = '88888888-2222-4333-8444-555555555555';
    await module.service.request({ ...requestInput, consultationId: id3 });
    const cancelled = (await module.service.cancel(id3, { bySystemId: 'xian' })).consultation;
    expect(cancelled.offers).toEqual([expect.objectContaining({ expertId: 'chengdu:li', outcome: 'cancelled', settledAt: cancelled.cancelled!.cancelledAt })]);
    const events3 = (await store.readStream(`consultation-${id3}`)).events;
    const told = planConsultationDownlink(events3[events3.length - 1]!, { consultation: cancelled, queueFor: (s) => s });
    expect(told.map((m) => [m.queue, m.envelope.type])).toEqual([['chengdu', 'consultation.cancelled']]);
  });

  it('the downlink publisher reads only consultation events, and over other contexts moves to the head', async () => {
    const { store, module } = await setup();
    await module.service.request(requestInput);
    for (let i = 0; i < 30; i++) await store.appendToStream(`document-${i}`, [{ id: uuidV5(`other/${i}`), type: 'DocumentSubmitted', data: { i } }]);
    const head = await store.headPosition();
    const sent: Array<{ queue: string; type: string }> = [];
    const publisher = module.downlinkPublisher({ send: async (queue, envelope) => void sent.push({ queue, type: envelope.type }) });
    const readAll = jest.spyOn(store, 'readAll');
    await publisher.catchUp();
    expect(sent).toEqual([{ queue: 'rts.downlink.chengdu', type: 'consultation.offered' }]);
    expect(readAll.mock.calls.length).toBeGreaterThan(0);
    for (const [options] of readAll.mock.calls) {
      expect(options.types?.has('ConsultationOffered')).toBe(true);
      expect(options.types?.has('DocumentSubmitted') || options.types?.has('ExpertRegistered')).toBe(false);
    }
    // Its checkpoint is the head, though the last consultation event is far behind it: a new run reads one page.
    readAll.mockClear();
    await publisher.catchUp();
    expect(readAll.mock.calls.length).toBeLessThanOrEqual(1);
    expect(sent).toHaveLength(1);
    await module.service.accept(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    await publisher.catchUp();
    expect(sent.map((m) => m.type)).toEqual(['consultation.offered', 'consultation.accepted']);
    expect(await store.headPosition()).toBeGreaterThan(head);
  });

  it("an audit entry that cannot be stored is tried again without sending its message again, and a stop leaves the checkpoint before it", async () => {
    // The publisher records each message the broker took before it moves on. Failing the event instead sent the
    // message again at each retry of the loop: a trail that could not be written put a copy a second of the same
    // message on the receiver's queue, and an event of two messages recorded its first one again at each retry.
    const { module } = await setup();
    await module.service.request(requestInput);
    // Two messages (declined to xian, cancelled to chengdu), then the next offer.
    await module.service.withdrawOffer(ID, { expertId: 'chengdu:li', offerIndex: 0, reason: 'expert_retired' });
    const sent: string[] = [];
    const stored: string[] = [];
    let failuresLeft = 0;
    const audit = {
      record: async (entry: AuditEntry) => {
        if (failuresLeft > 0) {
          failuresLeft--;
          throw new Error('SQLITE_FULL: database or disk is full');
        }
        stored.push(`${entry.reason}->${entry.systemId}`);
      },
    };
    const outbox = { send: async (queue: string, envelope: { type: string }) => void sent.push(`${envelope.type}->${queue.replace('rts.downlink.', '')}`) };
    const publisher = module.downlinkPublisher(outbox as never, audit, { auditRetryMs: 1 });
    // The first message's entry is stored; the second message's fails three times.
    const record = audit.record;
    let calls = 0;
    audit.record = async (entry) => {
      if (++calls === 3) failuresLeft = 3;
      return record(entry);
    };
    // As the background loop does: a drain that fails is run again from the checkpoint.
    for (let tries = 0; tries < 10; tries++) {
      try {
        await publisher.catchUp();
        break;
      } catch {
        // retried
      }
    }
    const expected = ['consultation.offered->chengdu', 'consultation.declined->xian', 'consultation.cancelled->chengdu', 'consultation.offered->beijing'];
    expect(sent).toEqual(expected);
    expect(stored).toEqual(expected);

    // A stop while an entry cannot be stored ends the tries: the checkpoint stays before the event, so the next start
    // sends the message again (its id) and records it then.
    await module.service.accept(ID, { expertId: 'beijing:wang', bySystemId: 'beijing' });
    const before = await publisher.checkpoint();
    failuresLeft = Number.MAX_SAFE_INTEGER;
    const attempted = new Promise<void>((resolve) => {
      const inner = audit.record;
      audit.record = async (entry) => {
        resolve();
        return inner(entry);
      };
    });
    publisher.start();
    await attempted;
    await publisher.stop();
    expect(await publisher.checkpoint()).toBe(before);
    expect(sent.slice(4)).toEqual(['consultation.accepted->xian']);
    failuresLeft = 0;
    await publisher.catchUp();
    expect(sent.slice(4)).toEqual(['consultation.accepted->xian', 'consultation.accepted->xian']);
    expect(stored.slice(4)).toEqual(['consultation.accepted->xian']);
  });

  it('a message sent again because the hub stopped after its entry was stored and before the checkpoint moved is recorded once', async () => {
    const { module, directory } = await setup();
    await module.service.request(requestInput);
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    const sent: string[] = [];
    const outbox = { send: async (queue: string, envelope: { type: string; id: string }) => void sent.push(`${envelope.type}->${queue.replace('rts.downlink.', '')}/${envelope.id}`) };
    const before = await directory.checkpoints.get('consultation-downlink');
    await module.downlinkPublisher(outbox as never, trail).catchUp();
    // What a hub that died between the entry and the checkpoint leaves: the entry stored, the checkpoint where it was.
    await directory.checkpoints.set('consultation-downlink', before);
    now = now.plus({ minutes: 5 });
    await module.downlinkPublisher(outbox as never, trail).catchUp();
    expect(sent).toHaveLength(2);
    expect(sent[1]).toBe(sent[0]);
    const search = { from: new Date('2024-05-01T00:00:00Z'), to: new Date('2024-05-02T00:00:00Z'), now: new Date('2024-05-01T12:00:00Z') };
    const entries = (await trail.byPatient(PATIENT_A, search)).items.filter((e) => e.action === 'consultation.sent');
    expect(entries).toEqual([expect.objectContaining({ reason: 'consultation.offered', subject: 'system:chengdu', at: '2024-05-01T10:00:00.000Z' })]);
  });

  it('refuses unknown or retired candidates and an unknown applicant system', async () => {
    const { module } = await setup();
    await expect(module.service.request({ ...requestInput, candidates: ['chengdu:nobody'] })).rejects.toMatchObject({ code: 'unknown_candidate', details: [{ path: 'candidates.0' }] });
    await expect(module.service.request({ ...requestInput, candidates: ['chengdu:li', 'mianyang:old'] })).rejects.toMatchObject({ code: 'candidate_retired', details: [{ path: 'candidates.1' }] });
    await expect(module.service.request({ ...requestInput, applicantSystemId: 'nowhere' })).rejects.toMatchObject({ code: 'unknown_system' });
  });

  describe('attachments: checked against the registry at the request, shown as the registry has them at read time', () => {
    const refused = async (attachments: readonly string[]) => {
      const { module, store } = await setup();
      return { module, store, error: await module.service.request({ ...requestInput, attachments }).then(() => null, (e: unknown) => e) };
    };

    it('refuses a uniqueId no document of the hub has, naming the attachment by its place', async () => {
      const { module, store, error } = await refused(['1.2.3', '2.25.1234567890']);
      expect(error).toMatchObject({ kind: 'validation', code: 'unknown_attachment', details: [{ path: 'attachments.1', message: 'no document of this hub has this uniqueId' }] });
      expect((await store.readStream(`consultation-${ID}`)).events).toEqual([]);
      await expect(module.service.get(ID)).rejects.toMatchObject({ code: 'consultation_not_found' });
    });

    it('refuses a document replaced by a correction, naming the current version of its chain', async () => {
      const { module, store } = await setup();
      await storeCorrection(store, '1.2.3', '1.2.4');
      await storeCorrection(store, '1.2.4', '1.2.5');
      const error = await module.service.request(requestInput).then(() => null, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'attachment_replaced', details: [{ path: 'attachments.0', message: 'replaced by a correction; attach its current version 1.2.5' }] });
      // The current version is taken.
      expect((await module.service.request({ ...requestInput, attachments: ['1.2.5'] })).created).toBe(true);
    });

    it('takes a document whose correction is under way (deprecated, its replacement not registered yet): it is still current', async () => {
      const { module, store } = await setup();
      await store.appendToStream('document-1.2.3', [{ id: uuidV5('mid-correction'), type: 'DocumentDeprecated', data: { uniqueId: '1.2.3', replacedBy: '1.2.9', deprecatedAt: '2024-05-01T09:30:00Z' } }]);
      expect((await module.service.request(requestInput)).created).toBe(true);
      expect(await module.service.attachmentsNow(await module.service.get(ID))).toEqual([{ uniqueId: '1.2.3', status: 'Approved', replacedBy: null, currentVersion: '1.2.3' }]);
    });

    it('refuses documents of two patients, without naming either', async () => {
      const { module, store } = await setup();
      await storeDocument(store, '1.2.7', PATIENT_B);
      const error = await module.service.request({ ...requestInput, attachments: ['1.2.3', '1.2.3', '1.2.7'] }).then(() => null, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'attachments_of_several_patients', details: [{ path: 'attachments.2', message: 'of another patient than attachments.0' }] });
      expect(JSON.stringify(error) + String((error as Error).message)).not.toMatch(/p[ab]{32}/);
    });

    it('the same request again after a correction of its attachment is a repeat, as before; another request with it is refused', async () => {
      const { module, store } = await setup();
      expect((await module.service.request(requestInput, { commandId: 'cmd-1' })).created).toBe(true);
      await storeCorrection(store, '1.2.3', '1.2.4');
      const again = await module.service.request(requestInput, { commandId: 'cmd-1' });
      expect(again).toMatchObject({ created: false, consultation: { consultationId: ID, attachments: ['1.2.3'] } });
      // Over the uplink too: a redelivered request message answers 'duplicate', not a refusal.
      const viaUplink = { consultationId: ID, applicantClinician: requestInput.applicantClinician, candidates: requestInput.candidates, clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] };
      const other = '11111111-2222-4333-8444-666666666666';
      await expect(module.handleUplink(up('xian', 'consultation.requested', { ...viaUplink, consultationId: other }, 'rq-other'))).rejects.toMatchObject({ code: 'attachment_replaced' });
      await expect(module.service.request({ ...requestInput, consultationId: other })).rejects.toMatchObject({ code: 'attachment_replaced' });
    });

    it('a redelivered uplink request is a duplicate even when its attachment was corrected after it was stored', async () => {
      const { module, store } = await setup();
      const message = up('xian', 'consultation.requested', { consultationId: ID, applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: QUESTION, summary: '', attachments: ['1.2.3'] }, 'rq-1');
      expect(await module.handleUplink(message)).toEqual({ outcome: 'applied' });
      await storeCorrection(store, '1.2.3', '1.2.4');
      expect(await module.handleUplink(message)).toEqual({ outcome: 'duplicate' });
    });

    it('reads what the XDS backend writes: an upload, and its correction through TeleMed', async () => {
      const { module, store } = await setup();
      const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
      const registry = new OpeningRegistry(new InMemoryRegistry(), protection);
      const xds = new XdsBackend({
        store, registry, projector: new Projector(store, registry), repositories: [new EventStoreDocumentRepository('2.25.9', store)], repositoryUniqueId: '2.25.9',
        patientKeys: new HmacPatientKeys(Buffer.alloc(32, 7)), clock, ids, protection,
      });
      const telemed = new TeleMedService(xds);
      const reading = (systolic: number) => createTeleObservation({ patientId: '251248-1234', systolic, diastolic: 80, measuredAt: now.minus({ hours: 1 }) }, now);
      const uploaded = await telemed.record(reading(150), { observationId: 'o-1' });
      await module.service.request({ ...requestInput, attachments: [uploaded.uniqueId] });
      const corrected = await telemed.correct(uploaded.uniqueId, reading(145), { correctionId: 'fix-1' });
      expect(await module.service.attachmentsNow(await module.service.get(ID))).toEqual([{ uniqueId: uploaded.uniqueId, status: 'Deprecated', replacedBy: corrected.uniqueId, currentVersion: corrected.uniqueId }]);
      expect((await xds.entry(uploaded.uniqueId)).status).toBe('Deprecated'); // as GET /documents/{uniqueId} says
      await expect(module.service.request({ ...requestInput, consultationId: '11111111-2222-4333-8444-777777777777', attachments: [uploaded.uniqueId] })).rejects.toMatchObject({
        code: 'attachment_replaced',
        message: expect.stringContaining(`attachments.0 by ${corrected.uniqueId}`),
      });
    });

    it('shows each attachment current, then Deprecated with its replacement and the current version once corrected', async () => {
      const { module, store } = await setup();
      await storeDocument(store, '1.2.8');
      await module.service.request({ ...requestInput, attachments: ['1.2.3', '1.2.8'] });
      const view = await module.service.get(ID);
      expect(await module.service.attachmentsNow(view)).toEqual([
        { uniqueId: '1.2.3', status: 'Approved', replacedBy: null, currentVersion: '1.2.3' },
        { uniqueId: '1.2.8', status: 'Approved', replacedBy: null, currentVersion: '1.2.8' },
      ]);
      await storeCorrection(store, '1.2.3', '1.2.4');
      await storeCorrection(store, '1.2.4', '1.2.5');
      expect(await module.service.attachmentsNow(view)).toEqual([
        { uniqueId: '1.2.3', status: 'Deprecated', replacedBy: '1.2.4', currentVersion: '1.2.5' },
        { uniqueId: '1.2.8', status: 'Approved', replacedBy: null, currentVersion: '1.2.8' },
      ]);
      // A document the registry does not hold (attached before requests were checked) has no status.
      expect(await module.service.attachmentsNow({ attachments: ['2.25.1234567890'] })).toEqual([{ uniqueId: '2.25.1234567890', status: null, replacedBy: null, currentVersion: null }]);
    });
  });

  it('an accept sent before the deadline and handled after a hub restart counts; the runner gives the uplink a grace after its start', async () => {
    const { module } = await setup();
    const ID2 = '22222222-2222-4333-8444-555555555555';
    for (const [consultationId, key] of [[ID, 'rq1'], [ID2, 'rq2']] as const) {
      await module.handleUplink(up('xian', 'consultation.requested', { consultationId, applicantClinician: 'dr-chen', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: QUESTION, summary: '', attachments: [] }, key));
    }
    // The hub was down past the deadlines (3600 s); it starts again: its first poll leaves both offers open.
    now = now.plus({ minutes: 61 });
    module.deadlines.start();
    await module.deadlines.stop();
    expect((await module.service.get(ID)).offers.map((o) => o.outcome)).toEqual(['open']);
    // chengdu's accept, sent 5 s after the offer (before the hub went down), comes off the uplink backlog.
    const sentEarly = { ...up('chengdu', 'consultation.accept', { consultationId: ID, expertId: 'chengdu:li' }, 'acc1'), time: '2024-05-01T10:00:05Z' };
    expect(await module.handleUplink(sentEarly)).toEqual({ outcome: 'applied' });
    expect(await module.service.get(ID)).toMatchObject({ status: 'accepted', expertId: 'chengdu:li' });
    // Past the grace, the other overdue offer expires and moves on; an accept sent in time is then too late. The grace
    // is measured on the monotonic clock (deadlines-start-grace.unit.spec.ts): 31 s of it go by.
    now = now.plus({ seconds: 31 });
    const monotonic = performance.now() + 31_000;
    const later = jest.spyOn(performance, 'now').mockReturnValue(monotonic);
    try {
      expect(await module.deadlines.runOnce()).toBe(1);
    } finally {
      later.mockRestore();
    }
    expect(await module.service.get(ID2)).toMatchObject({ status: 'offered', expertId: 'beijing:wang' });
    const tooLate = { ...up('chengdu', 'consultation.accept', { consultationId: ID2, expertId: 'chengdu:li' }, 'acc2'), time: '2024-05-01T10:00:05Z' };
    await expect(module.handleUplink(tooLate)).rejects.toMatchObject({ code: 'offer_expired' });
  });

  it('uplink messages: the sender must be the applicant or the offered expert\'s home system; repeats are duplicates', async () => {
    const { module } = await setup();
    const requested = up('xian', 'consultation.requested', { consultationId: ID, applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: QUESTION, summary: '', attachments: [] }, 'rq');
    expect(parseConsultationUplink(JSON.stringify(requested))).toMatchObject({ ok: true });
    expect(await module.handleUplink(requested)).toEqual({ outcome: 'applied' });
    expect(await module.handleUplink(requested)).toEqual({ outcome: 'duplicate' });
    await expect(module.handleUplink(up('beijing', 'consultation.accept', { consultationId: ID, expertId: 'chengdu:li' }, 'a1'))).rejects.toMatchObject({ code: 'not_your_consultation' });
    await expect(module.handleUplink(up('beijing', 'consultation.accept', { consultationId: ID, expertId: 'beijing:wang' }, 'a2'))).rejects.toMatchObject({ code: 'expert_not_offered' });
    expect(await module.handleUplink(up('chengdu', 'consultation.accept', { consultationId: ID, expertId: 'chengdu:li' }, 'a3'))).toEqual({ outcome: 'applied' });
    await expect(module.handleUplink(up('chengdu', 'consultation.cancel', { consultationId: ID }, 'c1'))).rejects.toMatchObject({ code: 'not_your_consultation' });
    expect(await module.handleUplink(up('chengdu', 'consultation.report', { consultationId: ID, expertId: 'chengdu:li', diagnosis: 'd', recommendations: 'r' }, 'r1'))).toEqual({ outcome: 'applied' });
    expect(await module.handleUplink(up('xian', 'consultation.acknowledge', { consultationId: ID }, 'k1'))).toEqual({ outcome: 'applied' });
    const view = await module.service.get(ID);
    expect(view).toMatchObject({ status: 'acknowledged', correlationId: 'corr-rq' });
    expect(parseConsultationUplink(JSON.stringify({ ...requested, payload: { consultationId: ID } }))).toMatchObject({ ok: false, reason: 'bad_schema' });
  });
});

describe('consultation projections and timers (pure)', () => {
  const requested = (id: string, at: string): ConsultationEvent => ({
    type: 'ConsultationRequested',
    data: { consultationId: id, applicantSystemId: 'xian', applicantClinician: 'c', candidates: ['a-1:x'], clinicalQuestion: 'q', summary: '', attachments: [], deadlineSeconds: 60, reportResend: { intervalSeconds: 60, maxAttempts: 1 }, correlationId: 'k', requestedAt: at },
  });

  it('counts requests per UTC month, and fills months without requests with zero', () => {
    const events = [requested('a', '2015-01-31T23:30:00-02:00'), requested('b', '2015-01-05T00:00:00Z'), requested('c', '2015-04-01T00:00:00+08:00')];
    const counts = events.reduce(evolveMonthlyCounts, new Map());
    expect([...counts.entries()].sort()).toEqual([['2015-01', 1], ['2015-02', 1], ['2015-03', 1]]);
    expect(monthSeries([{ month: '2015-01', requested: 3 }, { month: '2015-03', requested: 1 }])).toEqual([
      { month: '2015-01', requested: 3 },
      { month: '2015-02', requested: 0 },
      { month: '2015-03', requested: 1 },
    ]);
    expect(monthSeries([], { from: '2015-11', to: '2016-01' }).map((m) => m.month)).toEqual(['2015-11', '2015-12', '2016-01']);
  });

  it('ends a series at the last year the format has (before: "10000-01" sorted before "9999-12" and it ran on)', () => {
    expect(monthSeries([], { from: '9999-12', to: '9999-12' })).toEqual([{ month: '9999-12', requested: 0 }]);
    expect(monthSeries([{ month: '9999-11', requested: 2 }], { from: '9999-01', to: '9999-12' }).map((m) => m.month)).toHaveLength(12);
  });

  it('keeps the open offer as the due timer and clears it when answered', () => {
    const offered: ConsultationEvent = { type: 'ConsultationOffered', data: { consultationId: 'a', expertId: 'a-1:x', offerIndex: 0, offeredAt: 't', expiresAt: '2024-01-01T00:01:00.000Z' } };
    const v1 = [requested('a', '2024-01-01T00:00:00Z'), offered].reduce(evolveConsultationView, null);
    expect(v1).toMatchObject({ status: 'offered', expertSystemId: 'a-1', due: { kind: 'offer', offerIndex: 0, dueAt: '2024-01-01T00:01:00.000Z' } });
    const v2 = evolveConsultationView(v1, { type: 'ConsultationAccepted', data: { consultationId: 'a', expertId: 'a-1:x', offerIndex: 0, acceptedAt: 't' } });
    expect(v2).toMatchObject({ status: 'accepted', due: null });
    expect(evolveConsultationView(null, offered)).toBeNull();
  });

  it("keeps the patients' keys the request recorded, sorted and once each, after an erasure of the texts too", () => {
    // What an access to the case is audited under (GET /consultations reads them for each row of its page): in the
    // row, a page of 500 needs no read of 500 streams.
    const withKeys: ConsultationEvent = { ...requested('a', '2024-01-01T00:00:00Z'), data: { ...requested('a', '2024-01-01T00:00:00Z').data, patientKeys: ['p-2', 'p-1', 'p-2'] } } as ConsultationEvent;
    const view = evolveConsultationView(null, withKeys);
    expect(view?.patientKeys).toEqual(['p-1', 'p-2']);
    const erased = evolveConsultationView(view, { type: 'ConsultationContentErased', data: { consultationId: 'a', erasedAt: 't', by: 'dpo', cause: 'requested' } } as never);
    expect(erased).toMatchObject({ contentErased: true, patientKeys: ['p-1', 'p-2'] });
    // A request of a build that recorded no keys: none in the row (ConsultationService.patientKeysOf reads them).
    expect(evolveConsultationView(null, requested('b', '2024-01-01T00:00:00Z'))).not.toHaveProperty('patientKeys');
  });

  it("ConsultationService.patientKeysOfView takes a row's keys without reading its stream, and reads it for a row without", async () => {
    const readStream = jest.fn(async () => ({ events: [{ type: 'ConsultationRequested', data: { patientKeys: ['p-9'] } }] }));
    const service = new ConsultationService({ store: { readStream } } as never);
    const row = evolveConsultationView(null, { ...requested('a', '2024-01-01T00:00:00Z'), data: { ...requested('a', '2024-01-01T00:00:00Z').data, patientKeys: ['p-1'] } } as ConsultationEvent)!;
    expect(await service.patientKeysOfView(row)).toEqual(['p-1']);
    expect(readStream).not.toHaveBeenCalled();
    const older = evolveConsultationView(null, requested('b', '2024-01-01T00:00:00Z'))!;
    expect(await service.patientKeysOfView(older)).toEqual(['p-9']);
    expect(readStream).toHaveBeenCalledTimes(1);
  });

  it('expireDue gives deterministic commands for due timers only', () => {
    const rows = [
      { consultationId: 'a', correlationId: 'k', kind: 'offer' as const, offerIndex: 1, dueAt: '2024-01-01T00:00:00Z' },
      { consultationId: 'b', correlationId: 'k', kind: 'resend' as const, attempt: 2, dueAt: '2024-01-01T08:00:00+08:00' },
      { consultationId: 'c', correlationId: 'k', kind: 'offer' as const, offerIndex: 0, dueAt: '2024-01-01T00:00:01Z' },
    ];
    const first = expireDue('2024-01-01T00:00:00Z', rows);
    expect(first.map((c) => [c.kind, c.consultationId])).toEqual([['expire', 'a'], ['resend', 'b']]);
    expect(expireDue('2024-01-01T00:00:00Z', rows).map((c) => c.commandId)).toEqual(first.map((c) => c.commandId));
  });
});
