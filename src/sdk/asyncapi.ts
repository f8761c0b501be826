// The AsyncAPI 3.0 document of the hub's message contract, generated from the zod schemas in
// src/adapters/messaging/messages.ts so it cannot drift from what the code accepts. The committed copy is
// docs/asyncapi.yaml; test/unit/asyncapi.unit.spec.ts regenerates it and fails when it differs.
//
//   node -r ./test/support/ts-register.js src/sdk/asyncapi.ts            # rewrite docs/asyncapi.yaml
//   node -r ./test/support/ts-register.js src/sdk/asyncapi.ts --check    # exit 1 if it is out of date
//
// Written from a connected system's point of view: it sends on the uplink channel and receives on its downlink
// channel; operators receive from the dead letter channel.
import { z } from 'zod';
import {
  CONTRACT_VERSION,
  DOWNLINK_TYPES,
  DownlinkEnvelopeSchema,
  ExpertProfileSchema,
  MAX_BATCH_EXPERTS,
  MAX_BATCH_JSON_BYTES,
  UPLINK_TYPES,
  UplinkEnvelopeSchema,
  type DownlinkEnvelope,
  type ExpertProfile,
  type UplinkEnvelope,
} from '../adapters/messaging/messages';
import {
  CONSULTATION_DOWNLINK_TYPES,
  CONSULTATION_UPLINK_TYPES,
  ConsultationDownlinkEnvelopeSchema,
  ConsultationUplinkEnvelopeSchema,
  type ConsultationDownlinkEnvelope,
  type ConsultationUplinkEnvelope,
} from '../adapters/messaging/consultation-messages';
import { DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_DOWNLINK_QUEUE_PREFIX, DEFAULT_UPLINK_QUEUE } from './client';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const profile: ExpertProfile = {
  name: 'Zhang Min',
  title: 'Chief physician',
  specialties: ['cardiology', 'hypertension'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
};
const envelope = { version: CONTRACT_VERSION, time: '2026-11-23T09:30:00.000+08:00' } as const;

/** The envelope's keys in the documented order. */
const ordered = <E extends { id: string; type: string; version: number; systemId: string; correlationId: string; time: string; payload: unknown }>(e: E): E =>
  ({ id: e.id, type: e.type, version: e.version, systemId: e.systemId, correlationId: e.correlationId, time: e.time, payload: e.payload }) as E;
const orderAll = <M extends Record<string, Parameters<typeof ordered>[0]>>(m: M): M => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, ordered(v)])) as M;

/** One complete, valid example of each message type (also in docs/messaging.md). */
export const EXAMPLE_UPLINK: { [T in UplinkEnvelope['type']]: Extract<UplinkEnvelope, { type: T }> } = orderAll({
  'system.join.requested': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', type: 'system.join.requested', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { name: 'Chengdu City', expectedBatches: 1, expectedExperts: 1 } },
  'experts.batch': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e02', type: 'experts.batch', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'dr-0042', ...profile }] } },
  'expert.registered': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e03', type: 'expert.registered', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e03', payload: { localExpertId: 'dr-0043', profile } },
  'expert.changed': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e04', type: 'expert.changed', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e04', payload: { localExpertId: 'dr-0043', profile: { ...profile, availability: 'limited' } } },
  'expert.retired': { ...envelope, id: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', type: 'expert.retired', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', payload: { localExpertId: 'dr-0043' } },
});
const directoryExpert = { expertId: 'chengdu:dr-0042', homeSystemId: 'chengdu', profile, revision: 1 };
export const EXAMPLE_DOWNLINK: { [T in DownlinkEnvelope['type']]: Extract<DownlinkEnvelope, { type: T }> } = orderAll({
  'directory.expert.upserted': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e501', type: 'directory.expert.upserted', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e02', payload: directoryExpert },
  'directory.expert.retired': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e502', type: 'directory.expert.retired', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e05', payload: { expertId: 'chengdu:dr-0043', homeSystemId: 'chengdu', revision: 3 } },
  'directory.snapshot': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e503', type: 'directory.snapshot', systemId: 'chengdu', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { snapshotId: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e5ff', batchIndex: 0, batchCount: 1, experts: [{ expertId: 'mianyang:li-7', homeSystemId: 'mianyang', profile: { ...profile, name: 'Li Na', location: { city: 'Mianyang', hospital: 'Mianyang Central Hospital' } }, revision: 2 }] } },
  'system.joined': { ...envelope, id: '7d3e2a10-5b6c-5d7e-8f90-a1b2c3d4e504', type: 'system.joined', systemId: 'mianyang', correlationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', payload: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' } },
});

