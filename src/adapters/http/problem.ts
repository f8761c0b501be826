import type { FastifyReply } from 'fastify';
import { ExpectedVersionConflictError } from '../../application/ports/event-store';
import { RtsError, type ErrorKind } from '../../domain/shared/errors';
import { redactCprDigits } from '../../domain/monitoring/cpr-like';
import { isPgUnavailable } from '../event-store/postgres/pg-unavailable';

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
  correction_id_reused: [409, 'The correction id was already used for a different correction'],
  document_deprecated: [409, 'The document was already replaced'],
  concurrency_conflict: [409, 'The resource was changed concurrently; retry'],
  // The regional hub: directory and systems
  unknown_system: [404, 'The system that sent or applied is not registered with the hub'],
  system_not_found: [404, 'No system is registered with this id'],
  expert_not_found: [404, 'No expert has this id'],
  invalid_system_id: [422, 'The system id is not valid'],
  invalid_system: [422, 'The system is not valid'],
  invalid_expert_id: [422, 'The expert id is not valid'],
  invalid_expert_profile: [422, 'The expert profile is not valid'],
  invalid_join: [422, 'The join request is not valid'],
  invalid_cursor: [422, 'The paging cursor is not valid'],
  invalid_resource: [422, 'The resource is not a document uniqueId or a consultation id'],
  invalid_request_id: [422, 'The request id is not one the hub keeps'],
  batch_count_mismatch: [422, 'The batch count differs from the join request'],
  batch_index_out_of_range: [422, 'The batch index lies outside the join'],
  duplicate_expert_in_batch: [422, 'An expert appears twice in one batch'],
  too_many_experts: [422, 'More experts than the join announced'],
  system_name_mismatch: [422, 'The system name differs from the registered one'],
  unknown_message_type: [422, 'The message type is not known'],
  expert_owned_by_other_system: [403, 'The expert belongs to another system'],
  expert_retired: [409, 'The expert has retired'],
  join_already_started: [409, 'The system has already started joining'],
  system_already_joined: [409, 'The system has already joined'],
  system_already_registered: [409, 'A system with this id is already registered'],
  system_not_joined: [409, 'The system has not joined yet'],
  system_not_joining: [409, 'The system is not joining'],
  // Dead letters
  dead_letter_not_found: [404, 'No dead-lettered message has this id'],
  dead_letter_discarded: [410, 'The dead-lettered message was discarded'],
  dead_letter_taken: [409, 'Another request took the dead-lettered message off the queue meanwhile'],
  dead_letter_not_selectable: [409, 'The dead-lettered message cannot be selected for a replay or a discard'],
  dead_letter_without_source: [409, 'The dead-lettered message does not name its source queue'],
  replay_target_refused: [422, 'The dead-lettered message names a source queue the hub does not replay to'],
  // Consultations
  consultation_not_found: [404, 'No consultation has this id'],
  consultation_erased: [410, "The consultation's content was erased"],
  expert_not_offered: [403, 'The case was not offered to this expert'],
  not_your_consultation: [403, 'The consultation belongs to another system'],
  consultation_id_reused: [409, 'The consultation id was already used for another request'],
  action_id_reused: [409, 'The actionId was already used for another step on this consultation'],
  offer_expired: [409, 'The offer has expired'],
  offer_declined: [409, 'The offer was declined'],
  consultation_already_accepted: [409, 'The consultation was already accepted'],
  consultation_not_accepted: [409, 'The consultation has not been accepted'],
  consultation_cancelled: [409, 'The consultation was cancelled'],
  consultation_unassigned: [409, 'No expert accepted the consultation'],
  report_already_issued: [409, 'A report was already issued'],
  report_not_issued: [409, 'No report has been issued yet'],
  invalid_consultation: [422, 'The consultation request is not valid'],
  unknown_candidate: [422, 'A candidate expert is not in the directory'],
  candidate_retired: [422, 'A candidate expert has retired'],
  unknown_attachment: [422, 'An attachment is not a document registered with the hub'],
  attachment_replaced: [422, 'An attachment was replaced by a correction'],
  attachments_of_several_patients: [422, 'The attachments are documents of more than one patient'],
  invalid_report: [422, 'The report is not valid'],
  // Keys
  invalid_key: [422, 'The key is not valid'],
  key_owned_by_other_party: [409, 'The key is registered to another party'],
  key_not_found: [404, 'No such key is registered for this system'],
  invalid_key_dates: [422, 'The key must retire after it becomes valid'],
  key_use_changed: [409, 'The key is registered for another use'],
  key_retired: [409, 'The key was retired and cannot be registered again'],
  last_key: [409, 'The last valid key of its use cannot be retired before a successor is registered'],
  // Access control, limits, erasure
  unauthenticated: [401, 'Authentication is required'],
  invalid_subject: [422, 'The token subject is not allowed'],
  forbidden: [403, 'You may not do this'],
  rate_limited: [429, 'Too many requests'],
  patient_erased: [410, 'The patient was erased'],
  erasure_incomplete: [503, 'The erasure could not complete; retry it'],
  audit_unavailable: [503, 'The audit trail cannot record the request'],
  anchor_outside_days: [422, 'An anchor names an audit chain outside the days verified'],
  too_many_anchors: [422, 'Too many anchors in one verification'],
  body_too_large: [413, 'The request body is too large'],
  request_timeout: [408, 'The request did not arrive in time'],
  request_header_too_large: [431, 'The request headers or URL are too large'],
  unsupported_media_type: [415, 'The content type is not supported'],
  method_not_allowed: [405, 'Method not allowed'],
  expectation_failed: [417, 'The Expect header asks for something the hub does not do'],
  service_unavailable: [503, 'The service is not available'],
  closed: [503, 'The embedded TeleMed instance was closed'],
  storage_unavailable: [503, 'The hub cannot store data right now'],
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
/** `bodyLimitBytes`: the request's route's body limit, named in a 413's detail. */
export const toProblem = (error: unknown, instance: string, bodyLimitBytes?: number): Problem => {
  if (error instanceof RtsError) {
    const known = (PROBLEM_TYPES as Record<string, readonly [number, string]>)[error.code];
    return problem(error.code, error.message, { instance, errors: error.details, status: known?.[0] ?? KIND_STATUS[error.kind] });
  }
  if (error instanceof ExpectedVersionConflictError) {
    return problem('concurrency_conflict', 'another request changed this resource at the same time; retry the request', { instance });
  }
  if (isPgUnavailable(error)) {
    return problem('storage_unavailable', 'the hub cannot reach its database now; whether this request was stored is unknown: send it again later (uploads are idempotent by observationId)', { instance });
  }
  const e = error as FastifyLikeError;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('body_too_large', `the request body exceeds the size limit of this endpoint${bodyLimitBytes === undefined ? '' : ` (${bodyLimitBytes} bytes)`}`, { instance });
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
    // One type, one status: a client that switches on the type must not find invalid_request (400) as a 408 or 431.
    const code = codeOfClientStatus(e.statusCode);
    return problem(code, 'the request could not be processed as sent', { instance });
  }
  return problem('internal_error', 'an internal error occurred; it has been logged with the request id', { instance });
};

