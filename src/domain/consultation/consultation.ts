import { DateTime } from 'luxon';
import { assertNever, type Decider, type DomainEvent } from '../shared/decider';
import { INVISIBLE_TEXT_MESSAGE, holdsControlCharacter, holdsOneLineControl, longerThan, showsNothing } from '../shared/text-limits';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../shared/errors';

/**
 * Consultation: one cross-area teleconsultation (the paper's second scenario), one stream per consultation
 * (`consultation-<consultationId>`; the id is a UUID chosen by the applicant, never patient data).
 *
 * Life
 *   requested+offered(0) -> declined | expired -> offered(1) ... -> unassigned (no candidate left)
 *                        -> accepted -> reported -> (resent)* -> acknowledged
 *   cancelled by the applicant at any point before a report is issued.
 *
 * Commands carry `now` (ISO-8601 with offset) and who acts (`bySystemId`):
 * - RequestConsultation: records ConsultationRequested and offers the case to the first candidate in the same
 *   decision. The same request again (same applicant, clinician, texts, candidates in order, attachments and
 *   deadlineSeconds; repeatsRecordedRequest) -> no events; another request under the same id -> ConflictError
 *   'consultation_id_reused', which names deadlineSeconds (path and stored value) when the deadline is all that
 *   differs. Whether the candidates are known, active experts is checked by the application against the
 *   directory (the decider has no directory).
 * - Accept / Decline / IssueReport: by the offered expert (`expertId`), sent by that expert's home system
 *   (`bySystemId` = the part of the expert id before ':'), else ForbiddenError 'not_your_consultation'. An
 *   expert who was never offered the case -> ForbiddenError 'expert_not_offered'.
 *   Accept after the offer's expiresAt -> ConflictError 'offer_expired' (the Deadlines runner then expires it),
 *   unless the open offer's accept was sent in time (`sentAt`, see sentInTime). A step by an expert whose offer
 *   expired -> 'offer_expired', even when the case was unassigned or cancelled after.
 *   Decline -> ConsultationDeclined and, in the same decision, the next candidate's ConsultationOffered, or
 *   ConsultationUnassigned when none is left.
 * - ExpireOffer {offerIndex}: only the open offer with that index, once due; anything else (a stale timer, an
 *   offer already answered, not yet due) -> no events, so timers may fire twice or late.
 * - WithdrawOffer {expertId, offerIndex, reason}: the hub takes an open offer back from its expert (reason
 *   'expert_retired': the expert left the directory; the RetiredExpertOffers reactor sends it) ->
 *   ConsultationOfferWithdrawn and, in the same decision, the next candidate's ConsultationOffered, or
 *   ConsultationUnassigned when none is left, as after a decline. Only the open offer with that index to that
 *   expert; anything else (a repeat, a stale or answered offer, a closed or unknown case) -> no events, never an
 *   error, so the reactor may replay. A later step of that expert on the withdrawn offer -> ConflictError
 *   'expert_retired'.
 * - IssueReport: only by the accepted expert; the same report again -> no events; another one ->
 *   ConflictError 'report_already_issued'.
 * - ResendReport: an unacknowledged report is re-sent once `nextResendAt` has passed, at most
 *   `reportResend.maxAttempts` times (policy recorded with the request); otherwise no events.
 * - AcknowledgeReport / CancelConsultation: by the applicant system only ('not_your_consultation').
 *   Cancel after a report -> ConflictError 'report_already_issued'; acknowledge before one ->
 *   ConflictError 'report_not_issued'. Repeats of either -> no events.
 * - Any step on a cancelled / unassigned consultation -> ConflictError 'consultation_cancelled' /
 *   'consultation_unassigned', except a repeat of the expert's accept or decline taken before (no events); on an
 *   unknown one -> NotFoundError 'consultation_not_found'.
 *
 * - EraseConsultationContent: the texts about the patient (question, summary, report, reasons) are erased by
 *   crypto-shredding (the application deletes the consultation's data key); ConsultationContentErased records
 *   it, once (a repeat -> no events). From then on no new text is recorded: a report or a repeated request ->
 *   NotFoundError 'consultation_erased', a decline's or cancel's reason is dropped (''), and the report is no
 *   longer re-sent (nextResendAt null). The rest of the case (offers, accept, cancel, acknowledge) goes on.
 *
 * Personal data: the clinical question, summary, diagnosis, recommendations and the reasons are patient
 * information. In the store they are sealed under the consultation's own data key by the application
 * (application/consultation/sealed-consultations.ts); the decider sees and decides on them in clear. Never in
 * the stream name, in an error message, or anywhere a log line or metric label could pick them up.
 */