const consultationId = '3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10';
const c = { version: CONTRACT_VERSION, correlationId: consultationId } as const;
/** One complete, valid example of each consultation message (the applicant is chengdu, the expert mianyang:li-7). */
export const EXAMPLE_CONSULTATION_UPLINK: { [T in ConsultationUplinkEnvelope['type']]: Extract<ConsultationUplinkEnvelope, { type: T }> } = orderAll({
  'consultation.requested': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e01', type: 'consultation.requested', systemId: 'chengdu', time: '2026-11-23T09:30:00.000+08:00', payload: { consultationId, applicantClinician: 'dr-wang', candidates: ['mianyang:li-7', 'chengdu-west:zhou-2'], clinicalQuestion: 'Second opinion: atypical chest pain, troponin borderline', summary: 'Male, 58, smoker; ECG attached', attachments: ['2.25.329800735698586629295641978511506172918'], deadlineSeconds: 3600 } },
  'consultation.accept': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e02', type: 'consultation.accept', systemId: 'mianyang', time: '2026-11-23T09:41:00.000+08:00', payload: { consultationId, expertId: 'mianyang:li-7' } },
  'consultation.decline': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e03', type: 'consultation.decline', systemId: 'mianyang', time: '2026-11-23T09:41:00.000+08:00', payload: { consultationId, expertId: 'mianyang:li-7', reason: 'On leave this week' } },
  'consultation.report': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e04', type: 'consultation.report', systemId: 'mianyang', time: '2026-11-23T11:02:00.000+08:00', payload: { consultationId, expertId: 'mianyang:li-7', diagnosis: 'Unstable angina, low risk', recommendations: 'Stress echo within 72 h; aspirin' } },
  'consultation.acknowledge': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e05', type: 'consultation.acknowledge', systemId: 'chengdu', time: '2026-11-23T11:05:00.000+08:00', payload: { consultationId } },
  'consultation.cancel': { ...c, id: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e06', type: 'consultation.cancel', systemId: 'chengdu', time: '2026-11-23T09:35:00.000+08:00', payload: { consultationId, reason: 'Patient transferred' } },
});
export const EXAMPLE_CONSULTATION_DOWNLINK: { [T in ConsultationDownlinkEnvelope['type']]: Extract<ConsultationDownlinkEnvelope, { type: T }> } = orderAll({
  'consultation.offered': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b01', type: 'consultation.offered', systemId: 'mianyang', time: '2026-11-23T09:30:00.120+08:00', payload: { consultationId, expertId: 'mianyang:li-7', offerIndex: 0, offeredAt: '2026-11-23T01:30:00.120Z', expiresAt: '2026-11-23T02:30:00.120Z', applicantSystemId: 'chengdu', applicantClinician: 'dr-wang', clinicalQuestion: 'Second opinion: atypical chest pain, troponin borderline', summary: 'Male, 58, smoker; ECG attached', attachments: ['2.25.329800735698586629295641978511506172918'] } },
  'consultation.accepted': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b02', type: 'consultation.accepted', systemId: 'chengdu', time: '2026-11-23T09:41:00.050+08:00', payload: { consultationId, expertId: 'mianyang:li-7', acceptedAt: '2026-11-23T01:41:00.050Z' } },
  'consultation.declined': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b03', type: 'consultation.declined', systemId: 'chengdu', time: '2026-11-23T09:41:00.050+08:00', payload: { consultationId, expertId: 'mianyang:li-7', outcome: 'declined', reason: 'On leave this week', at: '2026-11-23T01:41:00.050Z' } },
  'consultation.unassigned': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b04', type: 'consultation.unassigned', systemId: 'chengdu', time: '2026-11-23T11:30:00.000+08:00', payload: { consultationId, unassignedAt: '2026-11-23T03:30:00.000Z' } },
  'consultation.report': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b05', type: 'consultation.report', systemId: 'chengdu', time: '2026-11-23T11:02:00.080+08:00', payload: { consultationId, expertId: 'mianyang:li-7', diagnosis: 'Unstable angina, low risk', recommendations: 'Stress echo within 72 h; aspirin', issuedAt: '2026-11-23T03:02:00.080Z', attempt: 0 } },
  'consultation.cancelled': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b06', type: 'consultation.cancelled', systemId: 'mianyang', time: '2026-11-23T09:35:00.030+08:00', payload: { consultationId, expertId: 'mianyang:li-7', reason: 'Patient transferred', cancelledAt: '2026-11-23T01:35:00.030Z' } },
  // The request above, had its first candidate retired before it came: refused, and chengdu told (it set rts_accepts).
  'consultation.refused': { ...c, id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b07', type: 'consultation.refused', systemId: 'chengdu', time: '2026-11-23T09:30:00.090+08:00', payload: { consultationId, refusedType: 'consultation.requested', refusedMessageId: '5a0c1e22-1f3b-4c5d-8e6f-7a8b9c0d1e01', reason: 'candidate_retired', detail: 'candidates.0 retired' } },
});

const DESCRIPTIONS: Record<string, string> = {
  'consultation.requested': "An applicant clinician of the sending system asks for a consultation: candidates (expert ids, 1-5) in order of preference, the clinical question and summary (patient information: only ever sent signed and encrypted), XDS document uniqueIds: documents registered with the hub, current and all of one patient, else refused (unknown_attachment; attachment_replaced, whose detail names the current version to attach; attachments_of_several_patients). A redelivery of a stored request is a duplicate whatever became of its attachments and candidates since; the same consultationId with other content (another deadlineSeconds too) is refused (consultation_id_reused). The envelope's correlationId becomes the consultation's.",
  'consultation.accept': "The candidate expert (of the sending system, to whom the case is offered) accepts.",
  'consultation.decline': 'The candidate expert declines; the hub offers the case to the next candidate, or ends it as unassigned.',
  'consultation.acknowledge': 'The applicant system received the report; the hub stops re-sending it.',
  'consultation.cancel': 'The applicant withdraws the request (until a report is issued).',
  'consultation.offered': "To the candidate expert's home system: the case, with the patient information it needs, and when the offer expires.",
  'consultation.accepted': 'To the applicant: the expert accepted.',
  'consultation.declined': "To the applicant: a candidate declined (outcome 'declined'), or retired from the directory while the offer was open (outcome 'declined', reason 'expert_retired': the hub withdrew the offer), or let the offer expire (outcome 'expired'). The next offer, or consultation.unassigned, follows.",
  'consultation.unassigned': 'To the applicant: no candidate left.',
  'consultation.cancelled': "To the expert's home system: the applicant cancelled, or the offer to its expert expired (reason 'offer_expired: ...'), or the hub withdrew the offer because its expert retired from the directory (reason 'expert_retired: ...'); stop working on it.",
  'consultation.refused': "To the sender of a consultation message the hub refused for good (a step the consultation's state does not allow, a retired candidate, ...): which message (refusedType, refusedMessageId: its envelope id), the reason code and a detail that names fields, never values, as the dead letter's x-dlq-reason has them. Sent only when the refused message carried the AMQP application property rts_accepts naming consultation.refused (comma-separated downlink types); the message is dead-lettered all the same. The id is derived from the refused message's id: a redelivery of it gives a notice with the same id. The correlationId is the refused message's.",
  'system.join.requested': "A system starts its join: how many experts.batch messages (and experts in all) will follow. Send it first and wait until the broker accepted it. Refused (system_name_mismatch) when name is given and differs from the name the operator registered for this system id. A joined system may join again (new id and correlationId) for a full sync: a new directory.snapshot when its batches are in.",
  'experts.batch': `Part of the join upload: at most ${MAX_BATCH_EXPERTS} experts and ${MAX_BATCH_JSON_BYTES / 1024} KiB of their JSON (UTF-8, compact; each expert's JSON plus one byte), whichever comes first: the body must stay under the broker's 1 MiB, or the broker closes the sender's connection. Also checked, beyond the schema: batchIndex < batchCount, and a localExpertId appears once per batch; a batch naming a retired expert is refused whole (expert_retired). Batches may arrive in any order and more than once. When the last missing batch is in, the hub sends the joiner a directory.snapshot and the others its experts.`,
  'expert.registered': "A new expert of the sending system (homeSystemId, if given, must be the sender). A retired expert's localExpertId is never registered again (expert_retired).",
  'expert.changed': "A new profile for one of the sending system's experts.",
  'expert.retired': "The expert leaves the directory. Open consultation offers to the expert are withdrawn at once (consultation.cancelled, reason 'expert_retired: ...') and the cases move on to the next candidate.",
  'directory.expert.upserted': 'An expert of another system was registered or changed. Keep the highest revision per expertId.',
  'directory.expert.retired': 'An expert of another system was retired.',
  'directory.snapshot': `To a newly joined system: the experts of the other joined systems (never its own), in parts of at most ${MAX_BATCH_EXPERTS} experts and ${MAX_BATCH_JSON_BYTES / 1024} KiB of their JSON, so batchCount is not always ceil(experts/${MAX_BATCH_EXPERTS}). One snapshotId for all parts; the parts' envelope ids are deterministic (a part sent again has the same id).`,
  'system.joined': 'To the joiner: its join is complete. To the others: a new system is in the hub.',
};
const REPORT_DESCRIPTIONS = {
  uplink: "The accepted expert's report (sent by the expert's home system).",
  downlink: "To the applicant: the report. attempt 0 first; the same report is re-sent (attempt 1, 2, ...) until the applicant sends consultation.acknowledge. Handle it idempotently per consultationId.",
};
const BOTH_WAYS = CONSULTATION_UPLINK_TYPES.filter((t) => (CONSULTATION_DOWNLINK_TYPES as readonly string[]).includes(t)) as readonly string[];
/** Component key of a message: its type in camelCase, with the direction for a type used both ways (consultation.report). */
const keyOf = (type: string, direction: 'uplink' | 'downlink'): string => (BOTH_WAYS.includes(type) ? `${camel(type)}${direction === 'uplink' ? 'Uplink' : 'Downlink'}` : camel(type));

const camel = (type: string) => type.replace(/[.-]([a-z])/g, (_, c: string) => c.toUpperCase());

/** JSON Schema (draft-07, the AsyncAPI default schema format) of a zod schema, without the $schema key. */
export function jsonSchemaOf(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Record<string, Json>;
  delete out['$schema'];
  return out;
}

const optionsOf = (union: typeof UplinkEnvelopeSchema | typeof DownlinkEnvelopeSchema | typeof ConsultationUplinkEnvelopeSchema | typeof ConsultationDownlinkEnvelopeSchema) => {
  const byType = new Map<string, z.ZodType>();
  for (const option of union.options) byType.set((option.shape.type as z.ZodLiteral<string>).value, option as z.ZodType);
  return byType;
};

/** On consultation uplink messages: which downlink types beyond the contract's first set the sender reads. */
const acceptsHeader: Json = {
  type: 'string',
  description:
    "Optional, consultation uplink only: the downlink types (comma-separated) the sender understands beyond the ones every system must read. 'consultation.refused' in it asks the hub for a consultation.refused notice if it refuses this message for good. Leave it out if your receiver dead-letters types it does not know.",
  examples: ['consultation.refused'],
};

/** On consultation downlink messages: the consultation, readable without opening the body (a JWE). */
const consultationIdHeader: Json = {
  type: 'string',
  description:
    "Downlink consultation messages only (the hub sets it; earlier hubs did not): the payload's consultationId, so a receiver's support desk, the broker's console (a selector consultationId = '...') and the dead letter records find the messages of one consultation without opening the body. No personal data. The payload is authoritative.",
  examples: ['3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10'],
};
const isConsultationDownlink = (type: string, direction: 'uplink' | 'downlink'): boolean => direction === 'downlink' && (CONSULTATION_DOWNLINK_TYPES as readonly string[]).includes(type);

const headersFor = (type: string, direction: 'uplink' | 'downlink'): Json => ({
  type: 'object',
  description: 'AMQP application-properties. The envelope in the body is authoritative; these copy it so brokers, tools and dead-letter records can route and search without parsing the body.',
  properties: {
    messageId: { type: 'string', format: 'uuid', description: 'The envelope id (idempotency key). Never dedupe on the AMQP message-id: ActiveMQ may replace it.' },
    type: { type: 'string', const: type },
    version: { type: 'integer', format: 'int32', const: CONTRACT_VERSION, description: 'An AMQP int (JMS getIntProperty).' },
    systemId: { type: 'string', description: 'Uplink: the sending system. Downlink: the receiving system.' },
    correlationId: { type: 'string' },
    contentType: { type: 'string', description: "'application/jose' when the body is a compact JWE (message security on, the default); 'application/json' for a plain JSON body (RTS_MESSAGE_SECURITY=off)." },
    codec: { type: 'string', description: "Body codec: 'jose' or 'json'." },
    kid: { type: 'string', description: "jose: the receiver's encryption key id (also in the JWE header)." },
    alg: { type: 'string', const: 'ECDH-ES+A256KW', description: 'jose: the JWE key management algorithm.' },
    enc: { type: 'string', const: 'A256GCM', description: 'jose: the JWE content encryption.' },
    ...(direction === 'uplink' && (CONSULTATION_UPLINK_TYPES as readonly string[]).includes(type) ? { rts_accepts: acceptsHeader } : {}),
    ...(isConsultationDownlink(type, direction) ? { consultationId: consultationIdHeader } : {}),
    'x-replayed-from-dlq': { type: 'boolean', const: true, description: "Only on a copy an operator replayed from rts.dlq (rts dlq replay): the message again, its envelope id unchanged (dedupe on it as ever), without the dead letter's x-dlq-*, rts_dlq_id and rts_envelope_id." },
    'x-replay-count': { type: 'integer', format: 'int32', minimum: 1, description: 'Only on a replayed copy: how often this message was replayed (an AMQP int, JMS getIntProperty).' },
  },
  required: ['messageId', 'type', 'version', 'systemId', 'correlationId'],
});

const deadLetterHeaders: Json = {
  type: 'object',
  description: 'The original application-properties, plus the x-dlq-* ones the consumer that gave up added.',
  properties: {
    'x-dlq-reason': { type: 'string', description: "Why, e.g. 'bad_json: ...', 'bad_schema: payload.experts.0.name: ...', 'body is not an AMQP value string' (a data section or a map), 'system_name_mismatch', 'expert_retired', 'retry limit (5) reached: ...', 'wrong_receiver: ...', 'unknown_type: type: must be one of ...'; with message security (the default): 'bad_signature: ...', 'unknown_key: ...' (also for a system that is not registered), 'not_for_us: ...', 'sender_mismatch: ...', 'malformed_jose: ...'; with RTS_MESSAGE_SECURITY=off a system that is not registered gets 'unknown_system'. A copy too large to keep whole begins 'body_not_kept: ...; ' (its body replaced by a note of its size and SHA-256) or 'properties_not_kept: ...; ' (the sender's large properties left out), then the reason." },
    'x-dlq-source-queue': { type: 'string' },
    'x-dlq-attempts': { type: 'integer', format: 'int32', minimum: 1, description: 'An AMQP int (JMS getIntProperty).' },
    'x-dlq-at': { type: 'string', format: 'date-time' },
    rts_dlq_id: { type: 'string', format: 'uuid', description: "The dead letter's own id: what rts dlq show/replay/discard and a JMS selector (rts_dlq_id = '...') find it by. The hub makes it from the original message (its message-id, body and properties), so a copy it sent again of the same delivery (the broker's accept of the first lost) has the same id and is the same dead letter; a sender's own rts_dlq_id is not kept. A system that dead-letters a message itself sets one too (docs/messaging.md)." },
    rts_envelope_id: { type: 'string', description: "On a hub's dead letter of a message whose envelope it read but whose messageId property named another id: the envelope's id (the sender's messageId stays as sent). rts dlq show <envelope id> finds the dead letter by it. The hub's own: a sender's is not kept." },
    messageId: { type: 'string' },
    type: { type: 'string' },
    systemId: { type: 'string' },
  },
  required: ['x-dlq-reason', 'x-dlq-source-queue', 'x-dlq-attempts', 'x-dlq-at'],
};

/** The AsyncAPI 3.0 document as a plain object. */
export function buildAsyncApiDocument(): { [key: string]: Json } {
  const uplinkSchemas = new Map([...optionsOf(UplinkEnvelopeSchema), ...optionsOf(ConsultationUplinkEnvelopeSchema)]);
  const downlinkSchemas = new Map([...optionsOf(DownlinkEnvelopeSchema), ...optionsOf(ConsultationDownlinkEnvelopeSchema)]);
  const uplinkTypes: readonly string[] = [...UPLINK_TYPES, ...CONSULTATION_UPLINK_TYPES];
  const downlinkTypes: readonly string[] = [...DOWNLINK_TYPES, ...CONSULTATION_DOWNLINK_TYPES];
  const uplinkExamples: Record<string, unknown> = { ...EXAMPLE_UPLINK, ...EXAMPLE_CONSULTATION_UPLINK };
  const downlinkExamples: Record<string, unknown> = { ...EXAMPLE_DOWNLINK, ...EXAMPLE_CONSULTATION_DOWNLINK };
  const messages: { [key: string]: Json } = {};
  const message = (type: string, schema: z.ZodType, example: Json, direction: 'uplink' | 'downlink'): Json => ({
    name: type,
    title: type,
    summary: `${direction}: ${type}`,
    description: (BOTH_WAYS.includes(type) ? REPORT_DESCRIPTIONS[direction] : DESCRIPTIONS[type]) ?? type,
    contentType: 'application/jose',
    headers: headersFor(type, direction),
    payload: jsonSchemaOf(schema),
    examples: [{ name: keyOf(type, direction), summary: `A complete ${type} envelope: the msg claim signed inside the JWE (the body itself only with RTS_MESSAGE_SECURITY=off, as application/json)`, headers: { messageId: (example as { id: string }).id, type, version: CONTRACT_VERSION, systemId: (example as { systemId: string }).systemId, correlationId: (example as { correlationId: string }).correlationId, contentType: 'application/jose', codec: 'jose', alg: 'ECDH-ES+A256KW', enc: 'A256GCM', ...(direction === 'uplink' && (CONSULTATION_UPLINK_TYPES as readonly string[]).includes(type) ? { rts_accepts: 'consultation.refused' } : {}), ...(isConsultationDownlink(type, direction) ? { consultationId: (example as { payload: { consultationId: string } }).payload.consultationId } : {}) }, payload: example }],
  });
  for (const type of uplinkTypes) messages[keyOf(type, 'uplink')] = message(type, uplinkSchemas.get(type)!, uplinkExamples[type] as Json, 'uplink');
  for (const type of downlinkTypes) messages[keyOf(type, 'downlink')] = message(type, downlinkSchemas.get(type)!, downlinkExamples[type] as Json, 'downlink');
  messages['deadLettered'] = {
    name: 'dead-lettered',
    title: 'dead-lettered message',
    summary: 'A message a consumer gave up on, body unchanged unless too large to keep',
    contentType: 'application/jose',
    headers: deadLetterHeaders,
    payload: { description: 'The original body, unchanged (it may be the very thing that is wrong with the message); only when the copy would not fit under the broker\'s frame (x-dlq-reason begins body_not_kept), {"bodyNotKept":{"bytes":...,"sha256":"..."}} instead (docs/messaging.md, Size).' },
  };
  const ref = (path: string): Json => ({ $ref: path });
  const channelMessages = (types: readonly string[], direction: 'uplink' | 'downlink'): Json => Object.fromEntries(types.map((t) => [keyOf(t, direction), ref(`#/components/messages/${keyOf(t, direction)}`)]));
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'RTS regional telemedicine hub: directory sync and teleconsultation',
      version: `${CONTRACT_VERSION}.0.0`,
      description: [
        'The message contract between the regional hub and the small-scale telemedicine systems that join it (the RTS paper).',
        "Transport: AMQP 1.0 to ActiveMQ Classic. Every message is durable (persistent); the body is an AMQP value section holding a string (a data section or a map is dead-lettered as 'body is not an AMQP value string'). With message security, the hub's default (RTS_MESSAGE_SECURITY=jose), that string is a compact JWE (application/jose) around the signed envelope { id, type, version, systemId, correlationId, time, payload }; only with RTS_MESSAGE_SECURITY=off is it the envelope's JSON text itself (application/json).",
        "Size: a body must stay under 1 MiB (the brokers run with wireFormat.maxFrameSize=1048576); a larger one is not dead-lettered, the broker closes the sender's whole connection. With message security the body is about 16/9 of the envelope's JSON: write JSON compact, non-ASCII characters unescaped, and cut experts.batch by size as well as by count.",
        'Send at-least-once: a message counts as sent when the broker settles it as accepted. Receivers dedupe on the envelope id (application-property messageId), never on the AMQP message-id.',
        'Acknowledge (accept) a downlink message only after processing it; hand it back with modified (delivery-failed=true) for a retry. A guide for teams in other languages: docs/messaging.md.',
        'Order: set the AMQP properties group-id of an uplink message to what it is about: expert/<homeSystemId>:<localExpertId> for expert.registered, expert.changed and expert.retired, consultation/<consultationId> for a consultation message, system/<systemId> for system.join.requested and experts.batch (the batches of one system are applied one at a time). The broker then hands the messages of one group to one hub process, which applies them in the order received.',
        "Message security (the hub's default, RTS_MESSAGE_SECURITY=jose; off only with RTS_MESSAGE_SECURITY=off): the body string is not the envelope's JSON but a compact JWE (ECDH-ES+A256KW, A256GCM) for the receiver, holding a compact JWS (ES256 or EdDSA) by the sender over the claims { iss, aud, iat, jti, msg: envelope }; kids are RFC 7638 thumbprints. The payload schemas and examples below describe `msg`, the envelope inside. Profile, key registration and signed examples: docs/messaging.md, section Message security.",
        `Generated from src/adapters/messaging/messages.ts and consultation-messages.ts by src/sdk/asyncapi.ts: do not edit by hand.`,
      ].join('\n'),
      license: { name: 'Apache-2.0' },
    },
    defaultContentType: 'application/jose',
    servers: {
      local: { host: '127.0.0.1:5673', protocol: 'amqp1', description: 'A local ActiveMQ Classic (npm run broker:up). SASL is optional on this connector; production brokers require TLS (amqps, port 5671 by default) and SASL PLAIN, with an account per system that may consume only its own downlink queue (README, Broker accounts and TLS).' },
    },
    channels: {
      uplink: { address: DEFAULT_UPLINK_QUEUE, title: 'Uplink queue', description: 'One queue shared by all systems; the hub consumes it. Name configurable (default shown).', messages: channelMessages(uplinkTypes, 'uplink') },
      downlink: {
        address: `${DEFAULT_DOWNLINK_QUEUE_PREFIX}{systemId}`,
        title: 'Downlink queue of one system',
        description: 'One queue per connected system; only that system consumes it. A message stays until the system accepted it, so a system that is down catches up when it comes back.',
        parameters: { systemId: { description: 'The connected system id (2-32 characters of a-z 0-9 -).', examples: ['chengdu', 'mianyang'] } },
        messages: channelMessages(downlinkTypes, 'downlink'),
      },
      deadLetter: { address: DEFAULT_DEAD_LETTER_QUEUE, title: 'Dead letter queue', description: 'Messages that can never succeed, or failed too often, with the reason. Operators list, inspect and replay them.', messages: { deadLettered: ref('#/components/messages/deadLettered') } },
    },
    operations: {
      sendUplink: { action: 'send', title: 'Send an uplink message', channel: ref('#/channels/uplink'), messages: uplinkTypes.map((t) => ref(`#/channels/uplink/messages/${keyOf(t, 'uplink')}`)) },
      receiveDownlink: { action: 'receive', title: "Receive this system's downlink messages", channel: ref('#/channels/downlink'), messages: downlinkTypes.map((t) => ref(`#/channels/downlink/messages/${keyOf(t, 'downlink')}`)) },
      receiveDeadLetters: { action: 'receive', title: 'Inspect dead-lettered messages (operators)', channel: ref('#/channels/deadLetter'), messages: [ref('#/channels/deadLetter/messages/deadLettered')] },
    },
    components: {
      schemas: { ExpertProfile: jsonSchemaOf(ExpertProfileSchema) },
      messages,
    },
  };
}

