// Tracing one request or message through the hub with what an operator has (README, "Tracing a consultation or a
// message"): the hub's JSON log at its default level (info), the HTTP API and the broker's messages. A consultation
// requested over HTTP is followed by its request id (which becomes its correlation id) and its consultation id to the
// offer on the expert's system's queue, delivered and waiting for a system that is offline; an uplink expert update
// by its envelope id to the directory (applied, then a new update under the same id taken for a repeat), and refused
// ones to their dead letters. No line holds the patient's CPR number or the clinician's texts.
//
// Before: the offer's send and an uplink message's handling were logged at debug only, the dead-letter and retry
// lines named no message, the POST's line no consultation, and the offer carried no consultation id outside its body.
import type { Message } from 'rhea';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient } from '../../src/sdk';
import { readQueue } from '../support/sdk-queues';
import { downlinkQueue, getJson, joinSystem, jsonLines, plainUuid, profile, sendRawBody, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(240_000);

const CPR = '251248-1234';
const QUESTION = 'Tearing chest pain radiating to the back';
const SUMMARY = `Patient ${CPR}, blood pressure asymmetry between arms`;

const amq = useBroker();
const data = tempDir('rts-trace-');
let hub: RunningHub;
const { logger, lines } = jsonLines('info');
const detail = () => `log: ${lines.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`;
const linesWith = (msg: string, fields: Record<string, unknown>) => lines.filter((l) => l['msg'] === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
const oneLine = async (msg: string, fields: Record<string, unknown>): Promise<Record<string, unknown>> => {
  await until(`a '${msg}' line with ${JSON.stringify(fields)}`, () => linesWith(msg, fields).length > 0, 30_000, 50, detail);
  return linesWith(msg, fields)[0]!;
};
const INFO = 30;

const requestConsultation = async (candidate: string, requestId?: string) => {
  const res = await fetch(`${hub.url}/consultations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
    body: JSON.stringify({ applicantSystemId: 'city-a', applicantClinician: 'dr-wang', candidates: [candidate], clinicalQuestion: QUESTION, summary: SUMMARY }),
  });
  expect(res.status).toBe(201);
  return { requestId: res.headers.get('x-request-id')!, body: (await res.json()) as { id: string; correlationId: string } };
};

beforeAll(async () => {
  hub = await startInProcessHub(amq.broker, data.dir, { logger, env: { RTS_UPLINK_MAX_ATTEMPTS: '2', RTS_UPLINK_RETRY_DELAY_MS: '0', RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' } });
  for (const id of ['city-a', 'city-b', 'city-c']) await joinSystem(hub.url, amq.sender, id);
  await sendUplink(amq.sender, uplink.registered('city-b', 'e1', profile(1)));
  await sendUplink(amq.sender, uplink.registered('city-c', 'e2', profile(2)));
  await until('both experts in the directory', async () => (await getJson(hub.url, '/experts/city-b:e1')).status === 200 && (await getJson(hub.url, '/experts/city-c:e2')).status === 200);
  // What the joins and registrations sent: out of the way of the messages the tests look for.
  await readQueue(amq.broker, downlinkQueue('city-b'), { count: 100, idleMs: 1000 });
});
afterAll(async () => {
  await hub?.stop();
  data.remove();
});


test('a consultation over HTTP: its request id and consultation id lead from the request line to the offer on the expert system\'s queue', async () => {
  const { requestId, body } = await requestConsultation('city-b:e1', 'desk-1003');
  expect(requestId).toBe('desk-1003');
  expect(body.correlationId).toBe('desk-1003');

  // The request's own line names the consultation it made.
  const request = await oneLine('request', { requestId: 'desk-1003', route: '/consultations' });
  expect(request).toMatchObject({ level: INFO, method: 'POST', status: 201, consultationId: body.id, correlationId: 'desk-1003' });

  // The offer on the broker: the correlation id the city system sees is the request id, and the consultation id is
  // readable without opening the body.
  const [offer] = await readQueue(amq.broker, downlinkQueue('city-b'), { count: 1, idleMs: 10_000 });
  expect(offer).toBeDefined();
  const m = offer as Message;
  expect(m.subject).toBe('consultation.offered');
  expect(m.correlation_id).toBe('desk-1003');
  expect(m.application_properties).toMatchObject({ messageId: m.message_id, type: 'consultation.offered', systemId: 'city-b', correlationId: 'desk-1003', consultationId: body.id });

  // The hub's line for that send, at info, with the same ids.
  const sent = await oneLine('downlink message sent', { id: String(m.message_id) });
  expect(sent).toMatchObject({ level: INFO, type: 'consultation.offered', systemId: 'city-b', queue: 'rts.downlink.city-b', correlationId: 'desk-1003', consultationId: body.id });

  // Had city-b dead-lettered the offer (its receiver failed), the dead letter view shows the consultation id too.
  await amq.sender.sendRaw('rts.dlq', {
    body: m.body,
    durable: true,
    application_properties: { ...m.application_properties, 'x-dlq-reason': 'handler_failed: test', 'x-dlq-source-queue': 'rts.downlink.city-b', 'x-dlq-attempts': 1, 'x-dlq-at': new Date().toISOString() },
  });
  await until('the copy on the dead letter queue', async () => (await getJson(hub.url, `/dead-letters/${String(m.message_id)}`)).status === 200, 30_000, 200, detail);
  expect((await getJson(hub.url, `/dead-letters/${String(m.message_id)}`)).body).toMatchObject({ envelopeId: m.message_id, applicationProperties: expect.objectContaining({ consultationId: body.id, correlationId: 'desk-1003' }) });

  // The expert accepts over HTTP: its request line names the consultation, and the applicant's notice is sent.
  const accept = await fetch(`${hub.url}/consultations/${body.id}/accept`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'desk-b-7' }, body: JSON.stringify({ expertId: 'city-b:e1' }) });
  expect(accept.status).toBe(200);
  expect(await oneLine('request', { requestId: 'desk-b-7' })).toMatchObject({ level: INFO, route: '/consultations/:id/accept', consultationId: body.id, correlationId: 'desk-1003' });
  expect(await oneLine('downlink message sent', { consultationId: body.id, type: 'consultation.accepted' })).toMatchObject({ level: INFO, systemId: 'city-a', correlationId: 'desk-1003' });

  // Who touched it, in the audit trail by the consultation's id: the request that made it (recorded under the new id,
  // not its applicant system) and the expert's accept; and the hub's two messages about it (the offer to the expert's
  // system, the notice to the applicant's), each recorded once the broker took it, which may come after the answer.
  const trailOf = async (): Promise<[string, string, number][]> => {
    const audited = await fetch(`${hub.url}/audit/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resource: body.id }) });
    expect(audited.status).toBe(200);
    return ((await audited.json()) as { items: { requestId: string; action: string; status: number }[] }).items.map((i) => [i.requestId, i.action, i.status]);
  };
  await until('both messages sent, in the audit trail', async () => (await trailOf()).filter(([, action]) => action === 'consultation.sent').length === 2, 30_000, 200, detail);
  const trail = await trailOf();
  expect(trail.filter(([, action]) => action === 'consultation.act')).toEqual([
    ['desk-1003', 'consultation.act', 201],
    ['desk-b-7', 'consultation.act', 200],
  ]);
  expect(trail.filter(([, action]) => action !== 'consultation.act').map(([, action, status]) => [action, status])).toEqual([
    ['consultation.sent', 200],
    ['consultation.sent', 200],
  ]);

  // Every line about the consultation, found by one grep of its id, or of its correlation id.
  // (A request's line is written once it is answered: the publisher's may come first.)
  const steps = ['downlink message sent', 'downlink message sent', 'request', 'request'];
  expect(lines.filter((l) => l['consultationId'] === body.id).map((l) => String(l['msg'])).sort()).toEqual(steps);
  expect(lines.filter((l) => l['correlationId'] === 'desk-1003').map((l) => String(l['msg'])).sort()).toEqual(steps);
});

