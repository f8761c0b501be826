import { OFFSET_DATE_TIME_FORMAT_NOTE } from '../validation/offset-date-time';
import { z } from 'zod';
import { ApplicantBody, AcceptBody, CancelBody, ConsultationBody, ConsultationParams, ConsultationsQuery, DeclineBody, MonthsQuery, ReportBody } from './consultation-routes';
import { DeadLetterParams, DeadLettersQuery, DiscardBody, ReplayBody } from './dead-letter-routes';
import { PatientExportBody } from './export-routes';
import { ExpertParams, ExpertsQuery, SystemBody, SystemParams } from './directory-routes';
import { KeysBody, KidParams, RetireBody, SystemKeyParams } from './key-routes';
import { DEPRECATED_ROUTES, deprecationHeader, deprecationLink } from './deprecated-routes';
import { PROBLEM_TYPES, type ProblemCode } from './problem';
import {
  AuditEvents,
  AuditVerification,
  ConsultationResponse,
  ConsultationWithAttachmentsResponse,
  ConsultationTraceResponse,
  ConsultationsPage,
  DeadLetterDiscardResponse,
  DiscardedProblemMember,
  DeprecatedProblemMember,
  DeadLetterReplayResponse,
  DeadLetterResponse,
  DeadLettersList,
  DevLoginResponse,
  ErasureResponse,
  ConsultationErasureResponse,
  ErasuresList,
  ExpertResponse,
  ExpertsPage,
  HealthResponse,
  Jwks,
  KeyRetired,
  KeysRegistered,
  MonthlyCounts,
  PatientExportResponse,
  ProblemTypeResponse,
  SystemKeysList,
  SystemResponse,
  SystemsList,
} from './response-schemas';
import { CorrectionBody, CorrectionQuery, CorrectionResponse, DocumentParams, ObservationBody, ObservationQuery, ObservationSearchBody, ObservationsResponse, PatientParams, StoredResponse } from './schemas';
import { AuditQuery, AuditSearchBody, AuditVerifyBody, AuditVerifyQuery, DevLoginBody, ErasureBody, ErasureByKeyParams, ErasureParams, ErasureQuery, ErasuresQuery } from './security-schemas';

/**
 * The OpenAPI 3.1 document of every API route, generated from the zod schemas the routes validate requests with
 * and the ones their answers are checked against in the tests (response-schemas.ts), so the document and the
 * routes cannot drift apart unnoticed: test/integration/openapi.int.spec.ts compares this document with the
 * routes the running hub has, both ways.
 *
 * Each operation names the problem codes it can answer; they are grouped by status here, and each code's own
 * page is GET /problems/{code}. The codes every protected route can answer (401 unauthenticated, 503 auth_unavailable, 403 forbidden,
 * 429 rate_limited) and every input can cause (400 invalid_request, malformed_json, ...) are added here once.
 *
 * 503 storage_unavailable is listed per operation, not added to all: every operation that reads or writes the store
 * answers it while PostgreSQL cannot be reached, and those that do not (dev-login, the JWKS, /metrics, this document,
 * /problems, the dead letters without a broker) keep answering as before.
 * test/integration/openapi-storage-unavailable-postgres.int.spec.ts calls each operation with the database cut, and
 * again just after it is back (a read of patient data is 503 audit_unavailable until the audit trail takes a write).
 */

/** Routes that are the browser page, not the API: served, not described here. */
export const UNDESCRIBED_ROUTES: readonly string[] = ['GET /', 'GET /app', 'GET /app/', 'POST /app/', 'GET /app/app.js', 'GET /app/app.css'];

type Json = Record<string, unknown>;
type Answer = Readonly<{ description: string; schema?: z.ZodType; mediaType?: string; rawSchema?: Json; headers?: Record<string, Json> }>;
type Operation = Readonly<{
  summary: string;
  description?: string;
  tag: string;
  /** Who may call it; 'public' needs no credentials. */
  access: string;
  path?: z.ZodObject;
  query?: z.ZodType;
  body?: z.ZodType;
  bodyRequired?: boolean;
  xmlBody?: string;
  ok: Readonly<Record<string, Answer>>;
  problems?: readonly ProblemCode[];
}>;

const requestSchema = (s: z.ZodType): Json => withFormatNotes(z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any', io: 'input' }) as Json);

/**
 * Every request field of `format: date-time` with the hub's pattern says in its description what the format does not
 * (seconds optional, no leap second), its own description kept before: a client whose validator checks formats
 * (ajv-formats) refused a search bound the hub takes.
 */
const withFormatNotes = (schema: Json): Json => {
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(visit);
    const o = node as Record<string, unknown>;
    if (o['format'] === 'date-time' && typeof o['pattern'] === 'string' && !String(o['description'] ?? '').includes(OFFSET_DATE_TIME_FORMAT_NOTE)) {
      o['description'] = o['description'] === undefined ? OFFSET_DATE_TIME_FORMAT_NOTE : `${String(o['description'])}. ${OFFSET_DATE_TIME_FORMAT_NOTE}`;
    }
    Object.values(o).forEach(visit);
  };
  visit(schema);
  return schema;
};
// Answers as zod reads them ('input'): objects without additionalProperties: false, so a field added to an answer
// later does not break a client generated from this document.
const responseSchema = (s: z.ZodType): Json => z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any', io: 'input' }) as Json;
const withoutMeta = ({ $schema: _, ...rest }: Json): Json => rest;

/** Path and query parameters from a zod object: one parameter per property, its description lifted out. */
const parameters = (where: 'path' | 'query', shape: z.ZodType | undefined): Json[] => {
  if (!shape) return [];
  const js = requestSchema(shape) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, { description, ...schema }]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    ...(description ? { description } : {}),
    schema,
  }));
};

const PROBLEM_REF = { $ref: '#/components/schemas/Problem' };
/**
 * The problems that carry members of their own (RFC 9457 extensions), each a schema in components.schemas: the
 * Problem and its member. A status whose answers include one says so (alone: its schema; with others: any of them).
 */