/**
 * A UUID (RFC 9562: version 1-8, the RFC variant; lower or upper case), as the AMQP contract has it: the id goes
 * into every consultation message, and one the downlink's own schema refuses stopped the consultation downlink
 * for good. A UUID cannot hold a CPR number or a name either (the id is in stream names and the audit trail).
 */
export const CONSULTATION_ID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$/;
export const MAX_CANDIDATES = 5;
/** Offer deadlines: one minute to thirty days. */
export const MIN_DEADLINE_SECONDS = 60;
export const MAX_DEADLINE_SECONDS = 30 * 24 * 3600;
export const MAX_ATTACHMENTS = 50;
const EXPERT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const OID_PATTERN = /^[0-2](\.(0|[1-9]\d*))+$/;

export type ReportResendPolicy = Readonly<{ intervalSeconds: number; maxAttempts: number }>;

export type ConsultationRequested = DomainEvent<
  'ConsultationRequested',
  {
    consultationId: string;
    applicantSystemId: string;
    /** The requesting clinician: an id or name of the clinician, no patient data. */
    applicantClinician: string;
    /** Expert ids in order of preference. */
    candidates: readonly string[];
    clinicalQuestion: string;
    summary: string;
    /** XDS document uniqueIds (OIDs). */
    attachments: readonly string[];
    /**
     * The pseudonymous keys of the attachments' patients (never a CPR number), as the hub knew them at the
     * request: erasing one of these patients erases the consultation's content. Absent in events of earlier builds.
     */
    patientKeys?: readonly string[];
    deadlineSeconds: number;
    reportResend: ReportResendPolicy;
    correlationId: string;
    requestedAt: string;
  }
>;
export type ConsultationOffered = DomainEvent<'ConsultationOffered', { consultationId: string; expertId: string; offerIndex: number; offeredAt: string; expiresAt: string }>;
export type ConsultationAccepted = DomainEvent<'ConsultationAccepted', { consultationId: string; expertId: string; offerIndex: number; acceptedAt: string }>;
export type ConsultationDeclined = DomainEvent<'ConsultationDeclined', { consultationId: string; expertId: string; offerIndex: number; reason: string; declinedAt: string }>;
export type ConsultationExpired = DomainEvent<'ConsultationExpired', { consultationId: string; expertId: string; offerIndex: number; expiredAt: string }>;
export type ConsultationUnassigned = DomainEvent<'ConsultationUnassigned', { consultationId: string; unassignedAt: string }>;
export type ReportIssued = DomainEvent<
  'ReportIssued',
  { consultationId: string; expertId: string; diagnosis: string; recommendations: string; issuedAt: string; nextResendAt: string | null }
>;
export type ReportResent = DomainEvent<'ReportResent', { consultationId: string; attempt: number; resentAt: string; nextResendAt: string | null }>;
export type ReportAcknowledged = DomainEvent<'ReportAcknowledged', { consultationId: string; acknowledgedAt: string }>;
export type ConsultationCancelled = DomainEvent<'ConsultationCancelled', { consultationId: string; reason: string; cancelledAt: string }>;
/**
 * Why the hub took an offer back: a code, never free text (no patient information can be in it). Only
 * 'expert_retired' so far: the expert left the directory while the offer was open.
 */
export type OfferWithdrawalReason = 'expert_retired';
export type ConsultationOfferWithdrawn = DomainEvent<
  'ConsultationOfferWithdrawn',
  { consultationId: string; expertId: string; offerIndex: number; reason: OfferWithdrawalReason; withdrawnAt: string }
>;
/** `cause`: 'patient_erased' (an attachment's patient was erased) or 'requested' (erased by id). */
export type ConsultationContentErased = DomainEvent<'ConsultationContentErased', { consultationId: string; cause: ContentErasureCause; erasedAt: string }>;
export type ContentErasureCause = 'patient_erased' | 'requested';

export type ConsultationEvent =
  | ConsultationRequested
  | ConsultationOffered
  | ConsultationAccepted
  | ConsultationDeclined
  | ConsultationExpired
  | ConsultationUnassigned
  | ReportIssued
  | ReportResent
  | ReportAcknowledged
  | ConsultationCancelled
  | ConsultationOfferWithdrawn
  | ConsultationContentErased;

