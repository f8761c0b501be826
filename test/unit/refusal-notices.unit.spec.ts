// 'consultation.refused': the hub tells the sender of a consultation message it refused for good, before the dead
// letter and only when that message's rts_accepts names the type; nothing changes for a sender without it. Without
// a broker: the uplink handler's outcomes, and the notice as the outbox encodes and sends it.
import { randomUUID } from 'node:crypto';
import type { ReceivedMessage } from '../../src/adapters/amqp/queue-consumer';
import { JoseError } from '../../src/adapters/crypto/jose-codec';
import { AmqpHubOutbox } from '../../src/adapters/messaging/amqp-hub-outbox';
import { uplinkMessageHandler } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { parseConsultationDownlink, serializeConsultationUplink, type ConsultationUplinkEnvelope } from '../../src/adapters/messaging/consultation-messages';
import { PlainHubCodec, type HubMessageCodec } from '../../src/adapters/messaging/hub-codec';
import { acceptsDownlinkType, AmqpRefusalNotices, type RefusalNotices } from '../../src/adapters/messaging/refusal-notices';
import type { OutgoingMessage } from '../../src/adapters/amqp/durable-sender';
import { refusalNoticeId, type Refusal } from '../../src/application/consultation/consultation-refusals';
import { ConflictError, UnavailableError, ValidationError } from '../../src/domain/shared/errors';

const CPR = '251248-1234';
const consultationId = '3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10';

const request = (over: Partial<ConsultationUplinkEnvelope> = {}): ConsultationUplinkEnvelope =>
  ({
    id: randomUUID(),
    type: 'consultation.requested',
    version: 1,
    systemId: 'chengdu',
    correlationId: consultationId,
    time: '2026-11-23T09:30:00.000+08:00',
    payload: { consultationId, applicantClinician: 'dr-wang', candidates: ['mianyang:li-7'], clinicalQuestion: `Chest pain, patient ${CPR}`, summary: 'Male, 58', attachments: [] },
    ...over,
  }) as ConsultationUplinkEnvelope;

const received = (envelope: ConsultationUplinkEnvelope, properties: Record<string, unknown> = {}, attempt = 1): ReceivedMessage => {
  const body = serializeConsultationUplink(envelope);
  return { body, applicationProperties: properties, messageId: undefined, correlationId: undefined, subject: undefined, deliveryCount: attempt - 1, attempt, queue: 'rts.uplink', raw: { body } };
};

const CAPABLE = { rts_accepts: 'consultation.refused' };
const retiredCandidate = new ValidationError('candidate_retired', 'a candidate expert has retired', [{ path: 'candidates.0', message: 'retired' }]);

/** The uplink handler with a consultation route refusing with `error`, and a notices port recording what it is asked. */
const setup = (error: unknown, notices: Partial<RefusalNotices> = {}) => {
  const events: string[] = [];
  const asked: { refused: ConsultationUplinkEnvelope; refusal: Refusal }[] = [];
  const refusals: RefusalNotices = {
    send:
      notices.send ??
      (async (refused, refusal) => {
        asked.push({ refused, refusal });
        events.push('notice sent');
        return 'sent';
      }),
  };
  const handler = uplinkMessageHandler(
    { handleUplink: async () => ({ outcome: 'applied' }) },
    { consultations: { handleUplink: async () => Promise.reject(error) }, refusals },
    { maxAttempts: 5 },
  );
  return { handler, asked, events };
};

