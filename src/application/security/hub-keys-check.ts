import type { EventStore } from '../ports/event-store';
import { checkRecordedSetting, recordedSetting, type RecordedSetting } from '../recorded-setting';
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

export type HubKeysCheck = 'recorded' | 'matches' | 'rotated' | 'replaced';

const hubKeysSetting = (acceptNew: boolean): RecordedSetting<HubKeyIds, 'rotated' | 'replaced'> => ({
  stream: HUB_KEYS_STREAM,
  type: HUB_KEYS_IN_USE,
  parse: keyIdsOf,
  data: (mine) => ({ signingKid: mine.signingKid, encryptionKids: [...mine.encryptionKids] }),
  // The id follows the position and the keys: processes with the same keys that race append one event.
  eventId: (mine, version) => uuidV5(`hub-keys/${version}/${mine.signingKid}/${[...mine.encryptionKids].sort().join(',')}`),
  same: sameKeys,
  judge: (last, mine) => {
    if (shareAKey(last, mine)) return 'rotated';
    if (!acceptNew) throw new HubKeysMismatchError(last);
    return 'replaced';
  },
});

/** The key ids last recorded in the store, and the stream's version; null when none was recorded yet. */
export const recordedHubKeys = async (store: EventStore): Promise<{ keys: HubKeyIds | null; version: bigint | null }> => {
  const { value, version } = await recordedSetting(store, hubKeysSetting(false));
  return { keys: value, version };
};

/**
 * 'recorded' (the store had none), 'matches' (the same keys as last recorded), 'rotated' (another set sharing a
 * key with the last: recorded as the set in use now) or 'replaced' (none shared, and `acceptNew`); throws
 * HubKeysMismatchError when none is shared without `acceptNew`.
 */
export const checkHubKeys = (store: EventStore, mine: HubKeyIds, recordedAt: string, options: { acceptNew?: boolean } = {}): Promise<HubKeysCheck> =>
  checkRecordedSetting(store, hubKeysSetting(options.acceptNew ?? false), mine, recordedAt);
