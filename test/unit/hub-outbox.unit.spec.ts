import { AmqpHubOutbox, MAX_DOWNLINK_BODY_BYTES } from '../../src/adapters/messaging/amqp-hub-outbox';
import { PlainHubCodec, type HubMessageCodec } from '../../src/adapters/messaging/hub-codec';
import type { ConsultationDownlinkEnvelope } from '../../src/application/consultation/consultation-messages';

// The hub's downlink outbox skips (and logs) a message it can never send, so that one such message does not stop
// the publisher behind it: a consultation id that was no UUID stopped every consultation message for good.
const cancelled = (consultationId: string, id: string): ConsultationDownlinkEnvelope =>
  ({
    id,
    type: 'consultation.cancelled',
    version: 1,
    systemId: 'mianyang',
    correlationId: id,
    time: '2026-11-23T09:35:00.030+08:00',
    payload: { consultationId, expertId: 'mianyang:li-7', reason: 'Patient transferred', cancelledAt: '2026-11-23T01:35:00.030Z' },
  }) as ConsultationDownlinkEnvelope;

const setup = (codec: HubMessageCodec = new PlainHubCodec()) => {
  const sent: string[] = [];
  const errors: { fields: Record<string, unknown>; message: string }[] = [];
  const outbox = new AmqpHubOutbox({ send: async (_queue, message) => void sent.push(String(message.messageId)) }, codec, { error: (fields, message) => void errors.push({ fields: fields as Record<string, unknown>, message }) });
  return { outbox, sent, errors };
};