export const CONSULTATION_EVENT_TYPES: readonly ConsultationEvent['type'][] = [
  'ConsultationRequested',
  'ConsultationOffered',
  'ConsultationAccepted',
  'ConsultationDeclined',
  'ConsultationExpired',
  'ConsultationUnassigned',
  'ReportIssued',
  'ReportResent',
  'ReportAcknowledged',
  'ConsultationCancelled',
  'ConsultationOfferWithdrawn',
  'ConsultationContentErased',
];
export const isConsultationEvent = (e: { type: string }): e is ConsultationEvent => (CONSULTATION_EVENT_TYPES as readonly string[]).includes(e.type);

type Base = Readonly<{ consultationId: string; now: string }>;
export type RequestConsultation = Base &
  Readonly<{
    type: 'RequestConsultation';
    applicantSystemId: string;
    applicantClinician: string;
    candidates: readonly string[];
    clinicalQuestion: string;
    summary: string;
    attachments: readonly string[];
    /** The attachments' patients' pseudonymous keys, found by the application (not compared for a repeat). */
    patientKeys?: readonly string[];
    deadlineSeconds: number;
    reportResend: ReportResendPolicy;
    correlationId: string;
  }>;
/**
 * `sentAt`: when the expert's system says it sent the accept (the signed uplink envelope's `time`; absent over
 * HTTP, which the hub handles as it arrives). An accept handled after the deadline still counts while the offer
 * is open if it was sent in time: see sentInTime.
 */
export type AcceptConsultation = Base & Readonly<{ type: 'AcceptConsultation'; expertId: string; bySystemId: string; sentAt?: string }>;
/**
 * Candidates that cannot be offered the case now (retired since the request, as the directory says): the next
 * offer passes them by. The offer would carry the clinical question to a system whose expert has left.
 */
type PassingBy = Readonly<{ unavailable?: readonly string[] }>;
export type DeclineConsultation = Base & PassingBy & Readonly<{ type: 'DeclineConsultation'; expertId: string; bySystemId: string; reason: string }>;
export type ExpireOffer = Base & PassingBy & Readonly<{ type: 'ExpireOffer'; offerIndex: number }>;
export type IssueReport = Base & Readonly<{ type: 'IssueReport'; expertId: string; bySystemId: string; diagnosis: string; recommendations: string }>;
export type ResendReport = Base & Readonly<{ type: 'ResendReport'; attempt: number }>;
export type AcknowledgeReport = Base & Readonly<{ type: 'AcknowledgeReport'; bySystemId: string }>;
export type CancelConsultation = Base & Readonly<{ type: 'CancelConsultation'; bySystemId: string; reason: string }>;
/** By the hub itself (no system acts): see WithdrawOffer in the header. */
export type WithdrawOffer = Base & PassingBy & Readonly<{ type: 'WithdrawOffer'; expertId: string; offerIndex: number; reason: OfferWithdrawalReason }>;
export type EraseConsultationContent = Base & Readonly<{ type: 'EraseConsultationContent'; cause: ContentErasureCause }>;
export type ConsultationCommand =
  | RequestConsultation
  | AcceptConsultation
  | DeclineConsultation
  | ExpireOffer
  | IssueReport
  | ResendReport
  | AcknowledgeReport
  | CancelConsultation
  | WithdrawOffer
  | EraseConsultationContent;

export type ConsultationStatus = 'offered' | 'accepted' | 'reported' | 'acknowledged' | 'unassigned' | 'cancelled';
export const CONSULTATION_STATUSES: readonly ConsultationStatus[] = ['offered', 'accepted', 'reported', 'acknowledged', 'unassigned', 'cancelled'];

/**
 * 'cancelled': the offer was open when the applicant cancelled the case. 'withdrawn': the hub took the open offer
 * back (its expert retired) and the case moved on.
 */
export type OfferOutcome = 'open' | 'accepted' | 'declined' | 'expired' | 'cancelled' | 'withdrawn';
export type Offer = Readonly<{ expertId: string; offerIndex: number; offeredAt: string; expiresAt: string; outcome: OfferOutcome }>;
export type Report = Readonly<{ expertId: string; diagnosis: string; recommendations: string; issuedAt: string; attempts: number; nextResendAt: string | null }>;

export type ConsultationState =
  | Readonly<{ status: 'none' }>
  | Readonly<{
      status: ConsultationStatus;
      request: ConsultationRequested['data'];
      offers: readonly Offer[];
      report: Report | null;
      /** When the content was erased (ConsultationContentErased); null while it exists. */
      contentErasedAt: string | null;
    }>;
type Known = Exclude<ConsultationState, { status: 'none' }>;

export const consultationStreamName = (consultationId: string): string => `consultation-${consultationId}`;

