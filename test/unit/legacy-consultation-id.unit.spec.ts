// Consultation ids of the builds before UUID ids (legacy-id.ts): served where a consultation exists, never for a new
// one, never when they may hold a CPR number; and the count of the open ones the start warns of.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { uuidV5 } from '../../src/application/ids';
import { countLegacyConsultations } from '../../src/application/consultation/legacy-consultations';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { isExistingConsultationId, isLegacyConsultationId } from '../../src/domain/consultation/legacy-id';

const UUID = '3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10';
const envelope = (type: string, payload: object) =>
  JSON.stringify({ id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e02', type, version: 1, systemId: 'mianyang', correlationId: 'req-1', time: '2026-11-23T09:41:00.000+08:00', payload });

describe('legacy consultation ids', () => {
  it('the old builds\' shape without a CPR number in any spelling; a UUID is no legacy id but an existing one', () => {
    // A compact timestamp inside an id (20261202 1030 reads as yyyymmdd ssss, glued to other digits) is no CPR number.
    for (const id of ['cons-0001', 'case-2026-0001', 'CASE_42_abc', 'a'.repeat(64), 'order-202612021030-17', 'cons-12512481234']) expect(isLegacyConsultationId(id)).toBe(true);
    for (const id of ['cons-01', 'a'.repeat(65), 'cons 0001', 'cons.0001', '251248-1234', '2512481234', 'pt_251248_1234', 'x25-12-48--1234', '1948-12-25-1234', 'cons-2512481234x', 'v2-251248-1234', 'ward_4_2512481234', UUID]) {
      expect(isLegacyConsultationId(id)).toBe(false);
    }
    expect(isExistingConsultationId(UUID)).toBe(true);
    expect(isExistingConsultationId('251248-1234')).toBe(false);
  });

  it('the uplink takes a legacy id for an existing consultation, not for consultation.requested', () => {
    expect(parseConsultationUplink(envelope('consultation.accept', { consultationId: 'cons-0001', expertId: 'mianyang:li-7' }))).toMatchObject({ ok: true });
    expect(parseConsultationUplink(envelope('consultation.accept', { consultationId: '251248-1234', expertId: 'mianyang:li-7' }))).toMatchObject({ ok: false, reason: 'bad_schema' });
    const requested = { consultationId: 'cons-0001', applicantClinician: 'dr', candidates: ['chengdu:li'], clinicalQuestion: 'q', summary: '', attachments: [] };
    expect(parseConsultationUplink(envelope('consultation.requested', requested))).toMatchObject({ ok: false, reason: 'bad_schema' });
    expect(parseConsultationUplink(envelope('consultation.requested', { ...requested, consultationId: UUID }))).toMatchObject({ ok: true });
  });

  it('counts the open consultations with legacy ids, apart those whose id may be a CPR number', async () => {
    const store = new InMemoryEventStore();
    const add = (id: string, type: string) => store.appendToStream(consultationStreamName(id), [{ id: uuidV5(`${id}/${type}`), type, data: { consultationId: id } }]);
    for (const id of ['cons-0001', 'cons-0002', 'cons-0003', '251248-1234', UUID]) await add(id, 'ConsultationRequested');
    await add('cons-0002', 'ConsultationCancelled');
    await add('cons-0003', 'ReportAcknowledged');
    expect(await countLegacyConsultations(store, 2)).toEqual({ open: 1, unservable: 1 });
  });
});
