import { randomUUID } from 'node:crypto';
import type { AuditEntry, AuditOutcome } from '../../application/audit/audit-chain';
import type { RecordOptions } from '../../application/audit/audit-trail';
import { uuidV5 } from '../../application/ids';
import type { ConsultationUplinkEnvelope } from '../../application/consultation/consultation-messages';
import { isExistingConsultationId } from '../../domain/consultation/legacy-id';
import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';
import { ForbiddenError } from '../../domain/shared/errors';
import { codeAndStatusOf } from '../errors/error-codes';
import { isKeptRequestId } from '../../application/audit/request-id';

/**
 * The audit entry of one consultation.* uplink message (README, "Access control, audit and erasure"): city systems
 * act on consultations over AMQP as much as over HTTP, and a search of the trail by a consultation's id that saw only
 * the HTTP steps looked complete while it missed the expert system's accept and report.
 *
 * One entry per message and final outcome, as an HTTP request has one per answer:
 *   applied / duplicate            -> 'allowed', status 200 (201 for a consultation.requested that created it), as
 *                                     the HTTP route answers; a redelivery the domain takes for a repeat records what
 *                                     its earlier deliveries did not store (a message whose entry was lost in a crash,
 *                                     or a patient's entry that failed), and nothing they stored (uplinkAuditOnceId)
 *   ForbiddenError (dead letter)   -> 'denied', status 403, reason = its code (not_your_consultation,
 *                                     expert_not_offered): a party acting on a case it may not act on
 *   other permanent refusal        -> 'error', status = the error's (codeAndStatusOf, as HTTP answers it), reason = its code;
 *                                     also a message dead-lettered once its retries are used up (its last error,
 *                                     e.g. consultation_not_accepted 409, internal_error 500, handler_timeout 503)
 *   arrived with its attempts used up  -> 'error', 503, max_attempts_exceeded: dead-lettered without a handling, as
 *                                     the processes that took it before died or lost their connection holding it
 * Attempts that hand the message back (retry, later) are not recorded: only the outcome the message ends with.
 *
 * The fields, and why:
 *   subject    `system:<systemId>`, the subject the HTTP side records for the same system calling with its API key,
 *              so a search by user finds a system's HTTP and AMQP steps under one name. The systemId is the envelope's:
 *              with message security the hub has checked the signature against that system's key (hub-codec.ts), without
 *              it the broker's login let the sender in. One that may hold a CPR number (mayHoldCprDigits: a registered
 *              system's never does, a stranger's claim might) is kept out: subject 'anonymous', systemId null.
 *   role       'system' (as an API-key caller); systemId the sending system.
 *   action     'consultation.act', as every consultation step over HTTP.
 *   patientKey the pseudonymous key of the consultation's patient (ConsultationService.patientKeysOf: the keys its
 *              request recorded, else its attachments' patients), as an HTTP step on it is recorded: the patient's
 *              export (POST /patients/export) lists which system acted on their case. One entry per patient, alike
 *              but for the key (underPatients); null for a case with no patient of this hub, or no such case.
 *              Until 2026-12-06 always null, and the export lacked these steps.
 *   resource   the consultation id when it has the shape the trail keeps for one (a UUID or a legacy id, at most 64
 *              characters, none with CPR digits: isExistingConsultationId, as security.ts's resourceOf), else null.
 *   ip         '': an AMQP message has no peer address at the hub (the broker had the sender's connection).
 *   requestId  the envelope id (the contract makes it a UUID), the id the system logged and the dead letter shows; one
 *              that is not a request id the hub keeps (isKeptRequestId) is replaced by a fresh UUID.
 * Nothing from the payload but the consultation id: no texts, no expert id (it is a clinician's id at a system).
 */
export type UplinkAuditTrail = Readonly<{ record(entry: AuditEntry, options?: RecordOptions): Promise<void> }>;

