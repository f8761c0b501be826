import { z } from 'zod';
import { withoutCprNumber } from '../validation/no-cpr-text';
import {
  DOWNLINK_TYPES,
  MAX_BATCH_EXPERTS,
  UPLINK_TYPES,
  type DownlinkEnvelope,
  type UplinkEnvelope,
} from '../../application/directory/directory-messages';
import { EXPERT_TEXT_LIMITS, LOCAL_EXPERT_ID_PATTERN, type Availability } from '../../domain/directory/expert';
import { shown } from '../validation/shown-text';
import { expertIdSchema, isoWithOffset, looseEnvelope, parseEnvelope, serializeEnvelope, strictEnvelope, systemIdSchema, text, type ParseResult, type SameType } from './envelope';

/**
 * THE MESSAGE CONTRACT between the hub and connected systems, version 1, as zod schemas.
 * Part B (AMQP hub wiring, SDK, AsyncAPI document) codes against this file.
 *
 * Envelope: { id: uuid, type, version: 1, systemId, correlationId, time: ISO-8601 with offset, payload }.
 * Uplink (system -> hub, one shared queue):
 *   'system.join.requested' { name?, expectedBatches, expectedExperts }
 *   'experts.batch'         { batchIndex, batchCount, experts: [{ localExpertId, ...ExpertProfile }] (<= 500) }
 *   'expert.registered'     { localExpertId, homeSystemId?, profile }
 *   'expert.changed'        { localExpertId, homeSystemId?, profile }
 *   'expert.retired'        { localExpertId, homeSystemId? }
 * Downlink (hub -> one system's queue):
 *   'directory.expert.upserted' { expertId, homeSystemId, profile, revision }
 *   'directory.expert.retired'  { expertId, homeSystemId, revision }
 *   'directory.snapshot'        { snapshotId, batchIndex, batchCount, experts: [{ expertId, homeSystemId, profile, revision }] }
 *   'system.joined'             { systemId, name, area }
 * ExpertProfile: { name, title, specialties[], location { city, hospital }, languages[] (BCP 47),
 *   availability: 'available' | 'limited' | 'unavailable' }.
 *
 * API
 * - `parseUplink(json)` / `parseDownlink(json)`: never throw for bad input; they return
 *   `{ ok: true, message }` or `{ ok: false, reason: 'bad_json' | 'bad_schema' | 'unknown_type', detail, envelope? }` where
 *   `envelope` holds id/type/systemId when they could be read (for the dead-letter record). `detail` names the
 *   fields at fault, never their values.
 * - `serializeUplink(envelope)` / `serializeDownlink(envelope)`: validate, then JSON text (the AMQP body is this
 *   string as an AMQP value). They throw TypeError on an envelope that breaks the contract: a bug of the sender.
 * - Schemas (`UplinkEnvelopeSchema`, `DownlinkEnvelopeSchema`, `ExpertProfileSchema` (as shared),
 *   `UplinkExpertProfileSchema` (as taken: no profile text that shows nothing), per-type payload schemas in
 *   `UPLINK_PAYLOAD_SCHEMAS`/`DOWNLINK_PAYLOAD_SCHEMAS`) for the AsyncAPI document (z.toJSONSchema).
 * - Re-exported from the core: the TypeScript types, `UPLINK_TYPES`, `DOWNLINK_TYPES`, `MAX_BATCH_EXPERTS`,
 *   `MAX_BATCH_JSON_BYTES`, `partitionExperts` (parts by count and size), `downlinkMessageId`.
 *
 * Strict in what the hub accepts (unknown fields in an uplink message are a schema error, so a typo is caught at
 * once); tolerant in what a system reads (parseDownlink drops unknown fields, so the hub can add some).
 */
