import type { ConsultationUplinkEnvelope } from '../../application/consultation/consultation-messages';
import { refusalNotice, type Refusal } from '../../application/consultation/consultation-refusals';
import type { PreparedDownlink } from '../../application/ports/downlink-outbox';
import type { HubDownlinkEnvelope } from './hub-codec';

/**
 * Refusal notices: the hub tells the sender of a consultation message it refused for good ('consultation.refused'),
 * so a clinician whose request named a retired expert learns it (the SDK call resolved when the broker took the
 * request; without the notice nothing more ever came). The uplink consumer calls `send` before it dead-letters the
 * message, and only for a message whose AMQP application property `rts_accepts` (comma-separated downlink types)
 * names 'consultation.refused': older SDKs and clients dead-letter a downlink type they do not know
 * (`unknown_type`), so the hub sends it only to a sender that said, on that very message, that it reads it.
 *
 * Encoded by the hub's outbox (`prepare`: the codec, so with message security signed by the hub and encrypted for
 * the sender) and sent to the sender's downlink queue; `send` resolves once the broker accepted it, and rejects when
 * it could not be sent (the consumer then hands the message back, to come again). Skipped, logged at debug (ids and
 * codes only, never a payload value), when the hub cannot write to the sender at all:
 *   not_registered     no registered system has that id (the hub has no downlink queue for it)
 *   no_encryption_key  with message security, the system has no valid encryption key now
 *   undeliverable      the notice breaks the contract (the outbox logged why)
 * A notice is never held for a key to come (as the publishers' messages are): it answers a message now, or never.
 */
export const ACCEPTS_PROPERTY = 'rts_accepts';
export const REFUSED_TYPE = 'consultation.refused';

/** Whether the message's `rts_accepts` names `type` (a string of comma-separated types; anything else names none). */
export const acceptsDownlinkType = (applicationProperties: Readonly<Record<string, unknown>>, type: string): boolean => {
  const value = applicationProperties[ACCEPTS_PROPERTY];
  return typeof value === 'string' && value.length <= 1000 && value.split(',').some((t) => t.trim() === type);
};

export type RefusalNoticeOutcome = 'sent' | 'not_registered' | 'no_encryption_key' | 'undeliverable';

export interface RefusalNotices {
  send(refused: ConsultationUplinkEnvelope, refusal: Refusal): Promise<RefusalNoticeOutcome>;
}

export type RefusalNoticeDependencies = Readonly<{
  /** The hub's outbox (AmqpHubOutbox.prepare): encodes with the hub's codec, sends durable and waits for the broker. */
  outbox: { prepare(queue: string, envelope: HubDownlinkEnvelope): Promise<PreparedDownlink> };
  /** Whether a system of that id is registered (the directory, caught up). */
  isRegistered(systemId: string): Promise<boolean>;
  /** A system's downlink queue (DirectoryService.downlinkQueueFor: 'rts.downlink.<id>' by default). */
  queueFor(systemId: string): string;
  /** The notice's time, ISO-8601. */
  now(): string;
  logger?: { debug?(fields: object, message: string): void };
}>;

export class AmqpRefusalNotices implements RefusalNotices {
  constructor(private readonly deps: RefusalNoticeDependencies) {}

  async send(refused: ConsultationUplinkEnvelope, refusal: Refusal): Promise<RefusalNoticeOutcome> {
    const trace = { id: refused.id, type: refused.type, systemId: refused.systemId, code: refusal.reason };
    if (!(await this.deps.isRegistered(refused.systemId))) {
      this.deps.logger?.debug?.({ ...trace, skipped: 'not_registered' }, 'refusal notice not sent: the sender is not a registered system');
      return 'not_registered';
    }
    const notice = refusalNotice(refused, refusal, this.deps.now());
    const prepared = await this.deps.outbox.prepare(this.deps.queueFor(refused.systemId), notice);
    if (prepared.kind === 'no_key') {
      this.deps.logger?.debug?.({ ...trace, skipped: 'no_encryption_key' }, 'refusal notice not sent: the sender has no valid encryption key');
      return 'no_encryption_key';
    }
    if (prepared.kind === 'undeliverable') return 'undeliverable';
    await prepared.send();
    return 'sent';
  }
}