/**
 * The id an uplink entry is stored under once (AuditTrail's RecordOptions), so a message that comes again records
 * nothing its earlier delivery stored: one handed back because another patient's entry could not be stored, or one
 * whose entries were stored before its hub died unsettled. From what is alike in each delivery: the sender, the
 * envelope id, the consultation, the patient, and whether it was handled (its outcome, applied or a duplicate, refused
 * or timed out, is its first delivery's: a redelivery of an applied step is a duplicate) or arrived with its attempts
 * used up (a final outcome of its own). None for an envelope id the hub did not keep (a fresh request id stands for it).
 */
export const uplinkAuditOnceId = (envelope: ConsultationUplinkEnvelope, entry: AuditEntry, verdict: UplinkVerdict): string | undefined =>
  entry.requestId === envelope.id
    ? uuidV5(`audit-once/consultation.act/${verdict.kind === 'exhausted' ? 'exhausted' : 'handled'}/${JSON.stringify([entry.subject, entry.requestId, entry.resource, entry.patientKey])}`)
    : undefined;

/**
 * What became of a consultation message, finally: handled, refused with an error, or its handling still not done when
 * its last attempt's time was up (no error to map: recorded as `handler_timeout`, 503, the hub's failure to answer).
 */
export type UplinkVerdict =
  | Readonly<{ kind: 'handled'; outcome: 'applied' | 'duplicate' }>
  | Readonly<{ kind: 'refused'; error: unknown }>
  | Readonly<{ kind: 'timed_out' }>
  | Readonly<{ kind: 'exhausted' }>;

/** The reason and status of a message dead-lettered because its last attempt timed out. */
export const HANDLER_TIMEOUT = { reason: 'handler_timeout', status: 503 } as const;

/**
 * The reason and status of a message that arrived with its attempts used up (the processes that took it before died
 * or lost their connection before settling it), dead-lettered without a handling: the hub's failure, as a timeout is.
 * Whether one of those attempts applied the step is not known here; the consultation's own history says.
 */
export const MAX_ATTEMPTS_EXCEEDED = { reason: 'max_attempts_exceeded', status: 503 } as const;

const MAX_RESOURCE_CHARS = 64;

/**
 * The entries of one message's outcome: its entry (uplinkAuditEntry) under each of the consultation's patients
 * (`patientKeys`), alike but for the key, or as it is when the case has none.
 */
export const underPatients = (entry: AuditEntry, patientKeys: readonly string[]): AuditEntry[] =>
  patientKeys.length === 0 ? [entry] : [...new Set(patientKeys)].map((patientKey) => ({ ...entry, patientKey }));

export const uplinkAuditEntry = (envelope: ConsultationUplinkEnvelope, verdict: UplinkVerdict, at: string, newId: () => string = randomUUID): AuditEntry => {
  const systemId = mayHoldCprDigits(envelope.systemId) ? null : envelope.systemId;
  const consultationId = envelope.payload.consultationId;
  const base = {
    at,
    subject: systemId === null ? 'anonymous' : `system:${systemId}`,
    role: 'system',
    systemId,
    action: 'consultation.act',
    patientKey: null,
    resource: typeof consultationId === 'string' && consultationId.length <= MAX_RESOURCE_CHARS && isExistingConsultationId(consultationId) ? consultationId : null,
    ip: '',
    requestId: isKeptRequestId(envelope.id) ? envelope.id : newId(),
  };
  if (verdict.kind === 'handled') {
    const created = envelope.type === 'consultation.requested' && verdict.outcome === 'applied';
    return { ...base, outcome: 'allowed', status: created ? 201 : 200, reason: null };
  }
  if (verdict.kind === 'timed_out') return { ...base, outcome: 'error', ...HANDLER_TIMEOUT };
  if (verdict.kind === 'exhausted') return { ...base, outcome: 'error', ...MAX_ATTEMPTS_EXCEEDED };
  const { status, code } = codeAndStatusOf(verdict.error);
  const outcome: AuditOutcome = verdict.error instanceof ForbiddenError ? 'denied' : 'error';
  return { ...base, outcome, status, reason: code };
};
