// The uplink's dead letter copies against a fake broker link: one bad delivery gives one dead letter. A copy the
// broker took whose accept was lost (the connection went before it came) is sent again when the original comes back,
// and both copies carry the same rts_dlq_id, chosen from the original delivery (so also by another hub process, or
// after a restart); a sender's own rts_dlq_id is never kept. And the dead letter of a message whose `messageId`
// property is not the id of the envelope the hub read is found by the envelope's id (rts_envelope_id).
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { message as amqpMessage, type Message } from 'rhea';
import type { AmqpConnection } from '../../src/adapters/amqp/connection';
import { DLQ_REASON } from '../../src/adapters/amqp/queue-consumer';
import { DLQ_ID, createUplinkConsumer, deadLetterIdFor, type UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { selectorFor, toDeadLetter } from '../../src/adapters/messaging/dead-letters';
import { serializeUplink } from '../../src/adapters/messaging/messages';
import { matchesDeadLetter, replaySelectionOf } from '../../src/application/directory/dead-letter-operations';
import { FakeReceiver } from '../support/fake-receiver';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { NotFoundError } from '../../src/domain/shared/errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The dead letter queue's end of the link: every transfer reaches the queue; the test says when the broker answers. */
class FakeSender extends EventEmitter {
  readonly onQueue: Message[] = [];
  private readonly unanswered: object[] = [];
  sendable(): boolean {
    return true;
  }
  is_open(): boolean {
    return true;
  }
  send(message: Message): object {
    const delivery = {};
    this.onQueue.push(message);
    this.unanswered.push(delivery);
    return delivery;
  }
  acceptAll(): void {
    for (const delivery of this.unanswered.splice(0)) this.emit('accepted', { delivery });
  }
  close(): void {
    this.emit('sender_close');
  }
}

/** One hub process's uplink consumer on a fake connection. */
const hubOn = (uplink: UplinkLike) => {
  const receiver = new FakeReceiver('rts.uplink');
  const sender = new FakeSender();
  let connected = true;
  const connection = Object.assign(new EventEmitter(), {
    openReceiver: () => receiver,
    openSender: () => sender,
    isConnected: () => connected,
  }) as unknown as AmqpConnection & EventEmitter;
  const outcomes: string[] = [];
  const consumer = createUplinkConsumer(connection, { queue: 'rts.uplink', deadLetterQueue: 'rts.dlq', uplink, maxAttempts: 5, prefetch: 10, onOutcome: (event) => void outcomes.push(event.kind) });
  const started = consumer.start(1000);
  receiver.emit('receiver_open');
  /** The connection goes (and with it the broker's accept of what was sent on it), and comes back. */
  const reconnect = () => {
    connected = false;
    connection.emit('disconnected', { reconnecting: true });
    connected = true;
    receiver.emit('receiver_open');
  };
  return { receiver, sender, consumer, started, reconnect, outcomes };
};

const until = async (done: () => boolean) => {
  const deadline = Date.now() + 5_000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
};

const unknownSystem: UplinkLike = { handleUplink: async () => Promise.reject(new NotFoundError('unknown_system', 'no system is registered with this id')) };

const registered = (id: string = randomUUID()): UplinkEnvelope => ({
  id,
  type: 'expert.registered',
  version: 1,
  systemId: 'city-a',
  correlationId: 'c-1',
  time: '2024-05-01T10:00:00Z',
  payload: {
    localExpertId: 'e1',
    profile: { name: 'Dr. Li', title: 'MD', specialties: ['cardiology'], location: { city: 'Wuhan', hospital: 'Union' }, languages: ['zh'], availability: 'available' },
  },
});

describe('uplink dead letters: one bad delivery, one dead letter id', () => {
  it('a copy the broker took but whose accept was lost is sent again with the same rts_dlq_id when the original comes back', async () => {
    const hub = hubOn(unknownSystem);
    await hub.started;
    const original: Message = { body: '{not json', message_id: 'm-1', application_properties: { messageId: 'm-1', [DLQ_ID]: 'the-senders-own' } };

    const first = hub.receiver.deliver(original);
    await until(() => hub.sender.onQueue.length === 1);
    hub.reconnect(); // the copy is on the queue; its accept is lost with the connection
    await until(() => hub.outcomes.includes('stale'));
    expect(hub.outcomes).toEqual(['stale']);
    expect(first).toEqual([]); // a delivery of the lost connection is not settled: the broker brings it back

    const again = hub.receiver.deliver(original, 1);
    await until(() => hub.sender.onQueue.length === 2);
    hub.sender.acceptAll();
    await until(() => again.length > 0);
    expect(again).toEqual(['accepted']);

    const ids = hub.sender.onQueue.map((copy) => copy.application_properties?.[DLQ_ID]);
    expect(ids[0]).toMatch(UUID); // never the sender's own
    expect(ids[1]).toBe(ids[0]);
    expect(hub.sender.onQueue.map((copy) => copy.application_properties?.[DLQ_REASON])).toEqual(['bad_json: the body is not valid JSON', 'bad_json: the body is not valid JSON']);
    await hub.consumer.stop(1000);

    // Another hub process (or this one after a restart) that gets the same original chooses the same id; another
    // message (another body, or another sender's message id) gets another.
    const other = hubOn(unknownSystem);
    await other.started;
    other.receiver.deliver(original, 2);
    other.receiver.deliver({ ...original, body: '{not json either' });
    other.receiver.deliver({ ...original, message_id: 'm-2' });
    await until(() => other.sender.onQueue.length === 3);
    other.sender.acceptAll();
    const otherIds = other.sender.onQueue.map((copy) => copy.application_properties?.[DLQ_ID]);
    expect(otherIds[0]).toBe(ids[0]);
    expect(new Set(otherIds).size).toBe(3);
    await other.consumer.stop(1000);
  });
});

describe("uplink dead letters: found by the envelope id the hub read, whatever the sender's messageId says", () => {
  it('carries the envelope id as rts_envelope_id, by which the views find and select it; the sender\'s messageId is kept as sent', async () => {
    const hub = hubOn(unknownSystem);
    await hub.started;
    const envelope = registered();
    const claimed = randomUUID();
    const settled = hub.receiver.deliver({ body: serializeUplink(envelope), message_id: 'm-3', application_properties: { messageId: claimed, type: envelope.type, systemId: 'city-a', rts_envelope_id: claimed } });
    await until(() => hub.sender.onQueue.length === 1);
    hub.sender.acceptAll();
    await until(() => settled.length > 0);
    expect(settled).toEqual(['accepted']);

    const copy = hub.sender.onQueue[0]!;
    expect(copy.application_properties).toMatchObject({ messageId: claimed, rts_envelope_id: envelope.id });
    const deadLetter = toDeadLetter(copy);
    expect(deadLetter.envelopeId).toBe(envelope.id);
    expect(matchesDeadLetter(deadLetter, envelope.id)).toBe(true);
    expect(matchesDeadLetter(deadLetter, claimed)).toBe(false);
    // Selected by the envelope id the hub read; a copy made before rts_envelope_id by its messageId, as before.
    expect(replaySelectionOf({ ...deadLetter, deadLetterId: null })).toEqual({ property: 'messageId', value: envelope.id });
    expect(selectorFor({ property: 'messageId', value: envelope.id })).toBe(`rts_envelope_id = '${envelope.id}' OR (rts_envelope_id IS NULL AND messageId = '${envelope.id}')`);
    await hub.consumer.stop(1000);
  });

  it("drops a sender's rts_envelope_id from a message whose envelope the hub could not read", async () => {
    const hub = hubOn(unknownSystem);
    await hub.started;
    const claimed = randomUUID();
    hub.receiver.deliver({ body: '{not json', application_properties: { messageId: claimed, rts_envelope_id: claimed } });
    await until(() => hub.sender.onQueue.length === 1);
    hub.sender.acceptAll();
    expect(hub.sender.onQueue[0]!.application_properties).not.toHaveProperty('rts_envelope_id');
    expect(toDeadLetter(hub.sender.onQueue[0]!).envelopeId).toBe(claimed); // the sender's messageId, as before
    await hub.consumer.stop(1000);
  });
});

describe('deadLetterIdFor: a body in AMQP data or sequence sections', () => {
  const bytes = Buffer.from('{"id":"not json to the hub"}');
  const same = { message_id: 'm-1', application_properties: { messageId: 'm-1' } };

  it('tells a data section from an amqp-value map that looks like it once turned into JSON', () => {
    const data: Message = { ...same, body: amqpMessage.data_section(bytes) };
    // What JSON.stringify makes of rhea's Section of one data section (typecode, content), written as a value.
    const lookalike: Message = { ...same, body: { typecode: 0x75, content: { type: 'Buffer', data: [...bytes] } } };
    expect(deadLetterIdFor(data)).toMatch(UUID);
    expect(deadLetterIdFor(lookalike)).not.toBe(deadLetterIdFor(data));
  });

  it('hashes a data section by its bytes (not as JSON: a 1 MB body took ~80 ms that way), each section on its own', () => {
    const toJson = jest.spyOn(Buffer.prototype, 'toJSON');
    try {
      const one = deadLetterIdFor({ ...same, body: amqpMessage.data_section(bytes) });
      expect(toJson).not.toHaveBeenCalled();
      // The same bytes cut into two data sections another way are another message; the same cut is the same.
      const two = (a: number): Message => ({ ...same, body: amqpMessage.data_sections([bytes.subarray(0, a), bytes.subarray(a)]) });
      expect(deadLetterIdFor(two(3))).not.toBe(deadLetterIdFor(two(4)));
      expect(deadLetterIdFor(two(3))).toBe(deadLetterIdFor(two(3)));
      expect(deadLetterIdFor(two(3))).not.toBe(one);
      // Not the same as that message's bytes in an amqp-value binary, nor in a sequence section.
      expect(deadLetterIdFor({ ...same, body: bytes })).not.toBe(one);
      expect(deadLetterIdFor({ ...same, body: amqpMessage.sequence_section([1, 'a']) })).not.toBe(deadLetterIdFor({ ...same, body: amqpMessage.sequence_sections([[1], ['a']]) }));
      expect(toJson).not.toHaveBeenCalled();
    } finally {
      toJson.mockRestore();
    }
  });
});
