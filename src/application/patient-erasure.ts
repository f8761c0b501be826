import type { Cpr } from '../domain/monitoring/cpr';
import { uuidV5 } from './ids';
import type { Clock } from './ports/clock';
import type { EventStore } from './ports/event-store';
import type { PatientDataProtection } from './ports/patient-data-protection';
import type { PatientKeys } from './ports/patient-keys';
import type { Projector } from './projector';
import { PATIENT_ERASED, patientStreamName } from './sealed-documents';

export type ErasureResult = Readonly<{ patientKey: string; erasedAt: string; alreadyErased: boolean }>;

/**
 * Forgetting a patient (GDPR art. 17) by crypto-shredding:
 *   1. PatientErased { patientKey, erasedAt, by } is appended to `patient-<patientKey>` (event id derived from the
 *      key: a repeat records nothing new);
 *   2. the patient's data key is deleted (a tombstone stays, so nothing is sealed for them again);
 *   3. the registry projection catches up: PatientErased removes the patient's rows.
 * From then on every DocumentSubmitted of the patient is an envelope nobody can open, in the store, in its
 * backups and in every copy. A crash between 1 and 2 is repaired by repeating the request (it is idempotent).
 */
export class PatientErasure {
  constructor(
    private readonly deps: Readonly<{ store: EventStore; protection: PatientDataProtection; patientKeys: PatientKeys; projectors: readonly Pick<Projector, 'catchUp'>[]; clock: Clock }>,
  ) {}

  async erase(patientId: Cpr, options: { by: string; correlationId?: string }): Promise<ErasureResult> {
    const patientKey = this.deps.patientKeys.keyFor(patientId);
    return this.eraseKey(patientKey, options);
  }

  async eraseKey(patientKey: string, options: { by: string; correlationId?: string }): Promise<ErasureResult> {
    const alreadyErased = await this.deps.protection.isErased(patientKey);
    const { currentVersion, events } = await this.deps.store.readStream(patientStreamName(patientKey), { maxCount: 1 });
    // A repeat answers with the time the erasure was recorded, not the time of the repeat.
    const recorded = events[0]?.type === PATIENT_ERASED ? events[0].data['erasedAt'] : undefined;
    const erasedAt = typeof recorded === 'string' ? recorded : this.deps.clock.now().toUTC().toISO({ suppressMilliseconds: true })!;
    if (currentVersion === null) await this.deps.store.appendToStream(
      patientStreamName(patientKey),
      [{ id: uuidV5(`erase/${patientKey}`), type: PATIENT_ERASED, data: { patientKey, erasedAt, by: options.by }, metadata: { correlationId: options.correlationId } }],
      { expectedVersion: 'no_stream' },
    ).catch((error: unknown) => {
      // A concurrent erasure of the same patient recorded it first: the same outcome.
      if ((error as { code?: string }).code !== 'expected_version_conflict') throw error;
    });
    await this.deps.protection.erase(patientKey);
    for (const p of this.deps.projectors) await p.catchUp();
    return { patientKey, erasedAt, alreadyErased };
  }
}
