import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomFillSync } from 'node:crypto';
import { DIGEST_PREFIX, SEALED_PREFIX, type PatientDataProtection, type PatientKeyStore, type SealOptions } from '../../application/ports/patient-data-protection';
import { NotFoundError } from '../../domain/shared/errors';

/**
 * AES-256-GCM envelopes under per-patient data keys (crypto-shredding).
 *
 *   rts-sealed:v1:<iv base64url, 12 bytes>.<ciphertext base64url>.<tag base64url, 16 bytes>
 *
 * The associated data is `<patientKey>|<context>`, so an envelope opens only for its patient and its place.
 * Keys are cached in a bounded LRU (a map in insertion order) so the hot path costs one AES-GCM operation and no
 * key store round trip. Erasing a patient drops the cached key at once in this process; other hub processes
 * sharing the key store drop it when their erasure subscriber sees the erasure event (`forgetErased`, see
 * application/erased-keys.ts), and within `ttlMs` at the latest (their cache entries expire) should that
 * subscriber be down. The erased state is remembered for good (a tombstone cannot come back to life: a live key
 * read from the store while the erasure is under way does not replace it).
 */
export type PatientCipherOptions = Readonly<{
  keys: PatientKeyStore;
  maxCached?: number;
  ttlMs?: number;
  now?: () => number;
  /** Envelopes kept with their plaintext until first opened (see `justSealed`); 0 turns it off. */
  maxJustSealed?: number;
}>;

export const patientErased = (): NotFoundError => new NotFoundError('patient_erased', 'the patient was erased: their data no longer exists');

type Cached = { key: Buffer | 'erased'; at: number };
type JustSealed = { sealed: string; patientKey: string; context: string; plaintext: string; at: number };

