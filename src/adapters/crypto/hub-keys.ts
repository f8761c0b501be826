import { HUB_SYSTEM_ID } from '../../domain/directory/connected-system';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ValidationError } from '../../domain/shared/errors';
import type { CheckedKey, PublicKeyCheck } from '../../application/security/system-keys-service';
import { exportPartyKeys, generateEncryptionKey, generatePartyKeys, importPartyKeys, kidOf, KEY_MANAGEMENT_ALG, type JWK, type PartyKeys, type StoredPartyKeys } from './jose-keys';
import { jose } from './jose-lib';
import { writeFileWhole } from '../system/write-file-whole';
import { makeDirectory } from '../system/make-directory';

/**
 * The hub's own message keys (party id 'hub'): a signing key and the decryption keys it accepts.
 *
 *   const keys = await loadHubKeys({ file: config.RTS_HUB_KEYS_FILE, dataDir: config.RTS_DATA_DIR });
 *
 * From RTS_HUB_KEYS_FILE when given (several hub processes must share one: a system encrypts for the hub's newest
 * encryption key, whichever process consumes the message); else generated once into `<dataDir>/hub-keys.json`
 * (0600), as the pseudonym secret is. The file is exportPartyKeys' JSON: { owner: 'hub', signing, decryption[] }.
 * Rotation: add a new decryption key at the end (systems encrypt for the newest published one), keep the old one
 * until the messages encrypted for it are consumed, then remove it; a new signing key is published with the old
 * one listed in `previousSigning` until systems have fetched the new JWKS. Clients re-read the JWKS only on a signing
 * kid they do not know: rotate the signing key with the encryption key, or running clients keep encrypting for the
 * old one (README, "Rotating the hub's encryption key").
 */
/** The hub's party in the key book: the one system id no connected system may take (the domain's rule). */
export const HUB_PARTY_ID = HUB_SYSTEM_ID;
export const HUB_KEYS_FILE_NAME = 'hub-keys.json';

export type HubKeyFile = StoredPartyKeys & { previousSigning?: { kid: string; alg: string; publicJwk: JWK; retiresAt?: string }[] };
export type HubKeys = Readonly<{ keys: PartyKeys; file: string; previousSigning: readonly { kid: string; alg: string; publicJwk: JWK; retiresAt?: string }[] }>;

/** A hub key file that was named (RTS_HUB_KEYS_FILE) but cannot be used; `reason` names no key material. */
export class HubKeysFileError extends Error {
  constructor(readonly reason: string) {
    super(`the hub key file ${reason}`);
    this.name = 'HubKeysFileError';
  }
}

export const loadHubKeys = async (options: Readonly<{ file?: string; dataDir: string }>): Promise<HubKeys> => {
  const file = options.file ?? join(options.dataDir, HUB_KEYS_FILE_NAME);
  if (existsSync(file)) {
    let stored: HubKeyFile;
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as HubKeyFile;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new HubKeysFileError(code ? `cannot be read (${code})` : 'is not JSON');
    }
    if (stored?.owner !== HUB_PARTY_ID) throw new HubKeysFileError(`holds keys that belong to '${String(stored?.owner)}', not to '${HUB_PARTY_ID}'`);
    const keys = await importPartyKeys(stored).catch(() => {
      throw new HubKeysFileError('holds keys that cannot be used (not the JSON a hub writes)');
    });
    return { keys, file, previousSigning: stored.previousSigning ?? [] };
  }
  // A named file is never made here: each hub process would make keys of its own (see README, "high availability").
  if (options.file) throw new HubKeysFileError('does not exist');
  const keys = await generatePartyKeys(HUB_PARTY_ID);
  makeDirectory(dirname(file), 0o777);
  // Whole or not at all (an empty file, cut short at a first start, stopped every later start as 'not JSON').
  if (!writeFileWhole(file, JSON.stringify(await exportPartyKeys(keys), null, 2), { exclusive: true })) return loadHubKeys(options); // another process wrote it first
  return { keys, file, previousSigning: [] };
};

/** Adds a new decryption key to a hub key file (rotation step one); the old ones stay until removed by hand. */
export const addHubDecryptionKey = async (file: string): Promise<string> => {
  const stored = JSON.parse(readFileSync(file, 'utf8')) as HubKeyFile;
  const keys = await importPartyKeys(stored);
  const next = await generateEncryptionKey();
  const saved = await exportPartyKeys({ ...keys, decryption: [...keys.decryption, next] });
  // Replaced whole: written in place, a crash or a full disk mid-write left the hub without any of its keys.
  writeFileWhole(file, JSON.stringify({ ...saved, previousSigning: stored.previousSigning }, null, 2), { exclusive: false, mode: statSync(file).mode & 0o777 });
  return next.kid;
};

/** The hub's public JWKS (GET /.well-known/jwks.json): its signing key(s) and every decryption key, newest last. */
export const hubJwks = (hub: HubKeys): { keys: JWK[] } => ({
  keys: [
    ...hub.previousSigning.map((p) => ({ ...p.publicJwk, ...(p.retiresAt ? { rts_retires_at: p.retiresAt } : {}) })),
    hub.keys.signing.publicJwk,
    ...hub.keys.decryption.map((d) => d.publicJwk),
  ],
});

/** The edge check of a system's public JWK (SystemKeysService's PublicKeyCheck). */
export const checkPublicJwk: PublicKeyCheck = async (input) => {
  const jwk = input as JWK & Record<string, unknown>;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new ValidationError('invalid_key', 'a key is a JWK object');
  if ('d' in jwk || 'k' in jwk || 'p' in jwk) throw new ValidationError('invalid_key', 'register the public key only');
  const use = jwk.use;
  const alg = jwk.alg;
  const allowed = use === 'sig' ? ['ES256', 'EdDSA'] : use === 'enc' ? [KEY_MANAGEMENT_ALG] : [];
  if (typeof alg !== 'string' || !allowed.includes(alg)) throw new ValidationError('invalid_key', `a key has use 'sig' (alg ES256 or EdDSA) or 'enc' (alg ${KEY_MANAGEMENT_ALG})`);
  const { kid: _kid, use: _use, alg: _alg, key_ops: _ops, ext: _ext, ...material } = jwk;
  const kid = await kidOf(material as JWK);
  if (jwk.kid !== undefined && jwk.kid !== kid) throw new ValidationError('invalid_key', 'the kid must be the RFC 7638 thumbprint of the key');
  try {
    await jose.importJWK(material as JWK, alg);
  } catch {
    throw new ValidationError('invalid_key', `not a usable ${alg} public key`);
  }
  const checked: CheckedKey = { kid, use: use as 'sig' | 'enc', alg, jwk: { ...material, kid, alg, use } };
  return checked;
};
