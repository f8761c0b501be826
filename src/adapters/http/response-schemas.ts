import { z } from 'zod';
import { ExpertProfileSchema } from '../messaging/messages';

/**
 * What the HTTP API answers, as zod schemas: the OpenAPI document (openapi.ts) is generated from them, and the
 * integration tests check live answers against them (test/integration/openapi.int.spec.ts), so the document
 * cannot promise a shape the routes do not give. The request schemas are the ones the routes validate with.
 */
/** An instant as the hub writes it (toISOString, luxon's toISO): `format: date-time` (RFC 3339) in the document, for generated clients' date types. */
export const instant = z.iso.datetime({ offset: true }).describe('ISO-8601 date-time');

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;
/** What a route's answer-building function returns for `schema`, so the compiler holds it to the schema too. */
export type AnswerOf<S extends z.ZodType> = DeepReadonly<z.input<S>>;

export const ExpertResponse = z.object({
  id: z.string().describe('<homeSystemId>:<localExpertId>'),
  homeSystemId: z.string(),
  localExpertId: z.string(),
  status: z.enum(['active', 'retired']),
  revision: z.number().int().min(1).describe('1 at registration, then the revision of its last change or retirement, as the downlink sent it: it grows with each, and may skip numbers (a message that sent the profile the expert had changes neither it nor updatedAt)'),
  profile: ExpertProfileSchema,
  registeredAt: instant,
  updatedAt: instant,
  retiredAt: instant.nullable(),
});
export const ExpertsPage = z.object({ items: z.array(ExpertResponse), nextCursor: z.string().nullable().describe('Pass as cursor for the next page; null on the last') });

export const SystemResponse = z.object({
  id: z.string(),
  name: z.string(),
  area: z.string(),
  status: z.string().describe('registered, joining or joined'),
  downlinkQueue: z.string().describe('The queue the hub sends this system its downlink messages on'),
  registeredAt: instant,
  joinedAt: instant.nullable(),
  activeExperts: z.number().int().min(0),
  join: z
    .object({
      expectedBatches: z.number().int(),
      batchesImported: z.number().int(),
      expectedExperts: z.number().int(),
      expertsImported: z.number().int(),
      percent: z.number().int().min(0).max(100),
      expertsMissing: z
        .number()
        .int()
        .min(0)
        .nullable()
        .describe('Once every announced batch is in: how many of the announced experts (expectedExperts) no batch carried, 0 when all came; null while batches are still to come. The hub does not refuse a join that comes short'),
      startedAt: instant,
    })
    .nullable()
    .describe('Progress of the bulk upload while the system joins'),
  keys: z.array(z.string()).optional().describe('The kids of the keys given with the registration'),
  downlinkQueueDepth: z
    .object({
      messages: z.number().int().min(0).describe('Messages waiting on the downlink queue (sent by the hub, not yet taken by the system)'),
      oldestMessageAgeSeconds: z.number().min(0).nullable().describe("How long the first of them had waited at readAt, by the broker's clock (0: none waits; null: the broker did not say)"),
      consumers: z.number().int().min(0).nullable().describe('Receivers attached to the queue (0: the system is not taking its downlink now)'),
      readAt: instant.describe('When the hub read it from the broker (every RTS_DEAD_LETTER_DEPTH_EVERY_MS)'),
    })
    .nullable()
    .describe(
      "The system's downlink queue as the broker the hub is connected to counts it; null while not known (no broker, not connected, a broker without the statistics plugin), and for a caller who is neither an operator nor of this system (another city's backlog is not its business)",
    ),
});
export const SystemsList = z.object({ items: z.array(SystemResponse) });

