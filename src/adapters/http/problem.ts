import type { FastifyReply } from 'fastify';
import { RtsError } from '../../domain/shared/errors';
import { redactCprDigits } from '../../domain/monitoring/cpr-like';
import { PROBLEM_TYPES, codeAndStatusOf, type ProblemCode } from '../errors/error-codes';

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

/** The catalogue lives with the codes (errors/error-codes.ts); HTTP answers with it as problem types. */
export { PROBLEM_TYPES, type ProblemCode };

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

/** What a caller is told of the errors codeAndStatusOf names that are no RtsError (which carries its own message). */
const CORE_DETAIL: Readonly<Record<string, string>> = {
  concurrency_conflict: 'another request changed this resource at the same time; retry the request',
  storage_unavailable: 'the hub cannot reach its database now; whether this request was stored is unknown: send it again later (uploads are idempotent by observationId)',
};

/** Map anything thrown to a problem. Unknown errors become a bare 500 with no detail of their own. */
/** `bodyLimitBytes`: the request's route's body limit, named in a 413's detail. */
export const toProblem = (error: unknown, instance: string, bodyLimitBytes?: number): Problem => {
  // The core's and the stores' errors are told apart once, in codeAndStatusOf (the AMQP side's audit uses it too).
  const core = codeAndStatusOf(error);
  if (error instanceof RtsError) return problem(core.code, error.message, { instance, errors: error.details, status: core.status });
  const detail = CORE_DETAIL[core.code];
  if (detail !== undefined) return problem(core.code, detail, { instance, status: core.status });
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
