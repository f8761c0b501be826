import { ExpectedVersionConflictError, type EventStore } from './ports/event-store';
import { uuidV5 } from './ids';

/**
 * One pseudonym secret per store. Every patient is known to the store only by the key the pseudonym secret
 * derives from the CPR number (stream names, registry rows, data keys), so a hub process that came up with
 * another secret (a second hub without RTS_PSEUDONYM_SECRET on a shared PostgreSQL, a restore without the
 * secret) would file the same patient under a new key: their readings split in two, a query or an erasure
 * finding only half. The first process records the secret's fingerprint in the store; every later one compares
 * its own before it serves anything.
 *
 * The fingerprint is an HMAC under the secret of a fixed text: it tells secrets apart and reveals nothing of one.
 * A store written before this check existed gets the fingerprint of the first process started on it.
 */
export const PSEUDONYM_CHECK_STREAM = 'hub-pseudonym-secret';
export const PSEUDONYM_SECRET_RECORDED = 'PseudonymSecretRecorded';

export class PseudonymSecretMismatchError extends Error {
  readonly code = 'pseudonym_secret_mismatch';
  constructor() {
    super('the pseudonym secret is not the one this store was written with');
    this.name = 'PseudonymSecretMismatchError';
  }
}

/** The fingerprint the store holds, or null when no process has recorded one yet. */
export const recordedPseudonymFingerprint = async (store: EventStore): Promise<string | null> => {
  const { events } = await store.readStream(PSEUDONYM_CHECK_STREAM, { maxCount: 1 });
  const fingerprint = events[0]?.data['fingerprint'];
  return typeof fingerprint === 'string' ? fingerprint : null;
};

/**
 * 'recorded' (this store had none: ours is the store's now) or 'matches'; throws PseudonymSecretMismatchError
 * when the store holds another. Two processes starting at once with different secrets: one records, the other
 * finds it and throws.
 */
export const checkPseudonymSecret = async (store: EventStore, fingerprint: string, recordedAt: string): Promise<'recorded' | 'matches'> => {
  for (let attempt = 0; ; attempt++) {
    const recorded = await recordedPseudonymFingerprint(store);
    if (recorded !== null) {
      if (recorded !== fingerprint) throw new PseudonymSecretMismatchError();
      return 'matches';
    }
    try {
      // The id follows the fingerprint: a process with the same secret that races us appends the same event, once.
      const result = await store.appendToStream(
        PSEUDONYM_CHECK_STREAM,
        [{ id: uuidV5(`pseudonym-secret/${fingerprint}`), type: PSEUDONYM_SECRET_RECORDED, data: { fingerprint, recordedAt } }],
        { expectedVersion: 'no_stream' },
      );
      return result.idempotent ? 'matches' : 'recorded';
    } catch (error) {
      // Another process recorded first: read what it recorded.
      if (!(error instanceof ExpectedVersionConflictError) || attempt > 0) throw error;
    }
  }
};
