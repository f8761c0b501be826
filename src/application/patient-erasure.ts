import { DateTime } from 'luxon';
import type { Cpr } from '../domain/monitoring/cpr';
import { NotFoundError, UnavailableError } from '../domain/shared/errors';
import { keyTombstoned } from './erased-keys';
import { uuidV5 } from './ids';
import type { Clock } from './ports/clock';
import type { EventStore } from './ports/event-store';
import type { PatientDataProtection } from './ports/patient-data-protection';
import type { PatientKeys } from './ports/patient-keys';
import type { RegistryReadModel } from './ports/registry-read-model';
import type { Projector } from './projector';
import type { ConsultationContentErasure } from './consultation/consultation-erasure';
import { PATIENT_ERASED, patientStreamName } from './sealed-documents';
import { isExistingConsultationId } from '../domain/consultation/legacy-id';

/** The event of a consultation's content erasure (consultation.ts); by id, or with a patient's erasure. */
const CONSULTATION_CONTENT_ERASED = 'ConsultationContentErased';

/**
 * `known`: the hub held something of the patient (a document, a data key) when their erasure was recorded. False only
 * for a patient erased at the caller's explicit request although the hub had nothing of them; a repeat of that
 * erasure says false too (the PatientErased event records it), not true for the erasure it finds.
 */
export type ErasureResult = Readonly<{
  patientKey: string;
  erasedAt: string;
  alreadyErased: boolean;
  known: boolean;
  /**
   * The consultations erased with the patient that a build before 2026-12-02 recorded: their texts stay in clear in
   * their events and the store's backups (the hub no longer serves or sends them). Only removing those events by
   * hand, or retiring the store, takes them out (README, "What an erasure leaves"). Consultation ids, no patient data.
   */
  consultationsWithTextsLeftInEvents: readonly string[];
}>;

/**
 * What the hub holds of a patient. `known`: anything at all (a document, a data key or tombstone, an erasure
 * recorded). `keyErased`: the key store holds the patient's tombstone. `erasureRecorded`: the patient's stream has its
 * PatientErased event, recorded at `erasedAt` (an erasure whose key deletion has not happened yet, after a crash,
 * has the event and not the tombstone; the next erasure call finishes it).
 */
export type PatientHolding = Readonly<{ known: boolean; keyErased: boolean; erasureRecorded: boolean; erasedAt: string | null }>;

/** What a PatientErased event says of the hub's holding then; undefined for events recorded before it said so. */
const knownWhenErased = (data: Readonly<Record<string, unknown>> | undefined): boolean | undefined =>
  typeof data?.['known'] === 'boolean' ? data['known'] : undefined;

export type ErasureOptions = Readonly<{
  by: string;
  correlationId?: string;
  /**
   * What to do for a patient the hub holds nothing of: 'refuse' (the default) throws NotFoundError
   * `unknown_patient` and changes nothing; 'erase' records the erasure anyway, which refuses that person's
   * uploads for good. A typo in a CPR number must not lock out an unrelated person unnoticed.
   */
  ifUnknown?: 'refuse' | 'erase';
}>;

/**
 * An erasure this call recorded and whose key it deleted, but whose later steps failed (a full disk: the consultations'
 * erasures or the registry's deletes could not be written): 503 erasure_incomplete, retry. `erasure` is what the
 * answer would have been, for the caller's `patient erased` line: written now, not left to a retry that may never come
 * (a retry writes one too, erasure-log-line.ts).
 */
export class ErasureIncompleteError extends UnavailableError {
  constructor(readonly erasure: ErasureResult) {
    super(
      'erasure_incomplete',
      "the erasure is recorded and the patient's key deleted, but the rest could not be finished now (clearing the key file, the consultations' texts or the registry's rows); retry the erasure",
    );
  }
}

/**
 * One recorded erasure: what a restored copy needs to repeat it, and nothing more. A patient's: the pseudonymous key
 * and time (PUT /erasures/{patientKey}). A consultation's content erased by id (DELETE /consultations/{id}/content):
 * the consultation's id and time (an id is a UUID, or a legacy id holding no CPR number: not personal data).
 */
export type RecordedPatientErasure = Readonly<{ kind: 'patient'; patientKey: string; erasedAt: string }>;
export type RecordedConsultationErasure = Readonly<{ kind: 'consultation'; consultationId: string; erasedAt: string }>;
export type RecordedErasure = RecordedPatientErasure | RecordedConsultationErasure;
export type ErasurePage = Readonly<{ items: readonly RecordedErasure[]; next: bigint | null }>;

