import type { DownlinkEnvelope } from '../../application/directory/directory-messages';
import type { DownlinkOutbox } from '../../application/ports/downlink-outbox';
import type { DurableSender, OutgoingMessage } from '../amqp/durable-sender';
import { serializeDownlink } from './messages';

/**
 * The downlink publisher's outbox on AMQP: a durable send to the system's queue that resolves only when the
 * broker accepted the message (DurableSender), so the publisher's checkpoint moves only past messages the broker
 * holds. Body: the envelope's JSON as an AMQP value string. Our envelope fields also travel as
 * application-properties (messageId, type, version, systemId, correlationId), so receivers and selectors can
 * read them without parsing; receivers dedupe on `messageId` (deterministic), never on the AMQP message-id.
 */
export const downlinkAmqpMessage = (envelope: DownlinkEnvelope): OutgoingMessage => ({
  body: serializeDownlink(envelope),
  messageId: envelope.id,
  correlationId: envelope.correlationId,
  subject: envelope.type,
  applicationProperties: {
    messageId: envelope.id,
    type: envelope.type,
    version: envelope.version,
    systemId: envelope.systemId,
    correlationId: envelope.correlationId,
  },
});

export class AmqpDownlinkOutbox implements DownlinkOutbox {
  constructor(private readonly sender: Pick<DurableSender, 'send'>) {}

  send(queue: string, envelope: DownlinkEnvelope): Promise<void> {
    return this.sender.send(queue, downlinkAmqpMessage(envelope));
  }
}