/** The home system of an expert id (`<homeSystemId>:<localExpertId>`). */
export const homeSystemOf = (expertId: string): string => expertId.slice(0, Math.max(0, expertId.indexOf(':')));

const clean = (s: string): string => s.normalize('NFC').trim();

/**
 * The longest texts, in code points as the message contract counts them (text-limits.ts), checked AFTER normalising (NFC can
 * make a text up to three times longer: 100,000 x U+FB2C became 300,000). Stored longer, a text made the hub's own
 * consultation message too large for the broker, which dropped the hub's connection at each try, and no
 * consultation message reached any system again.
 */
export const CONSULTATION_TEXT_LIMITS = {
  applicantClinician: 200,
  clinicalQuestion: 10_000,
  summary: 100_000,
  diagnosis: 10_000,
  recommendations: 100_000,
  reason: 500,
} as const;

/** A reason cut to its limit in code points, as every limit counts (text-limits.ts), never inside a surrogate pair. */
const cutReason = (s: string): string => {
  const max = CONSULTATION_TEXT_LIMITS.reason;
  if (!longerThan(s, max)) return s;
  return Array.from(s).slice(0, max).join('');
};

const tooLong = (problems: { path: string; message: string }[], path: keyof typeof CONSULTATION_TEXT_LIMITS, text: string): void => {
  const max = CONSULTATION_TEXT_LIMITS[path];
  if (longerThan(text, max)) problems.push({ path, message: `at most ${max} characters (after Unicode normalisation, NFC)` });
  // Each is read where it is shown (text-limits.ts): one of only zero-width or other invisible characters is refused.
  if (showsNothing(text)) problems.push({ path, message: INVISIBLE_TEXT_MESSAGE });
  // The clinician's name is one line; the clinical texts may hold tab and line breaks.
  if (path === 'applicantClinician' ? holdsOneLineControl(text) : holdsControlCharacter(text)) {
    problems.push({ path, message: path === 'applicantClinician' ? 'holds a control character or a line break' : 'holds a control character (only tab, line feed and carriage return are taken)' });
  }
};

/**
 * A decline's or a cancellation's reason: cut at its limit, but refused with a control character, or when it holds
 * something and shows nothing, as the other texts (an empty one says there is none).
 */
const checkedReason = (reason: string): string => {
  if (holdsControlCharacter(reason)) {
    throw new ValidationError('invalid_consultation', 'the reason holds a control character (only tab, line feed and carriage return are taken)', [{ path: 'reason', message: 'holds a control character' }]);
  }
  if (showsNothing(reason)) throw new ValidationError('invalid_consultation', `the reason ${INVISIBLE_TEXT_MESSAGE}`, [{ path: 'reason', message: INVISIBLE_TEXT_MESSAGE }]);
  return cutReason(clean(reason));
};
const plusSeconds = (iso: string, seconds: number): string =>
  DateTime.fromISO(iso, { setZone: true }).plus({ seconds }).toUTC().toISO({ suppressMilliseconds: false })!;
const atOrAfter = (now: string, due: string): boolean => DateTime.fromISO(now).toMillis() >= DateTime.fromISO(due).toMillis();

/** How far a sender's clock may be off the hub's when its message time is weighed (seconds). */
export const SENDER_CLOCK_TOLERANCE_SECONDS = 60;

/**
 * An accept the hub handles after the offer's deadline (the hub was down, or the uplink had a backlog) still
 * counts when its sender says it was sent before the deadline, and that claim is plausible: not before the offer
 * was made nor after the hub's now, each give or take SENDER_CLOCK_TOLERANCE_SECONDS. The claim is signed by the
 * expert's system; it is only weighed while the offer is still open (not expired by the Deadlines runner).
 */
const sentInTime = (sentAt: string | undefined, offer: Offer, now: string): boolean => {
  if (sentAt === undefined) return false;
  const sent = DateTime.fromISO(sentAt).toMillis();
  const tolerance = SENDER_CLOCK_TOLERANCE_SECONDS * 1000;
  return (
    Number.isFinite(sent) &&
    sent < DateTime.fromISO(offer.expiresAt).toMillis() &&
    sent >= DateTime.fromISO(offer.offeredAt).toMillis() - tolerance &&
    sent <= DateTime.fromISO(now).toMillis() + tolerance
  );
};

