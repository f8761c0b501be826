import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { atMostAsSent } from '../validation/as-sent-length';
import { REFUSES_CPR_NUMBER, withoutCprNumber } from '../validation/no-cpr-text';
import { HTTP_DOC, shown } from '../validation/shown-text';
import { NOT_BLANK_PATTERN } from '../../domain/shared/text-limits';
import { ContentErasureIncompleteError } from '../../application/consultation/consultation-erasure';
import { consultationParties, consultationReaders, type ConsultationView } from '../../application/consultation/consultation-projection';
import { MAX_PAGE_SIZE, type ConsultationService } from '../../application/consultation/consultation-service';
import {
  CONSULTATION_ID_PATTERN,
  CONSULTATION_TEXT_LIMITS,
  CONSULTATION_STATUSES,
  MAX_ATTACHMENTS,
  MAX_CANDIDATES,
  MAX_DEADLINE_SECONDS,
  MIN_DEADLINE_SECONDS,
  homeSystemOf,
} from '../../domain/consultation/consultation';
import { loggableId } from '../../domain/monitoring/cpr-like';
import { ForbiddenError, NotFoundError } from '../../domain/shared/errors';
import { logConsultationErasure } from '../backup/erasure-log-line';
import { isExistingConsultationId, LEGACY_CONSULTATION_ID_PATTERN, LEGACY_CONSULTATION_ID_RULE } from '../../domain/consultation/legacy-id';
import { SYSTEM_ID_PATTERN } from '../../domain/directory/connected-system';
import { type AnswerOf, ConsultationResponse, ConsultationTraceResponse, ConsultationWithAttachmentsResponse } from './response-schemas';
import { idempotencyKey, parseInput } from './schemas';
import { auditListedUnderPatients, auditUnderPatients } from './audit-patients';

/**
 * Cross-area teleconsultation over HTTP.
 *
 *   registerConsultationRoutes(app, { consultations })   // call on the app (or inside app.register)
 *
 *   POST /consultations { consultationId?, applicantSystemId, applicantClinician, candidates[1..5],
 *                         clinicalQuestion, summary, attachments?, deadlineSeconds? }
 *        -> 201 Consultation (Location: /consultations/{id}); the same again -> 200 (even after a candidate
 *           retired); the same id with other content -> 409 consultation_id_reused (naming deadlineSeconds when
 *           the deadline is all that differs)
 *   GET  /consultations/{id}                           -> 200 Consultation with attachmentStatus (each attachment's
 *        status and replacement, from the registry at this read) | 404 consultation_not_found (also for a caller
 *        with no part in it: security.ts)
 *   GET  /consultations/{id}/trace                     -> 200 where it is, for operators: ids, status, offers, times;
 *        no texts, attachments or clinician (README, "Tracing a consultation or a message")
 *   GET  /consultations?system=&role=applicant|expert|any&state=&limit=&cursor=
 *        -> 200 { items, nextCursor } (newest first; `state` is one of CONSULTATION_STATUSES; only those the system
 *           may read, consultationReaders: not a case cancelled while its expert only held the offer)
 *   POST /consultations/{id}/accept      { expertId, actionId? }
 *   POST /consultations/{id}/decline     { expertId, reason?, actionId? }
 *   POST /consultations/{id}/report      { expertId, diagnosis, recommendations?, actionId? }
 *   POST /consultations/{id}/acknowledge { systemId, actionId? }
 *   POST /consultations/{id}/cancel      { systemId, reason?, actionId? }
 *        -> 200 Consultation; refusals as problem+json with the decider's code (403/404/409/422), but 404
 *           consultation_not_found for a system with no part in the consultation (asStranger)
 *   GET  /stats/consultations-per-month?from=YYYY-MM&to=YYYY-MM -> 200 { items: [{ month, requested }] }
 *        (UTC calendar months, bounds inclusive, months without requests as 0; the paper's Figure 5)
 *
 * The body says who acts: the expert (acting through its home system) or the system. Access control, i.e.
 * proving the caller is that system, is a later issue. `actionId`, like `consultationId`, makes a retry safe.
 * The request id becomes the consultation's correlation id.
 */
