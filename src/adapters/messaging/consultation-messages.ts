import { z } from 'zod';
import { withoutCprNumber } from '../validation/no-cpr-text';
import { shown } from '../validation/shown-text';
import {
  CONSULTATION_DOWNLINK_TYPES,
  CONSULTATION_UPLINK_TYPES,
  type ConsultationDownlinkEnvelope,
  type ConsultationUplinkEnvelope,
} from '../../application/consultation/consultation-messages';
import { MAX_ATTACHMENTS, MAX_CANDIDATES, MAX_DEADLINE_SECONDS, MIN_DEADLINE_SECONDS } from '../../domain/consultation/consultation';
import { isExistingConsultationId, LEGACY_CONSULTATION_ID_PATTERN, LEGACY_CONSULTATION_ID_RULE } from '../../domain/consultation/legacy-id';
import { expertIdSchema, isoWithOffset, looseEnvelope, parseEnvelope, serializeEnvelope, strictEnvelope, systemIdSchema, text, type ParseResult, type SameType } from './envelope';

/**
 * THE CONSULTATION MESSAGES of the hub's contract, version 1, as zod schemas (the envelope of messages.ts).
 *
 * Uplink (system -> hub, the shared uplink queue; strict: unknown fields are a schema error):
 *   'consultation.requested'   { consultationId (uuid), applicantClinician, candidates: expertId[1..5],
 *                                clinicalQuestion, summary, attachments: OID[], deadlineSeconds? }
 *   'consultation.accept'      { consultationId, expertId }
 *   'consultation.decline'     { consultationId, expertId, reason }
 *   'consultation.report'      { consultationId, expertId, diagnosis, recommendations }
 *   'consultation.acknowledge' { consultationId }
 *   'consultation.cancel'      { consultationId, reason? }
 * Downlink (hub -> one system's queue; tolerant: unknown fields are dropped):
 *   'consultation.offered'     { consultationId, expertId, offerIndex, offeredAt, expiresAt, applicantSystemId,
 *                                applicantClinician, clinicalQuestion, summary, attachments }   -> expert's system
 *   'consultation.accepted'    { consultationId, expertId, acceptedAt }                           -> applicant
 *   'consultation.declined'    { consultationId, expertId, outcome: 'declined'|'expired', reason, at } -> applicant
 *   'consultation.unassigned'  { consultationId, unassignedAt }                                   -> applicant
 *   'consultation.report'      { consultationId, expertId, diagnosis, recommendations, issuedAt, attempt } -> applicant
 *   'consultation.cancelled'   { consultationId, expertId, reason, cancelledAt }                  -> expert's system
 *   'consultation.refused'     { consultationId, refusedType, refusedMessageId, reason, detail }  -> the sender of a
 *                                refused consultation message, if it said it accepts the type (amqp-uplink-consumer.ts)
 * ('consultation.report' is a type in both directions: the expert's system sends it up, the hub sends it down.)
 *
 * API, as messages.ts: parseConsultationUplink / parseConsultationDownlink (never throw),
 * serializeConsultationUplink / serializeConsultationDownlink (TypeError on a contract breach),
 * isConsultationType(type) to route a message to this file's parser, and the schemas for the AsyncAPI document.
 * Detail strings name fields, never values: the clinical text is patient information.
 */
export { CONSULTATION_DOWNLINK_TYPES, CONSULTATION_UPLINK_TYPES } from '../../application/consultation/consultation-messages';
export type {
  ConsultationDownlinkEnvelope,
  ConsultationDownlinkOf,
  ConsultationDownlinkPayloads,
  ConsultationDownlinkType,
  ConsultationUplinkEnvelope,
  ConsultationUplinkOf,
  ConsultationUplinkPayloads,
  ConsultationUplinkType,
} from '../../application/consultation/consultation-messages';

export const isConsultationType = (type: unknown): boolean => typeof type === 'string' && type.startsWith('consultation.');

const systemId = systemIdSchema;
const expertId = expertIdSchema;
const consultationId = z.uuid();
/**
 * Of a consultation that exists (every message but consultation.requested): a UUID, or the id of a consultation
 * recorded by a build before ids were UUIDs (legacy-id.ts: 8-64 of A-Z a-z 0-9 _ -, never holding a CPR number).
 * Without it every message of such a consultation was skipped as a contract breach after the upgrade.
 */
const existingId = z
  .string()
  .regex(LEGACY_CONSULTATION_ID_PATTERN, { message: LEGACY_CONSULTATION_ID_RULE, abort: true })
  .refine(isExistingConsultationId, LEGACY_CONSULTATION_ID_RULE)
  .describe(LEGACY_CONSULTATION_ID_RULE);
const oid = z.string().max(64).regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'an XDS document uniqueId (OID)');