const PROBLEMS_WITH_MEMBERS: Partial<Record<ProblemCode, Readonly<{ schema: string; members: Readonly<Record<string, z.ZodType>>; headers?: Readonly<Record<string, Json>> }>>> = {
  dead_letter_discarded: { schema: 'DeadLetterDiscardedProblem', members: { discard: DiscardedProblemMember } },
  document_deprecated: {
    schema: 'DocumentDeprecatedProblem',
    members: { currentUniqueId: DeprecatedProblemMember },
    headers: { Link: { schema: { type: 'string' }, description: 'document_deprecated: </documents/{currentUniqueId}>; rel="latest-version", with currentUniqueId' } },
  },
};
const problemSchemaOf = (group: readonly ProblemCode[]): Json => {
  const refs = [...new Set(group.map((c) => PROBLEMS_WITH_MEMBERS[c]?.schema ?? 'Problem'))].map((name) => ({ $ref: `#/components/schemas/${name}` }));
  return refs.length === 1 ? refs[0]! : { anyOf: refs };
};
const problemsWithMembersSchemas = (): Record<string, Json> =>
  Object.fromEntries(
    Object.entries(PROBLEMS_WITH_MEMBERS).map(([code, { schema, members }]) => [
      schema,
      {
        description: `The problem ${code} answers, with its members`,
        allOf: [
          PROBLEM_REF,
          {
            type: 'object',
            // A member its schema lets be absent (zod's optional) is not required.
            required: Object.entries(members).filter(([, member]) => !member.safeParse(undefined).success).map(([name]) => name),
            properties: { code: { const: code }, ...Object.fromEntries(Object.entries(members).map(([name, member]) => [name, withoutMeta(responseSchema(member))])) },
          },
        ],
      },
    ]),
  );

/** Problem codes grouped by their status: one response per status, naming its codes. */
const problemResponses = (codes: readonly ProblemCode[]): Record<string, Json> => {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of new Set(codes)) {
    const status = PROBLEM_TYPES[code][0];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, Json> = {};
  for (const [status, group] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: group.map((c) => `${c}: ${PROBLEM_TYPES[c][1]}`).join('\n'),
      content: { 'application/problem+json': { schema: problemSchemaOf(group) } },
      ...(status === 429 || status === 503 ? { headers: { 'Retry-After': { required: true, schema: { type: 'integer', minimum: 0 }, description: 'seconds' } } } : {}),
      ...(status === 401 ? { headers: { 'WWW-Authenticate': { required: true, schema: { type: 'string' } } } } : {}),
    };
    // The header fields a problem of the group carries besides its members (never required: the others lack them).
    const own = Object.assign({}, ...group.map((c) => PROBLEMS_WITH_MEMBERS[c]?.headers ?? {})) as Record<string, Json>;
    if (Object.keys(own).length > 0) {
      const answer = out[String(status)] as { headers?: Record<string, Json> };
      answer.headers = { ...answer.headers, ...own };
    }
  }
  return out;
};

/** Answers several routes share, named in components.schemas (and so in generated clients) instead of repeated. */
const NAMED = new Map<z.ZodType, string>([
  [ConsultationResponse, 'Consultation'],
  [ExpertResponse, 'Expert'],
  [SystemResponse, 'System'],
  [StoredResponse, 'StoredObservation'],
  [CorrectionResponse, 'Correction'],
  [KeysRegistered, 'KeysRegistered'],
  [AuditVerification, 'AuditVerification'],
]);
const answerSchema = (s: z.ZodType): Json => {
  const name = NAMED.get(s);
  return name ? { $ref: `#/components/schemas/${name}` } : withoutMeta(responseSchema(s));
};

/** Statuses that answers made before routing have (server.ts: frameworkErrors, clientErrorHandler, the body timer). */
const BEFORE_ROUTING: ReadonlySet<string> = new Set(['400', '408', '417', '431']);

const operation = (key: string, op: Operation): Json => {
  const isPublic = op.access === 'public';
  const hasBody = op.body !== undefined || op.xmlBody !== undefined;
  // Every operation: a request the hub cannot take as sent (no Host, two of them, a bad escape) is invalid_request, and
  // a body is read, checked and refused alike where the operation takes none (malformed JSON, too large, a charset or
  // Content-Encoding the hub does not read): a fuzzer found these answered where the document listed none. So are a
  // request that does not arrive whole in time (408), headers or a URL over Node's limit (431), an Expect other than
  // 100-continue (417), all answered before any route is chosen, and a request that arrives while the hub shuts down
  // (503 service_unavailable): a client validating answers against this document met them unlisted.
  const codes: ProblemCode[] = [
    'invalid_request',
    'malformed_json',
    'request_timeout',
    'body_too_large',
    'unsupported_media_type',
    'expectation_failed',
    'request_header_too_large',
    'service_unavailable',
    // auth_unavailable: only with RTS_AUTH_JWKS_URL, while no key set of the identity provider can be used, or it lacks a token's key and the provider could not be asked.
    ...(isPublic ? [] : (['unauthenticated', 'auth_unavailable', 'forbidden', 'rate_limited'] as const)),
    ...(op.problems ?? []),
  ];
  const content: Json = {};
  if (op.body) content['application/json'] = { schema: withoutMeta(requestSchema(op.body)) };
  if (op.xmlBody) content['application/xml'] = { schema: { type: 'string', description: op.xmlBody } };
  // A deprecated route (deprecated-routes.ts): so marked, and its answers' Deprecation and Link fields described.
  const deprecation = DEPRECATED_ROUTES[key];
  // Required, but on the answers made before a route is chosen (a URL with a malformed escape, a request not whole in
  // time, an Expect refused, headers too large), which cannot tell which route was meant.
  const deprecationHeaders = (status: string): Record<string, Json> =>
    deprecation
      ? {
          Deprecation: { required: !BEFORE_ROUTING.has(status), schema: { type: 'string', const: deprecationHeader(deprecation) }, description: 'RFC 9745: deprecated since this time (@ and Unix seconds)' },
          Link: { required: !BEFORE_ROUTING.has(status), schema: { type: 'string', const: deprecationLink(deprecation) }, description: `The successor, ${deprecation.successor} (rel successor-version), and this document (rel deprecation)` },
        }
      : {};
  const responses: Record<string, Json> = {};
  for (const [status, answer] of Object.entries(op.ok)) {
    const schema = answer.schema ? answerSchema(answer.schema) : answer.rawSchema;
    const headers = { ...answer.headers, ...deprecationHeaders(status) };
    responses[status] = {
      description: answer.description,
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      ...(schema ? { content: { [answer.mediaType ?? 'application/json']: { schema } } } : {}),
    };
  }
  Object.assign(responses, problemResponses(codes));
  // Every answer of a deprecated route carries the fields, refusals and errors too (deprecated-routes.ts).
  if (deprecation) {
    for (const [status, response] of Object.entries(responses)) {
      const { headers, ...rest } = response as { headers?: Json };
      responses[status] = { ...rest, headers: { ...(headers ?? {}), ...deprecationHeaders(status) } };
    }
  }
  return {
    operationId: key.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, ''),
    summary: op.summary,
    description: [op.description, `Who: ${op.access}.`].filter(Boolean).join('\n\n'),
    ...(deprecation ? { deprecated: true } : {}),
    tags: [op.tag],
    ...(isPublic ? { security: [] } : {}),
    parameters: [...parameters('path', op.path), ...parameters('query', op.query)],
    ...(hasBody ? { requestBody: { required: op.bodyRequired ?? true, content } } : {}),
    responses,
  };
};

