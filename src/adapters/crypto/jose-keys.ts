// jose is ESM only, and this package's declarations are CommonJS: without the resolution-mode attribute a consumer
// compiling under module node16/nodenext with skipLibCheck off was refused every declaration file that imports jose's
// types (TS1541; `import('jose').JWK` and `typeof import('jose')` alike, TS1542).
import type { CryptoKey, JWK } from 'jose' with { 'resolution-mode': 'import' };
export type { JWK };
import { jose } from './jose-lib';
import { ConflictError, ValidationError } from '../../domain/shared/errors';

/**
 * Keys for message security (see jose-codec.ts). Every party (each connected system, and the hub as 'hub') has
 * two key pairs: one to sign (ES256 on P-256, or EdDSA on Ed25519) and one to receive encrypted messages
 * (ECDH-ES+A256KW on P-256). Keys are identified by `kid`, the RFC 7638 JWK thumbprint of the public key, so a
 * kid names exactly one key whoever computes it.
 *
 *   const mine = await generatePartyKeys('chengdu');            // private keys stay with the system
 *   const pub = await publicJwks(mine);                         // { signing, encryption }: what it registers on join
 *   registry.register('chengdu', pub.signing); registry.register('chengdu', pub.encryption);
 *   const saved = await exportPartyKeys(mine); const again = await importPartyKeys(saved);  // persist its own keys
 *
 * KeyRegistry: public keys per party, several valid at once (rotation without downtime: register the new key,
 * let both work during the overlap, then retire the old one with a date; after it, the old kid is refused as
 * 'unknown_key'). Encrypting for a party uses its newest valid encryption key.
 */
const { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } = jose;

export type SigningAlg = 'ES256' | 'EdDSA';
export const KEY_MANAGEMENT_ALG = 'ECDH-ES+A256KW' as const;
export const CONTENT_ENCRYPTION = 'A256GCM' as const;
export type KeyUse = 'sig' | 'enc';

export type PrivateKeyEntry = Readonly<{ kid: string; alg: string; privateKey: CryptoKey; publicJwk: JWK }>;
/** A party's own keys: one signing key, and the decryption keys it accepts (several during a rotation). */
export type PartyKeys = Readonly<{ owner: string; signing: PrivateKeyEntry; decryption: readonly PrivateKeyEntry[] }>;

const publicPart = (jwk: JWK): JWK => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, priv: _priv, ...pub } = jwk as JWK & Record<string, unknown>;
  return pub as JWK;
};

/** The kid of a public JWK: its RFC 7638 thumbprint (SHA-256, base64url). */
export const kidOf = (jwk: JWK): Promise<string> => calculateJwkThumbprint(publicPart(jwk), 'sha256');

const newEntry = async (alg: string, use: KeyUse): Promise<PrivateKeyEntry> => {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await kidOf(jwk);
  return { kid, alg, privateKey, publicJwk: { ...jwk, kid, alg, use } };
};

export const generateSigningKey = (alg: SigningAlg = 'ES256'): Promise<PrivateKeyEntry> => newEntry(alg, 'sig');
export const generateEncryptionKey = (): Promise<PrivateKeyEntry> => newEntry(KEY_MANAGEMENT_ALG, 'enc');

export const generatePartyKeys = async (owner: string, options: Readonly<{ signingAlg?: SigningAlg }> = {}): Promise<PartyKeys> => ({
  owner,
  signing: await generateSigningKey(options.signingAlg),
  decryption: [await generateEncryptionKey()],
});

/** The public JWKs a party registers (kid, alg and use set): its signing key and its newest encryption key. */
export const publicJwks = (keys: PartyKeys): { signing: JWK; encryption: JWK } => ({
  signing: keys.signing.publicJwk,
  encryption: keys.decryption[keys.decryption.length - 1]!.publicJwk,
});

type StoredEntry = { kid: string; alg: string; privateJwk: JWK; publicJwk: JWK };
export type StoredPartyKeys = { owner: string; signing: StoredEntry; decryption: StoredEntry[] };

/** A party's keys as JSON-able private JWKs (keep it secret: a file readable by the system only). */
export const exportPartyKeys = async (keys: PartyKeys): Promise<StoredPartyKeys> => {
  const one = async (e: PrivateKeyEntry): Promise<StoredEntry> => ({ kid: e.kid, alg: e.alg, privateJwk: await exportJWK(e.privateKey), publicJwk: e.publicJwk });
  return { owner: keys.owner, signing: await one(keys.signing), decryption: await Promise.all(keys.decryption.map(one)) };
};

export const importPartyKeys = async (stored: StoredPartyKeys): Promise<PartyKeys> => {
  const one = async (e: StoredEntry): Promise<PrivateKeyEntry> => ({ kid: e.kid, alg: e.alg, privateKey: (await importJWK(e.privateJwk, e.alg, { extractable: true })) as CryptoKey, publicJwk: e.publicJwk });
  return { owner: stored.owner, signing: await one(stored.signing), decryption: await Promise.all(stored.decryption.map(one)) };
};

export type PublicKeyRecord = Readonly<{
  kid: string;
  owner: string;
  use: KeyUse;
  alg: string;
  jwk: JWK;
  /** ISO-8601; the key is refused before (default: valid from registration). */
  validFrom: string | null;
  /** ISO-8601; the key is refused from this instant on. */
  retiresAt: string | null;
}>;

