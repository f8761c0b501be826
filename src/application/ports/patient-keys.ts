import type { Cpr } from '../../domain/monitoring/cpr';

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