const location = { Location: { required: true, schema: { type: 'string' }, description: 'The resource' } };
/** GET /documents/{uniqueId}: what a client reads of a document besides its bytes (server.ts). */
const documentHeaders = {
  'X-Document-Status': { required: true, schema: { type: 'string', enum: ['Approved', 'Deprecated'] }, description: 'Approved: current (in queries); Deprecated: replaced by a correction' },
  ETag: { required: true, schema: { type: 'string' }, description: "The document's SHA-256, quoted" },
  Link: {
    schema: { type: 'string' },
    description: 'The successor (rel="successor-version", only when Deprecated) and the predecessor (rel="predecessor-version", when it corrected one); absent when neither',
  },
};

/**
 * Where a receiving system's integrators look: HL7 reads a time without an offset as the sender's local time, the hub
 * reads it as UTC (README, "HL7 documents").
 */
const HL7_TIME_NOTE =
  "The document's effectiveTime is UTC and says so: 20261130233000+0000 (documents stored before the hub wrote the offset have none, and are UTC too). " +
  'A document sent to the hub should carry its offset (20261201003000+0100): a time without an offset is read as UTC, not as local time.';
/** The consultation steps' answer to a system that is not a party (consultation-routes.ts, asStranger). */
const PARTIES_ONLY =
  'A system with no part in the consultation (neither its applicant nor offered it for one of its experts) gets 404 consultation_not_found, as for an id that does not exist; a party gets the 403 that says what it may not do.';
const OPERATOR = 'operator';
const AUTHENTICATED = 'any authenticated caller';
const SYSTEMS = 'a connected system or one of its clinicians, for its own system';