const Offer = z.object({
  expertId: z.string(),
  offerIndex: z.number().int(),
  offeredAt: instant,
  expiresAt: instant,
  outcome: z
    .enum(['open', 'accepted', 'declined', 'expired', 'cancelled', 'withdrawn'])
    .describe("'cancelled': the offer was open when the applicant cancelled; 'withdrawn': the hub took the open offer back because its expert retired (reason 'expert_retired')"),
  reason: z.string().nullable(),
  settledAt: instant.nullable(),
});
export const ConsultationResponse = z.object({
  id: z.string(),
  correlationId: z.string(),
  status: z.enum(['offered', 'accepted', 'reported', 'acknowledged', 'unassigned', 'cancelled']),
  applicantSystemId: z.string(),
  applicantClinician: z.string(),
  candidates: z.array(z.string()),
  clinicalQuestion: z.string().nullable().describe('null once the content was erased (contentErased)'),
  summary: z.string().nullable().describe('null once the content was erased (contentErased)'),
  attachments: z.array(z.string()),
  deadlineSeconds: z.number().int(),
  expertId: z.string().nullable(),
  offers: z.array(Offer),
  report: z
    .object({
      expertId: z.string(),
      diagnosis: z.string().nullable(),
      recommendations: z.string().nullable(),
      issuedAt: instant,
      resends: z.number().int().describe('How often the report was sent again to an applicant that did not acknowledge it'),
      lastSentAt: instant,
      nextResendAt: instant.nullable(),
      acknowledgedAt: instant.nullable(),
    })
    .nullable(),
  cancelled: z.object({ reason: z.string().nullable(), cancelledAt: instant }).nullable(),
  contentErased: z.boolean().describe("The texts about the patient (question, summary, report, reasons) were erased by crypto-shredding: they are null"),
  requestedAt: instant,
  updatedAt: instant,
});
/**
 * GET /consultations/{id}/trace: where a consultation is, for an operator answering a desk's call, without what an
 * operator may not read: no texts (question, summary, report, reasons), no attachments (they lead to a patient's
 * documents), no clinician.
 */
export const ConsultationTraceResponse = z.object({
  id: z.string(),
  correlationId: z.string().describe("The id on every log line and message about the consultation (the request id of the HTTP request that made it)"),
  status: ConsultationResponse.shape.status,
  applicantSystemId: z.string(),
  candidates: z.array(z.string()),
  expertId: z.string().nullable(),
  offers: z.array(Offer.omit({ reason: true })),
  report: z
    .object({ expertId: z.string(), issuedAt: instant, resends: z.number().int(), lastSentAt: instant, nextResendAt: instant.nullable(), acknowledgedAt: instant.nullable() })
    .nullable(),
  cancelledAt: instant.nullable(),
  contentErased: z.boolean(),
  requestedAt: instant,
  updatedAt: instant,
});
/** GET /consultations/{id}: the consultation with its attachments as the registry has them now (read at each GET). */
export const ConsultationWithAttachmentsResponse = ConsultationResponse.extend({
  attachmentStatus: z
    .array(
      z.object({
        uniqueId: z.string().describe('The attached document, as requested (in the order of attachments)'),
        status: z
          .enum(['Approved', 'Deprecated'])
          .nullable()
          .describe(
            "As GET /documents/{uniqueId} says it now: Approved (current) or Deprecated (replaced by a correction since the request: the expert should read the replacement). null: the registry holds no entry for it (attached before requests were checked, or its patient was erased)",
          ),
        replacedBy: z.string().nullable().describe('The document that replaced it (only when Deprecated)'),
        currentVersion: z.string().nullable().describe('The current document of its correction chain: the attachment itself while Approved, the last correction when corrected more than once; null when status is null'),
      }),
    )
    .describe('Each attachment as the hub\'s registry has it at this read'),
});
export const ConsultationErasureResponse = z.object({
  erased: z.literal(true),
  consultationId: z.string(),
  erasedAt: instant,
  alreadyErased: z.boolean().describe('The content had been erased before: erasedAt is the time first recorded'),
  textsLeftInEvents: z
    .boolean()
    .describe(
      "true: a build before 2026-12-02 recorded this consultation, and its texts stay in clear in its events and the store's backups (the hub no longer serves or sends them); only removing those events by hand, or retiring the store, takes them out",
    ),
});
export const ConsultationsPage = z.object({ items: z.array(ConsultationResponse), nextCursor: z.string().nullable() });
export const MonthlyCounts = z.object({ items: z.array(z.object({ month: z.string().describe('YYYY-MM'), requested: z.number().int().min(0) })) });

