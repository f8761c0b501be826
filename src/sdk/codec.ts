// How an envelope becomes an AMQP message body and back. The client never looks inside the body itself: a codec
// does, so message security (issue 5: JWS inside JWE with `jose`, key ids, rotation) slots in as another codec
// without changing RtsClient's API.
//
// - `encode(envelope, ctx)`: the body (an AMQP value string) plus application-properties to add. The client has
//   already validated the envelope against the contract and sets the standard properties itself (messageId, type,
//   version, systemId, correlationId); a codec adds its own (contentType, and later e.g. kid).
// - `decode(body, applicationProperties, ctx)`: never throws for bad input; returns the parsed envelope or a
//   failure with a machine-readable reason. It gets the contract's parser in `ctx.parse` (parseDownlink in the
//   SDK, parseUplink on the hub), so the same codec serves both directions.
//
// A JOSE codec would sign with `ctx.from`'s key and encrypt for `ctx.to` in encode (kid in a property or the JWE
// header), and in decode look the kid up, decrypt, verify the sender and return reasons such as 'bad_signature',
// 'unknown_key' or 'not_for_us', which the SDK dead-letters like any other undecodable message.
import type { ParseResult } from '../adapters/messaging/messages';

export type ApplicationProperties = Record<string, string | number | boolean | null>;

/** The envelope shape every codec handles (both directions). */
export type AnyEnvelope = Readonly<{
  id: string;
  type: string;
  version: number;
  systemId: string;
  correlationId: string;
  time: string;
  payload: unknown;
}>;

export interface EncodeContext {
  /** Who sends: a system id, or 'hub'. */
  from: string;
  /** Who must be able to read it: 'hub' for uplink, the receiving system id for downlink. */
  to: string;
  /** The queue it goes to. */
  queue: string;
}

export interface DecodeContext<E> {
  /** Who is expected to have sent it: 'hub' for downlink. */
  from: string;
  /** Who reads it: our system id (downlink) or 'hub'. */
  to: string;
  queue: string;
  /** The contract's parser for this direction (parseDownlink / parseUplink). Never throws. */
  parse: (json: string) => ParseResult<E>;
}

export interface EncodedMessage {
  /** The AMQP value section: a string. */
  body: string;
  /** Added to the client's standard application-properties. */
  applicationProperties?: ApplicationProperties;
}

export type DecodeFailure = Readonly<{
  ok: false;
  /** Machine-readable: 'bad_body' | 'bad_json' | 'bad_schema' (JSON codec); a security codec adds its own. */
  reason: string;
  /** What is wrong; never the values sent. */
  detail: string;
  envelope?: Readonly<{ id?: string; type?: string; systemId?: string }>;
}>;
export type DecodeResult<E> = Readonly<{ ok: true; envelope: E }> | DecodeFailure;

export interface MessageCodec {
  /** Short name, sent as the `codec` application-property ('json'). */
  readonly name: string;
  encode(envelope: AnyEnvelope, ctx: EncodeContext): EncodedMessage | Promise<EncodedMessage>;
  decode<E>(body: unknown, applicationProperties: Readonly<Record<string, unknown>>, ctx: DecodeContext<E>): DecodeResult<E> | Promise<DecodeResult<E>>;
}

/** The default: the envelope as JSON text in an AMQP value string (readable by rhea, Python proton, JMS TextMessage). */
export class JsonCodec implements MessageCodec {
  readonly name = 'json';

  encode(envelope: AnyEnvelope): EncodedMessage {
    return { body: JSON.stringify(envelope), applicationProperties: { contentType: 'application/json', codec: this.name } };
  }

  decode<E>(body: unknown, _applicationProperties: Readonly<Record<string, unknown>>, ctx: DecodeContext<E>): DecodeResult<E> {
    if (typeof body !== 'string') return { ok: false, reason: 'bad_body', detail: 'the body is not an AMQP value string' };
    const parsed = ctx.parse(body);
    if (parsed.ok) return { ok: true, envelope: parsed.message };
    const failure: DecodeFailure = parsed.envelope
      ? { ok: false, reason: parsed.reason, detail: parsed.detail, envelope: parsed.envelope }
      : { ok: false, reason: parsed.reason, detail: parsed.detail };
    return failure;
  }
}

export const jsonCodec: MessageCodec = new JsonCodec();
