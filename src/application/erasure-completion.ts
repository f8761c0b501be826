import type { PatientDataProtection } from './ports/patient-data-protection';

/**
 * The key an erasure event shreds, deleted by the projection that reaches the event, before its checkpoint passes it,
 * when the key store holds no tombstone for it. An erasure records its event (PatientErased, ConsultationContentErased)
 * and then deletes the key; one cut off in between (a kill -9, or a key store failing: its 503, and no retry) left a
 * live key behind an erasure the register lists. Only the process's memory said erased: after a restart, or once the
 * key cache dropped it, the hub took the patient's uploads again (201, stored where no query found them) and the key
 * still opened the erased texts in the store and every backup. One look-up per erasure event (rebuilds too); the key
 * store keeps the first erasure's time, and this records the event's own. A key store that fails throws: the
 * projection stops there and is tried again, never passes the erasure.
 */
export const completeKeyErasure = async (protection: PatientDataProtection, keyId: string, erasedAt: unknown): Promise<void> => {
  if (protection.erasedAt !== undefined && (await protection.erasedAt(keyId)) !== null) return;
  await protection.erase(keyId, typeof erasedAt === 'string' ? erasedAt : undefined);
};
