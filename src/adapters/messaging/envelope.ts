import { z } from 'zod';
import { CONTRACT_VERSION } from '../../application/directory/directory-messages';
import { SYSTEM_ID_PATTERN } from '../../domain/directory/connected-system';
import { holdsCprNumber } from '../../domain/monitoring/cpr-like';
import { offsetDateTime } from '../validation/offset-date-time';
import { illFormedTextDetail, illFormedTextPath, mayHoldIllFormedText, withoutBom } from '../validation/unicode-text';
import { issueMessage, issuePath } from '../validation/zod-issues';

/**
 * The parts every message family of the contract shares (messages.ts: the directory; consultation-messages.ts:
 * consultations): the envelope's fields, strict and tolerant envelope schemas, field schemas used by both, and the
 * one parse and serialize routine with its error wording.
 *
 *   const Schema = z.discriminatedUnion('type', [strictEnvelope('x.y', payload), ...]);
 *   parseEnvelope(Schema, json, KNOWN_TYPES)   // { ok: true, message } | ParseFailure; never throws
 *   serializeEnvelope(Schema, envelope, 'uplink message')   // JSON text; TypeError on a contract breach
 *
 * Strict (uplink, what the hub accepts): unknown fields are a schema error. Loose (downlink, what a system
 * reads): unknown fields are dropped, so the hub can add some. Detail strings name fields, never values.
 */

/** Largest message text either parser looks at (a full batch of 500 experts is well under 1 MiB). */
export const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;

