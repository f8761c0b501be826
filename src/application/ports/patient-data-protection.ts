/**
 * Crypto-shredding of patient data. Every piece of a patient's personal data that goes into an event is sealed
 * with that patient's own data key (AES-256-GCM); the keys live in a key store apart from the events. Erasing a
 * patient deletes the key: every sealed event of theirs becomes unreadable, wherever copies of it went.
 *
 * `patientKey` is the pseudonymous key (PatientKeys.keyFor), which is also the id of the data key. `context` is
 * bound into the ciphertext (AEAD associated data, e.g. the document uniqueId), so a sealed value cannot be moved
 * to another event and still open.
 */
export interface PatientDataProtection {
  /**
   * Seal `plaintext` under the patient's key, creating the key on first use. PatientErasedError once erased.
   * `openedSoon: false` for a value nobody opens right away (a registry row on PostgreSQL): an implementation that
   * keeps the plaintext of what it just sealed, to spare the decryption of the next open, keeps none for it.
   */
  seal(patientKey: string, plaintext: string, context: string, options?: SealOptions): Promise<string>;
  /** The plaintext; null when the patient's key was erased. Values that are not sealed are returned as they are. */
  open(patientKey: string, sealed: string, context: string): Promise<string | null>;
  /**
   * The plaintext at once, without waiting, when the patient's key is already in memory; null when erased;
   * undefined when the key would first have to be fetched (the caller then takes the asynchronous path).
   * Optional: a projection kept inside a synchronous write transaction uses it (see openRegistryEventsCached).
   */
  openCached?(patientKey: string, sealed: string, context: string): string | null | undefined;
  /**
   * A keyed digest of `text` (HMAC-SHA256 under a key derived from the patient's data key), for what must stay
   * comparable in clear, such as a document's hash (a retried upload is recognised by it). While the key exists
   * the same text gives the same digest; once it is erased, a digest confirms nothing: a plain SHA-256 of a
   * document in clear let anyone with the store rebuild a reading by trying every plausible value (about 45,000)
   * for a suspected patient. Creates the key on first use, as `seal` does; PatientErasedError once erased.
   */
  digest(patientKey: string, text: string, context: string): Promise<string>;
  /**
   * Delete the patient's key for good (a tombstone remains, so the key is never created again). Idempotent: a key
   * store keeps the first erasure's time. `erasedAt` (ISO-8601) is the time to record, when the erasure was recorded
   * earlier than now (its event's); the clock's now otherwise.
   */
  erase(patientKey: string, erasedAt?: string): Promise<void>;
  /**
   * Whether the patient was erased, by this or another hub process on the same key store, as the key store says
   * now (not as a key cache remembers it): asked where the registry holds nothing of the patient, to tell
   * patient_erased from unknown_patient. Not for the path of a patient with documents.
   */
  isErased(patientKey: string): Promise<boolean>;
  /**
   * Whether the key store holds anything for the patient: a data key (something was sealed for them) or a
   * tombstone (they were erased). False for a patient the hub never stored anything for.
   */
  hasKeyOrTombstone(patientKey: string): Promise<boolean>;
  /**
   * When the patient's key was erased, as the key store recorded it (ISO-8601); null when it was not. Optional: what
   * a repeat of an erasure whose event a restored copy lacks answers and records, the original time rather than its
   * own (PatientErasure).
   */
  erasedAt?(patientKey: string): Promise<string | null>;
  /**
   * The key was erased, here or by another hub process on the same stores (its erasure event was seen in the
   * store): drop at once whatever this process holds of it in memory (the key, plaintexts it just sealed) and
   * answer as erased from now on, as `erase` does, without asking the key store. Optional: an implementation that
   * holds nothing in memory has nothing to drop. Never throws.
   */
  forgetErased?(keyId: string): void;
}

export type SealOptions = Readonly<{ openedSoon?: boolean }>;

/** Where the data keys are kept: a table or file apart from the events (see src/adapters/crypto/key-stores.ts). */
export interface PatientKeyStore {
  /** The key, 'erased' for a tombstone, or null when the patient has none yet. */
  get(patientKey: string): Promise<Buffer | 'erased' | null>;
  /** Store `key` unless the patient has a key or a tombstone already; returns what is stored afterwards. */
  createIfAbsent(patientKey: string, key: Buffer): Promise<Buffer | 'erased'>;
  /** Replace the key by a tombstone, overwriting its bytes where the store allows it. */
  erase(patientKey: string, erasedAt: string): Promise<void>;
  /** When the key was erased (ISO-8601), null when it was not; optional (a store that keeps no time has none). */
  erasedAt?(patientKey: string): Promise<string | null>;
  /**
   * Every tombstone (a patient's key or a consultation's), oldest erasure first: what a start compares with the
   * erasure events, to complete those a restored backup holds the key's deletion of and not the event
   * (erasures-at-start.ts). Optional: only a key store that can be copied apart from its events has it.
   */
  tombstones?(): Promise<readonly KeyTombstone[]>;
  close(): Promise<void>;
}

/** A deleted data key: its id (`p...` a patient's, `c...` a consultation's) and when it was deleted (ISO-8601). */
export type KeyTombstone = Readonly<{ keyId: string; erasedAt: string }>;

/** Marks a keyed digest in event data (a plain SHA-256 has no prefix). */
export const DIGEST_PREFIX = 'hmac-sha256:';

/** Marks a sealed value in event data. */
export const SEALED_PREFIX = 'rts-sealed:v1:';
export const isSealed = (value: unknown): value is string => typeof value === 'string' && value.startsWith(SEALED_PREFIX);
