import { z } from 'zod';
import { MAX_AUDIT_RESULTS } from '../../application/audit/audit-trail';
import { isKeptRequestId } from '../../application/audit/request-id';
import { PATIENT_KEY_PATTERN } from '../../application/ports/patient-keys';
import { LEGACY_CONSULTATION_ID_RULE, isExistingConsultationId } from '../../domain/consultation/legacy-id';
import { holdsOneLineControl, ONE_LINE_CONTROL_PATTERN } from '../../domain/shared/text-limits';
import { offsetDateTime } from '../validation/offset-date-time';

/**
 * The request shapes of the routes security.ts registers (dev login, erasure, the audit trail's searches and
 * verification), validated there with parseInput and described by the OpenAPI document (openapi.ts).
 */
export const DevLoginBody = z
  .strictObject({
    role: z.enum(['patient', 'clinician', 'system', 'operator']),
    patient: z.string().max(20).optional().describe("The CPR number, for role patient (the token holds the patient's pseudonymous key, not this)"),
    systemId: z.string().regex(/^[a-z0-9][a-z0-9-]{1,31}$/).optional().describe('For roles clinician and system'),
    sub: z
      .string()
      .min(1)
      .max(100)
      .refine((sub) => !holdsOneLineControl(sub), 'no control characters')
      .meta({ not: { pattern: ONE_LINE_CONTROL_PATTERN }, description: 'The token subject: one line (no control characters, line breaks or bidirectional overrides)' })
      .optional(),
  })
  .refine((b) => b.role === 'patient' || b.patient === undefined, { message: 'patient belongs to role patient', path: ['patient'] })
  // The refine above as the documents can say it: no patient but for role patient.
  .meta({ if: { properties: { role: { const: 'patient' } } }, else: { properties: { patient: false } } });
/** A CPR number as the erasure and audit routes take it (shape only: parseCpr then checks it, 422 invalid_patient_id). */
export const PatientCpr = z.string().max(20);
/** Deprecated (DELETE /patients/{patientId}): the CPR number in the URL. */
export const ErasureParams = z.strictObject({ patientId: PatientCpr });
export const ErasureQuery = z.strictObject({
  unknown: z
    .enum(['refuse', 'erase'])
    .optional()
    .describe('erase: record the erasure also when the hub holds nothing of the patient (their uploads are refused from then on); refuse (the default): such a request answers 404 unknown_patient and changes nothing'),
});
/**
 * POST /erasures: what DELETE /patients/{patientId} takes, with the CPR number in the body instead of the URL (a
 * reverse proxy's access log, a browser's history keep URLs).
 */
export const ErasureBody = z.strictObject({ patient: PatientCpr.describe('The patient (CPR number, ddmmyy-ssss)'), ...ErasureQuery.shape });
export const ErasureByKeyParams = z.strictObject({ patientKey: z.string().regex(PATIENT_KEY_PATTERN, 'a pseudonymous patient key: p and 32 hex digits') });
/** The largest page of GET /erasures. */
export const MAX_ERASURES_PAGE = 10_000;
export const ErasuresQuery = z.strictObject({
  // A store position: at most 2^63-1 (a larger one reached the store's BigInt binding and answered 500).
  after: z
    .string()
    // abort: zod runs a refine after a failed regex too, and BigInt('x') threw (500).
    // [0-9], and no other character (`not`): Python's \d takes any script's digits, and its $ (Java's too) a final line
    // break, which the hub refuses.
    .regex(/^[0-9]{1,19}$/, { message: 'a position: digits only', abort: true })
    .refine((v) => BigInt(v) <= 9_223_372_036_854_775_807n, 'at most 9223372036854775807')
    .meta({ not: { pattern: '[^0-9]' } })
    .optional()
    .describe("An earlier page's `next` (a store position: at most 9223372036854775807)"),
  limit: z.coerce.number().int().min(1).max(MAX_ERASURES_PAGE).optional().describe(`default and most: ${MAX_ERASURES_PAGE}`),
});
/** Entries per answer of the audit trail: text in GET /audit's query (coerced), a JSON number in POST /audit/search's body. */
const auditLimit = <T extends z.ZodNumber | z.ZodCoercedNumber>(n: T) =>
  n.int().min(1).max(MAX_AUDIT_RESULTS).optional().describe(`Entries per answer, 1..${MAX_AUDIT_RESULTS}, default ${MAX_AUDIT_RESULTS}`);