const Jwk = z.record(z.string(), z.unknown()).describe('A public JWK');
export const Jwks = z.object({ keys: z.array(Jwk) });
export const SystemKeysList = z.object({
  items: z.array(
    z.object({ kid: z.string(), use: z.enum(['sig', 'enc']), alg: z.string(), jwk: Jwk, validFrom: instant.nullable(), retiresAt: instant.nullable(), registeredAt: instant }),
  ),
});
export const KeysRegistered = z.object({ registered: z.array(z.string()).describe('kids stored now'), repeated: z.array(z.string()).describe('kids that were already registered') });
export const KeyRetired = z.object({ kid: z.string(), retiresAt: instant, changed: z.boolean() });

export const DeadLetterSummary = z.object({
  id: z.string(),
  deadLetterId: z.string().nullable(),
  envelopeId: z.string().nullable(),
  brokerMessageId: z.string().nullable(),
  type: z.string().nullable(),
  systemId: z.string().nullable(),
  reason: z.string().nullable(),
  sourceQueue: z.string().nullable(),
  attempts: z.number().int().nullable(),
  deadLetteredAt: instant.nullable(),
  replayCount: z.number().int(),
  bodyChars: z.number().int(),
});
export const DeadLettersList = z.object({ items: z.array(DeadLetterSummary), count: z.number().int(), more: z.boolean().describe('the queue holds more dead letters than were listed: ask with a larger limit (at most 1000)') });
export const DeadLetterResponse = DeadLetterSummary.extend({
  correlationId: z.string().nullable(),
  body: z.string(),
  applicationProperties: z.record(z.string(), z.unknown()),
  replays: z.array(z.record(z.string(), z.unknown())).describe('DeadLetterReplayed events recorded for this message'),
  discards: z.array(z.record(z.string(), z.unknown())).describe('DeadLetterDiscarded events recorded for earlier copies of this message'),
});
export const DeadLetterReplayResponse = z.object({
  id: z.string(),
  envelopeId: z.string().nullable(),
  sourceQueue: z.string(),
  moved: z.number().int().describe('Messages moved back (by envelope id: every copy of it)'),
  replay: z.record(z.string(), z.unknown()).describe('The DeadLetterReplayed event recorded'),
  recordedIn: z.string().describe('The stream it was recorded in'),
});
/** The DeadLetterDiscarded event's data: what is kept of a discarded message (never its body). */
export const DeadLetterDiscardRecord = z.object({
  deadLetterId: z.string().nullable().describe('The copy addressed (UUIDs only)'),
  envelopeId: z.string().nullable().describe('UUIDs only'),
  deadLetterIds: z.array(z.string()).describe('The copies removed (UUIDs only)'),
  at: instant,
  by: z.string().describe("Who discarded: the caller's token subject"),
  reason: z.string(),
  sourceQueue: z.string().nullable().describe('As the message named it; null where it could hold a CPR number'),
  deadLetterReason: z.string().nullable().describe('x-dlq-reason; null where it could hold a CPR number'),
  attempts: z.number().int().nullable(),
  replayCount: z.number().int(),
  removed: z.number().int(),
});
/** The 410 dead_letter_discarded problem's `discard` member (RFC 9457 extension): the record, and where it is. */
export const DiscardedProblemMember = DeadLetterDiscardRecord.extend({
  recordedIn: z.string().describe('The stream it was recorded in (the one its replays go to)'),
}).describe('The discard record: who discarded the message, when and why (never its body)');
/** The 409 document_deprecated problem's `currentUniqueId` member (RFC 9457 extension). */
export const DeprecatedProblemMember = z
  .string()
  .optional()
  .describe(
    'The uniqueId of the document that holds the reading now (the end of the chain of corrections): correct that one. Absent only while the correction that replaced the document is still being registered, or when the chain is longer than 1000 corrections',
  );
