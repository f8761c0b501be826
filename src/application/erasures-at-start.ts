import { isExistingConsultationId } from '../domain/consultation/legacy-id';
import { consultationDataKey } from './consultation/sealed-consultations';
import type { ConsultationContentErasure, ContentErasureResult } from './consultation/consultation-erasure';
import { erasedKeyOf, KEY_ERASURE_EVENT_TYPES } from './erased-keys';
import type { ErasureResult, PatientErasure } from './patient-erasure';
import type { EventStore } from './ports/event-store';
import type { PatientKeyStore } from './ports/patient-data-protection';
import { PATIENT_KEY_PATTERN } from './ports/patient-keys';

/** Who the events of the erasures completed at start name as having made them (`by`). */
export const START_ERASURE_ACTOR = 'system:start';

/** How many events one page of the reads by type takes. */
const PAGE = 1000;

export type ErasuresCompletedAtStart = Readonly<{ patients: readonly ErasureResult[]; consultations: readonly ContentErasureResult[] }>;

/**
 * The erasures the key store records (a tombstone) and the event store does not (no PatientErased, no
 * ConsultationContentErased), completed through the erasures' own paths, before anything is served.
 *
 * An erasure appends its event first and deletes the key second, and `rts backup` copies the events first and the
 * keys second: a patient (or a consultation's content) erased while a backup copied its events is, in that backup,
 * a tombstone without its event, and the registry's rows of the patient (readings in clear) and the consultation's
 * texts in its read model with it. Restored, the hub served them (the key being gone only refused new uploads), and
 * GET /erasures did not list the erasure; only `rts erasures apply --from <that backup>`, by hand, repaired it.
 *
 * A patient's is completed by eraseKey (`ifUnknown: 'erase'`: the key store's tombstone says they were erased),
 * which records the tombstone's time, the original erasure's, and erases their consultations with them. A
 * consultation's by ConsultationContentErasure.erase: by id (`requested`) unless its request names an erased
 * patient (then `patient_erased`, as the patient's erasure would have erased it, and not listed as one by id). A
 * consultation tombstone with no request in the events (requested and erased after the backup copied its events) has
 * nothing to complete; it is looked at again at every start.
 *
 * Cheap when there is nothing to do: one read of the tombstones (an index of them) and, when there are any, one read
 * of the erasure events (the store's index by type), both growing with the erasures only. Measured with 1,000 erased
 * patients: ~5 ms, where a look at each patient's erasure stream took ~24 ms. The requests are read only for a
 * consultation found without its event.
 *
 * `completed` is called after each erasure this completes (its log line), before the next is taken: one that
 * fails then leaves the earlier ones recorded and said.
 */
export const completeErasuresAtStart = async (
  deps: Readonly<{
    store: EventStore;
    keys: Pick<PatientKeyStore, 'tombstones'>;
    erasure: Pick<PatientErasure, 'eraseKey'>;
    consultations: Pick<ConsultationContentErasure, 'erase'>;
    completed?: Readonly<{ patient?(result: ErasureResult): void; consultation?(result: ContentErasureResult): void }>;
  }>,
): Promise<ErasuresCompletedAtStart> => {
  const tombstones = (await deps.keys.tombstones?.()) ?? [];
  if (tombstones.length === 0) return { patients: [], consultations: [] };
  let recorded = await keysOfErasureEvents(deps.store);
  const patients: ErasureResult[] = [];
  for (const { keyId } of tombstones) {
    if (!PATIENT_KEY_PATTERN.test(keyId) || recorded.has(keyId)) continue;
    const result = await deps.erasure.eraseKey(keyId, { ifUnknown: 'erase', by: START_ERASURE_ACTOR });
    patients.push(result);
    deps.completed?.patient?.(result);
  }
  // Read again after the patients': their erasures erased their consultations, and recorded it.
  if (patients.length > 0) recorded = await keysOfErasureEvents(deps.store);
  const unfinished = new Set(tombstones.filter((t) => t.keyId.startsWith('c') && !recorded.has(t.keyId)).map((t) => t.keyId));
  const consultations: ContentErasureResult[] = [];
  if (unfinished.size === 0) return { patients, consultations };
  const erasedPatients = new Set(tombstones.filter((t) => PATIENT_KEY_PATTERN.test(t.keyId)).map((t) => t.keyId));
  for (const { consultationId, patientKeys } of await requestsOf(deps.store, unfinished)) {
    const cause = patientKeys.some((k) => erasedPatients.has(k)) ? 'patient_erased' : 'requested';
    const result = await deps.consultations.erase(consultationId, { by: START_ERASURE_ACTOR, cause });
    consultations.push(result);
    // An id that may hold a CPR number (an older build's, legacy-id.ts) is erased but never written into the log.
    if (cause === 'requested' && isExistingConsultationId(consultationId)) deps.completed?.consultation?.(result);
  }
  return { patients, consultations };
};

/** The data keys the store's erasure events name (PatientErased, ConsultationContentErased): one read of its index by type. */
const keysOfErasureEvents = async (store: EventStore): Promise<Set<string>> => {
  const keys = new Set<string>();
  for (let after = 0n; ; ) {
    const page = await store.readAll({ after, maxCount: PAGE, types: KEY_ERASURE_EVENT_TYPES });
    for (const e of page) {
      const key = erasedKeyOf(e);
      if (key !== null) keys.add(key);
    }
    if (page.length < PAGE) return keys;
    after = page[page.length - 1]!.globalPosition;
  }
};

/**
 * The requests whose consultation's key is in `keys`, oldest first, with the patients' keys each names (none for a
 * request recorded before requests kept them: completed as erased by id, which a repeat of its patient's erasure
 * would also do). A consultation's key is derived from its id and cannot be turned back into it: the requests are read.
 */
const requestsOf = async (store: EventStore, keys: ReadonlySet<string>): Promise<{ consultationId: string; patientKeys: readonly string[] }[]> => {
  const found: { consultationId: string; patientKeys: readonly string[] }[] = [];
  const types = new Set(['ConsultationRequested']);
  for (let after = 0n; ; ) {
    const page = await store.readAll({ after, maxCount: PAGE, types });
    for (const e of page) {
      const id = e.data['consultationId'];
      if (typeof id !== 'string' || !keys.has(consultationDataKey(id)) || found.some((f) => f.consultationId === id)) continue;
      const named = e.data['patientKeys'];
      found.push({ consultationId: id, patientKeys: Array.isArray(named) ? named.filter((k): k is string => typeof k === 'string') : [] });
    }
    if (page.length < PAGE) return found;
    after = page[page.length - 1]!.globalPosition;
  }
};