/**
 * Forgetting a patient (GDPR art. 17) by crypto-shredding:
 *   0. the content of every consultation linked to the patient is erased (as in 3), before anything lists the patient
 *      as erased: a crash after 1 then leaves no consultation texts behind an erasure the register lists;
 *   1. PatientErased { patientKey, erasedAt, by, known } is appended to `patient-<patientKey>` (event id derived from the
 *      key: a repeat records nothing new);
 *   2. the patient's data key is deleted (a tombstone stays, so nothing is sealed for them again);
 *   3. the content of every consultation linked to the patient (its request recorded the patient's key for an
 *      attached document, or, recorded by an older build, attached one of the patient's documents) is erased too:
 *      its own data key is deleted (ConsultationContentErasure); again after 0, for one requested meanwhile;
 *   4. the projections catch up: PatientErased removes the patient's rows, ConsultationContentErased the texts.
 * From then on every DocumentSubmitted of the patient is an envelope nobody can open, in the store, in its
 * backups and in every copy. A crash between 1 and 2 is repaired by the registry's projection (it deletes a key
 * an erasure event finds live, erasure-completion.ts), and by repeating the request (it is idempotent).
 *
 * A patient is erased by CPR number (`erase`), or by pseudonymous key (`eraseKey`): the hub keeps no CPR number,
 * so repeating the erasures a restored backup predates can only go by the keys its PatientErased events hold
 * (`recorded` lists them).
 */
export class PatientErasure {
  constructor(
    private readonly deps: Readonly<{
      store: EventStore;
      protection: PatientDataProtection;
      patientKeys: PatientKeys;
      registry: Pick<RegistryReadModel, 'knowsPatient'>;
      projectors: readonly Pick<Projector, 'catchUp'>[];
      clock: Clock;
      /** The consultations attached to the patient's documents: their texts are erased with the patient. */
      consultations?: Pick<ConsultationContentErasure, 'erasePatient'>;
    }>,
  ) {}

  async erase(patientId: Cpr, options: ErasureOptions): Promise<ErasureResult> {
    const patientKey = this.deps.patientKeys.keyFor(patientId);
    return this.eraseKey(patientKey, options);
  }

  /**
   * Whether the hub holds anything of the patient (a document, a data key, an erasure recorded), and whether and when
   * they were erased: what an erasure decides `unknown_patient` by, and what the patient's data export says of them.
   */
  async holdingOf(patientKey: string): Promise<PatientHolding> {
    const keyErased = await this.deps.protection.isErased(patientKey);
    const { currentVersion, events } = await this.deps.store.readStream(patientStreamName(patientKey), { maxCount: 1 });
    // Documents stored before sealing have no data key; the registry still knows them.
    const known = keyErased || currentVersion !== null || (await this.deps.protection.hasKeyOrTombstone(patientKey)) || (await this.deps.registry.knowsPatient(patientKey));
    const recorded = events[0]?.type === PATIENT_ERASED ? events[0].data['erasedAt'] : undefined;
    return { known, keyErased, erasureRecorded: currentVersion !== null, erasedAt: typeof recorded === 'string' ? recorded : null };
  }