export type KeyLookup =
  | Readonly<{ ok: true; record: PublicKeyRecord; key: CryptoKey }>
  | Readonly<{ ok: false; reason: 'unknown' | 'retired' | 'not_yet_valid' | 'wrong_use' }>;

const ALLOWED: Record<KeyUse, readonly string[]> = { sig: ['ES256', 'EdDSA', 'Ed25519'], enc: [KEY_MANAGEMENT_ALG] };

export class KeyRegistry {
  private readonly records = new Map<string, PublicKeyRecord>();
  private readonly order: string[] = [];
  private readonly imported = new Map<string, Promise<CryptoKey>>();

  /**
   * Register a party's public JWK. `use` and `alg` come from the JWK (`use`, `alg`) unless given. The kid is the
   * key's thumbprint; a JWK whose `kid` says otherwise is refused (ValidationError 'invalid_key'), as is a
   * private JWK, and a kid already registered to another owner (ConflictError 'key_owned_by_other_party').
   * Registering the same key again updates its validity dates.
   */
  async register(owner: string, jwk: JWK, options: Readonly<{ use?: KeyUse; alg?: string; validFrom?: string; retiresAt?: string }> = {}): Promise<PublicKeyRecord> {
    const use = options.use ?? (jwk.use as KeyUse | undefined);
    const alg = options.alg ?? jwk.alg;
    if ('d' in jwk || 'k' in jwk) throw new ValidationError('invalid_key', 'register the public key only');
    if ((use !== 'sig' && use !== 'enc') || alg === undefined || !ALLOWED[use].includes(alg)) {
      throw new ValidationError('invalid_key', `a key is for 'sig' (ES256, EdDSA) or 'enc' (${KEY_MANAGEMENT_ALG})`);
    }
    const kid = await kidOf(jwk);
    if (jwk.kid !== undefined && jwk.kid !== kid) throw new ValidationError('invalid_key', 'the kid must be the RFC 7638 thumbprint of the key');
    await importJWK(publicPart(jwk), alg); // throws for a JWK that is not a usable key of that algorithm
    const existing = this.records.get(kid);
    if (existing && existing.owner !== owner) throw new ConflictError('key_owned_by_other_party', 'this key is registered to another party');
    const record: PublicKeyRecord = { kid, owner, use, alg, jwk: { ...publicPart(jwk), kid, alg, use }, validFrom: options.validFrom ?? null, retiresAt: options.retiresAt ?? null };
    this.records.set(kid, record);
    if (!existing) this.order.push(kid);
    return record;
  }

  /**
   * Refuse `owner`'s key from `at` on (ISO-8601). A kid that is unknown, or registered to another party, is ignored:
   * one party never retires another's key (a kid is resolved to its first owner only, see register).
   */
  retire(owner: string, kid: string, at: string): void {
    const r = this.records.get(kid);
    if (r && r.owner === owner) this.records.set(kid, { ...r, retiresAt: at });
  }

  /**
   * Forget `owner`'s key: its kid is 'unknown' from now on, and encryptionKeyFor no longer picks it. For a key its
   * owner stopped publishing (the hub's keys in the SDK, see registerHubJwks): retiring it instead would keep the
   * record of every key ever seen. A kid that is unknown, or registered to another party, is ignored, as in retire.
   */
  remove(owner: string, kid: string): void {
    const r = this.records.get(kid);
    if (!r || r.owner !== owner) return;
    this.records.delete(kid);
    this.imported.delete(kid);
    this.order.splice(this.order.indexOf(kid), 1);
  }

  /** The party a kid is registered to, or null. */
  ownerOf(kid: string): string | null {
    return this.records.get(kid)?.owner ?? null;
  }

  keysOf(owner: string): readonly PublicKeyRecord[] {
    return this.order.map((k) => this.records.get(k)!).filter((r) => r.owner === owner);
  }

  async lookup(kid: string, use: KeyUse, at: Date): Promise<KeyLookup> {
    const record = this.records.get(kid);
    if (!record) return { ok: false, reason: 'unknown' };
    if (record.use !== use) return { ok: false, reason: 'wrong_use' };
    const state = validity(record, at);
    if (state !== 'valid') return { ok: false, reason: state };
    return { ok: true, record, key: await this.keyOf(record) };
  }

  /** The newest valid encryption key of `owner` (registered last), or null. */
  async encryptionKeyFor(owner: string, at: Date): Promise<{ record: PublicKeyRecord; key: CryptoKey } | null> {
    const record = [...this.keysOf(owner)].reverse().find((r) => r.use === 'enc' && validity(r, at) === 'valid');
    return record ? { record, key: await this.keyOf(record) } : null;
  }

  private keyOf(record: PublicKeyRecord): Promise<CryptoKey> {
    let key = this.imported.get(record.kid);
    if (!key) {
      key = importJWK(record.jwk, record.alg) as Promise<CryptoKey>;
      this.imported.set(record.kid, key);
    }
    return key;
  }
}

const validity = (r: PublicKeyRecord, at: Date): 'valid' | 'retired' | 'not_yet_valid' => {
  if (r.retiresAt !== null && at.getTime() >= Date.parse(r.retiresAt)) return 'retired';
  if (r.validFrom !== null && at.getTime() < Date.parse(r.validFrom)) return 'not_yet_valid';
  return 'valid';
};
