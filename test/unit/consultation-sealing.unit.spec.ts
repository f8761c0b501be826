import { DateTime } from 'luxon';
import { uuidV5 } from '../../src/application/ids';
import { planConsultationDownlink } from '../../src/application/consultation/consultation-downlink';
import { consultationDataKey, holdsClearText, openConsultationData, SealingConsultationStore, sealConsultationData } from '../../src/application/consultation/sealed-consultations';
import { ConsultationContentErasure } from '../../src/application/consultation/consultation-erasure';
import { PatientErasure } from '../../src/application/patient-erasure';
import { isSealed } from '../../src/application/ports/patient-data-protection';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { documentStreamName } from '../../src/domain/documents/document-entry';
import type { RecordedEvent } from '../../src/application/ports/event-store';

const id = 'c0ffee00-0000-4000-8000-00000000000a';
const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };

describe('sealed consultation texts', () => {
  it('seals each non-empty text under the consultation’s own key, bound to its place; opens them; null once the key is erased', async () => {
    const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
    const sealed = await sealConsultationData(protection, 'ConsultationRequested', { consultationId: id, clinicalQuestion: 'q?', summary: '', candidates: ['a:b'] });
    expect(isSealed(sealed['clinicalQuestion'])).toBe(true);
    expect(sealed['summary']).toBe('');
    expect(sealed['candidates']).toEqual(['a:b']);
    expect(consultationDataKey(id)).toMatch(/^c[0-9a-f]{32}$/);
    expect((await openConsultationData(protection, 'ConsultationRequested', sealed)).data['clinicalQuestion']).toBe('q?');
    // Moved to another field or consultation, it does not open (and does not throw).
    const moved = await openConsultationData(protection, 'ReportIssued', { consultationId: id, diagnosis: sealed['clinicalQuestion'] });
    expect(moved).toMatchObject({ unreadable: true, data: { diagnosis: null } });
    // Clear values of earlier builds are read as they are.
    expect((await openConsultationData(protection, 'ConsultationCancelled', { consultationId: id, reason: 'in clear' })).data['reason']).toBe('in clear');
    await protection.erase(consultationDataKey(id));
    expect(await openConsultationData(protection, 'ConsultationRequested', sealed)).toMatchObject({ unreadable: true, data: { clinicalQuestion: null } });
    await expect(sealConsultationData(protection, 'ReportIssued', { consultationId: id, diagnosis: 'd' })).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('tells an event with a text in clear (an earlier build) from one sealed or empty, and an erasure says which it left', async () => {
    const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
    const sealed = await sealConsultationData(protection, 'ReportIssued', { consultationId: id, diagnosis: 'd', recommendations: 'r' });
    expect(holdsClearText('ReportIssued', sealed)).toBe(false);
    expect(holdsClearText('ReportIssued', { ...sealed, recommendations: 'in clear' })).toBe(true);
    expect(holdsClearText('ConsultationCancelled', { consultationId: id, reason: '' })).toBe(false);
    expect(holdsClearText('ConsultationAccepted', { consultationId: id, reason: 'not a text of this event' })).toBe(false);

    // Through the hub's sealing store (this build) nothing is left in clear; written raw (an earlier build) it is.
    const store = new InMemoryEventStore();
    const erasure = new ConsultationContentErasure({ store, protection, clock });
    const requested = (cid: string) => ({ id: uuidV5(`r/${cid}`), type: 'ConsultationRequested', data: { consultationId: cid, clinicalQuestion: 'q', summary: 's', attachments: [], patientKeys: [] } });
    const [now, before] = ['c0ffee00-0000-4000-8000-0000000000c1', 'c0ffee00-0000-4000-8000-0000000000c2'];
    await new SealingConsultationStore(store, protection).appendToStream(consultationStreamName(now!), [requested(now!)]);
    await store.appendToStream(consultationStreamName(before!), [requested(before!)]);
    expect(await erasure.erase(now!, { by: 'dpo' })).toMatchObject({ alreadyErased: false, textsLeftInEvents: false });
    expect(await erasure.erase(before!, { by: 'dpo' })).toMatchObject({ alreadyErased: false, textsLeftInEvents: true });
    expect(await erasure.erase(before!, { by: 'dpo' })).toMatchObject({ alreadyErased: true, textsLeftInEvents: true });
  });

  it('erasure by patient reaches the consultations whose request names the patient’s key, and only those', async () => {
    const store = new InMemoryEventStore();
    const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
    const erasure = new ConsultationContentErasure({ store, protection, clock });
    const request = (cid: string, patientKeys: string[]) => ({
      id: uuidV5(`r/${cid}`),
      type: 'ConsultationRequested',
      data: { consultationId: cid, applicantSystemId: 'xian', applicantClinician: 'x', candidates: ['chengdu:li'], clinicalQuestion: 'q', summary: '', attachments: [], patientKeys, deadlineSeconds: 3600, reportResend: { intervalSeconds: 60, maxAttempts: 1 }, correlationId: cid, requestedAt: '2024-05-01T10:00:00Z' },
    });
    const other = 'c0ffee00-0000-4000-8000-00000000000b';
    const P = `p${'1'.repeat(32)}`;
    await store.appendToStream(consultationStreamName(id), [request(id, [P])]);
    await store.appendToStream(consultationStreamName(other), [request(other, [`p${'2'.repeat(32)}`])]);
    expect((await erasure.erasePatient(P, { by: 'dpo' })).map((r) => r.consultationId)).toEqual([id]);
    expect((await erasure.erasePatient(P, { by: 'dpo' })).map((r) => r.consultationId)).toEqual([id]); // idempotent
    const { events } = await store.readStream(consultationStreamName(id));
    expect(events.map((e) => e.type)).toEqual(['ConsultationRequested', 'ConsultationContentErased']);
    expect(await protection.isErased(consultationDataKey(id))).toBe(true);
    expect(await protection.isErased(consultationDataKey(other))).toBe(false);
    await expect(erasure.erase('c0ffee00-0000-4000-8000-0000000000ff', { by: 'dpo' })).rejects.toMatchObject({ code: 'consultation_not_found' });
  });

  it('erasure by patient reaches a request of a build that recorded no patient keys through its attachments’ documents', async () => {
    const store = new InMemoryEventStore();
    const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
    const erasure = new ConsultationContentErasure({ store, protection, clock });
    const P = `p${'1'.repeat(32)}`;
    const doc = (uniqueId: string, patientKey: string) => store.appendToStream(documentStreamName(uniqueId), [{ id: uuidV5(`d/${uniqueId}`), type: 'DocumentSubmitted', data: { uniqueId, patientKey } }]);
    await doc('2.25.1', P);
    await doc('2.25.2', `p${'2'.repeat(32)}`);
    // As builds to 2026-12-01 recorded a request: texts in clear, attachments, no `patientKeys`.
    const oldRequest = (cid: string, attachments: string[]) => ({
      id: uuidV5(`r/${cid}`),
      type: 'ConsultationRequested',
      data: { consultationId: cid, applicantSystemId: 'xian', applicantClinician: 'x', candidates: ['chengdu:li'], clinicalQuestion: 'q', summary: '', attachments, deadlineSeconds: 3600, reportResend: { intervalSeconds: 60, maxAttempts: 1 }, correlationId: cid, requestedAt: '2024-05-01T10:00:00Z' },
    });
    const [mine, others, none] = ['c', 'd', 'e'].map((n) => `c0ffee00-0000-4000-8000-00000000000${n}`);
    await store.appendToStream(consultationStreamName(mine!), [oldRequest(mine!, ['2.25.2', '2.25.1'])]);
    await store.appendToStream(consultationStreamName(others!), [oldRequest(others!, ['2.25.2'])]);
    await store.appendToStream(consultationStreamName(none!), [oldRequest(none!, [])]);
    // Erased, and said to keep its texts in clear in its events (no key to delete: the erasure cannot reach them).
    expect(await erasure.erasePatient(P, { by: 'dpo' })).toEqual([expect.objectContaining({ consultationId: mine, alreadyErased: false, textsLeftInEvents: true })]);
    expect((await store.readStream(consultationStreamName(mine!))).events.map((e) => e.type)).toEqual(['ConsultationRequested', 'ConsultationContentErased']);
  });

  it("a patient's erasure repeated by key on a restored copy erases their consultations again: the register lists the patient, not those", async () => {
    const request = (cid: string, patientKeys: string[]) => ({
      id: uuidV5(`r/${cid}`),
      type: 'ConsultationRequested',
      data: { consultationId: cid, applicantSystemId: 'xian', applicantClinician: 'x', candidates: ['chengdu:li'], clinicalQuestion: 'q', summary: '', attachments: [], patientKeys, deadlineSeconds: 3600, reportResend: { intervalSeconds: 60, maxAttempts: 1 }, correlationId: cid, requestedAt: '2024-05-01T10:00:00Z' },
    });
    const P = `p${'1'.repeat(32)}`;
    /** A hub's store and keys, with the consultation requested (the backup's state), composed as the container does. */
    const copy = async () => {
      const store = new InMemoryEventStore();
      const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
      const consultations = new ConsultationContentErasure({ store, protection, clock });
      const patients = new PatientErasure({
        store, protection, consultations, clock, projectors: [],
        patientKeys: { keyFor: () => P, fingerprint: () => 'test' },
        registry: { knowsPatient: async () => true },
      });
      await store.appendToStream(consultationStreamName(id), [request(id, [P])]);
      return { store, protection, patients };
    };
    const live = await copy();
    const restored = await copy(); // as restored from a backup taken before the erasure
    await live.patients.eraseKey(P, { by: 'dpo' });
    expect(await live.protection.isErased(consultationDataKey(id))).toBe(true);
    const register = await live.patients.recorded(0n, 100);
    expect(register.items).toEqual([{ kind: 'patient', patientKey: P, erasedAt: expect.any(String) }]);
    expect(await restored.protection.isErased(consultationDataKey(id))).toBe(false);
    for (const item of register.items) if (item.kind === 'patient') await restored.patients.eraseKey(item.patientKey, { by: 'restore', ifUnknown: 'erase' });
    expect(await restored.protection.isErased(consultationDataKey(id))).toBe(true);
    const { events } = await restored.store.readStream(consultationStreamName(id));
    expect(events.map((e) => [e.type, e.data['cause']])).toEqual([['ConsultationRequested', undefined], ['ConsultationContentErased', 'patient_erased']]);
  });

  it('sends no report of an erased consultation, and no text in its other messages', () => {
    const view = {
      consultationId: id, correlationId: id, applicantSystemId: 'xian', applicantClinician: 'x', candidates: ['chengdu:li'], clinicalQuestion: null, summary: null, attachments: [],
      deadlineSeconds: 3600, reportResend: { intervalSeconds: 60, maxAttempts: 2 }, status: 'reported' as const,
      offers: [{ expertId: 'chengdu:li', offerIndex: 0, offeredAt: '2024-05-01T10:00:00Z', expiresAt: '2024-05-01T11:00:00Z', outcome: 'accepted' as const, reason: null, settledAt: null }],
      expertId: 'chengdu:li', expertSystemId: 'chengdu',
      report: { expertId: 'chengdu:li', diagnosis: null, recommendations: null, issuedAt: '2024-05-01T10:10:00Z', resends: 0, lastSentAt: '2024-05-01T10:10:00Z', nextResendAt: null, acknowledgedAt: null },
      cancelled: null, contentErased: true, requestedAt: '2024-05-01T10:00:00Z', updatedAt: '2024-05-01T10:20:00Z', due: null,
    };
    const event = (type: string, data: Record<string, unknown>): RecordedEvent => ({ id: uuidV5(type), type, data: { consultationId: id, ...data }, metadata: {}, streamName: consultationStreamName(id), streamVersion: 0n, globalPosition: 1n, recordedAt: '2024-05-01T10:30:00Z' }) as RecordedEvent;
    const context = { consultation: view, queueFor: (s: string) => `q.${s}` };
    expect(planConsultationDownlink(event('ReportResent', { attempt: 1, resentAt: '2024-05-01T10:30:00Z', nextResendAt: null }), context)).toEqual([]);
    expect(planConsultationDownlink(event('ReportIssued', { expertId: 'chengdu:li', diagnosis: null, recommendations: null, issuedAt: '2024-05-01T10:10:00Z', nextResendAt: null }), context)).toEqual([]);
    const [offered] = planConsultationDownlink(event('ConsultationOffered', { expertId: 'chengdu:li', offerIndex: 0, offeredAt: '2024-05-01T10:00:00Z', expiresAt: '2024-05-01T11:00:00Z' }), context);
    expect(offered!.envelope.payload).toMatchObject({ clinicalQuestion: '', summary: '' });
    expect(planConsultationDownlink(event('ConsultationContentErased', { cause: 'requested', erasedAt: '2024-05-01T10:20:00Z' }), context)).toEqual([]);
  });
});

/**
 * A full disk during a consultation's erasure by id. Its `consultation content erased` line, the record a restore
 * repeats, is written only for an answer that is not alreadyErased, and a repeat found the event: after a key store
 * that failed, the repeat that deleted the key said alreadyErased and no line was ever written.
 */
describe("a consultation's erasure when the disk fills", () => {
  const cid = 'c0ffee00-0000-4000-8000-0000000000d1';
  const setUp = (at: Readonly<{ now: () => DateTime }> = clock) => {
    const keys = new InMemoryKeyStore();
    let failKeyErase = false;
    let failReadsAfterErase = false;
    let failReads = false;
    const erase = keys.erase.bind(keys);
    keys.erase = async (keyId: string, erasedAt: string) => {
      if (failKeyErase) throw Object.assign(new Error('disk full'), { code: 'storage_unavailable' });
      await erase(keyId, erasedAt);
      failReads = failReadsAfterErase;
    };
    const protection = new PatientCipher({ keys });
    const inner = new InMemoryEventStore();
    const store = Object.assign(Object.create(inner) as InMemoryEventStore, {
      readStream: (...args: Parameters<InMemoryEventStore['readStream']>) => {
        if (failReads) return Promise.reject(Object.assign(new Error('disk full'), { code: 'storage_unavailable' }));
        return inner.readStream(...args);
      },
    });
    const erasure = new ConsultationContentErasure({ store, protection, clock: at });
    const request = { id: uuidV5(`r/${cid}`), type: 'ConsultationRequested', data: { consultationId: cid, clinicalQuestion: 'q', summary: '', attachments: [], patientKeys: [] } };
    return {
      erasure,
      requested: () => new SealingConsultationStore(inner, protection).appendToStream(consultationStreamName(cid), [request]),
      failKeyErase: (on: boolean) => (failKeyErase = on),
      failReadsAfterErase: () => (failReadsAfterErase = true),
      spaceAgain: () => ((failKeyErase = false), (failReadsAfterErase = false), (failReads = false)),
    };
  };

  it('a key store that could not delete the key: the repeat finishes the erasure and is not alreadyErased', async () => {
    const t = setUp();
    await t.requested();
    t.failKeyErase(true);
    const failure = await t.erasure.erase(cid, { by: 'dpo' }).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'storage_unavailable' });
    expect(failure).not.toHaveProperty('erasure');
    t.spaceAgain();
    expect(await t.erasure.erase(cid, { by: 'dpo' })).toMatchObject({ alreadyErased: false });
    expect(await t.erasure.erase(cid, { by: 'dpo' })).toMatchObject({ alreadyErased: true });
  });

  it('the key deleted and a later step failing: 503 erasure_incomplete carrying the erasure, for its line; the repeat says alreadyErased', async () => {
    const t = setUp();
    await t.requested();
    t.failReadsAfterErase();
    await expect(t.erasure.erase(cid, { by: 'dpo' })).rejects.toMatchObject({
      code: 'erasure_incomplete',
      erasure: { consultationId: cid, erasedAt: '2024-05-01T10:00:00.000Z', alreadyErased: false },
    });
    t.spaceAgain();
    expect(await t.erasure.erase(cid, { by: 'dpo' })).toMatchObject({ alreadyErased: true, erasedAt: '2024-05-01T10:00:00.000Z' });
  });

  it("a repeat that deletes the key and then fails answers 503 with the time recorded, not the repeat's own (its line is what a restore reads)", async () => {
    let now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
    const t = setUp({ now: () => now });
    await t.requested();
    t.failKeyErase(true); // recorded at 10:00, its key not deleted
    await expect(t.erasure.erase(cid, { by: 'dpo' })).rejects.toMatchObject({ code: 'storage_unavailable' });
    now = now.plus({ hours: 2 });
    t.failKeyErase(false);
    t.failReadsAfterErase(); // the repeat deletes the key, then its read fails
    await expect(t.erasure.erase(cid, { by: 'dpo' })).rejects.toMatchObject({
      code: 'erasure_incomplete',
      erasure: { consultationId: cid, erasedAt: '2024-05-01T10:00:00.000Z', alreadyErased: false },
    });
  });
});