export const systemIdSchema = z.string().regex(SYSTEM_ID_PATTERN, 'a system id: 2-32 characters of a-z 0-9 -');
export const expertIdSchema = z
  .string()
  .max(100)
  .regex(/^[a-z0-9][a-z0-9-]{1,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an expert id: <homeSystemId>:<localExpertId>');
/** A time in a message: the hub's rule for every date-time it is sent (validation/offset-date-time.ts). */
export const isoWithOffset = offsetDateTime;
/** Trimmed, non-empty text of at most `max` characters. */
export const text = (max: number) => z.string().trim().min(1).max(max);

const envelopeShape = {
  id: z.uuid(),
  version: z.literal(CONTRACT_VERSION),
  systemId: systemIdSchema,
  // An id, not free text: it is logged and passed on to the other party's messages. Not a CPR number (the likely
  // mistake: a patient's number as the id of their consultation).
  correlationId: z
    .string()
    .regex(/^[A-Za-z0-9._:\/-]{1,100}$/, { message: 'an id of 1-100 characters of A-Z a-z 0-9 . _ : / -', abort: true })
    // In any spelling, also inside a longer id ("case.150575.2468", "pt-251248-1234"): the AMQP correlation-id goes
    // outside the JWE, so the broker's store holds it too. A CPR number bounded by non-digits (holdsCprNumber), also
    // among other groups (v2-251248-1234): a refusal dead-letters the message, so digits glued into a timestamp
    // (order-202612021030-17) are not refused, and a UUID never is.
    .refine((v) => !holdsCprNumber(v), 'must not hold a CPR number (it is logged and passed on)')
    .describe('An id (not free text, never a CPR number): it is logged and passed on to the other party'),
  time: isoWithOffset,
};
export const strictEnvelope = <T extends string, P extends z.ZodType>(type: T, payload: P) =>
  z.strictObject({ ...envelopeShape, type: z.literal(type), payload });
export const looseEnvelope = <T extends string, P extends z.ZodType>(type: T, payload: P) =>
  z.object({ ...envelopeShape, type: z.literal(type), payload });

/** `true` only when A and B are the same type: `const ok: SameType<z.infer<typeof S>, CoreType> = true`. */
export type SameType<A, B> = [Deep<A>] extends [Deep<B>] ? ([Deep<B>] extends [Deep<A>] ? true : false) : false;
type Deep<T> = T extends readonly (infer V)[] ? Deep<V>[] : T extends object ? { -readonly [K in keyof T]: Deep<T[K]> } : T;

export type ParseFailure = Readonly<{
  ok: false;
  reason: 'bad_json' | 'bad_schema' | 'unknown_type';
  /** What is wrong, by field path; never the values sent. */
  detail: string;
  /** What could be read of the envelope, for the dead-letter record. */
  envelope?: Readonly<{ id?: string; type?: string; systemId?: string }>;
}>;
export type ParseResult<M> = Readonly<{ ok: true; message: M }> | ParseFailure;

const readable = (value: unknown): ParseFailure['envelope'] => {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const pick = (k: string): string | undefined => (typeof v[k] === 'string' && (v[k] as string).length <= 100 ? (v[k] as string) : undefined);
  return Object.fromEntries(Object.entries({ id: pick('id'), type: pick('type'), systemId: pick('systemId') }).filter(([, x]) => x !== undefined));
};

export const describeIssues = (error: z.ZodError): string =>
  error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length > 0 ? i.path.map(issuePath).join('.') : '(message)'}: ${issueMessage(i)}`)
    .join('; ') + (error.issues.length > 10 ? `; and ${error.issues.length - 10} more` : '');

/** Parse a message body (JSON text) against `schema`, whose envelope types are `knownTypes`. Never throws. */
export const parseEnvelope = <M>(schema: z.ZodType<M>, json: string, knownTypes: readonly string[]): ParseResult<M> => {
  if (typeof json !== 'string') return { ok: false, reason: 'bad_json', detail: 'the body is not a string' };
  if (json.length > MAX_MESSAGE_CHARS) return { ok: false, reason: 'bad_schema', detail: `the message is larger than ${MAX_MESSAGE_CHARS} characters` };
  let value: unknown;
  try {
    // A byte order mark before the JSON (some Windows tools write one) is ignored, as the HTTP API ignores it.
    value = JSON.parse(withoutBom(json));
  } catch {
    // The SyntaxError's message quotes the input: never pass it on.
    return { ok: false, reason: 'bad_json', detail: 'the body is not valid JSON' };
  }
  const envelope = readable(value);
  // "\ud800" is valid JSON and no text: kept, it became U+FFFD wherever it was next encoded (sealed, stored, signed).
  const illFormed = mayHoldIllFormedText(json) ? illFormedTextPath(value) : null;
  if (illFormed !== null) return { ok: false, reason: 'bad_json', detail: illFormedTextDetail(illFormed), envelope };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    if (v.version !== CONTRACT_VERSION) return { ok: false, reason: 'bad_schema', detail: `version: must be ${CONTRACT_VERSION}`, envelope };
    if (typeof v.type !== 'string' || !knownTypes.includes(v.type)) {
      // Its own reason, as docs/messaging.md lists it: a type this side does not know (yet) is not a malformed message.
      return { ok: false, reason: 'unknown_type', detail: `type: must be one of ${knownTypes.join(', ')}`, envelope };
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) return { ok: false, reason: 'bad_schema', detail: describeIssues(result.error), envelope };
  return { ok: true, message: result.data };
};

/** JSON text of `envelope` after checking it against `schema`; TypeError naming `what` when it breaks the contract. */
/** A message that breaks its contract: the sender's bug (a TypeError, as before), never sent. */
export class ContractViolationError extends TypeError {
  override readonly name = 'ContractViolationError';
}

export const serializeEnvelope = (schema: z.ZodType, envelope: unknown, what: string): string => {
  const result = schema.safeParse(envelope);
  if (!result.success) throw new ContractViolationError(`${what} breaks the message contract: ${describeIssues(result.error)}`);
  // The receiver refuses it (parseEnvelope), and a JOSE body would carry U+FFFD in its place (TextEncoder).
  const json = JSON.stringify(envelope);
  const illFormed = mayHoldIllFormedText(json) ? illFormedTextPath(envelope) : null;
  if (illFormed !== null) throw new ContractViolationError(`${what} breaks the message contract: ${illFormedTextDetail(illFormed)}`);
  return json;
};
