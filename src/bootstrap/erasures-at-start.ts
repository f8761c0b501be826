import type { Container } from 'inversify';
import type { Logger } from 'pino';
import { logConsultationErasure, logErasure } from '../adapters/backup/erasure-log-line';
import { STORAGE_UNAVAILABLE } from '../adapters/event-store/sqlite/storage-failure';
import { DATA_FILES } from '../adapters/system/data-dir';
import { ContentErasureIncompleteError, type ConsultationContentErasure } from '../application/consultation/consultation-erasure';
import { completeErasuresAtStart } from '../application/erasures-at-start';
import { ErasureIncompleteError, type PatientErasure } from '../application/patient-erasure';
import type { EventStore } from '../application/ports/event-store';
import type { PatientKeyStore } from '../application/ports/patient-data-protection';
import { UnavailableError } from '../domain/shared/errors';
import { TOKENS } from './container';

/**
 * The hub's and the library's start completes the erasures whose key deletion the key store holds and whose event
 * the store lacks (a backup copied while they were made, then restored: application/erasures-at-start.ts), before
 * anything is served. Each one completed writes the line every erasure writes (`patient erased`, `consultation
 * content erased`: the record `rts erasures apply --from <log>` repeats), and the start one line with the count.
 * Nothing is written when there is nothing to complete.
 *
 * A failure (the disk full, the key file locked) fails the start: serving on would answer the erased patient's
 * readings. Said as what it is; the erasures completed before it keep their lines, and the next start goes on with
 * the rest.
 */
export const completeErasuresOfKeyStore = async (container: Container, logger: Logger): Promise<void> => {
  const keys = container.get<PatientKeyStore>(TOKENS.PatientKeyStore);
  if (keys.tombstones === undefined) return; // PostgreSQL's table: key-stores.ts says why it needs none
  let patients = 0;
  let consultations = 0;
  try {
    const done = await completeErasuresAtStart({
      store: container.get<EventStore>(TOKENS.EventStore),
      keys,
      erasure: container.get<PatientErasure>(TOKENS.PatientErasure),
      consultations: container.get<ConsultationContentErasure>(TOKENS.ConsultationErasure),
      completed: {
        patient: (result) => logErasure(logger, result),
        consultation: (result) => logConsultationErasure(logger, result),
      },
    });
    patients = done.patients.length;
    consultations = done.consultations.length;
  } catch (error) {
    // Recorded and its key deleted, the rest not written: its line now, not left to a repeat that may never come.
    if (error instanceof ErasureIncompleteError) logErasure(logger, error.erasure);
    if (error instanceof ContentErasureIncompleteError) logConsultationErasure(logger, error.erasure);
    // One recorded now (its event) is no longer found at the next start: its remaining steps are the repeat's.
    const recorded = error instanceof ErasureIncompleteError || error instanceof ContentErasureIncompleteError;
    const message =
      `the key store (${DATA_FILES.patientKeys}) records erasures whose events the event store lacks (a backup taken while they were made, then restored), and completing them failed: ${(error as Error)?.message ?? String(error)}. ` +
      `Nothing is served until they are complete: start again once the store can be written${recorded ? ', then repeat the erasures (rts erasures apply --from the data directory) to finish the one recorded now' : ''}`;
    throw error instanceof UnavailableError ? Object.assign(new UnavailableError(STORAGE_UNAVAILABLE, message), { cause: error }) : new Error(message, { cause: error });
  }
  if (patients + consultations > 0) {
    logger.warn(
      { patients, consultations },
      `completed ${patients + consultations} erasure(s) at start that the key store records without their events (a backup taken while they were made, then restored): their data is no longer served, and each has its erasure line`,
    );
  }
};