/**
 * The problem type for a status fastify or Node's HTTP parser gives a request it refuses itself; a status no type
 * has is answered as invalid_request, 400.
 */
export const codeOfClientStatus = (status: number): ProblemCode =>
  (({ 404: 'not_found', 405: 'method_not_allowed', 408: 'request_timeout', 413: 'body_too_large', 414: 'request_header_too_large', 415: 'unsupported_media_type', 417: 'expectation_failed', 431: 'request_header_too_large' }) as Record<number, ProblemCode>)[status] ?? 'invalid_request';

/** Seconds a client is asked to wait before repeating a request answered 503 (the state may last longer). */
export const RETRY_AFTER_SECONDS = 5;

const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** How many bytes a UTF-8 sequence has by its first byte; 0 for a byte that cannot start one. */
const utf8Length = (lead: number): number => (lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0);

/**
 * Percent-escapes decoded as UTF-8 (`251248%E2%80%931234` is 251248–1234, with an en dash, not mojibake); an escape
 * that is no part of a well-formed UTF-8 sequence stays as it was written, as does a malformed one (`%zz`).
 */
export const decodePercentUtf8 = (text: string): string =>
  text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.slice(1).split('%'), (hex) => parseInt(hex, 16));
    let out = '';
    for (let i = 0; i < bytes.length; ) {
      const n = utf8Length(bytes[i]!);
      if (n > 0 && i + n <= bytes.length) {
        try {
          out += UTF8.decode(bytes.subarray(i, i + n));
          i += n;
          continue;
        } catch {
          // Not well-formed (a stray continuation byte, an overlong form, a surrogate): kept as written, below.
        }
      }
      out += run.slice(3 * i, 3 * i + 3);
      i += 1;
    }
    return out;
  });

