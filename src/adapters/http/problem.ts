import type { FastifyReply } from 'fastify';
import { ExpectedVersionConflictError } from '../../application/ports/event-store';
import { RtsError, type ErrorKind } from '../../domain/shared/errors';

/**
 * RFC 9457 problem details. Every error a caller can get has a stable `type` (a URI reference, resolvable on
 * this server under /problems/{code}) and a title; `detail` says what was wrong with this request, `errors`
 * lists field problems. Nothing internal (stack traces, SQL, input echoes) is ever included.
 */
export type Problem = Readonly<{
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: string;
  errors?: readonly { path: string; message: string }[];
}>;

/** The problem types this API can answer with: code -> [status, title]. */
export const PROBLEM_TYPES = {
  malformed_json: [400, 'The request body is not valid JSON'],
  invalid_request: [400, 'The request does not have the expected shape'],
  invalid_patient_id: [422, 'The patient identifier is not a valid CPR number'],
  invalid_observation: [422, 'The observation is not valid'],
  implausible_observation: [422, 'The observation has implausible values'],
  invalid_interval: [422, 'The time interval is not valid'],
  interval_too_wide: [422, 'The time interval is too wide'],
  too_many_results: [422, 'Too many results; narrow the interval'],
  invalid_document: [422, 'The document is not a valid HL7 blood pressure document'],
  document_too_large: [413, 'The document is too large'],
  correction_patient_mismatch: [422, 'The correction concerns another patient'],
  unknown_patient: [404, 'No document is registered for this patient'],
  document_not_found: [404, 'No document has this uniqueId'],
  document_content_missing: [404, 'The repository does not hold the document'],
  not_found: [404, 'No such resource'],
  observation_id_reused: [409, 'The observation id was already used for a different reading'],
  document_deprecated: [409, 'The document was already replaced'],
  concurrency_conflict: [409, 'The resource was changed concurrently; retry'],
  body_too_large: [413, 'The request body is too large'],
  unsupported_media_type: [415, 'The content type is not supported'],
  method_not_allowed: [405, 'Method not allowed'],
  service_unavailable: [503, 'The service is not available'],
  internal_error: [500, 'Internal error'],
} as const satisfies Record<string, readonly [number, string]>;

export type ProblemCode = keyof typeof PROBLEM_TYPES;

const KIND_STATUS: Record<ErrorKind, number> = { validation: 422, not_found: 404, conflict: 409, forbidden: 403, unavailable: 503 };

export const problemTypeUri = (code: string): string => `/problems/${code}`;

export const problem = (code: string, detail: string, extra: { instance?: string; errors?: readonly { path: string; message: string }[]; status?: number } = {}): Problem => {
  const known = (PROBLEM_TYPES as Record<string, readonly [number, string]>)[code];
  return {
    type: problemTypeUri(code),
    title: known?.[1] ?? 'Request failed',
    status: extra.status ?? known?.[0] ?? 500,
    detail,
    code,
    ...(extra.instance ? { instance: extra.instance } : {}),
    ...(extra.errors && extra.errors.length > 0 ? { errors: extra.errors } : {}),
  };
};

type FastifyLikeError = Error & { code?: string; statusCode?: number };

/** Map anything thrown to a problem. Unknown errors become a bare 500 with no detail of their own. */
export const toProblem = (error: unknown, instance: string): Problem => {
  if (error instanceof RtsError) {
    const known = (PROBLEM_TYPES as Record<string, readonly [number, string]>)[error.code];
    return problem(error.code, error.message, { instance, errors: error.details, status: known?.[0] ?? KIND_STATUS[error.kind] });
  }
  if (error instanceof ExpectedVersionConflictError) {
    return problem('concurrency_conflict', 'another request changed this resource at the same time; retry the request', { instance });
  }
  const e = error as FastifyLikeError;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('body_too_large', 'the request body exceeds the size limit of this endpoint', { instance });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem('unsupported_media_type', 'send application/json (or application/xml where the endpoint says so)', { instance });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem('malformed_json', 'the request body could not be parsed as JSON', { instance });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem('invalid_request', 'the content length does not match the body', { instance });
  }
  // The JSON parser's own SyntaxError message quotes the input, which may hold personal data: never pass it on.
  if (e?.statusCode === 400 && (e instanceof SyntaxError || /prototype|JSON/i.test(e.message ?? ''))) {
    return problem('malformed_json', 'the request body could not be parsed as JSON', { instance });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problem('invalid_request', 'the request could not be processed as sent', { instance, status: e.statusCode });
  }
  return problem('internal_error', 'an internal error occurred; it has been logged with the request id', { instance });
};

export const sendProblem = (reply: FastifyReply, p: Problem): FastifyReply =>
  reply.code(p.status).header('content-type', 'application/problem+json; charset=utf-8').send(p);