/** What a search of the audit trail names: GET /audit's query and POST /audit/search's body. */
const AuditSearchFields = {
  patient: PatientCpr.optional().describe('A CPR number (give patient or user)'),
  user: z.string().min(1).max(200).optional().describe("A token subject (give patient or user); one holding a CPR number, as no token's sub does: 422 invalid_subject"),
  from: offsetDateTime.optional().describe('Start of the half-open interval [from, to), an instant (compared at milliseconds); default: the start of the UTC day 6 days before to (or now)'),
  to: offsetDateTime.optional().describe('End of [from, to), exclusive; default: none (up to now, and what is recorded while paging)'),
  limit: auditLimit(z.number()),
  cursor: z.string().optional().describe("An answer's nextCursor: the next page of the same query (same patient or user, from and to); 422 invalid_cursor otherwise; empty: the first page"),
};
const patientOrUser = (q: { patient?: string | undefined; user?: string | undefined }): boolean => (q.patient === undefined) !== (q.user === undefined);
const PATIENT_OR_USER = { message: 'give exactly one of patient or user', path: ['patient'] };
/** Deprecated (GET /audit): a patient's CPR number in the URL's query. Left as it was: the investigator's searches are POST /audit/search's. */
export const AuditQuery = z.strictObject({ ...AuditSearchFields, limit: auditLimit(z.coerce.number()) }).refine(patientOrUser, PATIENT_OR_USER);

/**
 * What the trail records as a resource that an investigator asks about (resourceOf): a document's uniqueId (an OID)
 * or a consultation's id (a UUID, or a legacy id: isExistingConsultationId), at most 64 characters. A UUID is also how
 * a discarded dead letter is named.
 */
export const RESOURCE_RULE = `a document's uniqueId (an OID: 0, 1 or 2, then dot-separated numbers) or a consultation's id (${LEGACY_CONSULTATION_ID_RULE}), at most 64 characters`;
export const isAuditedResource = (value: string): boolean => value.length <= 64 && (DOCUMENT_ID.test(value) || isExistingConsultationId(value));
/**
 * The shapes of POST /audit/search's resource and requestId, checked in the route (422 invalid_resource,
 * invalid_request_id: a value of the wrong shape is no search the trail could answer). Their problems and errors name
 * the rule, never the value: it may be a CPR number typed into the wrong field.
 */
export const AuditResource = z.string().refine(isAuditedResource, `must be ${RESOURCE_RULE}`);
export const REQUEST_ID_RULE = '1-64 characters of A-Z a-z 0-9 . _ : - holding no CPR number, as the hub keeps an X-Request-Id (or a UUID it made)';
export const AuditRequestId = z.string().refine(isKeptRequestId, `must be ${REQUEST_ID_RULE}`);
const onlyOneOf = (q: { patient?: string | undefined; user?: string | undefined; resource?: string | undefined; requestId?: string | undefined }): boolean =>
  [q.patient, q.user, q.resource, q.requestId].filter((v) => v !== undefined).length === 1;
/**
 * POST /audit/search: GET /audit's query as a JSON body, so that a patient's CPR number is in no URL; also by
 * resource (who read or acted on a document or consultation) and by request id (what one request did).
 */
export const AuditSearchBody = z
  .strictObject({
    ...AuditSearchFields,
    patient: AuditSearchFields.patient.describe('A CPR number (give exactly one of patient, user, resource, requestId)'),
    user: AuditSearchFields.user.describe('A token subject (give exactly one of patient, user, resource, requestId)'),
    resource: z
      .string()
      .optional()
      .describe(`A resource the audit events name (give exactly one of patient, user, resource, requestId): ${RESOURCE_RULE}. Another value: 422 invalid_resource`),
    requestId: z
      .string()
      .optional()
      .describe(`A request's id, its X-Request-Id (give exactly one of patient, user, resource, requestId): ${REQUEST_ID_RULE}. Another value: 422 invalid_request_id`),
  })
  .refine(onlyOneOf, { message: 'give exactly one of patient, user, resource or requestId', path: ['patient'] })
  // The refine above as the documents can say it. Each branch names its property again (`true`: any value), as ajv's
  // strict mode wants a required property defined where it is required.
  .meta({ oneOf: (['patient', 'user', 'resource', 'requestId'] as const).map((name) => ({ required: [name], properties: { [name]: true } })) });
const VerifyRange = {
  from: offsetDateTime.optional().describe('Its UTC day is the first verified; default: 6 days before to'),
  to: offsetDateTime.optional().describe('Its UTC day is the last verified (included); default: now. At most 31 days after from'),
};
export const AuditVerifyQuery = z.strictObject(VerifyRange);
export const AuditVerifyBody = z.strictObject({
  ...VerifyRange,
  anchors: z
    .record(z.string().regex(/^audit-\d{4}-\d{2}-\d{2}-[0-7]$/, 'an audit chain name, audit-YYYY-MM-DD-0..7'), z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 hex hash'))
    .describe('Head hashes kept from an earlier verification (its heads), by chain name'),
});

/** A document's uniqueId as the trail records it: an OID (0, 1 or 2, then dot-separated numbers). */
export const DOCUMENT_ID = /^[0-2](\.(0|[1-9]\d*))+$/;
