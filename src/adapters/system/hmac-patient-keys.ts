import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { PatientKeys } from '../../application/ports/patient-keys';
import type { Cpr } from '../../domain/monitoring/cpr';

/**
 * HMAC-SHA256 of the CPR number under a secret key, 128 bits in hex with a `p` prefix. Without the secret a key
 * cannot be traced back to its CPR number. With the secret it can, by anyone: the valid CPR numbers are few (a
 * real date of the last ~150 years times 10^4 serials, ~3.6·10^8, not 10^10), so hashing them all takes about half an
 * hour on one core (one birth year: ~20 s; a known birth date: at once). The key is a pseudonym only for whoever
 * lacks the secret, and the secret must be guarded like the patient data itself (README "Patient data"). No memo:
 * a map of CPR numbers in the heap is a copy of personal data, and an HMAC costs microseconds.
 */
export class HmacPatientKeys implements PatientKeys {
  /** A KeyObject: OpenSSL gets the secret once, not on every HMAC (~8 % less per key in a hot loop). */
  private readonly secret: KeyObject;

  constructor(secret: Buffer) {
    if (secret.length < 16) throw new Error('the pseudonym secret must be at least 16 bytes');
    this.secret = createSecretKey(secret);
  }

  fingerprint(): string {
    return createHmac('sha256', this.secret).update('telemed-rts pseudonym secret fingerprint v1', 'utf8').digest('hex').slice(0, 32);
  }

  keyFor(patientId: Cpr): string {
    return `p${createHmac('sha256', this.secret).update(patientId, 'utf8').digest('hex').slice(0, 32)}`;
  }
}