export {
  CONTRACT_VERSION,
  DOWNLINK_TYPES,
  MAX_BATCH_EXPERTS,
  MAX_BATCH_JSON_BYTES,
  UPLINK_TYPES,
  downlinkMessageId,
  partitionExperts,
} from '../../application/directory/directory-messages';
export type {
  DirectoryExpert,
  DownlinkEnvelope,
  DownlinkOf,
  DownlinkPayloads,
  DownlinkType,
  Envelope,
  UplinkEnvelope,
  UplinkOf,
  UplinkPayloads,
  UplinkType,
  UploadedExpert,
} from '../../application/directory/directory-messages';
export type { ExpertProfile, Availability } from '../../domain/directory/expert';

export { MAX_MESSAGE_CHARS, type ParseFailure, type ParseResult } from './envelope';
export { INVISIBLE_TEXT_MESSAGE } from '../validation/shown-text';

const systemId = systemIdSchema;
const expertId = expertIdSchema;
const localExpertId = z.string().regex(LOCAL_EXPERT_ID_PATTERN, 'a local expert id: 1-64 characters of A-Z a-z 0-9 . _ -');
/**
 * A new expert's id: it goes into the directory in clear, to every system, into URLs and group-ids, and no erasure
 * reaches it, so it must not hold a CPR number (a review registered chengdu:251248-1234). Only where an expert is
 * registered: one registered before this rule can still be changed and retired.
 */
const newLocalExpertId = withoutCprNumber(localExpertId);
const count = (max: number) => z.number().int().min(0).max(max);

const profileShape = {
  // An expert's name is no patient data, but a CPR number in it (or in any of these) would be: see withoutCprNumber.
  // The limits as sent; the domain holds them again after NFC (normalizeExpertProfile), one set for both.
  name: withoutCprNumber(text(EXPERT_TEXT_LIMITS.name)),
  title: withoutCprNumber(z.string().max(EXPERT_TEXT_LIMITS.title)),
  specialties: z.array(withoutCprNumber(text(EXPERT_TEXT_LIMITS.specialty))).min(1).max(20),
  location: z.strictObject({ city: withoutCprNumber(text(EXPERT_TEXT_LIMITS.city)), hospital: withoutCprNumber(z.string().max(EXPERT_TEXT_LIMITS.hospital)) }),
  languages: z.array(z.string().regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/, 'a BCP 47 language tag, e.g. zh or en-GB')).min(1).max(20),
  availability: z.enum(['available', 'limited', 'unavailable'] as const satisfies readonly Availability[]),
};
/** A profile as the hub shares it (downlink, HTTP responses): also of experts registered before `shown` was checked. */
export const ExpertProfileSchema = z.strictObject(profileShape);
/** What the hub takes from a system: besides, no text shown to clinicians may show nothing (see shown). */
const uplinkProfileShape = {
  ...profileShape,
  name: withoutCprNumber(shown(text(EXPERT_TEXT_LIMITS.name))),
  title: withoutCprNumber(shown(z.string().max(EXPERT_TEXT_LIMITS.title))),
  specialties: z.array(withoutCprNumber(shown(text(EXPERT_TEXT_LIMITS.specialty)))).min(1).max(20),
  location: z.strictObject({
    city: withoutCprNumber(shown(text(EXPERT_TEXT_LIMITS.city))),
    hospital: withoutCprNumber(shown(z.string().max(EXPERT_TEXT_LIMITS.hospital))),
  }),
};
export const UplinkExpertProfileSchema = z.strictObject(uplinkProfileShape);
const UploadedExpertSchema = z.strictObject({ localExpertId: newLocalExpertId, ...uplinkProfileShape });
const DirectoryExpertSchema = z.object({ expertId, homeSystemId: systemId, profile: ExpertProfileSchema, revision: z.number().int().min(1) });

