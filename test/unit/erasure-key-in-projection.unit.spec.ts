import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { OpeningConsultations } from '../../src/application/consultation/opening-consultations';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import type { ConsultationReadModel } from '../../src/application/consultation/consultation-read-model';
import { OpeningRegistry, type ForgettingRegistry } from '../../src/application/sealed-documents';
import { UnavailableError } from '../../src/domain/shared/errors';

/**
 * An erasure records PatientErased and then deletes the patient's key. One cut off in between (a kill -9, or a key
 * store failing: 503 and no retry) left a live key behind an erasure the register listed: only the process's memory
 * said erased, so after a restart the hub took the patient's uploads again (201, then found by no query) and the
 * key still opened their documents in the store and every backup (found by an outside crash review). The registry's
 * projection now deletes the key before its checkpoint passes the event.
 */
describe('the registry projection deletes an erased patient\'s key the erasure left', () => {
  const PATIENT = `p${'ab'.repeat(16)}`;
  const ERASED_AT = '2026-03-01T10:00:00Z';
  const erasedEvent = (position: bigint): RecordedEvent => ({
    id: '00000000-0000-4000-8000-000000000001',
    type: 'PatientErased',
    data: { patientKey: PATIENT, erasedAt: ERASED_AT, by: 'dpo', known: true },
    metadata: {},
    streamName: `patient-${PATIENT}`,
    streamVersion: 0n,
    globalPosition: position,
    recordedAt: ERASED_AT,
  });
  const setUp = () => {
    const keys = new InMemoryKeyStore();
    const forgotten: string[] = [];
    const applied: bigint[] = [];
    const inner = {
      checkpoint: async () => 0n,
      apply: async (_events: readonly RecordedEvent[], checkpoint: bigint) => void applied.push(checkpoint),
      forgetPatient: async (key: string) => void forgotten.push(key),
    } as unknown as ForgettingRegistry;
    const cipher = new PatientCipher({ keys });
    return { keys, cipher, forgotten, applied, registry: new OpeningRegistry(inner, cipher) };
  };

  it('a key the erasure did not delete is deleted, with the erasure\'s time; a fresh process (a restart) finds the patient erased', async () => {
    const { keys, cipher, forgotten, registry } = setUp();
    await cipher.seal(PATIENT, 'a reading', 'ctx'); // the patient's key exists
    await registry.apply([erasedEvent(5n)], 5n);
    expect(await keys.get(PATIENT)).toBe('erased');
    expect(await keys.erasedAt(PATIENT)).toBe(ERASED_AT);
    expect(forgotten).toEqual([PATIENT]);
    const restarted = new PatientCipher({ keys });
    expect(await restarted.isErased(PATIENT)).toBe(true);
    await expect(restarted.seal(PATIENT, 'an upload after the restart', 'ctx')).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('a key the erasure deleted is left as it is (no second deletion, the first time kept)', async () => {
    const { keys, cipher, registry } = setUp();
    await cipher.seal(PATIENT, 'a reading', 'ctx');
    await keys.erase(PATIENT, '2026-03-01T10:00:01.000Z');
    const erase = jest.spyOn(keys, 'erase');
    await registry.apply([erasedEvent(5n)], 5n);
    expect(erase).not.toHaveBeenCalled();
    expect(await keys.erasedAt(PATIENT)).toBe('2026-03-01T10:00:01.000Z');
  });

  it('a key store that fails stops the projection before the erasure: its rows stay until it is tried again', async () => {
    const { keys, cipher, forgotten, applied, registry } = setUp();
    await cipher.seal(PATIENT, 'a reading', 'ctx');
    jest.spyOn(keys, 'erase').mockRejectedValueOnce(new UnavailableError('storage_unavailable', 'the key store is locked'));
    await expect(registry.apply([erasedEvent(5n)], 5n)).rejects.toMatchObject({ code: 'storage_unavailable' });
    expect(forgotten).toEqual([]);
    expect(applied).toEqual([]);
    await registry.apply([erasedEvent(5n)], 5n); // the projector's retry
    expect(await keys.get(PATIENT)).toBe('erased');
    expect(forgotten).toEqual([PATIENT]);
  });
});

describe("the consultation projection deletes a consultation's key its content erasure left", () => {
  const ID = '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b';
  const ERASED_AT = '2026-03-01T10:00:00.000Z';
  const contentErased: RecordedEvent = {
    id: '00000000-0000-4000-8000-000000000002',
    type: 'ConsultationContentErased',
    data: { consultationId: ID, cause: 'requested', erasedAt: ERASED_AT },
    metadata: {},
    streamName: `consultation-${ID}`,
    streamVersion: 3n,
    globalPosition: 9n,
    recordedAt: ERASED_AT,
  };

  it('a key the erasure did not delete is deleted before the read model sees the event; a failing key store stops it', async () => {
    const keys = new InMemoryKeyStore();
    const cipher = new PatientCipher({ keys });
    const applied: bigint[] = [];
    const inner = { apply: async (_events: readonly RecordedEvent[], checkpoint: bigint) => void applied.push(checkpoint) } as unknown as ConsultationReadModel;
    const model = new OpeningConsultations(inner, cipher);
    const key = consultationDataKey(ID);
    await cipher.seal(key, 'the clinical question', 'ctx');
    jest.spyOn(keys, 'erase').mockRejectedValueOnce(new UnavailableError('storage_unavailable', 'the key store is locked'));
    await expect(model.apply([contentErased], 9n)).rejects.toMatchObject({ code: 'storage_unavailable' });
    expect(applied).toEqual([]);
    await model.apply([contentErased], 9n);
    expect(await keys.get(key)).toBe('erased');
    expect(await keys.erasedAt(key)).toBe(ERASED_AT);
    expect(applied).toEqual([9n]);
    expect(await new PatientCipher({ keys }).isErased(key)).toBe(true);
  });
});