/**
 * The `instance` of a problem: the request's URL with every number that may hold a CPR number replaced, as a whole, by
 * `[redacted]` (redactCprDigits, domain/monitoring/cpr-like.ts: 251248-1234 in its spellings, glued into longer runs of
 * digits or next to letters, 19481225-1234, other dashes; a `+` is a space in a query string; a number of a CPR
 * number's shape as a whole whatever its date, as the caller may have mistyped one). A UUID, a document's
 * uniqueId (the OID of a UUID) and a patient's key are left whole. Percent-escapes are decoded first, as UTF-8
 * (`251248%2D1234` is the same number), so an encoding does not carry a number past the redaction.
 */
/** Control characters (C0, DEL, C1) and invisible or direction-changing format characters (zero-width, bidi, BOM). */
const UNSHOWN = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

export const problemInstance = (url: string): string => {
  // Decoded to be read (and redacted), but what cannot be seen, or turns the text around, is put back as its escape.
  const [path = '', query] = splitOnce(decodePercentUtf8(url).replace(UNSHOWN, (c) => encodeURIComponent(c)), '?');
  if (query === undefined) return redactCprDigits(path, '[redacted]', { wholeAnyDate: true });
  // Query values are kept only where they read as an instant, a number or a plain token: `?name=Ingeborg Zylstra`
  // names somebody, and the problem is quoted on (logs, support tickets) beyond its caller.
  const params = query.split('&').map((pair) => {
    const [name = '', value] = splitOnce(pair, '=');
    const shownName = /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/.test(name) ? name : '[redacted]';
    return value === undefined ? shownName : `${shownName}=${SHOWN_VALUE.test(value) ? value : '[redacted]'}`;
  });
  return redactCprDigits(`${path}?${params.join('&')}`, '[redacted]', { wholeAnyDate: true });
};

/** A query value quoted back as it is: an ISO instant, a number, a short lower-case token (yes, asc, 2026-05). */
const SHOWN_VALUE = /^(?:[0-9][0-9T:.+\-Z ]{0,39}|[a-z][a-z0-9_-]{0,19})$/;

const splitOnce = (text: string, separator: string): [string, string | undefined] => {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
};

/**
 * Send a problem. One without an `instance` gets the request's (problemInstance): every problem of a request names
 * it alike, so two answers that must not be told apart (a document that does not exist, and one the caller may not
 * see) are the same bytes.
 */
export const sendProblem = (reply: FastifyReply, p: Problem): FastifyReply => {
  if (p.status === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  const url = (reply.request as { url?: unknown } | undefined)?.url;
  const body = p.instance === undefined && typeof url === 'string' ? { ...p, instance: problemInstance(url) } : p;
  return reply.code(p.status).header('content-type', 'application/problem+json; charset=utf-8').send(body);
};