export class PatientCipher implements PatientDataProtection {
  private readonly cache = new Map<string, Cached>();
  /**
   * The envelopes this process has just sealed and nobody has opened yet, with their plaintext: the registry
   * projection opens every upload's document in the same batch that sealed it, and would otherwise decrypt what
   * was encrypted a moment before. One use each, at most `maxJustSealed` (oldest dropped first), none older than
   * the key cache's `ttlMs`, and a patient's entries dropped when the patient is erased; an opener still goes
   * through the key checks first (an erased patient opens nothing). Found by the envelope's IV (justSealedKey), and
   * taken only by the very envelope: keyed by the whole envelope (~800 characters), hashing it at the seal and again
   * at the open (a copy read back from the event's JSON) cost ~3 us per upload.
   */
  private readonly justSealed = new Map<string, JustSealed>();
  private readonly maxJustSealed: number;
  private readonly maxCached: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: PatientCipherOptions) {
    this.maxCached = options.maxCached ?? 10_000;
    this.ttlMs = options.ttlMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.maxJustSealed = options.maxJustSealed ?? 1024;
  }

  async seal(patientKey: string, plaintext: string, context: string, options?: SealOptions): Promise<string> {
    const key = await this.liveKey(patientKey);
    const sealed = sealWith(key, plaintext, aad(patientKey, context));
    if (this.maxJustSealed > 0 && options?.openedSoon !== false) {
      const now = this.now();
      // In insertion order, so the oldest are first: drop what is over the bound or past its time.
      for (const [old, entry] of this.justSealed) {
        if (this.justSealed.size < this.maxJustSealed && now - entry.at < this.ttlMs) break;
        this.justSealed.delete(old);
      }
      this.justSealed.set(justSealedKey(sealed), { sealed, patientKey, context, plaintext, at: now });
    }
    return sealed;
  }

  async digest(patientKey: string, text: string, context: string): Promise<string> {
    const key = await this.liveKey(patientKey);
    return `${DIGEST_PREFIX}${createHmac('sha256', digestKeyOf(key)).update(aad(patientKey, context)).update('\n').update(text, 'utf8').digest('hex')}`;
  }

  async open(patientKey: string, sealed: string, context: string): Promise<string | null> {
    if (!sealed.startsWith(SEALED_PREFIX)) return sealed; // stored before sealing was introduced
    const key = await this.key(patientKey);
    if (key === null || key === 'erased') return null;
    return this.takeJustSealed(patientKey, sealed, context) ?? openWith(key, sealed, aad(patientKey, context));
  }

  openCached(patientKey: string, sealed: string, context: string): string | null | undefined {
    if (!sealed.startsWith(SEALED_PREFIX)) return sealed;
    const key = this.cachedKey(patientKey);
    if (key === undefined) return undefined;
    if (key === 'erased') return null;
    return this.takeJustSealed(patientKey, sealed, context) ?? openWith(key, sealed, aad(patientKey, context));
  }

  /**
   * Erased in memory first, then in the key store: while the store erases (a round trip for PostgreSQL), this
   * process must neither seal a new upload with the old key nor open one for the registry, or an upload racing
   * the erasure would be stored, and projected, after the patient's rows were forgotten. If the store fails, the
   * patient stays erased here (fail closed) and the request fails, to be repeated.
   */
  async erase(patientKey: string, erasedAt?: string): Promise<void> {
    this.forget(patientKey);
    this.remember(patientKey, 'erased');
    await this.options.keys.erase(patientKey, erasedAt ?? new Date(this.now()).toISOString());
  }

  /**
   * Asks the key store itself unless this process already knows the patient erased: the key cache may hold a key
   * that another hub process has erased since (until the erasure subscriber sees the event; `ttlMs` at most). Callers ask when the registry holds nothing of
   * the patient (a query, a document without a row, an erasure), never on the path of a patient with documents,
   * and there "erased" against "never known" is the answer (410 against 404), so it must not be up to a minute old.
   */
  /**
   * Erased by another hub process (its PatientErased or ConsultationContentErased is in the shared store): the
   * cached key and the just-sealed plaintexts go at once, and the patient is erased here from now on. The event is
   * recorded before the other process deletes the key, so the key store may still hand out the live key for a
   * moment: the tombstone held here wins over it (remember).
   */
  forgetErased(patientKey: string): void {
    this.forget(patientKey);
    this.remember(patientKey, 'erased');
  }

  async isErased(patientKey: string): Promise<boolean> {
    if (this.cache.get(patientKey)?.key === 'erased') return true;
    const stored = await this.options.keys.get(patientKey);
    if (stored === null) return false;
    if (stored === 'erased') this.forget(patientKey);
    this.remember(patientKey, stored);
    return stored === 'erased';
  }

  async erasedAt(patientKey: string): Promise<string | null> {
    return (await this.options.keys.erasedAt?.(patientKey)) ?? null;
  }

  async hasKeyOrTombstone(patientKey: string): Promise<boolean> {
    return (await this.key(patientKey)) !== null;
  }

  /** Number of keys held in memory (for tests and metrics). */
  get cachedKeys(): number {
    return this.cache.size;
  }

  /** Number of envelopes sealed here and not opened yet whose plaintext is still held (for tests). */
  get unopenedSeals(): number {
    return this.justSealed.size;
  }

  /** Overwrites the patient's key held in memory and drops their just-sealed plaintexts (erased here or elsewhere). */
  private forget(patientKey: string): void {
    const cached = this.cache.get(patientKey);
    if (cached && cached.key !== 'erased') {
      digestKeys.get(cached.key)?.fill(0);
      cached.key.fill(0);
    }
    for (const [iv, entry] of this.justSealed) if (entry.patientKey === patientKey) this.justSealed.delete(iv);
  }

  /** The plaintext of an envelope sealed here for this patient and place and not opened since; else undefined. */
  private takeJustSealed(patientKey: string, sealed: string, context: string): string | undefined {
    const key = justSealedKey(sealed);
    const entry = this.justSealed.get(key);
    if (entry === undefined || entry.sealed !== sealed || entry.patientKey !== patientKey || entry.context !== context) return undefined;
    this.justSealed.delete(key);
    return this.now() - entry.at < this.ttlMs ? entry.plaintext : undefined;
  }

  /** The patient's key, created on first use; PatientErasedError once erased. */
  private async liveKey(patientKey: string): Promise<Buffer> {
    let key = await this.key(patientKey);
    if (key === null) key = this.remember(patientKey, await this.options.keys.createIfAbsent(patientKey, randomBytes(32)));
    if (key === 'erased') throw patientErased();
    return key;
  }

  private async key(patientKey: string): Promise<Buffer | 'erased' | null> {
    const cached = this.cachedKey(patientKey);
    if (cached !== undefined) return cached;
    const stored = await this.options.keys.get(patientKey);
    return stored === null ? null : this.remember(patientKey, stored);
  }

  /** The key held in memory and not yet expired (erased stays erased); undefined when it must be fetched. */
  private cachedKey(patientKey: string): Buffer | 'erased' | undefined {
    const cached = this.cache.get(patientKey);
    if (!cached || (cached.key !== 'erased' && this.now() - cached.at >= this.ttlMs)) return undefined;
    // LRU: move to the newest end.
    this.cache.delete(patientKey);
    this.cache.set(patientKey, cached);
    return cached.key;
  }

  private remember(patientKey: string, key: Buffer | 'erased'): Buffer | 'erased' {
    // Erased here stays erased: a key read from the store before (or while) the erasure deleted it, and returned
    // after this process learnt of the erasure, must not bring the patient back for a TTL.
    if (key !== 'erased' && this.cache.get(patientKey)?.key === 'erased') {
      key.fill(0);
      key = 'erased';
    }
    this.cache.delete(patientKey);
    this.cache.set(patientKey, { key, at: this.now() });
    while (this.cache.size > this.maxCached) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
    return key;
  }
}