const validateRequest = (c: RequestConsultation): RequestConsultation => {
  const problems: { path: string; message: string }[] = [];
  if (!CONSULTATION_ID_PATTERN.test(c.consultationId)) problems.push({ path: 'consultationId', message: 'a UUID' });
  if (c.candidates.length < 1 || c.candidates.length > MAX_CANDIDATES) problems.push({ path: 'candidates', message: `1 to ${MAX_CANDIDATES} expert ids` });
  c.candidates.forEach((id, i) => {
    if (!EXPERT_ID_PATTERN.test(id)) problems.push({ path: `candidates.${i}`, message: 'an expert id <homeSystemId>:<localExpertId>' });
  });
  if (new Set(c.candidates).size !== c.candidates.length) problems.push({ path: 'candidates', message: 'an expert appears twice' });
  // Across areas only: a system's own expert would give its own clinicians the attached documents and all of
  // their patients' readings (clinicians read what is attached to consultations with their system's experts).
  c.candidates.forEach((id, i) => {
    if (EXPERT_ID_PATTERN.test(id) && homeSystemOf(id) === c.applicantSystemId) problems.push({ path: `candidates.${i}`, message: "must be an expert of another system, not the applicant's own (a consultation goes across areas)" });
  });
  if (clean(c.applicantClinician).length === 0) problems.push({ path: 'applicantClinician', message: 'must not be blank' });
  if (clean(c.clinicalQuestion).length === 0) problems.push({ path: 'clinicalQuestion', message: 'must not be blank' });
  tooLong(problems, 'applicantClinician', clean(c.applicantClinician));
  tooLong(problems, 'clinicalQuestion', clean(c.clinicalQuestion));
  tooLong(problems, 'summary', clean(c.summary));
  if (c.attachments.length > MAX_ATTACHMENTS || c.attachments.some((a) => !OID_PATTERN.test(a) || a.length > 64)) {
    problems.push({ path: 'attachments', message: `at most ${MAX_ATTACHMENTS} XDS document uniqueIds (OIDs)` });
  }
  if (!Number.isInteger(c.deadlineSeconds) || c.deadlineSeconds < MIN_DEADLINE_SECONDS || c.deadlineSeconds > MAX_DEADLINE_SECONDS) {
    problems.push({ path: 'deadlineSeconds', message: `a whole number of seconds, ${MIN_DEADLINE_SECONDS}..${MAX_DEADLINE_SECONDS}` });
  }
  const r = c.reportResend;
  if (!Number.isInteger(r.intervalSeconds) || r.intervalSeconds < 1 || !Number.isInteger(r.maxAttempts) || r.maxAttempts < 0 || r.maxAttempts > 100) {
    problems.push({ path: 'reportResend', message: 'intervalSeconds >= 1 and maxAttempts 0..100, whole numbers' });
  }
  // The message names fields only: the values may be patient information.
  if (problems.length > 0) throw new ValidationError('invalid_consultation', `the consultation request is not valid: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, problems);
  return {
    ...c,
    applicantClinician: clean(c.applicantClinician),
    clinicalQuestion: clean(c.clinicalQuestion),
    summary: clean(c.summary),
  };
};

/** What of a request a repeat must match: what the applicant sent, texts compared as they are stored (normalised). */
export type RequestContent = Pick<RequestConsultation, 'applicantSystemId' | 'applicantClinician' | 'candidates' | 'clinicalQuestion' | 'summary' | 'attachments' | 'deadlineSeconds'>;

/**
 * Whether `b` is the request recorded as `a`, the offer deadline aside (differingDeadline). The hub's own policy
 * (reportResend), the correlation id (a retry may come with a new one) and the patients' keys (read from the registry)
 * are not what the applicant sent, and are not compared.
 */
const sameRequest = (a: ConsultationRequested['data'], b: RequestContent): boolean =>
  a.applicantSystemId === b.applicantSystemId &&
  a.applicantClinician === clean(b.applicantClinician) &&
  a.clinicalQuestion === clean(b.clinicalQuestion) &&
  a.summary === clean(b.summary) &&
  a.candidates.length === b.candidates.length &&
  a.candidates.every((x, i) => x === b.candidates[i]) &&
  a.attachments.length === b.attachments.length &&
  a.attachments.every((x, i) => x === b.attachments[i]);

/**
 * Whether `request` repeats the request recorded in `state`, deadline included: the decider records nothing for it.
 * The application answers such a repeat as the first request was, without checking it against the directory again.
 */
export const repeatsRecordedRequest = (state: ConsultationState, request: RequestContent): boolean =>
  state.status !== 'none' && state.contentErasedAt === null && sameRequest(state.request, request) && state.request.deadlineSeconds === request.deadlineSeconds;

/** The offer to the next candidate after `index`, or the end of the road. */
const nextStep = (state: Known, after: number, now: string, unavailable: readonly string[] = []): ConsultationEvent => {
  const { consultationId, candidates, deadlineSeconds } = state.request;
  let index = after + 1;
  while (candidates[index] !== undefined && unavailable.includes(candidates[index]!)) index++;
  const expertId = candidates[index];
  if (expertId === undefined) return { type: 'ConsultationUnassigned', data: { consultationId, unassignedAt: now } };
  return { type: 'ConsultationOffered', data: { consultationId, expertId, offerIndex: index, offeredAt: now, expiresAt: plusSeconds(now, deadlineSeconds) } };
};

const closed = (state: Known): void => {
  if (state.status === 'cancelled') throw new ConflictError('consultation_cancelled', 'the consultation was cancelled by the applicant');
  if (state.status === 'unassigned') throw new ConflictError('consultation_unassigned', 'no candidate took the consultation; it is closed');
};

const known = (state: ConsultationState): Known => {
  if (state.status === 'none') throw new NotFoundError('consultation_not_found', 'no consultation has this id');
  return state;
};

/**
 * Checks common to the expert's steps; returns the expert's latest offer. `taken`: the outcome this step gives the
 * offer (accept: 'accepted', decline: 'declined'). An offer that has it already is returned before the case's later
 * course is weighed: the step was taken, and its repeat (a redelivery after the hub died between commit and settle, a
 * client's resend after a lost outcome) changes nothing, also once the case was cancelled or went unassigned (a
 * decline of the last candidate unassigns it in the same decision). Refused, the repeat of an applied step was
 * dead-lettered and its sender told `consultation.refused`.
 */
const expertStep = (state: Known, expertId: string, bySystemId: string, taken?: OfferOutcome): Offer => {
  if (homeSystemOf(expertId) !== bySystemId) throw new ForbiddenError('not_your_consultation', "only the expert's home system acts for the expert");
  const offer = [...state.offers].reverse().find((o) => o.expertId === expertId);
  if (!offer) throw new ForbiddenError('expert_not_offered', 'this expert was not offered the consultation');
  if (taken !== undefined && offer.outcome === taken) return offer;
  // The expert's own offer ran out: that is what the expert needs to hear, whatever became of the case after
  // (with one candidate it was unassigned at the same moment).
  if (offer.outcome === 'expired' || offer.outcome === 'withdrawn') lostOffer(offer);
  closed(state);
  return offer;
};

const lostOffer = (offer: Offer): never => {
  if (offer.outcome === 'withdrawn') throw new ConflictError('expert_retired', 'the expert retired from the directory and the offer was withdrawn; the case moved on (to the next candidate, or unassigned when none was left)');
  if (offer.outcome === 'declined') throw new ConflictError('offer_declined', 'the expert declined this consultation; it moved on (to the next candidate, or unassigned when none was left)');
  throw new ConflictError('offer_expired', 'the offer to this expert expired; the case moved on (to the next candidate, or unassigned when none was left)');
};

const erasedContent = (): NotFoundError =>
  new NotFoundError('consultation_erased', "the consultation's content was erased: no text about its patient is recorded any more");

const applicantStep = (state: Known, bySystemId: string): void => {
  if (state.request.applicantSystemId !== bySystemId) throw new ForbiddenError('not_your_consultation', 'only the applicant system acts for the applicant');
};

const decide = (command: ConsultationCommand, state: ConsultationState): readonly ConsultationEvent[] => {
  const { consultationId, now } = command;
  switch (command.type) {
    case 'RequestConsultation': {
      const c = validateRequest(command);
      if (state.status !== 'none') {
        if (state.contentErasedAt !== null) throw erasedContent();
        if (!sameRequest(state.request, c)) throw new ConflictError('consultation_id_reused', 'another consultation was already requested with this id');
        // The same applicant sent the same content: the deadline is all that differs, and saying so tells it nothing it
        // did not send. A repeat answered as the first would leave the caller believing its own deadline was taken.
        if (state.request.deadlineSeconds !== c.deadlineSeconds) {
          throw new ConflictError(
            'consultation_id_reused',
            `this consultation was already requested with another deadline (deadlineSeconds ${state.request.deadlineSeconds}): a retry sends the same, a new request a new consultationId`,
            [{ path: 'deadlineSeconds', message: `differs from the stored request's (${state.request.deadlineSeconds})` }],
          );
        }
        return [];
      }
      const requested: ConsultationRequested = {
        type: 'ConsultationRequested',
        data: {
          consultationId,
          applicantSystemId: c.applicantSystemId,
          applicantClinician: c.applicantClinician,
          candidates: [...c.candidates],
          clinicalQuestion: c.clinicalQuestion,
          summary: c.summary,
          attachments: [...c.attachments],
          ...(c.patientKeys !== undefined ? { patientKeys: [...c.patientKeys] } : {}),
          deadlineSeconds: c.deadlineSeconds,
          reportResend: { intervalSeconds: c.reportResend.intervalSeconds, maxAttempts: c.reportResend.maxAttempts },
          correlationId: c.correlationId,
          requestedAt: now,
        },
      };
      const first = c.candidates[0]!;
      return [requested, { type: 'ConsultationOffered', data: { consultationId, expertId: first, offerIndex: 0, offeredAt: now, expiresAt: plusSeconds(now, c.deadlineSeconds) } }];
    }
    case 'AcceptConsultation': {
      const s = known(state);
      const offer = expertStep(s, command.expertId, command.bySystemId, 'accepted');
      if (offer.outcome === 'accepted') return [];
      if (offer.outcome !== 'open') return lostOffer(offer);
      if (atOrAfter(now, offer.expiresAt) && !sentInTime(command.sentAt, offer, now)) throw new ConflictError('offer_expired', 'the offer expired before it was accepted');
      return [{ type: 'ConsultationAccepted', data: { consultationId, expertId: offer.expertId, offerIndex: offer.offerIndex, acceptedAt: now } }];
    }
    case 'DeclineConsultation': {
      const s = known(state);
      const offer = expertStep(s, command.expertId, command.bySystemId, 'declined');
      if (offer.outcome === 'declined') return [];
      if (offer.outcome === 'accepted') throw new ConflictError('consultation_already_accepted', 'the expert accepted this consultation already');
      if (offer.outcome === 'expired') return lostOffer(offer);
      const reason = s.contentErasedAt === null ? checkedReason(command.reason) : '';
      return [{ type: 'ConsultationDeclined', data: { consultationId, expertId: offer.expertId, offerIndex: offer.offerIndex, reason, declinedAt: now } }, nextStep(s, offer.offerIndex, now, command.unavailable)];
    }
    case 'ExpireOffer': {
      if (state.status !== 'offered') return [];
      const offer = state.offers[state.offers.length - 1];
      if (!offer || offer.offerIndex !== command.offerIndex || offer.outcome !== 'open' || !atOrAfter(now, offer.expiresAt)) return [];
      return [{ type: 'ConsultationExpired', data: { consultationId, expertId: offer.expertId, offerIndex: offer.offerIndex, expiredAt: now } }, nextStep(state, offer.offerIndex, now, command.unavailable)];
    }
    case 'WithdrawOffer': {
      if (state.status !== 'offered') return [];
      const offer = state.offers[state.offers.length - 1];
      if (!offer || offer.offerIndex !== command.offerIndex || offer.expertId !== command.expertId || offer.outcome !== 'open') return [];
      return [
        { type: 'ConsultationOfferWithdrawn', data: { consultationId, expertId: offer.expertId, offerIndex: offer.offerIndex, reason: command.reason, withdrawnAt: now } },
        nextStep(state, offer.offerIndex, now, command.unavailable),
      ];
    }
    case 'IssueReport': {
      const s = known(state);
      const offer = expertStep(s, command.expertId, command.bySystemId);
      if (offer.outcome === 'declined' || offer.outcome === 'expired' || offer.outcome === 'withdrawn') return lostOffer(offer);
      if (offer.outcome === 'open') throw new ConflictError('consultation_not_accepted', 'the expert must accept the consultation before reporting');
      if (s.contentErasedAt !== null) throw erasedContent();
      const diagnosis = clean(command.diagnosis);
      const recommendations = clean(command.recommendations);
      if (diagnosis.length === 0) throw new ValidationError('invalid_report', 'the report needs a diagnosis', [{ path: 'diagnosis', message: 'must not be blank' }]);
      const long: { path: string; message: string }[] = [];
      tooLong(long, 'diagnosis', diagnosis);
      tooLong(long, 'recommendations', recommendations);
      if (long.length > 0) throw new ValidationError('invalid_report', `the report is not valid: ${long.map((p) => `${p.path} ${p.message}`).join('; ')}`, long);
      if (s.report) {
        if (s.report.diagnosis === diagnosis && s.report.recommendations === recommendations) return [];
        throw new ConflictError('report_already_issued', 'a report was already issued for this consultation');
      }
      const { intervalSeconds, maxAttempts } = s.request.reportResend;
      return [
        {
          type: 'ReportIssued',
          data: { consultationId, expertId: offer.expertId, diagnosis, recommendations, issuedAt: now, nextResendAt: maxAttempts > 0 ? plusSeconds(now, intervalSeconds) : null },
        },
      ];
    }
    case 'ResendReport': {
      if (state.status !== 'reported' || !state.report) return [];
      const { report } = state;
      if (report.nextResendAt === null || command.attempt !== report.attempts + 1 || !atOrAfter(now, report.nextResendAt)) return [];
      const { intervalSeconds, maxAttempts } = state.request.reportResend;
      const attempt = report.attempts + 1;
      return [{ type: 'ReportResent', data: { consultationId, attempt, resentAt: now, nextResendAt: attempt < maxAttempts ? plusSeconds(now, intervalSeconds) : null } }];
    }
    case 'AcknowledgeReport': {
      const s = known(state);
      applicantStep(s, command.bySystemId);
      if (s.status === 'acknowledged') return [];
      closed(s);
      if (s.status !== 'reported') throw new ConflictError('report_not_issued', 'no report was issued yet');
      return [{ type: 'ReportAcknowledged', data: { consultationId, acknowledgedAt: now } }];
    }
    case 'CancelConsultation': {
      const s = known(state);
      applicantStep(s, command.bySystemId);
      if (s.status === 'cancelled') return [];
      if (s.status === 'unassigned') closed(s);
      if (s.report) throw new ConflictError('report_already_issued', 'a report was issued; the consultation can no longer be cancelled');
      return [{ type: 'ConsultationCancelled', data: { consultationId, reason: s.contentErasedAt === null ? checkedReason(command.reason) : '', cancelledAt: now } }];
    }
    case 'EraseConsultationContent': {
      const s = known(state);
      if (s.contentErasedAt !== null) return [];
      return [{ type: 'ConsultationContentErased', data: { consultationId, cause: command.cause, erasedAt: now } }];
    }
    default:
      return assertNever(command);
  }
};