describe('the uplink handler and refusal notices', () => {
  it('sends the notice, then dead-letters as before, for a sender that accepts consultation.refused', async () => {
    const { handler, asked, events } = setup(retiredCandidate);
    const envelope = request();
    const outcome = await handler(received(envelope, { ...CAPABLE }));
    events.push('outcome returned');
    expect(outcome).toEqual({ deadLetter: 'candidate_retired: candidates.0 retired' });
    expect(events).toEqual(['notice sent', 'outcome returned']);
    expect(asked).toEqual([{ refused: envelope, refusal: { reason: 'candidate_retired', detail: 'candidates.0 retired' } }]);
  });

  it('gives the notice the detail exactly as the dead letter carries it, also when that is cut at 500 characters', async () => {
    const many = new ValidationError('invalid_consultation', 'the consultation request is not valid', Array.from({ length: 40 }, (_, i) => ({ path: `candidates.${i}`, message: 'must be an expert of another system, not the applicant\'s own (a consultation goes across areas)' })));
    const { handler, asked } = setup(many);
    const outcome = (await handler(received(request(), CAPABLE))) as { deadLetter: string };
    expect(outcome.deadLetter).toHaveLength(500);
    expect(`${asked[0]!.refusal.reason}: ${asked[0]!.refusal.detail}`).toBe(outcome.deadLetter);
  });

  it('reads the capability from a comma-separated list, per message', async () => {
    expect(acceptsDownlinkType({ rts_accepts: 'consultation.future, consultation.refused' }, 'consultation.refused')).toBe(true);
    expect(acceptsDownlinkType({ rts_accepts: 'consultation.refusedX' }, 'consultation.refused')).toBe(false);
    expect(acceptsDownlinkType({ rts_accepts: ['consultation.refused'] }, 'consultation.refused')).toBe(false);
    expect(acceptsDownlinkType({}, 'consultation.refused')).toBe(false);
    const { handler, asked } = setup(retiredCandidate);
    await handler(received(request(), { rts_accepts: 'consultation.future,consultation.refused' }));
    await handler(received(request())); // the same system's next message, from an older client
    expect(asked).toHaveLength(1);
  });

  it('sends nothing for a sender without the property: the dead letter it gets today, and nothing else', async () => {
    const { handler, asked } = setup(retiredCandidate);
    expect(await handler(received(request()))).toEqual({ deadLetter: 'candidate_retired: candidates.0 retired' });
    expect(await handler(received(request(), { rts_accepts: 'consultation.offered' }))).toEqual({ deadLetter: 'candidate_retired: candidates.0 retired' });
    expect(asked).toEqual([]);
  });

  it('hands the message back (retry) when the notice cannot be sent, and dead-letters it without the notice on the last attempt', async () => {
    // A handler each: a message handed back keeps its place, and the next about its consultation would wait for it.
    const failing = () => setup(retiredCandidate, { send: async () => Promise.reject(Object.assign(new Error(`broker away, ${CPR}`), { name: 'SendError' })) }).handler;
    const outcome = await failing()(received(request(), CAPABLE, 1));
    expect(outcome).toEqual({ retry: 'transient failure: the refusal notice was not sent (SendError); refused as candidate_retired' });
    expect(JSON.stringify(outcome)).not.toContain(CPR);
    expect(await failing()(received(request(), CAPABLE, 5))).toEqual({ deadLetter: 'candidate_retired: candidates.0 retired' });
  });

  it('sends no notice for a refusal that is retried (order-dependent), nor for a hub that cannot store now', async () => {
    const early = setup(new ConflictError('consultation_not_accepted', 'the consultation is not accepted'));
    expect(await early.handler(received(request({ type: 'consultation.report', payload: { consultationId, expertId: 'mianyang:li-7', diagnosis: 'x', recommendations: 'y' } } as never), CAPABLE))).toEqual({ retry: 'consultation_not_accepted' });
    expect(early.asked).toEqual([]);
    const down = setup(new UnavailableError('storage_unavailable', 'the store does not answer'));
    expect(await down.handler(received(request(), CAPABLE))).toEqual({ later: 'transient failure: storage_unavailable' });
    expect(down.asked).toEqual([]);
    const crash = setup(new Error('SQLITE_BUSY'));
    expect(await crash.handler(received(request(), CAPABLE))).toEqual({ retry: 'transient failure: Error' });
    expect(crash.asked).toEqual([]);
  });

  it('sends no notice for a body it could not read (no envelope, no sender to answer)', async () => {
    const { handler, asked } = setup(retiredCandidate);
    const bad = { body: '{not json', applicationProperties: CAPABLE, messageId: undefined, correlationId: undefined, subject: undefined, deliveryCount: 0, attempt: 1, queue: 'rts.uplink', raw: { body: '{not json' } } as ReceivedMessage;
    expect(await handler(bad)).toEqual({ deadLetter: 'bad_json: the body is not valid JSON' });
    expect(asked).toEqual([]);
  });
});