export const UPLINK_PAYLOAD_SCHEMAS = {
  'system.join.requested': z.strictObject({ name: withoutCprNumber(shown(text(200), 'clinicians and operators')).optional(), expectedBatches: count(10_000), expectedExperts: count(10_000 * MAX_BATCH_EXPERTS) }),
  'experts.batch': z
    .strictObject({
      batchIndex: count(9_999),
      batchCount: z.number().int().min(1).max(10_000),
      experts: z.array(UploadedExpertSchema).max(MAX_BATCH_EXPERTS, `at most ${MAX_BATCH_EXPERTS} experts a batch`),
    })
    .refine((p) => p.batchIndex < p.batchCount, { message: 'batchIndex must be below batchCount', path: ['batchIndex'] })
    .refine((p) => new Set(p.experts.map((e) => e.localExpertId)).size === p.experts.length, { message: 'a localExpertId appears twice', path: ['experts'] }),
  'expert.registered': z.strictObject({ localExpertId: newLocalExpertId, homeSystemId: systemId.optional(), profile: UplinkExpertProfileSchema }),
  'expert.changed': z.strictObject({ localExpertId, homeSystemId: systemId.optional(), profile: UplinkExpertProfileSchema }),
  'expert.retired': z.strictObject({ localExpertId, homeSystemId: systemId.optional() }),
} as const;

export const DOWNLINK_PAYLOAD_SCHEMAS = {
  'directory.expert.upserted': DirectoryExpertSchema,
  'directory.expert.retired': z.object({ expertId, homeSystemId: systemId, revision: z.number().int().min(1) }),
  'directory.snapshot': z.object({
    snapshotId: z.uuid(),
    batchIndex: count(1_000_000),
    batchCount: z.number().int().min(1),
    experts: z.array(DirectoryExpertSchema).max(MAX_BATCH_EXPERTS),
  }),
  'system.joined': z.object({ systemId, name: z.string(), area: z.string() }),
} as const;

export const UplinkEnvelopeSchema = z.discriminatedUnion('type', [
  strictEnvelope('system.join.requested', UPLINK_PAYLOAD_SCHEMAS['system.join.requested']),
  strictEnvelope('experts.batch', UPLINK_PAYLOAD_SCHEMAS['experts.batch']),
  strictEnvelope('expert.registered', UPLINK_PAYLOAD_SCHEMAS['expert.registered']),
  strictEnvelope('expert.changed', UPLINK_PAYLOAD_SCHEMAS['expert.changed']),
  strictEnvelope('expert.retired', UPLINK_PAYLOAD_SCHEMAS['expert.retired']),
]);
export const DownlinkEnvelopeSchema = z.discriminatedUnion('type', [
  looseEnvelope('directory.expert.upserted', DOWNLINK_PAYLOAD_SCHEMAS['directory.expert.upserted']),
  looseEnvelope('directory.expert.retired', DOWNLINK_PAYLOAD_SCHEMAS['directory.expert.retired']),
  looseEnvelope('directory.snapshot', DOWNLINK_PAYLOAD_SCHEMAS['directory.snapshot']),
  looseEnvelope('system.joined', DOWNLINK_PAYLOAD_SCHEMAS['system.joined']),
]);

// The schemas and the core's types must describe the same messages: each direction is checked at compile time.
const uplinkMatches: SameType<z.infer<typeof UplinkEnvelopeSchema>, UplinkEnvelope> = true;
const downlinkMatches: SameType<z.infer<typeof DownlinkEnvelopeSchema>, DownlinkEnvelope> = true;
void uplinkMatches;
void downlinkMatches;

/** Parse an uplink message body (the JSON text). Never throws. */
export const parseUplink = (json: string): ParseResult<UplinkEnvelope> => parseEnvelope(UplinkEnvelopeSchema as z.ZodType<UplinkEnvelope>, json, UPLINK_TYPES);

/** Parse a downlink message body (for the SDK). Never throws; unknown fields are dropped. */
export const parseDownlink = (json: string): ParseResult<DownlinkEnvelope> =>
  parseEnvelope(DownlinkEnvelopeSchema as z.ZodType<DownlinkEnvelope>, json, DOWNLINK_TYPES);

/** JSON text of an uplink message (for the SDK); throws TypeError when it breaks the contract. */
export const serializeUplink = (envelope: UplinkEnvelope): string => serializeEnvelope(UplinkEnvelopeSchema, envelope, 'uplink message');

/** JSON text of a downlink message; throws TypeError when it breaks the contract. */
export const serializeDownlink = (envelope: DownlinkEnvelope): string => serializeEnvelope(DownlinkEnvelopeSchema, envelope, 'downlink message');