const aad = (patientKey: string, context: string): Buffer => Buffer.from(`${patientKey}|${context}`, 'utf8');

/**
 * The digest key of a data key: HMAC(dataKey, label), so AES-GCM and HMAC never share a key. Kept per key object
 * (weakly): a key read again from the store is a new Buffer and gets its own entry; an erased key is zero-filled
 * and dropped from the cache, and its entry goes with it.
 */
const digestKeys = new WeakMap<Buffer, Buffer>();
const digestKeyOf = (key: Buffer): Buffer => {
  let derived = digestKeys.get(key);
  if (derived === undefined) digestKeys.set(key, (derived = createHmac('sha256', key).update('telemed-rts document digest v1').digest()));
  return derived;
};

/**
 * 96-bit GCM nonces, random (each patient key seals few values, far below the 2^32 random nonces per key that
 * NIST SP 800-38D allows), cut from a pool of CSPRNG bytes refilled 4 KiB at a time as crypto.randomUUID does:
 * a randomBytes(12) call cost ~2 us in isolation and ~8 us per upload under load. Each slice is copied out and
 * used once; the pool is per process (Node never forks a running heap).
 */
const IV_BYTES = 12;
const ivPool = Buffer.alloc(IV_BYTES * 341);
let ivOffset = ivPool.length;
const nextIv = (): Buffer => {
  if (ivOffset + IV_BYTES > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivOffset, ivOffset + IV_BYTES));
  ivOffset += IV_BYTES;
  return iv;
};

export const sealWith = (key: Buffer, plaintext: string, associated: Buffer): string => {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(associated);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${SEALED_PREFIX}${iv.toString('base64url')}.${ct.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
};

const TAG_BYTES = 16;

/** The IV's characters of an envelope (random per seal): what the just-sealed envelopes are found by. */
const justSealedKey = (sealed: string): string => sealed.slice(SEALED_PREFIX.length, SEALED_PREFIX.length + Math.ceil((IV_BYTES * 4) / 3));

/**
 * Throws when the envelope was altered, or belongs to another patient or place. The IV and tag must have the lengths
 * `sealWith` writes: node takes a GCM tag of 4 to 16 bytes unless told its length, and an envelope whose tag was cut
 * to 4 bytes opened, a forgery then needing 2^32 tries instead of 2^128.
 */
export const openWith = (key: Buffer, sealed: string, associated: Buffer): string => {
  const parts = sealed.slice(SEALED_PREFIX.length).split('.');
  if (parts.length !== 3) throw new Error('malformed sealed value');
  const [iv, ct, tag] = parts.map((p) => Buffer.from(p!, 'base64url')) as [Buffer, Buffer, Buffer];
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('malformed sealed value');
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(associated);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
};