describe('AmqpRefusalNotices', () => {
  const notices = (options: { registered?: boolean; codec?: HubMessageCodec; send?: (queue: string, message: OutgoingMessage) => Promise<void> } = {}) => {
    const sent: { queue: string; message: OutgoingMessage }[] = [];
    const logs: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { error: (fields: object, message: string) => void logs.push({ fields: fields as Record<string, unknown>, message }), debug: (fields: object, message: string) => void logs.push({ fields: fields as Record<string, unknown>, message }) };
    const outbox = new AmqpHubOutbox({ send: options.send ?? (async (queue, message) => void sent.push({ queue, message })) }, options.codec ?? new PlainHubCodec(), logger);
    const port = new AmqpRefusalNotices({
      outbox,
      isRegistered: async (systemId) => (options.registered ?? true) && systemId === 'chengdu',
      queueFor: (systemId) => `rts.downlink.${systemId}`,
      now: () => '2026-11-23T01:30:00.090Z',
      logger,
    });
    return { port, sent, logs };
  };

  it("sends the notice to the sender's downlink queue, as the hub's other downlink messages, with an id made from the refused message's", async () => {
    const { port, sent } = notices();
    const refused = request();
    expect(await port.send(refused, { reason: 'candidate_retired', detail: 'candidates.0 retired' })).toBe('sent');
    expect(sent).toHaveLength(1);
    const { queue, message } = sent[0]!;
    expect(queue).toBe('rts.downlink.chengdu');
    const parsed = parseConsultationDownlink(String(message.body));
    expect(parsed.ok && parsed.message).toEqual({
      id: refusalNoticeId(refused),
      type: 'consultation.refused',
      version: 1,
      systemId: 'chengdu',
      correlationId: refused.correlationId,
      time: '2026-11-23T01:30:00.090Z',
      payload: { consultationId, refusedType: 'consultation.requested', refusedMessageId: refused.id, reason: 'candidate_retired', detail: 'candidates.0 retired' },
    });
    expect(message.applicationProperties).toMatchObject({ messageId: refusalNoticeId(refused), type: 'consultation.refused', systemId: 'chengdu', correlationId: refused.correlationId, version: 1 });
    expect(String(message.body)).not.toContain(CPR); // no text of the refused message is passed back

    // A redelivery of the same message gives the same id (receivers dedupe); another message another id.
    await port.send(refused, { reason: 'candidate_retired', detail: 'candidates.0 retired' });
    await port.send(request(), { reason: 'candidate_retired', detail: 'candidates.0 retired' });
    expect(sent.map((s) => s.message.messageId)).toEqual([refusalNoticeId(refused), refusalNoticeId(refused), expect.not.stringMatching(refusalNoticeId(refused))]);
  });

  it('skips a sender that is not a registered system, and one it cannot encrypt for, logging ids and codes only', async () => {
    const unregistered = notices({ registered: false });
    expect(await unregistered.port.send(request(), { reason: 'unknown_system', detail: 'applicantSystemId unknown system' })).toBe('not_registered');
    expect(unregistered.sent).toEqual([]);
    const noKey: HubMessageCodec = { security: 'jose', decodeUplink: async () => Promise.reject(new Error('unused')), encodeDownlink: async () => Promise.reject(new JoseError('unknown_key', 'no valid encryption key of chengdu')) };
    const keyless = notices({ codec: noKey });
    expect(await keyless.port.send(request(), { reason: 'candidate_retired', detail: 'candidates.0 retired' })).toBe('no_encryption_key');
    expect(keyless.sent).toEqual([]);
    for (const { logs } of [unregistered, keyless]) {
      expect(logs).toEqual([{ fields: expect.objectContaining({ systemId: 'chengdu', code: expect.any(String), skipped: expect.any(String) }), message: expect.stringContaining('refusal notice not sent') }]);
      expect(JSON.stringify(logs)).not.toContain(CPR);
      expect(JSON.stringify(logs)).not.toContain('dr-wang');
    }
  });

  it('rejects when the broker does not take it (the consumer then retries the message)', async () => {
    const { port } = notices({ send: async () => Promise.reject(new Error('released')) });
    await expect(port.send(request(), { reason: 'candidate_retired', detail: 'candidates.0 retired' })).rejects.toThrow('released');
  });
});
