import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { ConsultationContentErasure, type ContentErasureResult } from '../../src/application/consultation/consultation-erasure';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import { completeErasuresAtStart } from '../../src/application/erasures-at-start';
import { PatientErasure, type ErasureResult } from '../../src/application/patient-erasure';
import { consultationStreamName } from '../../src/domain/consultation/consultation';

/**
 * The key store's tombstones against the store's erasure events: each tombstone without its event is completed
 * through the erasure's own path, at the tombstone's time; nothing else is touched, and a second run does nothing.
 */
describe('completeErasuresAtStart', () => {
  const A = `p${'a'.repeat(32)}`; // erased during the backup: tombstone, no event
  const B = `p${'b'.repeat(32)}`; // erased before it: both
  const BY_ID = '3f2b8a4e-1c5d-4e7f-9a0b-2c3d4e5f6a71'; // content erased by id during the backup
  const OF_B = '3f2b8a4e-1c5d-4e7f-9a0b-2c3d4e5f6a72'; // erased with B, its key deleted during the backup
  const ORPHAN = '3f2b8a4e-1c5d-4e7f-9a0b-2c3d4e5f6a73'; // requested and erased after the events were copied

  const setUp = async () => {
    const store = new InMemoryEventStore();
    const keys = new InMemoryKeyStore();
    const protection = new PatientCipher({ keys });
    const clock = { now: () => DateTime.fromISO('2026-12-06T12:00:00Z', { zone: 'utc' }) };
    const consultations = new ConsultationContentErasure({ store, protection, clock });
    const erasure = new PatientErasure({ store, protection, patientKeys: { keyFor: () => A, fingerprint: () => 'test' }, registry: { knowsPatient: async () => false }, projectors: [], clock, consultations });
    const request = (consultationId: string, patientKeys: string[]) =>
      store.appendToStream(consultationStreamName(consultationId), [{ id: randomUUID(), type: 'ConsultationRequested', data: { consultationId, patientKeys } }], { expectedVersion: 'no_stream' });
    await request(BY_ID, []);
    await request(OF_B, [B]);
    await keys.erase(B, '2026-12-01T08:00:00.000Z');
    await store.appendToStream('patient-' + B, [{ id: randomUUID(), type: 'PatientErased', data: { patientKey: B, erasedAt: '2026-12-01T08:00:00Z', by: 'dpo', known: true } }], { expectedVersion: 'no_stream' });
    await keys.erase(A, '2026-12-05T09:30:00.250Z');
    await keys.erase(consultationDataKey(BY_ID), '2026-12-05T09:30:01.500Z');
    await keys.erase(consultationDataKey(OF_B), '2026-12-01T08:00:00.100Z');
    await keys.erase(consultationDataKey(ORPHAN), '2026-12-05T09:31:00.000Z');
    const lines: (ErasureResult | ContentErasureResult)[] = [];
    const run = () => completeErasuresAtStart({ store, keys, erasure, consultations, completed: { patient: (r) => lines.push(r), consultation: (r) => lines.push(r) } });
    return { store, run, lines };
  };

  it('completes each erasure lacking its event at the time its key was deleted, and says so of those by id and of patients', async () => {
    const { store, run, lines } = await setUp();
    const done = await run();
    expect(done.patients).toEqual([{ patientKey: A, erasedAt: '2026-12-05T09:30:00.250Z', alreadyErased: false, known: true, consultationsWithTextsLeftInEvents: [] }]);
    expect(done.consultations.map((c) => [c.consultationId, c.erasedAt])).toEqual([
      [BY_ID, '2026-12-05T09:30:01.500Z'],
      [OF_B, '2026-12-01T08:00:00.100Z'],
    ]);
    // The one erased with its patient is recorded so (not an erasure by id of its own) and has no line of its own.
    const causes = (await store.readAll({ after: 0n, maxCount: 100, types: new Set(['ConsultationContentErased']) })).map((e) => [e.data['consultationId'], e.data['cause']]);
    expect(causes).toEqual([
      [BY_ID, 'requested'],
      [OF_B, 'patient_erased'],
    ]);
    expect(lines.map((l) => ('patientKey' in l ? l.patientKey : l.consultationId))).toEqual([A, BY_ID]);
    expect((await store.readStream(`patient-${A}`)).events[0]!.data).toMatchObject({ by: 'system:start', erasedAt: '2026-12-05T09:30:00.250Z' });
  });

  it('does nothing the second time, nor with no tombstone at all', async () => {
    const { store, run, lines } = await setUp();
    await run();
    const head = await store.headPosition();
    expect(await run()).toEqual({ patients: [], consultations: [] });
    expect(await store.headPosition()).toBe(head);
    expect(lines).toHaveLength(2);
    const empty = new InMemoryEventStore();
    const nothing = await completeErasuresAtStart({ store: empty, keys: new InMemoryKeyStore(), erasure: {} as PatientErasure, consultations: {} as ConsultationContentErasure });
    expect(nothing).toEqual({ patients: [], consultations: [] });
  });
});
