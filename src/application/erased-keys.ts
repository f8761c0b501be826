import { consultationDataKey } from './consultation/sealed-consultations';
import type { EventStore, RecordedEvent } from './ports/event-store';
import type { PatientDataProtection } from './ports/patient-data-protection';
import { Projector, type ProjectionTarget, type ProjectorLogger } from './projector';
import { PATIENT_ERASED } from './sealed-documents';

/** The events after which a data key is gone: a patient's erasure, and a consultation's texts erased. */
export const KEY_ERASURE_EVENT_TYPES: ReadonlySet<string> = new Set([PATIENT_ERASED, 'ConsultationContentErased']);

/**
 * How long the subscriber lets appends gather after a wake-up: every append on the store wakes it (the store's
 * notifications say nothing of types), and each wake costs three small reads (the head twice, one index range of
 * the two types; tens of microseconds each in PostgreSQL, a round trip each for the process). 250 ms keeps that at
 * ~4 wakes (~13 reads) a second per process whatever the upload rate, for up to a quarter of a second more before
 * an erasure elsewhere is seen here. Measured on PostgreSQL with bare appends, 16 in flight (~3,600 a second,
 * far above what the hub's HTTP uploads reach): 100 ms cost ~6 % of them, 250 ms ~3 % (medians of three runs on a
 * busy 2-core machine); in the HTTP upload bench neither showed against the build without the subscriber.
 */
export const ERASED_KEYS_COALESCE_MS = 250;

/**
 * Whether the key store holds the key's tombstone: not this process's memory (isErased), which says erased from an
 * erasure's first attempt on (fail closed), also when the key store then failed (a full disk). An erasure's repeat
 * is "already erased" only on the tombstone: otherwise the repeat that deleted the key wrote no erasure line.
 */
export const keyTombstoned = async (protection: PatientDataProtection, keyId: string): Promise<boolean> => {
  try {
    return protection.erasedAt ? (await protection.erasedAt(keyId)) !== null : await protection.isErased(keyId);
  } catch {
    return false;
  }
};

/** The data key an erasure event shreds: the patient's (its pseudonymous key) or the consultation's own. */
export const erasedKeyOf = (event: Pick<RecordedEvent, 'type' | 'data'>): string | null => {
  if (event.type === PATIENT_ERASED) {
    const patientKey = event.data['patientKey'];
    return typeof patientKey === 'string' ? patientKey : null;
  }
  if (event.type === 'ConsultationContentErased') {
    const consultationId = event.data['consultationId'];
    return typeof consultationId === 'string' ? consultationDataKey(consultationId) : null;
  }
  return null;
};

/**
 * Tells this process's key cache of every erasure recorded in the store, by any hub process sharing it: the cached
 * key and plaintexts of an erased patient (or consultation) are dropped as soon as the event is seen, so uploads
 * and reads here are refused (410) within the subscriber's latency, not after the cache's TTL (which stays, as a
 * backstop for when this subscription is down). The process's own erasures were dropped before they were recorded
 * (PatientCipher.erase); seeing them again changes nothing.
 *
 * The checkpoint is in memory and starts at the store's head when the process starts: the cache is empty then, and
 * every key it takes from then on is read from the key store, which already holds the tombstones of the erasures
 * before that head (or gets them in a moment, for one recorded and not yet finished, which the TTL bounds).
 * Reads only the two erasure types (the store's index by type skips the uploads): see ERASED_KEYS_COALESCE_MS.
 */
export class ErasedKeysProjection implements ProjectionTarget {
  readonly eventTypes = KEY_ERASURE_EVENT_TYPES;

  private constructor(
    private position: bigint,
    private readonly protection: Required<Pick<PatientDataProtection, 'forgetErased'>>,
  ) {}

  /** From the store's head now: call it before this process caches any key (before it serves or projects). */
  static async atHead(store: Pick<EventStore, 'headPosition'>, protection: Required<Pick<PatientDataProtection, 'forgetErased'>>): Promise<ErasedKeysProjection> {
    return new ErasedKeysProjection(await store.headPosition(), protection);
  }

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    for (const event of events) {
      const key = erasedKeyOf(event);
      if (key !== null) this.protection.forgetErased(key);
    }
    this.position = checkpoint;
  }

  /** Nothing to rebuild: what it did is in the key cache, and a replay from the start would only repeat it. */
  async reset(): Promise<void> {}
}

/**
 * The erasure subscriber of one process, started at the store's head; null when the protection holds no key in
 * memory (nothing to forget). Stop it before the store closes.
 */
export const startErasedKeys = async (store: EventStore, protection: PatientDataProtection, logger?: ProjectorLogger): Promise<Projector | null> => {
  if (protection.forgetErased === undefined) return null;
  const forgetErased = protection.forgetErased.bind(protection);
  const projector = new Projector(store, await ErasedKeysProjection.atHead(store, { forgetErased }), logger, 1000, 'erased-keys', ERASED_KEYS_COALESCE_MS);
  projector.start();
  return projector;
};