const settle = (offers: readonly Offer[], offerIndex: number, outcome: OfferOutcome): readonly Offer[] =>
  offers.map((o) => (o.offerIndex === offerIndex ? { ...o, outcome } : o));

const evolve = (state: ConsultationState, event: ConsultationEvent): ConsultationState => {
  if (event.type === 'ConsultationRequested') {
    return state.status === 'none' ? { status: 'offered', request: event.data, offers: [], report: null, contentErasedAt: null } : state;
  }
  if (state.status === 'none') return state;
  switch (event.type) {
    case 'ConsultationOffered': {
      const { expertId, offerIndex, offeredAt, expiresAt } = event.data;
      return { ...state, status: 'offered', offers: [...state.offers, { expertId, offerIndex, offeredAt, expiresAt, outcome: 'open' }] };
    }
    case 'ConsultationAccepted':
      return { ...state, status: 'accepted', offers: settle(state.offers, event.data.offerIndex, 'accepted') };
    case 'ConsultationDeclined':
      return { ...state, offers: settle(state.offers, event.data.offerIndex, 'declined') };
    case 'ConsultationExpired':
      return { ...state, offers: settle(state.offers, event.data.offerIndex, 'expired') };
    case 'ConsultationOfferWithdrawn':
      return { ...state, offers: settle(state.offers, event.data.offerIndex, 'withdrawn') };
    case 'ConsultationUnassigned':
      return { ...state, status: 'unassigned' };
    case 'ReportIssued': {
      const { expertId, diagnosis, recommendations, issuedAt, nextResendAt } = event.data;
      return { ...state, status: 'reported', report: { expertId, diagnosis, recommendations, issuedAt, attempts: 0, nextResendAt } };
    }
    case 'ReportResent':
      return state.report ? { ...state, report: { ...state.report, attempts: event.data.attempt, nextResendAt: event.data.nextResendAt } } : state;
    case 'ReportAcknowledged':
      return { ...state, status: 'acknowledged', report: state.report && { ...state.report, nextResendAt: null } };
    case 'ConsultationCancelled':
      return { ...state, status: 'cancelled', offers: state.offers.map((o) => (o.outcome === 'open' ? { ...o, outcome: 'cancelled' } : o)) };
    case 'ConsultationContentErased':
      // The report is not re-sent any more: its text is gone.
      return { ...state, contentErasedAt: event.data.erasedAt, report: state.report && { ...state.report, nextResendAt: null } };
    default:
      return assertNever(event);
  }
};

export const consultationDecider: Decider<ConsultationCommand, ConsultationEvent, ConsultationState> = {
  decide,
  evolve,
  initialState: () => ({ status: 'none' }),
};
