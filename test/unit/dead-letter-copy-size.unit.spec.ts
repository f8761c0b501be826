// The dead letter copy must fit the broker's frame: measured as rhea encodes it, not estimated from the body's JSON.
import { createHash } from 'node:crypto';
import { message as amqpMessage } from 'rhea';
import { DLQ_REASON, fittedDeadLetterCopy, MAX_DEAD_LETTER_COPY_BYTES } from '../../src/adapters/amqp/queue-consumer';

const extra = { [DLQ_REASON]: 'body is not an AMQP value string', 'x-dlq-source-queue': 'rts.uplink', 'x-dlq-attempts': 1, 'x-dlq-at': '2026-12-05T15:00:00.000Z' };

describe('fittedDeadLetterCopy', () => {
  it('keeps a body whose copy fits, as it was', () => {
    const copy = fittedDeadLetterCopy({ body: 'x'.repeat(1000), message_id: 'm-1' }, extra);
    expect({ body: copy.body, reason: copy.application_properties?.[DLQ_REASON] }).toEqual({ body: 'x'.repeat(1000), reason: 'body is not an AMQP value string' });
  });

  it('measures a body that is no string as rhea writes it: 150,000 empty maps (450 KB as a sender wrote them, 300 KB as JSON) are a 1.35 MB copy', () => {
    // An outside review sent them as map8s (3 bytes each); rhea decodes them to {} and writes each as a map32 (9 bytes):
    // the estimate from JSON let the copy through, and the broker closed the hub's connection at every try.
    const body = Array.from({ length: 150_000 }, () => ({}));
    expect(JSON.stringify(body).length).toBeLessThan(MAX_DEAD_LETTER_COPY_BYTES);
    expect(amqpMessage.encode({ body }).length).toBeGreaterThan(1024 * 1024);
    const copy = fittedDeadLetterCopy({ body, message_id: 'm-2', application_properties: { messageId: 'm-2' } }, extra);
    const note = JSON.parse(copy.body as string) as { bodyNotKept: { bytes: number; sha256: string } };
    const encoded = amqpMessage.encode({ body });
    expect(note).toEqual({ bodyNotKept: { bytes: encoded.length, sha256: createHash('sha256').update(encoded).digest('hex') } });
    expect(String(copy.application_properties?.[DLQ_REASON])).toMatch(/^body_not_kept: the body \(\d+ bytes, sha256 [0-9a-f]{64}\) .*; body is not an AMQP value string$/);
    expect(copy.application_properties).toMatchObject({ messageId: 'm-2', 'x-dlq-source-queue': 'rts.uplink' });
    expect(amqpMessage.encode(copy).length).toBeLessThan(MAX_DEAD_LETTER_COPY_BYTES);
  });

  it('drops the sender\'s large properties when they, not the body, are too large, and keeps the small ones and the body', () => {
    // An outside review sent a tiny body with a 1,047,900-byte application-property: the broker took it (under its
    // 1 MiB frame), but the copy with x-dlq-* was over, every try closed the hub's connection, and the message came
    // back for ever (118 reconnects in two minutes, delivery-count 118, never dead-lettered).
    const message = {
      body: 'not json',
      message_id: 'm-3',
      group_id: 'g'.repeat(2_000),
      application_properties: { messageId: 'm-3', type: 'expert.registered', systemId: 'chengdu', junk: 'y'.repeat(1_047_900) },
    };
    const copy = fittedDeadLetterCopy(message, extra);
    expect(amqpMessage.encode(copy).length).toBeLessThanOrEqual(MAX_DEAD_LETTER_COPY_BYTES);
    expect(copy.body).toBe('not json');
    expect(copy.message_id).toBe('m-3');
    expect(copy.group_id).toBeUndefined();
    expect(copy.application_properties).toMatchObject({ messageId: 'm-3', type: 'expert.registered', systemId: 'chengdu', 'x-dlq-source-queue': 'rts.uplink' });
    expect(copy.application_properties).not.toHaveProperty('junk');
    expect(String(copy.application_properties?.[DLQ_REASON])).toMatch(/^properties_not_kept: 2 of the message's properties \(\d+ bytes\) .*; body is not an AMQP value string$/);
  });

  it('drops both when each is too large by itself', () => {
    const body = 'x'.repeat(1_045_000);
    const copy = fittedDeadLetterCopy({ body, application_properties: { messageId: 'm-5', junk: 'y'.repeat(1_045_000) } }, extra);
    expect(amqpMessage.encode(copy).length).toBeLessThanOrEqual(MAX_DEAD_LETTER_COPY_BYTES);
    expect(JSON.parse(copy.body as string)).toEqual({ bodyNotKept: { bytes: 1_045_000, sha256: createHash('sha256').update(body).digest('hex') } });
    expect(copy.application_properties).toMatchObject({ messageId: 'm-5' });
    expect(String(copy.application_properties?.[DLQ_REASON])).toMatch(/^properties_not_kept: 1 of .*; body_not_kept: the body \(1045000 bytes, .*; body is not an AMQP value string$/);
  });
});
