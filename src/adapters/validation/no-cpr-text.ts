import type { z } from 'zod';
import { holdsCprNumber } from '../../domain/monitoring/cpr-like';

/** The refusal's message: the field's path goes with it (400 invalid_request over HTTP, bad_schema over AMQP). */
export const NO_CPR_TEXT_MESSAGE = 'must not hold a CPR number (it is stored in clear and outlives the erasure)';

/**
 * The JSON Schema keyword (an OpenAPI / AsyncAPI extension) that the served documents put on every such text, so a
 * client generated from them knows which texts the hub refuses with a CPR number in them (no standard keyword can
 * say it): `"x-refuses-cpr-number": true`. Without it a client that validates against the document sends what the
 * hub refuses (400 invalid_request, bad_schema). The meta the text had (its description) is kept.
 */
export const REFUSES_CPR_NUMBER = 'x-refuses-cpr-number';

/**
 * Free text that a person or a system writes about itself or its work and that goes into events or the audit
 * trail in clear: a system's name and area, an expert's profile, a replay's note and reason, a consultation's
 * applicant clinician. Erasure reaches none of them, so a CPR number there (a patient's number noted in a replay
 * reason) would outlive the patient's erasure. Refused in the spellings a token's sub is (holdsCprNumber: 251248-1234,
 * 2512481234, 25.12.48-1234, "patient 251248-1234 asked"), as the library's `by` is. The clinical texts of a
 * consultation are not checked here: they are about the patient by nature.
 */
export const withoutCprNumber = <S extends z.ZodType<string | undefined>>(schema: S): S =>
  schema.refine((v) => v === undefined || !holdsCprNumber(v), NO_CPR_TEXT_MESSAGE).meta({ ...(schema.meta() ?? {}), [REFUSES_CPR_NUMBER]: true }) as unknown as S;