export type ConsultationRouteDependencies = Readonly<{ consultations: ConsultationService }>;

/**
 * The body limit of POST /consultations and /report, whatever RTS_BODY_LIMIT_BYTES says (when that is lower):
 * their texts may reach the lengths the schema allows (summary and recommendations 100,000 characters, counted
 * in code points) in any spelling JSON allows, up to 12 bytes a code point (an escaped surrogate pair,
 * \uD83D\uDE00), plus 64 KiB for the rest. With the hub's 16 KiB default, a 20,000-character summary was refused 413.
 */
export const CONSULTATION_BODY_LIMIT_BYTES = 12 * (CONSULTATION_TEXT_LIMITS.applicantClinician + CONSULTATION_TEXT_LIMITS.clinicalQuestion + CONSULTATION_TEXT_LIMITS.summary) + 64 * 1024;

const systemId = z.string().regex(SYSTEM_ID_PATTERN, 'a system id: 2-32 characters of a-z 0-9 -, starting with a letter or digit');
const expertId = z.string().max(100).regex(/^[a-z0-9][a-z0-9-]{1,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an expert id: <homeSystemId>:<localExpertId>');
const consultationId = z.string().regex(CONSULTATION_ID_PATTERN, 'a UUID');
/**
 * A text the hub trims and then needs one character of: one with a character other than white space, as the documents
 * say it. Its length is counted as sent, white space around it included, as the document's maxLength counts it
 * (atMostAsSent): counted after the trim, a padded text the hub took was one a generated client refused.
 */
const notBlank = (max: number) => atMostAsSent(max).trim().min(1).meta({ pattern: NOT_BLANK_PATTERN });
/** Of an existing consultation: also the id of one recorded before ids were UUIDs (legacy-id.ts), never a CPR number. */
const existingConsultationId = z
  .string()
  .regex(LEGACY_CONSULTATION_ID_PATTERN, { message: LEGACY_CONSULTATION_ID_RULE, abort: true })
  .refine(isExistingConsultationId, LEGACY_CONSULTATION_ID_RULE)
  // The refine as the documents say it: of that pattern, a UUID (which the check never reads as a CPR number) or an
  // id holding no CPR number is exactly one holding none.
  .meta({ [REFUSES_CPR_NUMBER]: true })
  .describe(LEGACY_CONSULTATION_ID_RULE);
const month = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'a month: YYYY-MM');

export const ConsultationBody = z.strictObject({
  consultationId: consultationId.optional().describe('Client-chosen id (a UUID); a repeat with the same id and content (deadlineSeconds included) is stored once'),
  applicantSystemId: systemId,
  applicantClinician: withoutCprNumber(shown(notBlank(200), 'clinicians', HTTP_DOC)),
  candidates: z.array(expertId).min(1).max(MAX_CANDIDATES).describe('Expert ids in order of preference'),
  clinicalQuestion: shown(notBlank(10_000), 'clinicians', HTTP_DOC),
  summary: shown(z.string().max(100_000), 'clinicians', HTTP_DOC),
  attachments: z.array(z.string().max(64).regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'an XDS document uniqueId (OID)')).max(MAX_ATTACHMENTS).optional(),
  deadlineSeconds: z.number().int().min(MIN_DEADLINE_SECONDS).max(MAX_DEADLINE_SECONDS).optional(),
});
export const ConsultationParams = z.strictObject({ id: existingConsultationId });
export const ConsultationsQuery = z.strictObject({
  system: systemId,
  role: z.enum(['applicant', 'expert', 'any']).optional(),
  state: z.enum(CONSULTATION_STATUSES as [string, ...string[]]).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).optional(),
  cursor: z.string().max(400).optional().describe('nextCursor of the previous page; empty or left out: the first page'),
});
const actionId = idempotencyKey.optional();
export const AcceptBody = z.strictObject({ expertId, actionId });
export const DeclineBody = z.strictObject({ expertId, reason: shown(z.string().max(500), 'clinicians', HTTP_DOC).optional(), actionId });
export const ReportBody = z.strictObject({ expertId, diagnosis: shown(notBlank(10_000), 'clinicians', HTTP_DOC), recommendations: shown(z.string().max(100_000), 'clinicians', HTTP_DOC).optional(), actionId });
export const ApplicantBody = z.strictObject({ systemId, actionId });
export const CancelBody = z.strictObject({ systemId, reason: shown(z.string().max(500), 'clinicians', HTTP_DOC).optional(), actionId });
export const MonthsQuery = z.strictObject({ from: month.optional(), to: month.optional() });