  async eraseKey(patientKey: string, options: ErasureOptions): Promise<ErasureResult> {
    const holding = await this.holdingOf(patientKey);
    // Erased before: both its PatientErased and its key's deletion done. Either one missing is an erasure completed
    // now: the key after a crash that followed the event, or the event in a backup that copied the events before an
    // erasure and the keys after it. That one was answered "already erased" and went unreported (no `patient erased`
    // line, `rts erasures apply` counting it as erased before).
    // The key store's tombstone, not this process's memory: that says erased from the first attempt on (fail closed),
    // also when the key store then failed (a full disk), and the repeat that deleted the key answered alreadyErased.
    const alreadyErased = holding.erasureRecorded && holding.keyErased && (await this.keyTombstoned(patientKey));
    if (!holding.known && options.ifUnknown !== 'erase') {
      throw new NotFoundError('unknown_patient', 'the hub holds nothing of this patient (no document, no data key): nothing was erased');
    }
    // A repeat answers with the time the erasure was recorded, not the time of the repeat: its event's, or where a
    // restored copy lacks the event but its key store has the key erased, the key's (the original erasure's moment).
    const keyErasedAt = holding.erasedAt === null && holding.keyErased ? await this.deps.protection.erasedAt?.(patientKey) : null;
    const erasedAt =
      holding.erasedAt ??
      (keyErasedAt ? DateTime.fromISO(keyErasedAt, { zone: 'utc' }).toUTC().toISO({ suppressMilliseconds: true }) : null) ??
      this.deps.clock.now().toUTC().toISO({ suppressMilliseconds: true })!;
    let first = { erasedAt, alreadyErased, known: holding.erasureRecorded ? ((await this.recordedErasure(patientKey))?.known ?? holding.known) : holding.known };
    if (!holding.erasureRecorded) {
      // The patient's consultations first, before the event that lists the patient as erased: a kill -9 between that
      // event and their consultations' erasure left the consultations' texts readable, served in clear, behind an
      // erasure GET /erasures listed as done, and nothing repeated it (found by an outside crash review). Cut off
      // here, nothing says the patient is erased, and the caller's retry erases them. Erased again after the key
      // (below), for a consultation requested meanwhile (each consultation's erasure is idempotent).
      await this.deps.consultations?.erasePatient(patientKey, { by: options.by, correlationId: options.correlationId });
      // A concurrent erasure of the same patient recorded it first (the store says so by a version conflict, or, the
      // event id being the same, by taking this append as a repeat): this call is its repeat, and answers with the
      // time recorded. Each concurrent caller answered with its own clock's time, and all said not erased before.
      const recordedFirst = await this.deps.store
        .appendToStream(
          patientStreamName(patientKey),
          [{ id: uuidV5(`erase/${patientKey}`), type: PATIENT_ERASED, data: { patientKey, erasedAt, by: options.by, known: holding.known }, metadata: { correlationId: options.correlationId } }],
          { expectedVersion: 'no_stream' },
        )
        .then(
          (result) => result.idempotent,
          (error: unknown) => {
            if ((error as { code?: string }).code !== 'expected_version_conflict') throw error;
            return true;
          },
        );
      if (recordedFirst) {
        const recorded = await this.recordedErasure(patientKey);
        // Already erased only once the key store holds the tombstone, as above: the other call may fail to delete the
        // key (and write no line) while this one deletes it, and the repeat then finds both and writes none either.
        first = { erasedAt: recorded?.erasedAt ?? erasedAt, alreadyErased: await this.keyTombstoned(patientKey), known: recorded?.known ?? holding.known };
      }
    }
    let consultations: Awaited<ReturnType<ConsultationContentErasure['erasePatient']>> = [];
    try {
      await this.deps.protection.erase(patientKey);
      // Also on a repeat (a restored copy, or a crash after step 2): each consultation's erasure is idempotent.
      consultations = (await this.deps.consultations?.erasePatient(patientKey, { by: options.by, correlationId: options.correlationId })) ?? [];
      for (const p of this.deps.projectors) await p.catchUp();
    } catch (error) {
      // Done by this call as far as a repeat can tell (event and tombstone): the caller's only chance of its line.
      if (first.alreadyErased || !(await this.keyTombstoned(patientKey))) throw error;
      throw new ErasureIncompleteError({ patientKey, ...first, consultationsWithTextsLeftInEvents: [] });
    }
    return { patientKey, ...first, consultationsWithTextsLeftInEvents: consultations.filter((c) => c.textsLeftInEvents).map((c) => c.consultationId) };
  }

  /** Whether the key store holds the patient's tombstone (not this process's memory, which says erased at once). */
  private keyTombstoned(patientKey: string): Promise<boolean> {
    return keyTombstoned(this.deps.protection, patientKey);
  }

  /** The PatientErased event's time and what it says the hub held; undefined without one. */
  private async recordedErasure(patientKey: string): Promise<{ erasedAt: string | undefined; known: boolean | undefined } | undefined> {
    const { events } = await this.deps.store.readStream(patientStreamName(patientKey), { maxCount: 1 });
    if (events[0]?.type !== PATIENT_ERASED) return undefined;
    const recorded = events[0].data['erasedAt'];
    return { erasedAt: typeof recorded === 'string' ? recorded : undefined, known: knownWhenErased(events[0].data) };
  }

  /**
   * The erasures recorded in the store after position `after` (0n: from the first), oldest first, at most `limit`:
   * each patient's (PatientErased) and each consultation content erased by id (ConsultationContentErased with cause
   * `requested`), in the order they were recorded. A consultation erased with its patient is not listed: repeating
   * the patient's erasure on a restored copy erases it again (ConsultationContentErasure.erasePatient reads that
   * copy's requests). One read of the store's index by type, from the cursor on: no scan of other events. A page may
   * hold fewer items than `limit` (those skipped consultations) and still have a `next`.
   */
  async recorded(after: bigint, limit: number): Promise<ErasurePage> {
    const events = await this.deps.store.readAll({ after, maxCount: limit, types: new Set([PATIENT_ERASED, CONSULTATION_CONTENT_ERASED]) });
    const items = events.flatMap((e): RecordedErasure[] => {
      const erasedAt = String(e.data['erasedAt']);
      if (e.type === PATIENT_ERASED) return [{ kind: 'patient', patientKey: String(e.data['patientKey']), erasedAt }];
      if (e.type !== CONSULTATION_CONTENT_ERASED || e.data['cause'] === 'patient_erased') return [];
      // Never an id that may hold a CPR number (those are refused everywhere, legacy-id.ts): not into a register kept off the hub.
      const consultationId = e.data['consultationId'];
      return typeof consultationId === 'string' && isExistingConsultationId(consultationId) ? [{ kind: 'consultation', consultationId, erasedAt }] : [];
    });
    // A page shorter than asked for is the last one (the port's promise for filtered reads).
    return { items, next: events.length < limit ? null : events[events.length - 1]!.globalPosition };
  }
}