it('skips a message that breaks the contract, logging why, and sends the next', async () => {
  const { outbox, sent, errors } = setup();
  // An id an old build took that holds a CPR number: never passed on (legacy-id.ts).
  await outbox.send('rts.downlink.mianyang', cancelled('251248-1234', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b06'));
  await outbox.send('rts.downlink.mianyang', cancelled('0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b07'));
  expect(sent).toEqual(['9e8d7c6b-5a49-5382-9170-6f5e4d3c2b07']);
  expect(errors).toEqual([{ fields: expect.objectContaining({ reason: 'contract_violation', id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b06' }), message: expect.stringContaining('skipped') }]);
  // The ids that broke the contract stay out of the line: here the consultation id is a CPR number.
  expect(JSON.stringify(errors)).not.toContain('251248-1234');
});

it('skips a body larger than the broker takes, and throws what may pass (the broker being away)', async () => {
  const huge: HubMessageCodec = { ...new PlainHubCodec(), security: 'off', encodeDownlink: async () => ({ body: 'x'.repeat(MAX_DOWNLINK_BODY_BYTES + 1), applicationProperties: {} }) } as unknown as HubMessageCodec;
  const { outbox, sent, errors } = setup(huge);
  await outbox.send('rts.downlink.mianyang', cancelled('0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b08'));
  expect(sent).toEqual([]);
  // Named by its ids (README, "Tracing a consultation or a message"): the correlation id is the message's own here.
  expect(errors[0]?.fields).toMatchObject({ reason: 'too_large', id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b08', correlationId: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b08', consultationId: '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01' });

  const failing = new AmqpHubOutbox({ send: async () => Promise.reject(new Error('disconnected')) }, new PlainHubCodec());
  await expect(failing.send('q', cancelled('0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b09'))).rejects.toThrow('disconnected');
});

it('delivers the messages of a consultation an older build recorded with a pre-UUID id (cons-0001, case-2026-0001)', async () => {
  const { outbox, sent, errors } = setup();
  await outbox.send('rts.downlink.mianyang', cancelled('cons-0001', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b10'));
  await outbox.send('rts.downlink.mianyang', cancelled('case-2026-0001', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b11'));
  expect(errors).toEqual([]);
  expect(sent).toEqual(['9e8d7c6b-5a49-5382-9170-6f5e4d3c2b10', '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b11']);
  // Not when it may hold a CPR number, in any spelling the old builds' characters allow; nor a short or long one.
  for (const [i, id] of ['2512481234', 'pt_251248_1234', 'x-25-12-48-1234', 'cons-01', 'c'.repeat(65)].entries()) {
    await outbox.send('rts.downlink.mianyang', cancelled(id, `9e8d7c6b-5a49-5382-9170-6f5e4d3c2c${String(i).padStart(2, '0')}`));
  }
  expect(sent).toHaveLength(2);
  expect(errors.map((e) => e.fields['reason'])).toEqual(Array(5).fill('contract_violation'));
});

// Tracing (README, "Tracing a consultation or a message"): a consultation's downlink message names its consultation
// in an application property (the body is a JWE with message security: the receiver's desk, the broker's console and
// the dead letter views read the properties) and in an info line; a directory message, sent to every joined system,
// in neither (its line stays at debug).
it('puts the consultation id on a consultation message and in an info line; a directory message has neither', async () => {
  const sent: { queue: string; properties: Record<string, unknown>; correlationId: unknown }[] = [];
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  const log = (level: string) => (fields: object, message: string) => void lines.push({ level, fields: fields as Record<string, unknown>, message });
  const outbox = new AmqpHubOutbox(
    { send: async (queue, message) => void sent.push({ queue, properties: { ...message.applicationProperties }, correlationId: message.correlationId }) },
    new PlainHubCodec(),
    { error: log('error'), info: log('info'), debug: log('debug') },
  );
  const consultationId = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01';
  await outbox.send('rts.downlink.mianyang', { ...cancelled(consultationId, '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b12'), correlationId: 'desk-1003' } as ConsultationDownlinkEnvelope);
  await outbox.send('rts.downlink.mianyang', {
    id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b13',
    type: 'directory.expert.retired',
    version: 1,
    systemId: 'mianyang',
    correlationId: 'corr-1',
    time: '2026-11-23T09:35:00.030+08:00',
    payload: { expertId: 'chengdu:dr-0043', homeSystemId: 'chengdu', revision: 3 },
  } as never);
  expect(sent[0]).toEqual({ queue: 'rts.downlink.mianyang', correlationId: 'desk-1003', properties: expect.objectContaining({ messageId: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b12', correlationId: 'desk-1003', consultationId }) });
  expect(sent[1]!.properties).not.toHaveProperty('consultationId');
  expect(lines).toEqual([
    { level: 'info', message: 'downlink message sent', fields: { id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b12', type: 'consultation.cancelled', systemId: 'mianyang', correlationId: 'desk-1003', consultationId, queue: 'rts.downlink.mianyang' } },
    { level: 'debug', message: 'downlink message sent', fields: expect.objectContaining({ id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b13', type: 'directory.expert.retired' }) },
  ]);
  // The reason is free text from a clinician: never in a line.
  expect(JSON.stringify(lines)).not.toContain('Patient transferred');
});

// With message security off the body is the envelope's JSON, and the properties say so as they do with JOSE (a
// review found contentType and codec missing); the envelope's fields travel as properties, version as an AMQP int.
it('sends a plain message with the envelope as JSON and its fields, contentType and codec as properties', async () => {
  const sent: { body: string; properties: Record<string, unknown> }[] = [];
  const outbox = new AmqpHubOutbox({ send: async (_queue, message) => void sent.push({ body: String(message.body), properties: { ...message.applicationProperties } }) }, new PlainHubCodec());
  const envelope = {
    id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2b14',
    type: 'system.joined',
    version: 1,
    systemId: 'city-b',
    correlationId: 'corr-9',
    time: '2024-05-01T10:00:00Z',
    payload: { systemId: 'city-c', name: 'C', area: 'Hubei' },
  };
  await outbox.send('rts.downlink.city-b', envelope as never);
  expect(JSON.parse(sent[0]!.body)).toEqual(envelope);
  expect(sent[0]!.properties).toEqual({ messageId: envelope.id, type: 'system.joined', version: 1, systemId: 'city-b', correlationId: 'corr-9', contentType: 'application/json', codec: 'json' });
});
