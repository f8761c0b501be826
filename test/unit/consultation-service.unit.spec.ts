import { DateTime } from 'luxon';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationStreamName } from '../../src/domain/consultation/consultation';

/** ConsultationService's own rules: paging and its bounds, attachments of erased patients, repeats of a step. */
const now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => uuidV5(`consult-service/${n++}`) };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`service/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${key}`, time: '2024-05-01T10:00:00Z', payload }) as unknown as UplinkEnvelope;

const setup = async () => {
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const s of ['xian', 'chengdu']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  await directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'li', profile }, 'reg-li'));
  const module = createConsultationModule({ store, clock, ids, logger, directory, protection: new PatientCipher({ keys: new InMemoryKeyStore() }) });
  return { store, service: module.service };
};

const consultationId = (i: number) => `11111111-2222-4333-8444-${String(i).padStart(12, '0')}`;
const requestInput = (i: number, attachments: string[] = []) => ({
  consultationId: consultationId(i),
  applicantSystemId: 'xian',
  applicantClinician: 'dr-chen',
  candidates: ['chengdu:li'],
  clinicalQuestion: 'Chest pain',
  summary: 'CT',
  attachments,
});

describe('ConsultationService', () => {
  it('list: a limit outside 1..500, or not a whole number, is invalid_request on query.limit; 1 and 500 are taken', async () => {
    const { service } = await setup();
    for (const limit of [0, 501, 1.5]) {
      await expect(service.list({ systemId: 'xian', limit })).rejects.toMatchObject({ code: 'invalid_request', details: [{ path: 'query.limit', message: 'must be 1..500' }] });
    }
    await expect(service.list({ systemId: 'xian', limit: 1 })).resolves.toEqual({ items: [], nextCursor: null });
    await expect(service.list({ systemId: 'xian', limit: 500 })).resolves.toEqual({ items: [], nextCursor: null });
  });

  it('list: a cursor this API did not give out is invalid_cursor on query.cursor', async () => {
    const { service } = await setup();
    const forged = Buffer.from('c:2024-05-01|x|y', 'utf8').toString('base64url');
    const prefixed = Buffer.from('zzc:2024-05-01T10:00:00.000Z|abc', 'utf8').toString('base64url');
    for (const cursor of ['not a cursor', forged, prefixed, '', 'A'.repeat(301)]) {
      await expect(service.list({ systemId: 'xian', cursor })).rejects.toMatchObject({ code: 'invalid_cursor', details: [{ path: 'query.cursor', message: 'unknown cursor' }] });
    }
  });

  it('list: pages follow each other by nextCursor, newest first, and the last has none', async () => {
    const { service } = await setup();
    for (let i = 1; i <= 3; i++) await service.request(requestInput(i));
    const first = await service.list({ systemId: 'xian', limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).not.toBeNull();
    const second = await service.list({ systemId: 'xian', limit: 2, cursor: first.nextCursor! });
    expect(second.nextCursor).toBeNull();
    const seen = [...first.items, ...second.items].map((v) => v.consultationId);
    expect(new Set(seen)).toEqual(new Set([1, 2, 3].map(consultationId)));
    // Without a role, the expert's system sees the consultations offered to it too.
    expect((await service.list({ systemId: 'chengdu' })).items).toHaveLength(3);
  });

  it('consultationsPerMonth: from after to is invalid_interval on query.from', async () => {
    const { service } = await setup();
    await expect(service.consultationsPerMonth({ from: '2024-06', to: '2024-05' })).rejects.toMatchObject({ code: 'invalid_interval', details: [{ path: 'query.from', message: 'after to' }] });
    await expect(service.consultationsPerMonth({ from: '2024-05', to: '2024-05' })).resolves.toEqual([{ month: '2024-05', requested: 0 }]);
  });

  it('refuses a request attaching a document of an erased patient (patient_erased on attachments) and stores nothing', async () => {
    const { store, service } = await setup();
    await store.appendToStream('document-1.2.3', [{ id: uuidV5('doc/1.2.3'), type: 'DocumentSubmitted', data: { uniqueId: '1.2.3', patientKey: 'pkey-erased' } }]);
    await store.appendToStream('document-1.2.4', [{ id: uuidV5('doc/1.2.4'), type: 'DocumentSubmitted', data: { uniqueId: '1.2.4', patientKey: 'pkey-other' } }]);
    await store.appendToStream('patient-pkey-erased', [{ id: uuidV5('erase/pkey-erased'), type: 'PatientErased', data: { patientKey: 'pkey-erased', erasedAt: '2024-04-30T10:00:00Z', by: 'dpo' } }]);
    await expect(service.request(requestInput(1, ['1.2.4', '1.2.3']))).rejects.toMatchObject({ code: 'patient_erased', details: [{ path: 'attachments', message: 'a document of an erased patient' }] });
    await expect(service.get(consultationId(1))).rejects.toMatchObject({ code: 'consultation_not_found' });
    // A document of a patient not erased is attached as any.
    expect((await service.request(requestInput(2, ['1.2.4']))).created).toBe(true);
  });

  it("a request stored while one of its patients is being erased has its texts erased at once", async () => {
    const { store, service } = await setup();
    await store.appendToStream('document-1.2.3', [{ id: uuidV5('doc/1.2.3'), type: 'DocumentSubmitted', data: { uniqueId: '1.2.3', patientKey: 'pkey-racing' } }]);
    const original = store.appendToStream.bind(store);
    let raced = false;
    // The erasure records PatientErased after the request checked its attachments, before the request is appended.
    store.appendToStream = async (streamName, events, options) => {
      if (!raced && streamName.startsWith('consultation-')) {
        raced = true;
        await original('patient-pkey-racing', [{ id: uuidV5('erase/pkey-racing'), type: 'PatientErased', data: { patientKey: 'pkey-racing', erasedAt: '2024-05-01T10:00:00Z', by: 'dpo' } }]);
      }
      return original(streamName, events, options);
    };
    const { consultation, created } = await service.request(requestInput(1, ['1.2.3']));
    expect(created).toBe(true);
    expect(consultation).toMatchObject({ contentErased: true, clinicalQuestion: null, summary: null });
    const { events } = await store.readStream(`consultation-${consultationId(1)}`);
    const erasures = events.filter((e) => e.type === 'ConsultationContentErased');
    expect(erasures.map((e) => [e.data['cause'], e.metadata['by']])).toEqual([['patient_erased', 'hub']]); // the hub erased it, not a person
  });

  it('names the participant refused: applicantSystemId, or the candidate by its index', async () => {
    const { service } = await setup();
    await expect(service.request({ ...requestInput(1), applicantSystemId: 'nowhere' })).rejects.toMatchObject({
      code: 'unknown_system',
      details: [{ path: 'applicantSystemId', message: 'unknown system' }],
    });
    await expect(service.request({ ...requestInput(1), candidates: ['chengdu:li', 'chengdu:nobody'] })).rejects.toMatchObject({
      code: 'unknown_candidate',
      details: [{ path: 'candidates.1', message: 'no expert has this id' }],
    });
  });

  it('a request naming no deadline gives each candidate 24 hours to answer (the default policy)', async () => {
    const { service } = await setup();
    const { consultation } = await service.request(requestInput(1));
    expect(consultation.deadlineSeconds).toBe(24 * 3600);
    expect(consultation.offers.map((o) => o.expiresAt)).toEqual(['2024-05-02T10:00:00.000Z']);
  });

  it('a step repeated with its commandId changes nothing and says so (changed false)', async () => {
    const { service } = await setup();
    await service.request(requestInput(1));
    const first = await service.cancel(consultationId(1), { bySystemId: 'xian', reason: 'resolved' }, { commandId: 'cancel-1' });
    const again = await service.cancel(consultationId(1), { bySystemId: 'xian', reason: 'resolved' }, { commandId: 'cancel-1' });
    expect([first.changed, again.changed]).toEqual([true, false]);
    expect(again.consultation.status).toBe('cancelled');
  });
  it('two requests under one consultationId at once, with other texts: one is recorded, the other refused consultation_id_reused', async () => {
    // Each request has its own command id, so only the store's expected version ("no stream yet") keeps the second
    // from being written beside the first.
    const { store, service } = await setup();
    const results = await Promise.allSettled([service.request(requestInput(1)), service.request({ ...requestInput(1), clinicalQuestion: 'Dizziness' })]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason).toMatchObject({ code: 'consultation_id_reused' });
    const { events } = await store.readStream(consultationStreamName(consultationId(1)));
    expect(events.filter((e) => e.type === 'ConsultationRequested')).toHaveLength(1);
  });
});
