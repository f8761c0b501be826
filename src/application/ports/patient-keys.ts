import type { Cpr } from '../../domain/monitoring/cpr';

/**
 * Derives the pseudonymous key that stands for a patient in stream names, registry rows, logs and metrics.
 * Keyed (HMAC) so that the key cannot be reversed by hashing all possible CPR numbers (there are only ~10^10).
 */
export interface PatientKeys {
  keyFor(patientId: Cpr): string;
}
