import type { EventStore } from './ports/event-store';
import { checkRecordedSetting, recordedSetting, type RecordedSetting } from './recorded-setting';
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

const PSEUDONYM_SECRET: RecordedSetting<string, never> = {
  stream: PSEUDONYM_CHECK_STREAM,
  type: PSEUDONYM_SECRET_RECORDED,
  parse: (data) => (typeof data['fingerprint'] === 'string' ? data['fingerprint'] : null),
  data: (fingerprint) => ({ fingerprint }),
  // The id follows the fingerprint: a process with the same secret that races us appends the same event, once.
  eventId: (fingerprint) => uuidV5(`pseudonym-secret/${fingerprint}`),
  same: (last, mine) => last === mine,
  // The first secret is the store's for good: its patients are keyed with it.
  judge: () => {
    throw new PseudonymSecretMismatchError();
  },
};

/** The fingerprint the store holds, or null when no process has recorded one yet. */
export const recordedPseudonymFingerprint = async (store: EventStore): Promise<string | null> => (await recordedSetting(store, PSEUDONYM_SECRET)).value;

/**
 * 'recorded' (this store had none: ours is the store's now) or 'matches'; throws PseudonymSecretMismatchError
 * when the store holds another. Two processes starting at once with different secrets: one records, the other
 * finds it and throws.
 */
export const checkPseudonymSecret = (store: EventStore, fingerprint: string, recordedAt: string): Promise<'recorded' | 'matches'> =>
  checkRecordedSetting(store, PSEUDONYM_SECRET, fingerprint, recordedAt);