test('to a system that is offline: the offer was sent (its line) and waits on the queue, which GET /systems shows no one takes', async () => {
  const { requestId, body } = await requestConsultation('city-c:e2');
  expect(body.correlationId).toBe(requestId);
  const sent = await oneLine('downlink message sent', { consultationId: body.id });
  expect(sent).toMatchObject({ level: INFO, type: 'consultation.offered', systemId: 'city-c', queue: 'rts.downlink.city-c', correlationId: requestId });
  // The operator's view of the case: where it is, without its texts.
  const trace = await getJson(hub.url, `/consultations/${body.id}/trace`);
  expect(trace.status).toBe(200);
  expect(trace.body).toEqual({
    id: body.id,
    correlationId: requestId,
    status: 'offered',
    applicantSystemId: 'city-a',
    candidates: ['city-c:e2'],
    expertId: 'city-c:e2',
    offers: [{ expertId: 'city-c:e2', offerIndex: 0, offeredAt: expect.any(String), expiresAt: expect.any(String), outcome: 'open', settledAt: null }],
    report: null,
    cancelledAt: null,
    contentErased: false,
    requestedAt: expect.any(String),
    updatedAt: expect.any(String),
  });
  expect(await oneLine('request', { route: '/consultations/:id/trace' })).toMatchObject({ consultationId: body.id, correlationId: requestId, status: 200 });
  // The trace read is itself in the audit trail, under the consultation's id: who looked at where the case is.
  const traced = await fetch(`${hub.url}/consultations/${body.id}/trace`, { headers: { 'x-request-id': 'desk-trace-1' } });
  expect(traced.status).toBe(200);
  await until('the trace read audited', async () => {
    const res = await fetch(`${hub.url}/audit/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resource: body.id }) });
    const items = ((await res.json()) as { items: { requestId: string; action: string; status: number; outcome: string }[] }).items;
    return items.some((i) => i.requestId === 'desk-trace-1' && i.action === 'consultation.trace' && i.status === 200 && i.outcome === 'allowed');
  }, 10_000, 100, detail);
  await until('city-c read with its offer waiting', async () => {
    const depth = (await getJson(hub.url, '/systems/city-c')).body.downlinkQueueDepth;
    return depth !== null && depth.messages >= 1 && depth.consumers === 0;
  }, 30_000, 200, detail);
});

test('an uplink expert update: its envelope id in an info line that says it was applied, then a new update under the same id taken for a repeat', async () => {
  const update = uplink.changed('city-b', 'e1', profile(1, { availability: 'limited' }));
  await sendUplink(amq.sender, update);
  const handled = await oneLine('uplink message handled', { id: update.id });
  expect(handled).toMatchObject({ level: INFO, type: 'expert.changed', systemId: 'city-b', correlationId: update.correlationId, outcome: 'applied' });
  expect((await getJson(hub.url, '/experts/city-b:e1')).body).toMatchObject({ revision: 2, profile: { availability: 'limited' } });
  // The change went to the other joined systems under the update's correlation id (their lines at debug: see README).
  const toA = await readQueue(amq.broker, downlinkQueue('city-a'), { count: 100, idleMs: 3000 });
  expect(toA.filter((x) => x.subject === 'directory.expert.upserted' && x.correlation_id === update.correlationId)).toHaveLength(1);

  // The classic "it is not in the directory": a new profile sent under an id already used.
  const reused = { ...uplink.changed('city-b', 'e1', profile(1, { availability: 'unavailable' })), id: update.id };
  await sendUplink(amq.sender, reused);
  await until('the repeat handled', () => linesWith('uplink message handled', { id: update.id }).length === 2, 30_000, 50, detail);
  expect(linesWith('uplink message handled', { id: update.id })[1]).toMatchObject({ level: INFO, outcome: 'duplicate' });
  expect((await getJson(hub.url, '/experts/city-b:e1')).body).toMatchObject({ revision: 2, profile: { availability: 'limited' } });
});

test('refused uplink messages: the refusal, retry and dead letter lines name the envelope id, and the dead letter routes find it by either id', async () => {
  // Refused for good (a system the hub does not know).
  const stranger = uplink.changed('city-zz', 'e1', profile(3));
  await sendUplink(amq.sender, stranger);
  await oneLine('uplink message refused', { id: stranger.id, code: 'unknown_system' });
  const dead = await oneLine('uplink message dead-lettered', { id: stranger.id });
  expect(dead).toMatchObject({ type: 'expert.changed', systemId: 'city-zz', correlationId: stranger.correlationId, deadLetterId: expect.any(String) });
  const byDeadLetterId = await getJson(hub.url, `/dead-letters/${String(dead['deadLetterId'])}`);
  expect(byDeadLetterId.body).toMatchObject({ envelopeId: stranger.id, reason: expect.stringMatching(/^unknown_system/) });
  expect((await getJson(hub.url, `/dead-letters/${stranger.id}`)).status).toBe(200);

  // Retried until the limit (a change of an expert never registered).
  const early = uplink.changed('city-b', 'nobody', profile(4));
  await sendUplink(amq.sender, early);
  expect(await oneLine('uplink message to be retried', { id: early.id })).toMatchObject({ type: 'expert.changed', systemId: 'city-b', reason: 'expert_not_found' });
  expect(await oneLine('uplink message dead-lettered', { id: early.id })).toMatchObject({ reason: 'retry limit (2) reached: expert_not_found' });

  // Never read (bad schema): the id comes from the message's properties.
  const badId = plainUuid();
  await sendRawBody(amq.sender, JSON.stringify({ id: badId, type: 'expert.changed', version: 1, systemId: 'city-b', correlationId: 'c-1', time: new Date().toISOString(), payload: { localExpertId: 'e1' } }), { messageId: badId, type: 'expert.changed', systemId: 'city-b' });
  expect(await oneLine('uplink message dead-lettered', { id: badId })).toMatchObject({ type: 'expert.changed', systemId: 'city-b', reason: expect.stringMatching(/^bad_schema/) });

  // A sender's ids that may hold a CPR number stay out of the log (the dead letter views' rule).
  await sendRawBody(amq.sender, 'not json', { messageId: `msg-${CPR}`, type: 'expert.changed', systemId: 'city-b', correlationId: `c-${CPR}` });
  await until('the garbage dead-lettered', () => lines.some((l) => l['msg'] === 'uplink message dead-lettered' && String(l['reason']).startsWith('bad_json')), 30_000, 50, detail);
  const line = lines.find((l) => l['msg'] === 'uplink message dead-lettered' && String(l['reason']).startsWith('bad_json'))!;
  expect(line).not.toHaveProperty('id');
  expect(line).not.toHaveProperty('correlationId');
  expect(line).toMatchObject({ type: 'expert.changed', systemId: 'city-b' });
});

test("the expert system's side, with the SDK: the offer its handler took, and one it dead-lettered, logged by the ids the hub's line has", async () => {
  const sdkLines: Record<string, unknown>[] = [];
  const keep = (level: string) => (fields: object, msg: string) => void sdkLines.push({ ...fields, level, msg });
  const client = await RtsClient.connect({ systemId: 'city-b', url: amq.broker.url, logger: { info: keep('info'), warn: keep('warn'), error: keep('error') } });
  let fail = false;
  try {
    await client.subscribe({ onConsultationOffered: async () => { if (fail) throw new Error('the clinic system is down'); } }, { maxAttempts: 1, retryDelayMs: 0 });
    const taken = await requestConsultation('city-b:e1', 'desk-1100');
    const sentTaken = await oneLine('downlink message sent', { consultationId: taken.body.id });
    await until('the SDK handled it', () => sdkLines.some((l) => l['msg'] === 'downlink message handled' && l['consultationId'] === taken.body.id), 30_000, 50);
    expect(sdkLines.find((l) => l['msg'] === 'downlink message handled')).toMatchObject({ level: 'info', systemId: 'city-b', id: sentTaken['id'], type: 'consultation.offered', correlationId: 'desk-1100' });

    fail = true;
    const dropped = await requestConsultation('city-b:e1', 'desk-1101');
    const sentDropped = await oneLine('downlink message sent', { consultationId: dropped.body.id });
    await until('the SDK dead-lettered it', () => sdkLines.some((l) => l['msg'] === 'downlink message dead-lettered'), 30_000, 50);
    expect(sdkLines.find((l) => l['msg'] === 'downlink message dead-lettered')).toMatchObject({ level: 'warn', id: sentDropped['id'], type: 'consultation.offered', correlationId: 'desk-1101', consultationId: dropped.body.id, reason: expect.stringMatching(/^retry limit \(1\) reached/) });
    // And the operator finds it on the dead letter queue by the same id.
    await until('on the dead letter queue', async () => (await getJson(hub.url, `/dead-letters/${String(sentDropped['id'])}`)).status === 200, 30_000, 200, detail);
    expect(JSON.stringify(sdkLines)).not.toContain(QUESTION);

    // What the system sends: one info line per message the broker accepted, by the id the hub's line has.
    const changed = await client.changeExpert('e1', profile(2, { availability: 'limited' }), { correlationId: 'desk-1099' });
    expect(sdkLines.filter((l) => l['msg'] === 'uplink message sent' && l['id'] === changed)).toEqual([
      { level: 'info', msg: 'uplink message sent', systemId: 'city-b', id: changed, type: 'expert.changed', correlationId: 'desk-1099', queue: 'rts.uplink', attempts: 1 },
    ]);
    expect(await oneLine('uplink message handled', { id: changed })).toMatchObject({ type: 'expert.changed', systemId: 'city-b', correlationId: 'desk-1099' });
    // A correlation id the contract lets through (no CPR number standing alone) but with one glued into its digits
    // stays out of the line, as it does out of the hub's.
    const glued = await client.changeExpert('e1', profile(3, { availability: 'limited' }), { correlationId: 'order-202512481234' });
    const gluedLine = sdkLines.find((l) => l['msg'] === 'uplink message sent' && l['id'] === glued);
    expect(gluedLine).toMatchObject({ type: 'expert.changed', attempts: 1 });
    expect(gluedLine).not.toHaveProperty('correlationId');
    expect(JSON.stringify(sdkLines)).not.toContain('2512481234');
    const gluedHandled = await oneLine('uplink message handled', { id: glued });
    expect(gluedHandled).toMatchObject({ type: 'expert.changed', systemId: 'city-b', outcome: 'applied' });
    expect(gluedHandled).not.toHaveProperty('correlationId');
  } finally {
    await client.close();
  }
});

test('after all of it, no log line holds the CPR number or the clinician\'s texts', () => {
  expect(lines.length).toBeGreaterThan(20);
  const all = JSON.stringify(lines);
  for (const secret of [CPR, '2512481234', QUESTION, SUMMARY]) expect(all).not.toContain(secret);
});