/** A small YAML writer for JSON data: block style, strings quoted as JSON (valid YAML), stable key order. */
export function toYaml(value: Json, indent = 0): string {
  const pad = ' '.repeat(indent);
  const scalar = (v: Json): string => (typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : String(v));
  const key = (k: string): string => (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(k) ? k : JSON.stringify(k));
  const isEmpty = (v: Json) => (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && v !== null && Object.keys(v).length === 0);
  if (Array.isArray(value)) {
    return value
      .map((item) => {
        if (typeof item === 'object' && item !== null && !isEmpty(item)) {
          const inner = toYaml(item, indent + 2);
          return `${pad}- ${inner.slice(indent + 2)}`;
        }
        return `${pad}- ${isEmpty(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)}\n`;
      })
      .join('');
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value)
      .map(([k, v]) => {
        if (typeof v === 'object' && v !== null && !isEmpty(v)) return `${pad}${key(k)}:\n${toYaml(v, Array.isArray(v) ? indent : indent + 2)}`;
        if (typeof v === 'string' && v.includes('\n')) return `${pad}${key(k)}: |-\n${v.split('\n').map((line) => `${pad}  ${line}`).join('\n')}\n`;
        return `${pad}${key(k)}: ${isEmpty(v) ? (Array.isArray(v) ? '[]' : '{}') : scalar(v)}\n`;
      })
      .join('');
  }
  return `${pad}${scalar(value)}\n`;
}

/** The text of docs/asyncapi.yaml. */
export function renderAsyncApiYaml(): string {
  return `# Generated by src/sdk/asyncapi.ts from the zod schemas: do not edit by hand.\n${toYaml(buildAsyncApiDocument())}`;
}

/* istanbul ignore next */
if (require.main === module) {
  const { readFileSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
  const { resolve } = require('node:path') as typeof import('node:path');
  const target = resolve(__dirname, '..', '..', 'docs', 'asyncapi.yaml');
  const text = renderAsyncApiYaml();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      // missing counts as out of date
    }
    if (current !== text) {
      console.error(`${target} is out of date: run node -r ./test/support/ts-register.js src/sdk/asyncapi.ts`);
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
    console.log(`wrote ${target}`);
  }
}
