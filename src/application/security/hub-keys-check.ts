import { ExpectedVersionConflictError, type EventStore } from '../ports/event-store';
import { uuidV5 } from '../ids';

/**
 * One set of hub message keys per store. The hub processes on one store are competing consumers of one uplink
 * queue, and a system encrypts each message for the hub's encryption key that it read from whichever process
 * served its JWKS. A process holding other keys (a second hub started without RTS_HUB_KEYS_FILE, which generates
 * its own into its data directory) cannot open those messages: it dead-letters every one it happens to take as
 * `not_for_us`, at random, for as long as it runs. So every process records the public ids (kids) of its keys
 * in the store at start, and one whose keys share nothing with those last recorded refuses to start.
 *
 * Rotation goes through the shared key file in steps that always keep a key in common (a new decryption key is
 * added beside the old one; a new signing key comes while the decryption keys stay), so each step is accepted
 * and recorded; processes restarted one at a time may record the old and the new set in turn. A set that shares
 * nothing with the last (every key replaced at once, or a hub key file lost) is accepted only when the operator
 * says so for that start (`acceptNew`).
 *
 * Only public key ids are recorded: they tell key sets apart and reveal nothing of a private key.
 */
export const HUB_KEYS_STREAM = 'hub-message-keys';
export const HUB_KEYS_IN_USE = 'HubKeysInUse';

export type HubKeyIds = Readonly<{ signingKid: string; encryptionKids: readonly string[] }>;

export class HubKeysMismatchError extends Error {
  readonly code = 'hub_keys_mismatch';
  constructor(readonly recorded: HubKeyIds) {
    super("this hub's message keys share none with the keys the store's hub processes last recorded");
    this.name = 'HubKeysMismatchError';
  }
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((k) => b.includes(k));
const sameKeys = (a: HubKeyIds, b: HubKeyIds): boolean => a.signingKid === b.signingKid && sameSet(a.encryptionKids, b.encryptionKids);
const shareAKey = (a: HubKeyIds, b: HubKeyIds): boolean => a.signingKid === b.signingKid || a.encryptionKids.some((k) => b.encryptionKids.includes(k));

const keyIdsOf = (data: Record<string, unknown>): HubKeyIds | null => {
  const { signingKid, encryptionKids } = data;
  if (typeof signingKid !== 'string' || !Array.isArray(encryptionKids) || !encryptionKids.every((k) => typeof k === 'string')) return null;
  return { signingKid, encryptionKids: encryptionKids as string[] };
};

/** The key ids last recorded in the store, and the stream's version; null when none was recorded yet. */
export const recordedHubKeys = async (store: EventStore): Promise<{ keys: HubKeyIds | null; version: bigint | null }> => {
  const { state, currentVersion } = await store.aggregateStream<HubKeyIds | null>(HUB_KEYS_STREAM, {
    initialState: () => null,
    evolve: (last, event) => (event.type === HUB_KEYS_IN_USE ? (keyIdsOf(event.data) ?? last) : last),
  });
  return { keys: state, version: currentVersion };
};

export type HubKeysCheck = 'recorded' | 'matches' | 'rotated' | 'replaced';

/**
 * 'recorded' (the store had none), 'matches' (the same keys as last recorded), 'rotated' (another set sharing a
 * key with the last: recorded as the set in use now) or 'replaced' (none shared, and `acceptNew`); throws
 * HubKeysMismatchError when none is shared without `acceptNew`.
 */
export const checkHubKeys = async (store: EventStore, mine: HubKeyIds, recordedAt: string, options: { acceptNew?: boolean } = {}): Promise<HubKeysCheck> => {
  for (let attempt = 0; ; attempt++) {
    const { keys: last, version } = await recordedHubKeys(store);
    if (last !== null && sameKeys(last, mine)) return 'matches';
    const outcome: HubKeysCheck = last === null ? 'recorded' : shareAKey(last, mine) ? 'rotated' : 'replaced';
    if (outcome === 'replaced' && !options.acceptNew) throw new HubKeysMismatchError(last!);
    const next = version === null ? 0n : version + 1n;
    try {
      // The id follows the position and the keys: processes with the same keys that race append one event.
      const id = uuidV5(`hub-keys/${next}/${mine.signingKid}/${[...mine.encryptionKids].sort().join(',')}`);
      const result = await store.appendToStream(
        HUB_KEYS_STREAM,
        [{ id, type: HUB_KEYS_IN_USE, data: { signingKid: mine.signingKid, encryptionKids: [...mine.encryptionKids], recordedAt } }],
        { expectedVersion: version ?? 'no_stream' },
      );
      return result.idempotent ? 'matches' : outcome;
    } catch (error) {
      // Another process recorded meanwhile: judge ours against what it recorded.
      if (!(error instanceof ExpectedVersionConflictError) || attempt > 2) throw error;
    }
  }
};