/** Every API route: 'METHOD /fastify/:pattern' -> its operation. */
export const OPERATIONS: Readonly<Record<string, Operation>> = {
  // ---- home monitoring (the TeleMed case) ----
  'POST /observations': {
    tag: 'Home monitoring',
    summary: 'Upload a blood pressure reading (processAndStore)',
    description: 'Builds the HL7 document and its XDS metadata and stores them; answers once the reading and its audit event are durable.',
    access: 'the patient, for themself',
    body: ObservationBody,
    ok: {
      '201': { description: 'Stored; Location names the HL7 document', schema: StoredResponse, headers: location },
      '200': { description: 'A repeat of an upload with the same observationId: nothing new stored', schema: StoredResponse, headers: location },
    },
    problems: ['observation_id_reused', 'invalid_patient_id', 'invalid_observation', 'implausible_observation', 'patient_erased', 'audit_unavailable', 'storage_unavailable', 'concurrency_conflict'],
  },
  'GET /patients/:patientId/observations': {
    tag: 'Home monitoring',
    summary: 'Readings of one patient in [from, to) (getObservationsFor)',
    description: 'Intervals are half-open [from, to) and compared at whole seconds; at most 366 days wide. Without from and to: the last 7 days, up to 5 minutes ahead of now (a reading may be stored that far ahead).',
    access: 'the patient, for themself; a clinician whose system was offered a consultation about the patient',
    path: PatientParams,
    query: ObservationQuery,
    ok: { '200': { description: 'Current readings (corrected ones replaced), oldest first', schema: ObservationsResponse } },
    problems: ['invalid_patient_id', 'invalid_interval', 'interval_too_wide', 'too_many_results', 'unknown_patient', 'patient_erased', 'audit_unavailable', 'storage_unavailable'],
  },
  'POST /observations/search': {
    tag: 'Home monitoring',
    summary: 'Readings of one patient in [from, to), the patient in the body (getObservationsFor)',
    description:
      'The same query and answer as GET /patients/{id}/observations, with the CPR number in the JSON body instead of the URL, where reverse proxies and browsers log it. ' +
      'A read: nothing is stored; it is audited as observations.read, and answered only once its audit event is stored (503 audit_unavailable otherwise).',
    access: 'the patient, for themself; a clinician whose system was offered a consultation about the patient',
    body: ObservationSearchBody,
    ok: { '200': { description: 'Current readings (corrected ones replaced), oldest first', schema: ObservationsResponse } },
    problems: ['invalid_patient_id', 'invalid_interval', 'interval_too_wide', 'too_many_results', 'unknown_patient', 'patient_erased', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /documents/:uniqueId': {
    tag: 'Documents',
    summary: 'Retrieve an HL7 document from the repository',
    description: HL7_TIME_NOTE,
    access: 'the patient it concerns; a clinician whose system was offered a consultation with it attached',
    path: DocumentParams,
    ok: {
      '200': {
        description:
          'The HL7 document. X-Document-Status: Approved (current: in queries) or Deprecated (replaced by a correction); ' +
          'Link: successor-version (only when Deprecated: a document mid-correction is Approved, without one) / predecessor-version; ETag: its hash',
        mediaType: 'application/xml',
        rawSchema: { type: 'string' },
        headers: documentHeaders,
      },
    },
    // 410 while the patient's erasure is under way (their key gone, their registry row not yet); 503 storage_unavailable
    // when the store cannot be read (PostgreSQL down), as the queries.
    problems: ['document_not_found', 'document_content_missing', 'patient_erased', 'audit_unavailable', 'storage_unavailable'],
  },
  'POST /documents/:uniqueId/corrections': {
    tag: 'Documents',
    summary: 'Correct a document (XDS RPLC): the new one replaces it in queries',
    description:
      'The old document is deprecated, then the new one registered; queries show the old reading until the new one is registered and the new one from then on, never neither or both. ' +
      'A correction whose second step failed leaves the old reading current; the next correction of it (any correctionId) completes it. ' +
      'A document that does not exist, and one the caller may not correct, are 404 document_not_found before the body or query is read: only the patient it concerns is told what is wrong with them (400, 422). ' +
      HL7_TIME_NOTE,
    access: 'the patient it concerns',
    path: DocumentParams,
    query: CorrectionQuery,
    body: CorrectionBody,
    xmlBody: 'a whole replacement HL7 document (correctionId then goes in the query). Give effectiveTime an offset (20261201003000+0100): one without an offset is read as UTC',
    ok: {
      '201': { description: 'Corrected', schema: CorrectionResponse, headers: location },
      '200': { description: 'A repeat of the same correctionId', schema: CorrectionResponse, headers: location },
    },
    // invalid_patient_id: an XML correction's patient whose CPR number is born in the future (as an upload's).
    problems: ['document_not_found', 'patient_erased', 'document_deprecated', 'correction_id_reused', 'invalid_document', 'document_too_large', 'correction_patient_mismatch', 'invalid_patient_id', 'invalid_observation', 'implausible_observation', 'audit_unavailable', 'storage_unavailable', 'concurrency_conflict'],
  },

  // ---- privacy and audit ----
  'POST /erasures': {
    tag: 'Privacy and audit',
    summary: "Erase a patient, named by CPR number in the body: their data key is destroyed, so every stored reading and document of theirs becomes unreadable",
    description:
      'The CPR number goes in the JSON body, not the URL, where reverse proxies, load balancers and browsers log it. ' +
      'Idempotent: a repeat answers alreadyErased: true and the erasedAt first recorded. A CPR number the hub holds nothing of (no document, no data key: a typo, or a person who never used it) answers 404 unknown_patient and changes nothing; with "unknown": "erase" the erasure is recorded anyway (known: false), and uploads for that number are refused from then on. ' +
      'Audited as patient.erase under the patient\'s pseudonymous key, also when refused; answered once its audit event is stored. The erasure joins the register of GET /erasures. 503 erasure_incomplete: the key file could not be cleared of the key yet, or, the erasure recorded and the key deleted, a later step could not be written (a full disk: the consultations\' texts, the registry\'s rows); retry.',
    access: OPERATOR,
    body: ErasureBody,
    ok: { '200': { description: 'Erased', schema: ErasureResponse } },
    problems: ['invalid_patient_id', 'unknown_patient', 'erasure_incomplete', 'audit_unavailable', 'storage_unavailable'],
  },
  'DELETE /patients/:patientId': {
    tag: 'Privacy and audit',
    summary: 'Deprecated: POST /erasures. Erase a patient, the CPR number in the URL',
    description:
      'Deprecated: the CPR number is in the URL, which reverse proxies, load balancers and browsers log. Use POST /erasures with {"patient": ..., "unknown"?: ...} in the body: the same erasure, answers, access and audit. Kept for existing clients; its answers carry Deprecation and Link (rel successor-version). ' +
      'Idempotent: a repeat answers alreadyErased: true and the erasedAt first recorded. A CPR number the hub holds nothing of answers 404 unknown_patient and changes nothing; with ?unknown=erase the erasure is recorded anyway (known: false). 503 erasure_incomplete: retry.',
    access: OPERATOR,
    path: ErasureParams,
    query: ErasureQuery,
    ok: { '200': { description: 'Erased', schema: ErasureResponse } },
    problems: ['invalid_patient_id', 'unknown_patient', 'erasure_incomplete', 'audit_unavailable', 'storage_unavailable'],
  },
  'POST /patients/export': {
    tag: 'Privacy and audit',
    summary: "Everything the hub holds of one patient, in one answer (the right of access, GDPR art. 15)",
    description:
      'Every reading ever stored for the patient (current and deprecated, with what replaced what), the consultations that name them (their texts unless erased; ' +
      "attachments of other patients are counted, never named, and no other patient's key is shown), every audit entry recorded under their key (who, what, when, outcome: all of it, no paging; the reads of and steps on their consultations, over HTTP and AMQP, and each consultation message the hub sent a system about them (consultation.sent) among them), " +
      'and whether and when they were erased. The CPR number goes in the body, never the URL. A patient the hub holds nothing of (no document, no data key, no erasure) answers 404 unknown_patient, ' +
      "as an erasure does; an erased patient's export says so (erasure.erasedAt) with what is left of them. Nothing is changed; the export itself is audited as patient.export under the patient's key, " +
      'and answered only once that audit event is stored (503 audit_unavailable otherwise).',
    access: 'the patient, for themself; an operator (the data protection officer), for any patient',
    body: PatientExportBody,
    ok: { '200': { description: "The patient's data", schema: PatientExportResponse } },
    problems: ['invalid_patient_id', 'unknown_patient', 'audit_unavailable', 'storage_unavailable'],
  },
  'PUT /erasures/:patientKey': {
    tag: 'Privacy and audit',
    summary: 'Erase a patient by pseudonymous key: to repeat, on a restored backup, the erasures made after it was taken',
    description:
      'The keys come from GET /erasures of the hub as it was, a newer backup (rts erasures list) or the hub log\'s "patient erased" lines. Recorded whether or not this copy holds anything of the key (known says which), so uploads for that patient stay refused. Idempotent, as POST /erasures.',
    access: OPERATOR,
    path: ErasureByKeyParams,
    ok: { '200': { description: 'Erased', schema: ErasureResponse } },
    problems: ['erasure_incomplete', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /erasures': {
    tag: 'Privacy and audit',
    summary: "The erasures recorded in the store, oldest first: patients' (pseudonymous key and time) and consultations' content erased by id (id and time)",
    description: "An erasure register for the operator to keep beside the backups: after a restore, PUT /erasures/{patientKey} for kind patient and DELETE /consultations/{consultationId}/content for kind consultation (or rts erasures apply) repeat those the backup predates. A consultation erased with its patient is not listed (the patient's erasure repeats it). A page may hold fewer items than limit and still have next. Each read is audited as action erasures.list (an erasure is patient.erase).",
    access: OPERATOR,
    query: ErasuresQuery,
    ok: { '200': { description: 'One page of erasures', schema: ErasuresList } },
    problems: ['audit_unavailable', 'storage_unavailable'],
  },
  'POST /audit/search': {
    tag: 'Privacy and audit',
    summary: 'Audit events of one patient, one user, one resource (document or consultation) or one request in [from, to), oldest first, page by page (at most 31 days); the search in the body',
    description:
      'Give exactly one of patient (a CPR number), user (a token subject), resource (who read or acted on a document or consultation: its uniqueId or id) or requestId (what one request did: its X-Request-Id). ' +
      'The patient\'s CPR number goes in the JSON body, not the URL, where reverse proxies, load balancers and browsers log it. ' +
      'A resource or request id of another shape than the trail records is 422 invalid_resource or invalid_request_id, and a user holding a CPR number (no token\'s sub does) 422 invalid_subject (the problem names the rule, not the value). ' +
      'from and to are instants; an event counts when its `at` lies in the half-open [from, to) (milliseconds). An answer carries at most `limit` events (default and most 1000); ' +
      'one cut there says `truncated: true` and gives `nextCursor`: ask again with the same patient, user, resource or requestId, from and to and `"cursor": nextCursor` for the rest, in the same order, ' +
      'nothing skipped or repeated, also while new events are recorded. Order: by UTC day; within a day the patient\'s chain in recording order, or for a user, a resource or a request the day\'s chains merged by time. ' +
      'A search by resource or request id reads every chain of the days asked for (no index): narrow from and to when you can. ' +
      'Audited as audit.read; answered once its audit event is stored (503 audit_unavailable otherwise).',
    access: OPERATOR,
    body: AuditSearchBody,
    ok: { '200': { description: 'The audit events (patients by pseudonymous key only)', schema: AuditEvents } },
    problems: ['invalid_patient_id', 'invalid_subject', 'invalid_resource', 'invalid_request_id', 'invalid_interval', 'interval_too_wide', 'invalid_cursor', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /audit': {
    tag: 'Privacy and audit',
    summary: 'Deprecated: POST /audit/search. Audit events of one patient or one user in [from, to), the search in the URL',
    description:
      'Deprecated: a patient\'s CPR number is in the URL, which reverse proxies, load balancers and browsers log. Use POST /audit/search with the same fields in the body: the same answers, paging, access and audit; a cursor of either pages the other. Kept for existing clients; its answers carry Deprecation and Link (rel successor-version). ' +
      'from and to are instants, [from, to) at milliseconds; at most `limit` events an answer (default and most 1000); one cut there says `truncated: true` and gives `nextCursor`: ask again with the same patient or user, from and to and `cursor=<nextCursor>`.',
    access: OPERATOR,
    query: AuditQuery,
    ok: { '200': { description: 'The audit events (patients by pseudonymous key only)', schema: AuditEvents } },
    problems: ['invalid_patient_id', 'invalid_subject', 'invalid_interval', 'interval_too_wide', 'invalid_cursor', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /audit/verify': {
    tag: 'Privacy and audit',
    summary: "Walk the audit trail's hash chains of the given days (default: the last 7)",
    description:
      'Whole chains: every UTC day that from and to fall on, both included (to defaults to now, from to 6 days before to). ' +
      'The range is checked as a search\'s: from after to (or after now, without to) is 422 invalid_interval, more than 31 days between them 422 interval_too_wide; a range is never verified in part. ' +
      'A chain whole in itself can still have been rewritten (relinked) by someone with write access to the store: the hub process answering checks that the last event it wrote (or read) in each chain still holds its hash, ' +
      'and a chain where it does not is listed in changedBehindHub (what it wrote against what the store holds) and is a break changed_behind_hub (so ok is false), and its heads entry is the hash the process wrote, not the rewritten head.',
    access: OPERATOR,
    query: AuditVerifyQuery,
    ok: { '200': { description: 'ok is false when any chain is broken or found changed behind this hub process (changedBehindHub); heads are to be kept elsewhere', schema: AuditVerification } },
    problems: ['invalid_interval', 'interval_too_wide', 'audit_unavailable', 'storage_unavailable'],
  },
  'POST /audit/verify': {
    tag: 'Privacy and audit',
    summary: 'The same, also checking head hashes kept from earlier (a chain cut back at its tail loses its anchor)',
    access: OPERATOR,
    body: AuditVerifyBody,
    ok: { '200': { description: 'As GET, anchors checked', schema: AuditVerification } },
    problems: ['invalid_interval', 'interval_too_wide', 'anchor_outside_days', 'too_many_anchors', 'storage_unavailable'],
  },
  'POST /auth/dev-login': {
    tag: 'Access',
    summary: 'A token for any role (development only: on by default on loopback, off with RTS_AUTH_DEV_LOGIN=off)',
    access: 'public',
    body: DevLoginBody,
    ok: { '200': { description: 'A signed token', schema: DevLoginResponse } },
    problems: ['invalid_patient_id', 'invalid_subject', 'rate_limited'],
  },

  // ---- the expert directory (RTS uplink/downlink sync) ----
  'GET /experts': {
    tag: 'Directory',
    summary: 'Search the regional expert directory',
    access: AUTHENTICATED,
    query: ExpertsQuery,
    ok: { '200': { description: 'One page of experts', schema: ExpertsPage } },
    problems: ['invalid_cursor', 'storage_unavailable'],
  },
  'GET /experts/:id': {
    tag: 'Directory',
    summary: 'One expert (retired ones too)',
    access: AUTHENTICATED,
    path: ExpertParams,
    ok: { '200': { description: 'The expert', schema: ExpertResponse } },
    problems: ['expert_not_found', 'invalid_expert_id', 'storage_unavailable'],
  },
  'GET /systems': {
    tag: 'Directory',
    summary: 'The connected city-level systems',
    access: AUTHENTICATED,
    ok: { '200': { description: 'Every registered system', schema: SystemsList } },
    problems: ['storage_unavailable'],
  },
  'GET /systems/:id': {
    tag: 'Directory',
    summary: 'One connected system, with its join progress',
    access: AUTHENTICATED,
    path: SystemParams,
    ok: { '200': { description: 'The system', schema: SystemResponse } },
    problems: ['system_not_found', 'storage_unavailable'],
  },
  'POST /systems': {
    tag: 'Directory',
    summary: 'Register a city-level system (it may then join with its bulk upload over the broker)',
    access: OPERATOR,
    body: SystemBody,
    ok: {
      '201': { description: 'Registered', schema: SystemResponse, headers: location },
      '200': { description: 'Already registered with the same details', schema: SystemResponse, headers: location },
    },
    problems: ['system_already_registered', 'invalid_system', 'invalid_system_id', 'invalid_key', 'key_owned_by_other_party', 'storage_unavailable'],
  },

  // ---- message keys ----
  'GET /.well-known/jwks.json': {
    tag: 'Message keys',
    summary: "The hub's public message keys: its signing key (use sig) and its encryption keys (use enc)",
    access: 'public',
    ok: { '200': { description: 'A JWK set', schema: Jwks } },
  },
  'GET /systems/:id/keys': {
    tag: 'Message keys',
    summary: "A system's registered public message keys",
    access: AUTHENTICATED,
    path: SystemKeyParams,
    ok: { '200': { description: 'The keys', schema: SystemKeysList } },
    problems: ['system_not_found', 'storage_unavailable'],
  },
  'POST /systems/:id/keys': {
    tag: 'Message keys',
    summary: 'Register new public keys of a system (rotation: add the new key, then retire the old one)',
    access: 'the system itself; an operator',
    path: SystemKeyParams,
    body: KeysBody,
    ok: {
      '201': { description: 'At least one key registered', schema: KeysRegistered },
      '200': { description: 'Every key was already registered', schema: KeysRegistered },
    },
    problems: ['system_not_found', 'invalid_key', 'invalid_key_dates', 'key_owned_by_other_party', 'key_retired', 'key_use_changed', 'storage_unavailable'],
  },
  'POST /systems/:id/keys/:kid/retire': {
    tag: 'Message keys',
    summary: "Retire a system's key, now or at a later time (both keys work during the overlap)",
    access: 'the system itself; an operator',
    path: KidParams,
    body: RetireBody,
    bodyRequired: false,
    ok: { '200': { description: 'Retired (changed is false for a repeat)', schema: KeyRetired } },
    problems: ['system_not_found', 'key_not_found', 'last_key', 'storage_unavailable'],
  },

  // ---- cross-area teleconsultation ----
  'POST /consultations': {
    tag: 'Consultations',
    summary: 'Request a teleconsultation from chosen experts (offered to them in order)',
    description:
      'Each attachment must be a document registered with the hub (422 unknown_attachment), current, not replaced by a correction (422 attachment_replaced: the errors entry names the current version to attach), and all must be of one patient (422 attachments_of_several_patients); errors[].path names the attachment by its place (attachments.N). ' +
      'A repeat of a stored request (same consultationId and content: applicant, clinician, texts, candidates in order, attachments and deadlineSeconds; one naming no deadlineSeconds takes the stored one) is answered 200 as the first was, whatever became of its candidates (one retired since) and attachments since. ' +
      'Another request under a stored consultationId is 409 consultation_id_reused; when the deadline is all that differs, its errors name deadlineSeconds and the detail the stored value (a retry must send the same deadline, a new request a new consultationId).',
    access: SYSTEMS,
    body: ConsultationBody,
    ok: {
      '201': { description: 'Requested', schema: ConsultationResponse, headers: location },
      '200': { description: 'A repeat of the same consultationId and content (deadlineSeconds included)', schema: ConsultationResponse, headers: location },
    },
    problems: ['consultation_id_reused', 'invalid_consultation', 'unknown_candidate', 'candidate_retired', 'unknown_attachment', 'attachment_replaced', 'attachments_of_several_patients', 'unknown_system', 'patient_erased', 'consultation_erased', 'storage_unavailable', 'concurrency_conflict'],
  },
  'GET /consultations': {
    tag: 'Consultations',
    summary: "A system's consultations, newest first",
    description:
      'Only those the system may read (as GET /consultations/{id}): a case cancelled while the system\'s expert only held the offer is not listed to that system. A page may hold fewer items than limit and still have a nextCursor.',
    access: SYSTEMS,
    query: ConsultationsQuery,
    ok: { '200': { description: 'One page', schema: ConsultationsPage } },
    problems: ['invalid_cursor', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /consultations/:id': {
    tag: 'Consultations',
    summary: 'One consultation',
    description:
      'Readable by the applicant system and the system of the expert the case is with now (the open offer, or the expert who accepted it, also once the case is closed), or their clinicians. ' +
      'A system whose expert was offered the case but declined, let it expire, retired, or held the offer when the applicant cancelled the case may no longer read it: 403 forbidden. ' +
      'Anyone else, of any role, gets 404 consultation_not_found, as for an id that does not exist. ' +
      "Audited as consultation.read under the pseudonymous key of the consultation's patient, allowed or refused, so the patient's export (POST /patients/export) lists it. " +
      'attachmentStatus gives each attachment as the registry has it at this read: Approved, or Deprecated with the correction that replaced it (replacedBy) and the current version of its chain (currentVersion), so an expert does not report on a replaced value unawares.',
    access: 'the applicant system and the system of the expert the case is with now (or their clinicians)',
    path: ConsultationParams,
    ok: { '200': { description: 'The consultation, with its attachments\' status now', schema: ConsultationWithAttachmentsResponse } },
    problems: ['consultation_not_found', 'audit_unavailable', 'storage_unavailable'],
  },
  'GET /consultations/:id/trace': {
    tag: 'Consultations',
    summary: "Where a consultation is, for an operator: ids, status, offers and times, without its texts",
    description:
      "For an operator answering a desk's call (README, Tracing a consultation or a message): the correlation id that every log line and message about the consultation carries, its status, to whom it was offered and when, and what became of each offer. " +
      'No question, summary, report, reasons, attachments or clinician: an operator does not read patient data (GET /consultations/{id} answers the parties only).',
    access: OPERATOR,
    path: ConsultationParams,
    ok: { '200': { description: 'The consultation without its texts', schema: ConsultationTraceResponse } },
    problems: ['consultation_not_found', 'audit_unavailable', 'storage_unavailable'],
  },
  'POST /consultations/:id/accept': {
    tag: 'Consultations',
    summary: 'The offered expert accepts',
    description: PARTIES_ONLY,
    access: "the expert's home system",
    path: ConsultationParams,
    body: AcceptBody,
    ok: { '200': { description: 'The consultation after the action', schema: ConsultationResponse } },
    problems: ['consultation_not_found', 'expert_not_offered', 'not_your_consultation', 'offer_expired', 'offer_declined', 'consultation_already_accepted', 'consultation_cancelled', 'consultation_unassigned', 'expert_retired', 'action_id_reused', 'storage_unavailable', 'concurrency_conflict'],
  },
  'POST /consultations/:id/decline': {
    tag: 'Consultations',
    summary: 'The offered expert declines (the next candidate gets the offer)',
    description: PARTIES_ONLY,
    access: "the expert's home system",
    path: ConsultationParams,
    body: DeclineBody,
    ok: { '200': { description: 'The consultation after the action', schema: ConsultationResponse } },
    problems: ['consultation_not_found', 'expert_not_offered', 'not_your_consultation', 'offer_expired', 'consultation_already_accepted', 'consultation_cancelled', 'consultation_unassigned', 'expert_retired', 'action_id_reused', 'storage_unavailable', 'concurrency_conflict'],
  },
  'POST /consultations/:id/report': {
    tag: 'Consultations',
    summary: 'The accepting expert issues the report (sent to the applicant until acknowledged)',
    description: PARTIES_ONLY,
    access: "the expert's home system",
    path: ConsultationParams,
    body: ReportBody,
    ok: { '200': { description: 'The consultation after the action', schema: ConsultationResponse } },
    problems: ['consultation_not_found', 'not_your_consultation', 'consultation_not_accepted', 'report_already_issued', 'consultation_cancelled', 'invalid_report', 'expert_not_offered', 'offer_expired', 'offer_declined', 'consultation_unassigned', 'expert_retired', 'consultation_erased', 'action_id_reused', 'storage_unavailable', 'concurrency_conflict'],
  },
  'POST /consultations/:id/acknowledge': {
    tag: 'Consultations',
    summary: 'The applicant acknowledges the report',
    description: PARTIES_ONLY,
    access: 'the applicant system',
    path: ConsultationParams,
    body: ApplicantBody,
    ok: { '200': { description: 'The consultation after the action', schema: ConsultationResponse } },
    problems: ['consultation_not_found', 'not_your_consultation', 'report_not_issued', 'consultation_cancelled', 'consultation_unassigned', 'action_id_reused', 'storage_unavailable', 'concurrency_conflict'],
  },
  'POST /consultations/:id/cancel': {
    tag: 'Consultations',
    summary: 'The applicant cancels (before a report)',
    description: PARTIES_ONLY,
    access: 'the applicant system',
    path: ConsultationParams,
    body: CancelBody,
    ok: { '200': { description: 'The consultation after the action', schema: ConsultationResponse } },
    problems: ['consultation_not_found', 'not_your_consultation', 'report_already_issued', 'consultation_cancelled', 'consultation_unassigned', 'action_id_reused', 'storage_unavailable', 'concurrency_conflict'],
  },
  'DELETE /consultations/:id/content': {
    tag: 'Privacy and audit',
    summary: "Erase one consultation's texts (question, summary, report, reasons): its data key is destroyed",
    description:
      "For a consultation no patient's erasure reaches (no attachment, or documents the hub does not hold). Erasing a patient erases the consultations attached to their documents by itself. The consultation goes on without its texts (contentErased: true, the texts null); no report is sent again, and none can be issued. Idempotent: a repeat answers alreadyErased: true and the erasedAt first recorded. Consultations recorded before sealing (their texts stored in clear) cannot be reached: see README, Patient data.",
    access: OPERATOR,
    path: ConsultationParams,
    ok: { '200': { description: 'Erased', schema: ConsultationErasureResponse } },
    problems: ['consultation_not_found', 'erasure_incomplete', 'audit_unavailable', 'storage_unavailable', 'concurrency_conflict'],
  },
  'GET /stats/consultations-per-month': {
    tag: 'Consultations',
    summary: 'Consultations requested per UTC calendar month (bounds inclusive; months without requests as 0; at most 1200 months)',
    description:
      'Without from the series starts at the first month with a request, without to it ends at the last; with no request in the store (or none from from on, or none up to to) and a bound left out, the series is empty.',
    access: AUTHENTICATED,
    query: MonthsQuery,
    ok: { '200': { description: 'Counts by month', schema: MonthlyCounts } },
    problems: ['invalid_interval', 'interval_too_wide', 'storage_unavailable'],
  },

  // ---- dead letters (operators) ----
  'GET /dead-letters': {
    tag: 'Dead letters',
    summary: 'Browse the dead letter queue without consuming, oldest first (bodies left out)',
    description: '503 service_unavailable when the hub runs without a broker.',
    access: OPERATOR,
    query: DeadLettersQuery,
    ok: { '200': { description: 'Dead letters with their reasons', schema: DeadLettersList } },
    problems: ['service_unavailable'],
  },
  'GET /dead-letters/:id': {
    tag: 'Dead letters',
    summary: 'One dead letter with its body, properties and recorded replays ({id}: dead letter id, envelope id, broker message id or content id)',
    description:
      'An id no longer on the queue whose last recorded fate is a discard: 410 dead_letter_discarded, the problem carrying the discard record as its `discard` member. ' +
      "Audited as dead_letters.read under the dead letter's id, allowed or refused: the body may hold patient data (503 audit_unavailable while the audit trail cannot be written).",
    access: OPERATOR,
    path: DeadLetterParams,
    ok: { '200': { description: 'The dead letter', schema: DeadLetterResponse } },
    problems: ['dead_letter_not_found', 'dead_letter_discarded', 'audit_unavailable', 'service_unavailable'],
  },
  'POST /dead-letters/:id/replay': {
    tag: 'Dead letters',
    summary: 'Move a dead letter back to its source queue; recorded as DeadLetterReplayed',
    description: 'A replay and a discard of the same message at once: one of them gets it, the other answers 409 dead_letter_taken.',
    access: OPERATOR,
    path: DeadLetterParams,
    body: ReplayBody,
    bodyRequired: false,
    ok: { '200': { description: 'Replayed', schema: DeadLetterReplayResponse } },
    problems: ['dead_letter_not_found', 'dead_letter_discarded', 'dead_letter_taken', 'dead_letter_not_selectable', 'dead_letter_without_source', 'replay_target_refused', 'service_unavailable'],
  },
  'POST /dead-letters/:id/discard': {
    tag: 'Dead letters',
    summary: 'Remove a dead letter from the dead letter queue for good; recorded as DeadLetterDiscarded (never its body) and audited',
    description:
      "By its dead letter id: that copy; by its envelope id: every copy of the message. Recorded under the caller's token subject in the stream its replays go to, the event stored before the message is removed; audited as dead_letters.discard whatever the outcome (answered once the audit event is stored). A discarded id again: 410 dead_letter_discarded with the discard record (member `discard`). A replay or discard of the same message at the same time: one of them gets it, the other answers 409 dead_letter_taken.",
    access: OPERATOR,
    path: DeadLetterParams,
    body: DiscardBody,
    ok: { '200': { description: 'Discarded', schema: DeadLetterDiscardResponse } },
    problems: ['dead_letter_not_found', 'dead_letter_discarded', 'dead_letter_taken', 'dead_letter_not_selectable', 'audit_unavailable', 'storage_unavailable', 'service_unavailable'],
  },

  // ---- operations ----
  'GET /health': {
    tag: 'Operations',
    summary: 'Liveness and store readiness',
    access: 'public',
    ok: { '200': { description: 'The store answers, and its writes commit', schema: HealthResponse } },
    problems: ['service_unavailable', 'storage_unavailable'],
  },
  'GET /metrics': {
    tag: 'Operations',
    summary: 'Metrics in the Prometheus text format 0.0.4 (labels never hold an identifier of a patient, expert, system or message)',
    access: OPERATOR,
    ok: { '200': { description: 'The metrics', mediaType: 'text/plain; version=0.0.4', rawSchema: { type: 'string' } } },
  },
  'GET /openapi.json': {
    tag: 'Operations',
    summary: 'This document',
    access: 'public',
    ok: { '200': { description: 'OpenAPI 3.1', rawSchema: { type: 'object' } } },
  },
  'GET /problems/:code': {
    tag: 'Operations',
    summary: 'What a problem type means (the type URI of every problem+json answer)',
    access: 'public',
    path: z.strictObject({ code: z.enum(Object.keys(PROBLEM_TYPES) as [ProblemCode, ...ProblemCode[]]) }),
    ok: { '200': { description: 'The problem type', schema: ProblemTypeResponse } },
    problems: ['not_found'],
  },
};

/** 'GET /systems/:id/keys' -> ['get', '/systems/{id}/keys'] */
const splitKey = (key: string): [string, string] => {
  const [method, path] = key.split(' ') as [string, string];
  return [method.toLowerCase(), path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')];
};

const build = (): Json => {
  const paths: Record<string, Record<string, Json>> = {};
  for (const [key, op] of Object.entries(OPERATIONS)) {
    const [method, path] = splitKey(key);
    (paths[path] ??= {})[method] = operation(key, op);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'telemed-rts',
      version: '0.1.0',
      description:
        'Regional telemedicine hub: home blood pressure readings stored as HL7 documents in an XDS registry/repository, ' +
        'the regional expert directory, and cross-area teleconsultations between city-level systems. ' +
        'Errors are RFC 9457 problem details (application/problem+json) with a stable `code`; GET /problems/{code} explains each. ' +
        'Access control is on by default: a bearer JWT, or an API key (X-Api-Key) for a connected system.',
    },
    tags: [...new Set(Object.values(OPERATIONS).map((op) => op.tag))].map((name) => ({ name })),
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "Claims: sub, role (patient, clinician, system, operator), systemId (clinicians, systems); for patients patientKey (the pseudonymous key: the hub's own tokens) or patient (the CPR number: an identity provider's tokens), not both" },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key', description: "A connected system's API key (role system)" },
      },
      schemas: {
        ...Object.fromEntries([...NAMED].map(([schema, name]) => [name, withoutMeta(responseSchema(schema))])),
        ...problemsWithMembersSchemas(),
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'code'],
          properties: {
            type: { type: 'string', format: 'uri-reference', description: 'A URI reference: /problems/{code}' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            instance: { type: 'string' },
            code: { type: 'string', enum: Object.keys(PROBLEM_TYPES) },
            errors: { type: 'array', items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
    },
  };
};

let built: Json | undefined;
/** The document (built once: it only depends on the code). */
export const openApiDocument = (): Json => (built ??= build());