export const DeadLetterDiscardResponse = z.object({
  id: z.string(),
  envelopeId: z.string().nullable(),
  removed: z.number().int().describe('Messages removed (by envelope id: every copy of it)'),
  discard: DeadLetterDiscardRecord.describe('The DeadLetterDiscarded event recorded'),
  recordedIn: z.string().describe('The stream it was recorded in (the one its replays go to)'),
});

const AuditEvent = z.object({
  at: instant,
  subject: z.string().describe("The token subject; a system's API key, and a system's consultation message over AMQP: system:<systemId>"),
  role: z.string().describe("The caller's role (patient, clinician, system, operator), none when unknown; library for the embedded core's calls; system for a consultation message over AMQP"),
  systemId: z.string().nullable(),
  action: z.string(),
  patientKey: z.string().nullable().describe('The pseudonymous key, never the CPR number'),
  resource: z.string().nullable(),
  ip: z.string().describe("The caller's address; empty for a consultation message over AMQP (the broker has the sender's) and for the embedded core's calls"),
  requestId: z.string().describe('The X-Request-Id of an HTTP request; the envelope id (messageId) of a consultation message over AMQP'),
  outcome: z.enum(['allowed', 'denied', 'error']),
  status: z.number().int(),
  reason: z.string().nullable(),
  selfAccess: z
    .boolean()
    .optional()
    .describe("A patient's request: whether the caller was the patient the entry is recorded under (their token's patient key is patientKey). Absent on other callers' entries and on entries recorded before 2026-12-06"),
  prevHash: z.string(),
  hash: z.string(),
});
const Days = z.object({ from: z.iso.date(), to: z.iso.date() }).describe('UTC days, inclusive');
export const AuditEvents = z.object({
  patientKey: z.string().optional().describe("A patient's search: the patient's pseudonymous key"),
  user: z.string().optional().describe("A user's search: the token subject"),
  resource: z.string().optional().describe("A resource's search: the document uniqueId or consultation id"),
  requestId: z.string().optional().describe("A request's search: its request id"),
  days: Days,
  from: instant.describe('The interval applied: from (inclusive)'),
  to: instant.nullable().describe('to (exclusive); null when not given: no upper bound'),
  bounds: z.literal('[from,to)'),
  count: z.number().int(),
  truncated: z.boolean().describe('More events match after the last one here: ask again with cursor=nextCursor'),
  nextCursor: z.string().nullable().describe('Pass as cursor (with the same patient, user, resource or requestId, from and to) for the rest; null when nothing is left'),
  items: z.array(AuditEvent),
});
export const AuditVerification = z.object({
  days: Days,
  ok: z.boolean(),
  chains: z.number().int(),
  events: z.number().int(),
  anchorsChecked: z.number().int(),
  breaks: z
    .array(z.object({ streamName: z.string(), index: z.number().int(), reason: z.enum(['prev_hash_mismatch', 'hash_mismatch', 'malformed', 'anchor_missing', 'changed_behind_hub']) }))
    .describe(
      'Where each chain is broken: index is the event\'s position in its chain (anchor_missing: the chain\'s length; changed_behind_hub: the version of the event this hub process wrote or read last there, see changedBehindHub)',
    ),
  changedBehindHub: z
    .array(
      z.object({
        streamName: z.string(),
        version: z.number().int().describe('Where the event this hub process wrote (or read) last in the chain stands'),
        wrote: z.string().describe('The hash that event had: what this process wrote, and what its audit anchor lines and `heads` carry'),
        stored: z.string().nullable().describe('The hash the store holds at that version now; null: no event there (deleted, or the chain cut back under it)'),
        head: z.string().nullable().describe("The chain's head in the store now; null: no events"),
      }),
    )
    .describe(
      "The chains of these days that the hub process answering found changed behind it since it started (its log said 'possible tampering'), while the store does not hold what it wrote there: each is also a break changed_behind_hub. Empty when none. Another hub process, or this one after a restart, knows only what it found itself: alert on any entry",
    ),
  heads: z
    .record(z.string(), z.string())
    .describe("Each chain's head hash: keep them elsewhere and give them back as anchors. For a chain in changedBehindHub, the hash this process wrote (as its audit anchor lines), not the store's head"),
});
export const ErasureResponse = z.object({
  erased: z.literal(true),
  patientKey: z.string().describe("The patient's pseudonymous key: keep it in the erasure register, to repeat the erasure on a restored backup (PUT /erasures/{patientKey})"),
  erasedAt: instant,
  alreadyErased: z.boolean(),
  known: z.boolean().describe('Whether the hub held anything of the patient (a document, a data key, an earlier erasure); false only for an erasure recorded with "unknown": "erase" (or ?unknown=erase)'),
  consultationsWithTextsLeftInEvents: z
    .array(z.string())
    .describe(
      "The consultations erased with the patient that a build before 2026-12-02 recorded: their texts stay in clear in their events and the store's backups (the hub no longer serves or sends them); only removing those events by hand, or retiring the store, takes them out. Empty for every consultation recorded since",
    ),
});
export const ErasuresList = z.object({
  count: z.number().int(),
  items: z
    .array(
      z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('patient'), patientKey: z.string(), erasedAt: instant }).describe("A patient's erasure: repeat it with PUT /erasures/{patientKey}"),
        z
          .object({ kind: z.literal('consultation'), consultationId: z.string(), erasedAt: instant })
          .describe("A consultation's content erased by id (DELETE /consultations/{id}/content): repeat it so. Those erased with their patient are not listed: the patient's erasure repeats them"),
      ]),
    )
    .describe('Oldest first; pseudonymous keys and consultation ids only. A saved answer without kind (builds before 2026-12-02) holds patients only'),
  next: z.string().optional().describe('Pass as ?after= for the next page; absent on the last page'),
});
export const DevLoginResponse = z.object({ token: z.string().describe('A JWT (HS256) to send as Authorization: Bearer'), expiresIn: z.number().int().describe('seconds') });
export const HealthResponse = z
  .object({
    status: z
      .enum(['ok', 'degraded'])
      .describe("degraded: the store works (so 200), but the broker is not connected, the uplink is not consumed or the downlink is stalled (see those fields)"),
    store: z.string(),
    head: z.string(),
    broker: z
      .enum(['connected', 'disconnected', 'login_refused'])
      .optional()
      .describe("With RTS_BROKER_URL or discovery: whether the hub is connected to a broker now (not part of readiness); login_refused: the broker refused the hub's credentials at the last attempt (RTS_BROKER_USERNAME, RTS_BROKER_PASSWORD)"),
    uplink: z
      .enum(['consuming', 'not_consuming'])
      .optional()
      .describe('With a broker: whether this hub consumes the uplink queue now (connected, and its link attached; not_consuming also while the broker refuses the link, which the log says why)'),
    downlink: z
      .enum(['publishing', 'stalled', 'standby'])
      .optional()
      .describe('With a broker: whether this hub process publishes the downlink now (it holds the publishing lease; its sends wait for the broker while it is away), or stands by while another process on the same PostgreSQL store publishes; stalled: events wait to be sent, and a publisher\'s stored checkpoint has not moved (nor, in the process that publishes, a message of it been accepted) for RTS_DOWNLINK_STALL_AFTER_MS (60 s): nothing gets out, from this process or, at a standby, from any (every hub process says stalled when none publishes; rts_downlink_stalled in /metrics says which publisher, rts_downlink_publishing whether this process publishes)'),
  })
  .passthrough();
