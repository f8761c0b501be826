import type { DownlinkEnvelope } from '../../application/directory/directory-messages';
import type { ConsultationDownlinkEnvelope } from '../../application/consultation/consultation-messages';
import type { ConsultationOutbox } from '../../application/consultation/consultation-downlink';
import type { DownlinkOutbox, PreparedDownlink } from '../../application/ports/downlink-outbox';
import type { HeldDownlinks } from '../../application/downlink/held-downlinks';
import type { OutgoingMessage } from '../amqp/durable-sender';
import { loggableId } from '../../domain/monitoring/cpr-like';
import { JoseError } from '../crypto/jose-codec';
import { ContractViolationError } from './envelope';
import { PlainHubCodec, type HubDownlinkEnvelope, type HubMessageCodec } from './hub-codec';

/**
 * The downlink outbox of both publishers (directory and consultation) on AMQP, with the hub's message codec:
 * the body is the envelope's JSON (RTS_MESSAGE_SECURITY=off) or a JWE for the receiving system (jose). Our
 * envelope fields also travel as application-properties (messageId, type, version, systemId, correlationId, and on a
 * consultation message its consultationId) so receivers, selectors and operators can read them without opening the
 * body (a JWE with message security); they hold no personal data. The send resolves
 * only when the broker accepted the message, so the publisher's checkpoint moves only past messages it holds.
 *
 * A system without a valid encryption key cannot be written to now: it registered none yet, or its successor key
 * is not valid yet when the old one retires (the last key without a successor cannot be retired). Only the system
 * itself (or an operator acting for it) gets there; another system can neither register nor retire a key it does
 * not own (system-keys-service.ts). Such a message is held, durably, in the event store (`held`:
 * application/downlink/held-downlinks.ts), and so is every later one to that system until they are sent, so
 * one system's missing key does not stop everyone's downlink and loses nothing: the HeldDownlinkReleaser sends
 * them in order, through `prepare` here, once the system has a valid key. Without `held` (tests of the outbox
 * alone) such a message is logged as undeliverable (reason no_encryption_key) and skipped, as it was before.
 *
 * A message that breaks its contract or is larger than the broker takes is logged and skipped: sent again it
 * would fail again, for good.
 */
/** Largest body sent (UTF-8 bytes): the brokers take frames of at most 1 MiB (wireFormat.maxFrameSize). */
export const MAX_DOWNLINK_BODY_BYTES = 1024 * 1024 - 32 * 1024;

export type OutboxSender = { send(queue: string, message: OutgoingMessage): Promise<unknown> };
export type OutboxLogger = { error(fields: object, message: string): void; info?(fields: object, message: string): void; debug?(fields: object, message: string): void };

/**
 * The consultation a downlink message is about (its payload's consultationId), or undefined for a directory
 * message. Read after the codec took the envelope: an id that breaks the contract (one that may hold a CPR number,
 * legacy-id.ts) never gets here.
 */
export const consultationIdOf = (envelope: Readonly<{ type: string; payload: unknown }>): string | undefined => {
  if (!envelope.type.startsWith('consultation.')) return undefined;
  const id = (envelope.payload as { consultationId?: unknown } | null)?.consultationId;
  return typeof id === 'string' ? id : undefined;
};

export class AmqpHubOutbox implements DownlinkOutbox, ConsultationOutbox {
  constructor(
    private readonly sender: OutboxSender,
    private readonly codec: HubMessageCodec = new PlainHubCodec(),
    private readonly logger?: OutboxLogger,
    private readonly held?: Pick<HeldDownlinks, 'send'>,
  ) {}

  async send(queue: string, envelope: DownlinkEnvelope | ConsultationDownlinkEnvelope): Promise<void> {
    if (this.held) return this.held.send(queue, envelope, () => this.prepare(queue, envelope));
    const prepared = await this.prepare(queue, envelope);
    if (prepared.kind === 'ready') return prepared.send();
    if (prepared.kind === 'no_key') {
      const e = envelope as HubDownlinkEnvelope;
      this.logger?.error({ id: e.id, type: e.type, systemId: e.systemId, correlationId: loggableId(e.correlationId), reason: 'no_encryption_key' }, 'downlink message undeliverable: the system has no valid encryption key; skipped');
    }
  }

  /**
   * Encode for the receiving system now: ready to send, or no valid encryption key (no_key: hold it), or never
   * sendable (undeliverable: logged here, with the reason).
   */
  async prepare(queue: string, envelope: DownlinkEnvelope | ConsultationDownlinkEnvelope): Promise<PreparedDownlink> {
    const e = envelope as HubDownlinkEnvelope;
    let encoded: { body: string; applicationProperties: Record<string, string> };
    try {
      encoded = await this.codec.encodeDownlink(e);
    } catch (error) {
      if (error instanceof JoseError && error.code === 'unknown_key') return NO_KEY;
      // Sent again it would break the contract again, and the publisher retried it from its checkpoint for good:
      // no consultation message reached any system after it (a consultation id that was no UUID).
      if (error instanceof ContractViolationError) {
        this.logger?.error({ id: e.id, type: e.type, systemId: e.systemId, reason: 'contract_violation', error: error.message }, 'downlink message undeliverable: it breaks the message contract; skipped');
        return UNDELIVERABLE;
      }
      throw error;
    }
    // A body over the broker's frame limit makes the broker close the hub's connection, at every resend.
    const size = Buffer.byteLength(encoded.body, 'utf8');
    const consultationId = consultationIdOf(e);
    const about: Record<string, string> = consultationId === undefined ? {} : { consultationId };
    if (size > MAX_DOWNLINK_BODY_BYTES) {
      this.logger?.error({ id: e.id, type: e.type, systemId: e.systemId, correlationId: loggableId(e.correlationId), consultationId: loggableId(consultationId), reason: 'too_large', size }, 'downlink message undeliverable: larger than the broker takes; skipped');
      return UNDELIVERABLE;
    }
    return {
      kind: 'ready',
      send: async () => {
        await this.sender.send(queue, {
          body: encoded.body,
          messageId: e.id,
          correlationId: e.correlationId,
          subject: e.type,
          applicationProperties: {
            messageId: e.id,
            type: e.type,
            version: e.version,
            systemId: e.systemId,
            correlationId: e.correlationId,
            ...about,
            ...encoded.applicationProperties,
          },
        });
        // A consultation's messages at info (a few per case): the line an operator finds by the consultation id or
        // the request id that became its correlation id. A directory change goes to every joined system (a join of
        // 10,000 experts is 10,000 lines per system): at debug.
        if (consultationId !== undefined) this.logger?.info?.({ id: e.id, type: e.type, systemId: e.systemId, correlationId: loggableId(e.correlationId), consultationId: loggableId(consultationId), queue }, 'downlink message sent');
        else this.logger?.debug?.({ id: e.id, type: e.type, systemId: e.systemId, correlationId: loggableId(e.correlationId), queue }, 'downlink message sent');
      },
    };
  }
}

const NO_KEY: PreparedDownlink = { kind: 'no_key' };
const UNDELIVERABLE: PreparedDownlink = { kind: 'undeliverable' };