export const consultationDto = (c: ConsultationView): AnswerOf<typeof ConsultationResponse> => ({
  id: c.consultationId,
  correlationId: c.correlationId,
  status: c.status,
  applicantSystemId: c.applicantSystemId,
  applicantClinician: c.applicantClinician,
  candidates: c.candidates,
  clinicalQuestion: c.clinicalQuestion,
  summary: c.summary,
  attachments: c.attachments,
  deadlineSeconds: c.deadlineSeconds,
  expertId: c.expertId,
  // A view stored before the projection settled the open offer at a cancel says 'open' on a cancelled case.
  offers: c.offers.map((o) => {
    const cancelled = o.outcome === 'open' && c.cancelled !== null;
    return { expertId: o.expertId, offerIndex: o.offerIndex, offeredAt: o.offeredAt, expiresAt: o.expiresAt, outcome: cancelled ? 'cancelled' : o.outcome, reason: o.reason, settledAt: cancelled ? c.cancelled!.cancelledAt : o.settledAt };
  }),
  report: c.report,
  cancelled: c.cancelled,
  contentErased: c.contentErased ?? false,
  requestedAt: c.requestedAt,
  updatedAt: c.updatedAt,
});

/**
 * A step's answer to the system that took it. A system that may read the consultation (consultationReaders) gets it
 * whole; one that may not (its expert declined, or the offer expired, and the case went on; or the applicant cancelled
 * the case while its expert held the offer) gets it without the texts
 * it may not read: the report, the cancellation's reason and other experts' reasons are null. Its expert's decline
 * repeated (a retry is answered 200) answered the whole case, the later expert's diagnosis and recommendations
 * included, to a system whose GET /consultations/{id} is refused 403.
 */
export const answerTo = (c: ConsultationView, systemId: string): AnswerOf<typeof ConsultationResponse> => {
  const dto = consultationDto(c);
  if (consultationReaders(c).includes(systemId)) return dto;
  return {
    ...dto,
    offers: dto.offers.map((o) => (homeSystemOf(o.expertId) === systemId ? o : { ...o, reason: null })),
    report: null,
    cancelled: dto.cancelled && { ...dto.cancelled, reason: null },
  };
};

/** The operator's trace of a consultation: consultationDto without what an operator may not read. */
export const consultationTrace = (c: ConsultationView): AnswerOf<typeof ConsultationTraceResponse> => {
  const dto = consultationDto(c);
  return {
    id: dto.id,
    correlationId: dto.correlationId,
    status: dto.status,
    applicantSystemId: dto.applicantSystemId,
    candidates: dto.candidates,
    expertId: dto.expertId,
    offers: dto.offers.map((o) => ({ expertId: o.expertId, offerIndex: o.offerIndex, offeredAt: o.offeredAt, expiresAt: o.expiresAt, outcome: o.outcome, settledAt: o.settledAt })),
    report: dto.report && { expertId: dto.report.expertId, issuedAt: dto.report.issuedAt, resends: dto.report.resends, lastSentAt: dto.report.lastSentAt, nextResendAt: dto.report.nextResendAt, acknowledgedAt: dto.report.acknowledgedAt },
    cancelledAt: dto.cancelled?.cancelledAt ?? null,
    contentErased: dto.contentErased,
    requestedAt: dto.requestedAt,
    updatedAt: dto.updatedAt,
  };
};

