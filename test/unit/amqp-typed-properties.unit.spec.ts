// Numeric application-properties in the AMQP types Java JMS reads: rhea's default makes every positive integer a
// uint (qpid-jms getIntProperty("version") throws on it), and a dead letter or replayed copy changed the types the
// sender chose.
import { message as rheaMessage, types, type Message } from 'rhea';
import type { OutgoingMessage } from '../../src/adapters/amqp/durable-sender';
import { AmqpHubOutbox } from '../../src/adapters/messaging/amqp-hub-outbox';
import { PlainHubCodec } from '../../src/adapters/messaging/hub-codec';
import { deadLetterCopy, DLQ_ATTEMPTS } from '../../src/adapters/amqp/queue-consumer';
import { receivedPropertyType, withAmqpInts } from '../../src/adapters/amqp/typed-properties';
import { REPLAY_COUNT, replayCopy } from '../../src/adapters/messaging/dead-letters';

const codec = rheaMessage as unknown as { encode(m: Message): Buffer; decode(b: Buffer): Message };
/** What a receiver gets: the message through rhea's encoder and (wrapped) decoder. */
const overTheWire = (m: Message): Message => codec.decode(codec.encode(m));
const INT = /^(Small)?Int$/;

it('the hub sends its integers as AMQP int (long beyond 32 bits), not uint', () => {
  const sent = overTheWire({ body: '{}', application_properties: withAmqpInts({ version: 1, big: 2 ** 40, negative: -3, ratio: 0.5, name: 'x' }) });
  expect(receivedPropertyType(sent, 'version')).toMatch(INT);
  expect(receivedPropertyType(sent, 'big')).toMatch(/^(Small)?Long$/);
  expect(receivedPropertyType(sent, 'negative')).toMatch(INT);
  expect(receivedPropertyType(sent, 'ratio')).toBe('Double');
  expect(sent.application_properties).toEqual({ version: 1, big: 2 ** 40, negative: -3, ratio: 0.5, name: 'x' });
});

it('a downlink message\'s version is an int', async () => {
  let out: OutgoingMessage | undefined;
  const outbox = new AmqpHubOutbox({ send: async (_queue, message) => void (out = message) }, new PlainHubCodec());
  await outbox.send('rts.downlink.beijing', {
    id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd', type: 'system.joined', version: 1, systemId: 'beijing', correlationId: 'corr-1',
    time: '2024-05-01T12:00:00+08:00', payload: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' },
  } as never);
  // DurableSender puts every message's properties through withAmqpInts.
  const received = overTheWire({ body: out!.body, application_properties: withAmqpInts(out!.applicationProperties ?? {}) });
  expect(receivedPropertyType(received, 'version')).toMatch(INT);
});

it('a dead letter keeps the types the sender chose and has an int x-dlq-attempts; a replay an int x-replay-count', () => {
  const fromJava = overTheWire({
    body: '{}',
    application_properties: { version: types.wrap_int(1), seq: types.wrap_long(7), flags: types.wrap_uint(5), type: 'expert.changed' },
  });
  const dead = overTheWire(deadLetterCopy(fromJava, { [DLQ_ATTEMPTS]: 5, 'x-dlq-reason': 'test' }));
  expect(receivedPropertyType(dead, 'version')).toMatch(INT);
  expect(receivedPropertyType(dead, 'seq')).toMatch(/^(Small)?Long$/);
  expect(receivedPropertyType(dead, 'flags')).toMatch(/^(Small)?Uint0?$/);
  expect(receivedPropertyType(dead, DLQ_ATTEMPTS)).toMatch(INT);
  expect(dead.application_properties).toMatchObject({ version: 1, seq: 7, flags: 5, type: 'expert.changed', [DLQ_ATTEMPTS]: 5 });

  const replayed = overTheWire(replayCopy(dead));
  expect(receivedPropertyType(replayed, 'version')).toMatch(INT);
  expect(receivedPropertyType(replayed, REPLAY_COUNT)).toMatch(INT);
  const again = overTheWire(replayCopy(overTheWire(deadLetterCopy(replayed, { [DLQ_ATTEMPTS]: 1 }))));
  expect(again.application_properties?.[REPLAY_COUNT]).toBe(2);
  expect(receivedPropertyType(again, REPLAY_COUNT)).toMatch(INT);
});
