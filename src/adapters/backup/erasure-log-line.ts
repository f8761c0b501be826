import type { ErasureResult } from '../../application/patient-erasure';
import { PATIENT_ERASED } from '../../application/sealed-documents';

/**
 * The `patient erased` log line: the pseudonymous key and time of each erasure answered (never the CPR number), the
 * record of erasures that outlives a lost disk and that `rts erasures apply --from <log>` repeats after a restore
 * (recorded-erasures.ts reads it back). Written by every place that erases: the HTTP routes and the library.
 *
 * It is written through a child logger whose own level is info whatever the root's (pino children carry their own
 * level): a hub at RTS_LOG_LEVEL=warn or error, a common production choice to cut noise, wrote no such line and a
 * restore then brought every erased patient back. Only `silent` (no output at all, which says so explicitly) leaves
 * it out; the hub warns on stderr at start when it runs so (silentErasureRecordWarning).
 */
export const ERASURE_LOG_MESSAGE = 'patient erased';

/** What is needed of a pino logger (the hub's, an embedder's, or fastify's request.log, which is one). */
export type ErasureLogger = Readonly<{
  level: string;
  child(bindings: Record<string, never>, options: { level: string }): { info(fields: object, message: string): void };
}>;

/**
 * Writes the erasure's line, for a repeat too (`alreadyErased`, with the time first recorded): the first call may have
 * been cut off after it deleted the key and before its line (a kill -9 during its consultations' erasure or the
 * registry's catch-up), and its retry, answering alreadyErased, was then the last chance of one. A line too many costs
 * nothing: `rts erasures apply` takes each key once (recorded-erasures.ts).
 */
export const logErasure = (logger: ErasureLogger, result: ErasureResult): void => {
  if (logger.level === 'silent') return;
  logger.child({}, { level: 'info' }).info({ event: PATIENT_ERASED, patientKey: result.patientKey, erasedAt: result.erasedAt, known: result.known }, ERASURE_LOG_MESSAGE);
};

/** The line of a consultation's content erased by id (`consultation content erased`), its id and time: in the log at every level but silent, as the patient's, so the log repeats it too. */
export const CONSULTATION_ERASURE_LOG_MESSAGE = 'consultation content erased';

/** Writes that line, for a repeat too, as logErasure does. */
export const logConsultationErasure = (logger: ErasureLogger, result: Readonly<{ consultationId: string; erasedAt: string; alreadyErased: boolean }>): void => {
  if (logger.level === 'silent') return;
  logger.child({}, { level: 'info' }).info({ event: 'ConsultationContentErased', consultationId: result.consultationId, erasedAt: result.erasedAt }, CONSULTATION_ERASURE_LOG_MESSAGE);
};

/** The start's warning for a hub whose log is silent: said on stderr, since the log says nothing. */
export const silentErasureRecordWarning =
  'RTS_LOG_LEVEL=silent: the hub writes no log at all, so erasures leave no "patient erased" line, the record that repeats them after a restore (rts erasures apply --from <log>). Keep an erasure register of your own (saved GET /erasures pages with every backup), or run at any other level: the line is written at every level but silent.\n';