export const registerConsultationRoutes = (app: FastifyInstance, deps: ConsultationRouteDependencies): void => {
  const { consultations } = deps;
  /**
   * An HTTP action's command id: from the caller's actionId, scoped to the consultation, the action and who acts
   * (the expert or the system), else random. Without the actor, a second expert's decline with the same actionId
   * as the first expert's was taken for a repeat of it and dropped.
   */
  const options = (id: string, action: string, actor: string, given: string | undefined, correlationId: string) => ({
    commandId: given === undefined ? undefined : `http/${id}/${action}/${actor}/${given}`,
    correlationId,
  });

  /**
   * The log lines of a request about one consultation (its own, 'request refused') carry the consultation's id and
   * correlation id beside the request id: one id follows a consultation through every log line.
   */
  const consultationLog = {
    preValidation: async (request: FastifyRequest) => {
      const id = (request.params as { id?: unknown } | null)?.id;
      if (typeof id !== 'string' || !CONSULTATION_ID_PATTERN.test(id)) return;
      const correlationId = await consultations.correlationIdOf(id);
      // And the consultation id (a UUID): the id the applicant's and the expert's desks quote.
      if (correlationId !== null) request.log = request.log.child({ consultationId: id, correlationId: loggableId(correlationId) });
    },
  };

  /**
   * A step refused because the acting system may not take it (expert_not_offered, not_your_consultation) tells that
   * system the consultation exists. When the system has no part in it (neither its applicant nor the home system of
   * an expert it was offered to) the refusal is answered as an unknown id is, 404 consultation_not_found, after the
   * same validation; a party, which knows the consultation already, keeps the 403 that says what it may not do.
   */
  const asStranger = async <T>(id: string, actingSystemId: string, step: () => Promise<T>): Promise<T> => {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof ForbiddenError) || (error.code !== 'expert_not_offered' && error.code !== 'not_your_consultation')) throw error;
      if (consultationParties(await consultations.get(id)).includes(actingSystemId)) throw error;
      throw new NotFoundError('consultation_not_found', 'no consultation has this id');
    }
  };

  const textBodies = { bodyLimit: Math.max(app.initialConfig.bodyLimit ?? 0, CONSULTATION_BODY_LIMIT_BYTES) };

  app.post('/consultations', textBodies, async (request, reply) => {
    const body = parseInput(ConsultationBody, request.body, 'body');
    const { consultation, created } = await consultations.request(
      body,
      { commandId: body.consultationId === undefined ? undefined : `http/${body.consultationId}/request`, correlationId: request.id },
    );
    // The request's log line names what it made: the request id alone could be tied to the consultation only through
    // the correlation id, and a repeat answers with the first request's correlation id, not its own request id.
    request.log = request.log.child({ consultationId: consultation.consultationId, correlationId: loggableId(consultation.correlationId) });
    // Its audit event names the consultation it made (security.ts names the applicant system until the id is known),
    // so that a search by the consultation's id finds the request that made it too.
    if (request.audited) request.audited.resource = consultation.consultationId;
    // And the patient's key (security.ts knows it only for a consultation that existed before the request): the
    // patient's export lists which system asked about them.
    auditUnderPatients(request, await consultations.patientKeysOf(consultation.consultationId));
    return reply.code(created ? 201 : 200).header('location', `/consultations/${consultation.consultationId}`).send(consultationDto(consultation));
  });

  app.get('/consultations', async (request) => {
    const q = parseInput(ConsultationsQuery, request.query, 'query');
    const page = await consultations.list({ systemId: q.system, role: q.role, status: q.state as ConsultationView['status'] | undefined, limit: q.limit, cursor: q.cursor || undefined }); // cursor= : the first page
    // The page answers each consultation's texts: recorded under each one's patients too, as a read of one is.
    // From the rows (a stream read only for a row of an older build): a page of 500 read 500 streams.
    const listed = await Promise.all(page.items.map(async (c) => ({ resource: c.consultationId, patientKeys: await consultations.patientKeysOfView(c) })));
    auditListedUnderPatients(request, listed);
    return { items: page.items.map(consultationDto), nextCursor: page.nextCursor };
  });

  // With each attachment's status as the registry has it now: an attachment corrected while the expert works on the
  // case shows Deprecated and its replacement.
  app.get('/consultations/:id', consultationLog, async (request): Promise<AnswerOf<typeof ConsultationWithAttachmentsResponse>> => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const view = await consultations.get(id);
    return { ...consultationDto(view), attachmentStatus: [...(await consultations.attachmentsNow(view))] };
  });

  // An operator's view (security.ts: operators only, as any route without a rule of its own): where the case is,
  // without its texts, attachments or clinician. README, "Tracing a consultation or a message".
  app.get('/consultations/:id/trace', consultationLog, async (request): Promise<AnswerOf<typeof ConsultationTraceResponse>> => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    return consultationTrace(await consultations.get(id));
  });

  app.post('/consultations/:id/accept', consultationLog, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const b = parseInput(AcceptBody, request.body, 'body');
    const by = homeSystemOf(b.expertId);
    const r = await asStranger(id, by, () => consultations.accept(id, { expertId: b.expertId, bySystemId: by }, options(id, 'accept', b.expertId, b.actionId, request.id)));
    return answerTo(r.consultation, by);
  });

  app.post('/consultations/:id/decline', consultationLog, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const b = parseInput(DeclineBody, request.body, 'body');
    const by = homeSystemOf(b.expertId);
    const r = await asStranger(id, by, () => consultations.decline(id, { expertId: b.expertId, bySystemId: by, reason: b.reason ?? '' }, options(id, 'decline', b.expertId, b.actionId, request.id)));
    return answerTo(r.consultation, by);
  });

  app.post('/consultations/:id/report', { ...textBodies, ...consultationLog }, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const b = parseInput(ReportBody, request.body, 'body');
    const by = homeSystemOf(b.expertId);
    const r = await asStranger(id, by, () =>
      consultations.issueReport(id, { expertId: b.expertId, bySystemId: by, diagnosis: b.diagnosis, recommendations: b.recommendations ?? '' }, options(id, 'report', b.expertId, b.actionId, request.id)),
    );
    return answerTo(r.consultation, by);
  });

  app.post('/consultations/:id/acknowledge', consultationLog, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const b = parseInput(ApplicantBody, request.body, 'body');
    const r = await asStranger(id, b.systemId, () => consultations.acknowledge(id, { bySystemId: b.systemId }, options(id, 'acknowledge', b.systemId, b.actionId, request.id)));
    return answerTo(r.consultation, b.systemId);
  });

  app.post('/consultations/:id/cancel', consultationLog, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const b = parseInput(CancelBody, request.body, 'body');
    const r = await asStranger(id, b.systemId, () => consultations.cancel(id, { bySystemId: b.systemId, reason: b.reason }, options(id, 'cancel', b.systemId, b.actionId, request.id)));
    return answerTo(r.consultation, b.systemId);
  });

  // The data protection officer's erasure of one consultation's texts (operator; security.ts audits it): the way
  // to reach a consultation no patient's erasure reaches (no attachment, or documents of another hub).
  app.delete('/consultations/:id/content', consultationLog, async (request) => {
    const { id } = parseInput(ConsultationParams, request.params, 'path');
    const r = await consultations.eraseContent(id, { by: request.principal?.subject ?? 'anonymous', correlationId: String(request.id) }).catch((error: unknown) => {
      // Recorded but not finished (503 erasure_incomplete): a repeat answers alreadyErased, so its line is written now.
      if (error instanceof ContentErasureIncompleteError) logConsultationErasure(request.log, error.erasure);
      throw error;
    });
    logConsultationErasure(request.log, r); // at every log level but silent: a record rts erasures apply repeats
    return { erased: true as const, consultationId: r.consultationId, erasedAt: r.erasedAt, alreadyErased: r.alreadyErased, textsLeftInEvents: r.textsLeftInEvents };
  });

  app.get('/stats/consultations-per-month', async (request) => {
    const q = parseInput(MonthsQuery, request.query, 'query');
    return { items: await consultations.consultationsPerMonth({ from: q.from, to: q.to }) };
  });
};
