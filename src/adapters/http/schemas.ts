import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ValidationError } from '../../domain/shared/errors';
import { OFFSET_DATE_TIME_FORM, OFFSET_DATE_TIME_MAX_LENGTH, OFFSET_DATE_TIME_PATTERN } from '../../domain/shared/iso-instant';
import { IDEMPOTENCY_KEY_FORM, NOT_A_KEY_CHARACTER, WHOLE_CPR_KEY_PATTERN, idempotencyKeyProblem } from '../../domain/shared/idempotency-key';
import { offsetDateTime, OFFSET_DATE_TIME_MESSAGE } from '../validation/offset-date-time';
import { issueMessage, issuePath } from '../validation/zod-issues';
import { instant } from './response-schemas';

/**
 * The shapes the HTTP API accepts. zod checks shape and types here at the edge (400 invalid_request); the
 * domain then checks meaning (CPR date, plausible ranges, time not in the future: 422).
 */
const quantity = z.union([
  z.number(),
  z.object({ value: z.number(), unit: z.string().max(16) }).strict(),
], { error: 'must be a number (mmHg) or an object { value, unit }' }).describe('A pressure in mmHg: a number, or { value, unit: "mmHg" }');

/**
 * A reading's measuredAt: the domain's form (OFFSET_DATE_TIME_FORM), so HTTP and the library take the same texts; its
 * calendar and clock are the domain's to check (422 implausible).
 */
const isoWithOffset = z
  .string()
  .max(OFFSET_DATE_TIME_MAX_LENGTH)
  .regex(OFFSET_DATE_TIME_FORM, OFFSET_DATE_TIME_MESSAGE)
  // The document's pattern has the clock in range, as the domain checks it (422): a client refuses a leap second or
  // 24:00 before sending it.
  .meta({ pattern: OFFSET_DATE_TIME_PATTERN })
  .describe('ISO-8601 date-time with offset; hours 00-23, minutes and seconds 00-59 (no leap second), a day its month has: else 422');

/**
 * A query's bound: also on the clock and the calendar, so that 24:00 and February 30 get the same answer (400, as the
 * audit routes' bounds do; February 30 was 422 invalid_interval here).
 */
const boundWithOffset = offsetDateTime;

export const idempotencyKey = z
  .string()
  // abort: a key of the wrong form is told only that (the CPR check after it would also fail on "a b" or a NUL).
  .regex(IDEMPOTENCY_KEY_FORM, { message: '1-64 characters of A-Z a-z 0-9 . _ : -', abort: true })
  .refine((v) => idempotencyKeyProblem(v) === null, 'must not be a CPR number (it is stored in clear)')
  // The refine above as the documents can say it (a client generated from them refused nothing of it), and a character
  // outside the form: the pattern's final $ lets a final line break through in Python and Java.
  .meta({ not: { anyOf: [{ pattern: NOT_A_KEY_CHARACTER }, { pattern: WHOLE_CPR_KEY_PATTERN }] } })
  .describe(
    'Client-chosen id; a repeat with the same id is stored once. It is stored in clear, so it may not be a CPR number as a whole, anyone\'s (400; the `not` pattern), ' +
      "nor, as an upload's observationId or a correction's correctionId, hold that patient's own CPR number in any spelling, inside a longer id too (bp:2512481234, 19481225-1234 for 251248-1234: 422 invalid_observation, which no schema can say)",
  );

export const ObservationBody = z
  .object({
    observationId: idempotencyKey.optional(),
    patientId: z.string().max(32).describe('Danish CPR number, ddmmyy-ssss'),
    systolic: quantity,
    diastolic: quantity,
    measuredAt: isoWithOffset.optional().describe('When the reading was taken; defaults to now (a retry of the same observationId keeps the stored time)'),
  })
  .strict();

export const CorrectionBody = z
  .object({
    correctionId: idempotencyKey.optional(),
    systolic: quantity,
    diastolic: quantity,
    measuredAt: isoWithOffset,
  })
  .strict();

export const CorrectionQuery = z.object({ correctionId: idempotencyKey.optional() }).strict();

export const ObservationQuery = z
  .object({
    from: boundWithOffset.optional().describe('Start of the half-open interval [from, to); defaults to 7 days before to when to is given; without either, the last 7 days up to now (the interval then ends 5 minutes ahead, see to)'),
    to: boundWithOffset.optional().describe('End of the half-open interval (exclusive); defaults to now plus 5 minutes (a reading may be stored up to 5 minutes ahead of the hub\'s clock)'),
  })
  .strict();

export const PatientParams = z.object({ patientId: z.string().max(32) }).strict();
/**
 * POST /observations/search: the query of GET /patients/{id}/observations with the patient in the body, so that
 * the CPR number is in no URL (a reverse proxy's access log, a browser's history keep URLs).
 */
export const ObservationSearchBody = z
  .object({ patientId: PatientParams.shape.patientId.describe('The patient (CPR number, ddmmyy-ssss)'), ...ObservationQuery.shape })
  .strict();
export const DocumentParams = z.object({ uniqueId: z.string().regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'an OID').max(64) }).strict();

const Quantity = z.object({ value: z.number(), unit: z.literal('mmHg') });
export const ObservationView = z.object({ uniqueId: z.string(), measuredAt: instant, systolic: Quantity, diastolic: Quantity });
export const StoredResponse = z.object({
  uniqueId: z.string(),
  observationId: z.string().nullable(),
  measuredAt: instant,
  document: z.string(),
  currentUniqueId: z
    .string()
    .optional()
    .describe('Only on a repeat (200) of a reading corrected since: the uniqueId of the document that holds it now (the end of its corrections); uniqueId is the replaced one'),
});
export const ObservationsResponse = z.object({
  from: instant,
  to: instant,
  bounds: z.literal('[from,to)'),
  count: z.number().int(),
  observations: z.array(ObservationView),
});
export const CorrectionResponse = z.object({
  uniqueId: z.string(),
  replaces: z.string(),
  document: z.string(),
  currentUniqueId: z
    .string()
    .optional()
    .describe('Only on a repeat (200) of a correction whose document was corrected again since: the uniqueId of the document that holds the reading now; uniqueId is the replaced one'),
});

/** The XML media types this API parses (as text). A JSON body may be a string too ("x"): the type decides, not the body. */
export const XML_TYPES: ReadonlySet<string> = new Set(['application/xml', 'text/xml']);
/** Whether a request's body came as XML: the JSON-only routes answer it 415 unsupported_media_type. */
export const isXml = (request: FastifyRequest): boolean => XML_TYPES.has(String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase());

/** Parse with zod; a failure becomes a 400 invalid_request listing each field (never the values sent). */
export const parseInput = <T extends z.ZodType>(schema: T, input: unknown, where: 'body' | 'query' | 'path'): z.infer<T> => {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const errors = result.error.issues.map((i) => ({ path: [where, ...i.path.map(issuePath)].join('.'), message: issueMessage(i) }));
  const error = new ValidationError('invalid_request', `the ${where} does not have the expected shape: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
  throw error;
};
