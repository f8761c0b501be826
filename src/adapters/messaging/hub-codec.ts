import { UPLINK_TYPES, type UplinkEnvelope } from '../../application/directory/directory-messages';
import { CONSULTATION_UPLINK_TYPES, type ConsultationUplinkEnvelope } from '../../application/consultation/consultation-messages';
import { JoseCodec, JoseError, type EnvelopeLike } from '../crypto/jose-codec';
import type { KeyRegistry, PartyKeys } from '../crypto/jose-keys';
import { isConsultationType, parseConsultationDownlink, parseConsultationUplink, serializeConsultationDownlink } from './consultation-messages';
import { parseDownlink, parseUplink, serializeDownlink, type ParseResult } from './messages';
import { REPLACEMENT_CHARACTER, withoutBom } from '../validation/unicode-text';
import type { DownlinkEnvelope } from '../../application/directory/directory-messages';
import type { ConsultationDownlinkEnvelope } from '../../application/consultation/consultation-messages';

/**
 * How the hub reads uplink bodies and writes downlink bodies, by RTS_MESSAGE_SECURITY:
 *   off   the envelope's JSON text (the contract of messages.ts), as before message security
 *   jose  JWS inside JWE (adapters/crypto/jose-codec.ts): uplink must be signed by a registered key of the
 *         envelope's systemId and encrypted for one of the hub's keys; downlink is signed by the hub and
 *         encrypted for the receiving system's newest valid encryption key. No other body is accepted.
 * The uplink parser routes 'consultation.*' types to the consultation contract, the rest to the directory's.
 */
export type HubUplinkEnvelope = UplinkEnvelope | ConsultationUplinkEnvelope;
export type HubDownlinkEnvelope = DownlinkEnvelope | ConsultationDownlinkEnvelope;
export type MessageSecurity = 'jose' | 'off';

export type UplinkDecodeResult =
  | Readonly<{ ok: true; envelope: HubUplinkEnvelope }>
  | Readonly<{ ok: false; reason: string; detail: string; envelope?: Readonly<{ id?: string; type?: string; systemId?: string }> }>;

export interface HubMessageCodec {
  readonly security: MessageSecurity;
  decodeUplink(body: unknown): Promise<UplinkDecodeResult>;
  /** Validates against the contract (TypeError on a breach), then encodes for `envelope.systemId`. */
  encodeDownlink(envelope: HubDownlinkEnvelope): Promise<{ body: string; applicationProperties: Record<string, string> }>;
}

const typeOf = (json: string): unknown => {
  try {
    const v = JSON.parse(withoutBom(json)) as unknown;
    return v && typeof v === 'object' ? (v as { type?: unknown }).type : undefined;
  } catch {
    return undefined;
  }
};

/** Either contract's uplink parser, chosen by the message's type. Never throws. */
export const parseHubUplink = (json: string): ParseResult<HubUplinkEnvelope> => {
  // rhea decodes an AMQP string's bytes as UTF-8 without an error: a legacy system's GBK/GB18030 bytes arrive as
  // U+FFFD, and stored they were a name or report silently lost. The hub cannot tell a deliberate U+FFFD from those,
  // so it takes none: the sender learns now, and fixes its encoding.
  if (typeof json === 'string' && json.includes(REPLACEMENT_CHARACTER)) {
    return {
      ok: false,
      reason: 'bad_json',
      detail: 'the body holds U+FFFD (the replacement character), what is left of bytes that were not UTF-8: send the text as UTF-8 (an AMQP string is UTF-8; GBK or GB18030 bytes are not)',
    };
  }
  const result: ParseResult<HubUplinkEnvelope> =
    typeof json === 'string' && json.length < 8 * 1024 * 1024 && isConsultationType(typeOf(json)) ? parseConsultationUplink(json) : parseUplink(json);
  // Each contract's parser lists only its own types: a developer reading the reason took it that consultations are
  // not taken on the uplink (or, for a consultation.* typo, that nothing else is).
  if (!result.ok && result.reason === 'unknown_type') return { ...result, detail: `type: must be one of ${[...UPLINK_TYPES, ...CONSULTATION_UPLINK_TYPES].join(', ')}` };
  return result;
};

/** Either contract's downlink parser, chosen by the message's type (the SDK's). Never throws. */
export const parseHubDownlink = (json: string): ParseResult<HubDownlinkEnvelope> =>
  typeof json === 'string' && json.length < 8 * 1024 * 1024 && isConsultationType(typeOf(json)) ? parseConsultationDownlink(json) : parseDownlink(json);

export const serializeHubDownlink = (envelope: HubDownlinkEnvelope): string =>
  isConsultationType(envelope.type) ? serializeConsultationDownlink(envelope as ConsultationDownlinkEnvelope) : serializeDownlink(envelope as DownlinkEnvelope);

export class PlainHubCodec implements HubMessageCodec {
  readonly security = 'off' as const;

  async decodeUplink(body: unknown): Promise<UplinkDecodeResult> {
    if (typeof body !== 'string') return { ok: false, reason: 'bad_json', detail: 'the body is not a string' };
    const parsed = parseHubUplink(body);
    if (parsed.ok) return { ok: true, envelope: parsed.message };
    return parsed;
  }

  async encodeDownlink(envelope: HubDownlinkEnvelope): Promise<{ body: string; applicationProperties: Record<string, string> }> {
    // As docs/messaging.md says every message carries, and as the SDK's JsonCodec sends: a receiver that picks its
    // decoder by `codec` or `contentType` finds them with security off too.
    return { body: serializeHubDownlink(envelope), applicationProperties: { contentType: 'application/json', codec: 'json' } };
  }
}

/**
 * The hub's JOSE codec. A key not found may only be new: the registry is caught up from the store (`refresh`,
 * the key projection's catchUp) once before the message is refused as 'unknown_key'.
 */
export class JoseHubCodec implements HubMessageCodec {
  readonly security = 'jose' as const;
  private readonly codec: JoseCodec;

  constructor(
    keys: PartyKeys,
    registry: KeyRegistry,
    private readonly refresh: () => Promise<void> = async () => undefined,
    now?: () => Date,
  ) {
    this.codec = new JoseCodec({ keys, registry, ...(now ? { now } : {}) });
  }

  async decodeUplink(body: unknown): Promise<UplinkDecodeResult> {
    const ctx = { from: '*', to: this.codec.self, parse: parseHubUplink };
    let result = await this.codec.decode<HubUplinkEnvelope>(body, {}, ctx);
    if (!result.ok && result.reason === 'unknown_key') {
      await this.refresh();
      result = await this.codec.decode<HubUplinkEnvelope>(body, {}, ctx);
    }
    return result;
  }

  async encodeDownlink(envelope: HubDownlinkEnvelope): Promise<{ body: string; applicationProperties: Record<string, string> }> {
    serializeHubDownlink(envelope);
    try {
      return await this.codec.encode(envelope as unknown as EnvelopeLike, { to: envelope.systemId });
    } catch (error) {
      if (!(error instanceof JoseError && error.code === 'unknown_key')) throw error;
      await this.refresh();
      return this.codec.encode(envelope as unknown as EnvelopeLike, { to: envelope.systemId });
    }
  }
}