export const ProblemTypeResponse = z.object({ type: z.string(), status: z.number().int(), title: z.string() });

/** POST /patients/export: the patient's right of access (GDPR art. 15), what PatientExport gathers. */
const ExportedQuantity = z.object({ value: z.number(), unit: z.literal('mmHg') });
export const PatientExportResponse = z.object({
  format: z.literal('telemed-rts/patient-export'),
  formatVersion: z.literal(1).describe('Raised when a field changes meaning or goes; fields may be added within a version'),
  exportedAt: instant,
  patient: z.object({
    cpr: z.string().describe('The CPR number asked for (the only place it appears in the answer)'),
    patientKey: z.string().describe('The pseudonymous key that stands for the patient in the store, the audit trail and the erasure register'),
  }),
  erasure: z
    .object({ erasedAt: instant.nullable() })
    .nullable()
    .describe('null: not erased. Erased: the readings are gone (their key was destroyed); what is left of the patient follows'),
  observations: z
    .array(
      z.object({
        uniqueId: z.string().describe('The XDS document uniqueId'),
        observationId: z.string().nullable().describe("The uploader's own id of the reading, when it gave one"),
        measuredAt: instant,
        storedAt: instant.describe('When the hub registered the document'),
        systolic: ExportedQuantity,
        diastolic: ExportedQuantity,
        status: z.enum(['current', 'deprecated']).describe('deprecated: replaced by a correction (replacedBy)'),
        replaces: z.string().nullable().describe('The reading this one corrected'),
        replacedBy: z.string().nullable().describe('The correction that replaced it (only once deprecated)'),
      }),
    )
    .describe('Every reading ever stored for the patient, current and deprecated, oldest first, as of one moment (one read snapshot of the registry): a correction registered during the export is in it whole (the old reading deprecated, the new one current) or not at all'),
  consultations: z
    .array(
      z.object({
        consultationId: z.string(),
        status: z.enum(['offered', 'accepted', 'reported', 'acknowledged', 'unassigned', 'cancelled']),
        requestedAt: instant,
        updatedAt: instant,
        requesting: z.object({ systemId: z.string(), clinician: z.string() }),
        candidates: z.array(z.string()).describe('The experts asked, in order of preference'),
        offers: z.array(
          z.object({
            expertId: z.string(),
            systemId: z.string(),
            offeredAt: instant,
            expiresAt: instant,
            outcome: z.enum(['open', 'accepted', 'declined', 'expired', 'cancelled', 'withdrawn']),
            settledAt: instant.nullable(),
          }),
        ),
        answering: z.object({ expertId: z.string(), systemId: z.string() }).nullable().describe('The expert the case is with, or who reported'),
        report: z.object({ expertId: z.string(), issuedAt: instant, acknowledgedAt: instant.nullable() }).nullable(),
        cancelledAt: instant.nullable(),
        attachments: z.array(z.string()).describe("The attached documents that are this patient's"),
        otherAttachments: z.number().int().min(0).describe("Attachments that are not this patient's documents: counted, never named"),
        contentErased: z.boolean().describe('The texts were erased (crypto-shredded): texts is null'),
        texts: z
          .object({
            clinicalQuestion: z.string(),
            summary: z.string(),
            declineReasons: z.array(z.object({ offerIndex: z.number().int(), expertId: z.string(), reason: z.string() })),
            report: z.object({ diagnosis: z.string(), recommendations: z.string() }).nullable(),
            cancelReason: z.string().nullable(),
          })
          .nullable(),
      }),
    )
    .describe("The consultations whose request named the patient, or that attach one of the patient's documents, oldest first"),
  audit: z.object({
    from: instant,
    to: instant,
    bounds: z.literal('[from,to)'),
    count: z.number().int(),
    entries: z.array(
      z.object({
        at: instant,
        subject: z.string().describe("Who: the caller's token subject; `another patient` for another patient's attempt on this patient's data (their subject is not shown), the patient's own requests, failed ones too, with the patient's own subject"),
        role: z.string(),
        systemId: z.string().nullable(),
        action: z.string(),
        resource: z.string().nullable().describe('The document uniqueId or consultation id it was about'),
        outcome: z.enum(['allowed', 'denied', 'error']),
        status: z.number().int(),
        reason: z.string().nullable(),
      }),
    ),
  }).describe("Every access to the patient's data and every refusal recorded under their key, oldest first (all of it: no paging)"),
});