export const CONSULTATION_UPLINK_PAYLOAD_SCHEMAS = {
  'consultation.requested': z.strictObject({
    consultationId,
    applicantClinician: withoutCprNumber(shown(text(200))),
    candidates: z.array(expertId).min(1).max(MAX_CANDIDATES),
    clinicalQuestion: shown(text(10_000)),
    summary: shown(z.string().max(100_000)),
    attachments: z.array(oid).max(MAX_ATTACHMENTS),
    deadlineSeconds: z
      .number()
      .int()
      .min(MIN_DEADLINE_SECONDS)
      .max(MAX_DEADLINE_SECONDS)
      .optional()
      .describe("How long each offer stays open for its expert, in seconds; left out, the hub's default (24 h). An offer not accepted or declined by then expires, and the next candidate is offered the case."),
  }),
  'consultation.accept': z.strictObject({ consultationId: existingId, expertId }),
  'consultation.decline': z.strictObject({ consultationId: existingId, expertId, reason: shown(z.string().max(500)) }),
  'consultation.report': z.strictObject({ consultationId: existingId, expertId, diagnosis: shown(text(10_000)), recommendations: shown(z.string().max(100_000)) }),
  'consultation.acknowledge': z.strictObject({ consultationId: existingId }),
  'consultation.cancel': z.strictObject({ consultationId: existingId, reason: shown(z.string().max(500)).optional() }),
} as const;

export const CONSULTATION_DOWNLINK_PAYLOAD_SCHEMAS = {
  'consultation.offered': z.object({
    consultationId: existingId,
    expertId,
    offerIndex: z.number().int().min(0),
    offeredAt: isoWithOffset,
    expiresAt: isoWithOffset,
    applicantSystemId: systemId,
    applicantClinician: z.string(),
    clinicalQuestion: z.string(),
    summary: z.string(),
    attachments: z.array(z.string()),
  }),
  'consultation.accepted': z.object({ consultationId: existingId, expertId, acceptedAt: isoWithOffset }),
  'consultation.declined': z.object({ consultationId: existingId, expertId, outcome: z.enum(['declined', 'expired']), reason: z.string(), at: isoWithOffset }),
  'consultation.unassigned': z.object({ consultationId: existingId, unassignedAt: isoWithOffset }),
  'consultation.report': z.object({
    consultationId: existingId,
    expertId,
    diagnosis: z.string(),
    recommendations: z.string(),
    issuedAt: isoWithOffset,
    attempt: z.number().int().min(0),
  }),
  'consultation.cancelled': z.object({ consultationId: existingId, expertId, reason: z.string(), cancelledAt: isoWithOffset }),
  // A refused consultation.requested names a consultation that does not exist: its id is still a UUID (the schema
  // took it), so existingId holds for every refused message.
  'consultation.refused': z.object({
    consultationId: existingId,
    refusedType: z.enum(CONSULTATION_UPLINK_TYPES),
    refusedMessageId: z.uuid(),
    reason: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'an error code (a-z 0-9 _)'),
    detail: z.string().max(500),
  }),
} as const;

const U = CONSULTATION_UPLINK_PAYLOAD_SCHEMAS;
const D = CONSULTATION_DOWNLINK_PAYLOAD_SCHEMAS;

export const ConsultationUplinkEnvelopeSchema = z.discriminatedUnion('type', [
  strictEnvelope('consultation.requested', U['consultation.requested']),
  strictEnvelope('consultation.accept', U['consultation.accept']),
  strictEnvelope('consultation.decline', U['consultation.decline']),
  strictEnvelope('consultation.report', U['consultation.report']),
  strictEnvelope('consultation.acknowledge', U['consultation.acknowledge']),
  strictEnvelope('consultation.cancel', U['consultation.cancel']),
]);
export const ConsultationDownlinkEnvelopeSchema = z.discriminatedUnion('type', [
  looseEnvelope('consultation.offered', D['consultation.offered']),
  looseEnvelope('consultation.accepted', D['consultation.accepted']),
  looseEnvelope('consultation.declined', D['consultation.declined']),
  looseEnvelope('consultation.unassigned', D['consultation.unassigned']),
  looseEnvelope('consultation.report', D['consultation.report']),
  looseEnvelope('consultation.cancelled', D['consultation.cancelled']),
  looseEnvelope('consultation.refused', D['consultation.refused']),
]);

// The schemas and the core's types must describe the same messages (checked at compile time, as messages.ts).
const uplinkMatches: SameType<z.infer<typeof ConsultationUplinkEnvelopeSchema>, ConsultationUplinkEnvelope> = true;
const downlinkMatches: SameType<z.infer<typeof ConsultationDownlinkEnvelopeSchema>, ConsultationDownlinkEnvelope> = true;
void uplinkMatches;
void downlinkMatches;

export const parseConsultationUplink = (json: string): ParseResult<ConsultationUplinkEnvelope> =>
  parseEnvelope(ConsultationUplinkEnvelopeSchema as z.ZodType<ConsultationUplinkEnvelope>, json, CONSULTATION_UPLINK_TYPES);

export const parseConsultationDownlink = (json: string): ParseResult<ConsultationDownlinkEnvelope> =>
  parseEnvelope(ConsultationDownlinkEnvelopeSchema as z.ZodType<ConsultationDownlinkEnvelope>, json, CONSULTATION_DOWNLINK_TYPES);

export const serializeConsultationUplink = (envelope: ConsultationUplinkEnvelope): string =>
  serializeEnvelope(ConsultationUplinkEnvelopeSchema, envelope, 'consultation uplink message');
export const serializeConsultationDownlink = (envelope: ConsultationDownlinkEnvelope): string =>
  serializeEnvelope(ConsultationDownlinkEnvelopeSchema, envelope, 'consultation downlink message');
