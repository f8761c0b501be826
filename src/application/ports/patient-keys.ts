import type { Cpr } from '../../domain/monitoring/cpr';

/**
 * The shape of a pseudonymous key (`p` and 32 hex digits, see HmacPatientKeys): what an operator may give where a
 * patient is named by their key instead of their CPR number (re-applying an erasure after a restore).
 */
export const PATIENT_KEY_PATTERN = /^p[0-9a-f]{32}$/;

/**
 * Derives the pseudonymous key that stands for a patient in stream names, registry rows, logs and metrics.
 * Keyed (HMAC) so that the key cannot be reversed by hashing all possible CPR numbers (there are only ~10^10).
 */
export interface PatientKeys {
  keyFor(patientId: Cpr): string;
  /**
   * Equal for two instances exactly when they derive the same keys (the same secret), and revealing nothing of
   * the secret: what the store records to refuse a process with another one (pseudonym-check.ts).
   */
  fingerprint(): string;
}
