// "Who read or acted on this consultation?" answered for the steps city systems take over AMQP too: a consultation
// requested over HTTP, accepted and reported by the expert's system through the SDK, and a report from a system that
// is not the expert's (refused, dead-lettered). POST /audit/search by the consultation's id finds the HTTP request
// and every AMQP step under the sending system (role system, no ip, the envelope id as request id), the refused one
// as denied; a search by the envelope id finds its step; the chains verify. Nothing of the case's texts in the trail.
//
// Before: only HTTP requests were audited, so the search answered with the request alone, complete as far as anyone
// could tell, without the expert system's accept and report.
import { randomUUID } from 'node:crypto';
import { serializeConsultationUplink, type ConsultationUplinkEnvelope } from '../../src/adapters/messaging/consultation-messages';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient } from '../../src/sdk';
import { getJson, joinSystem, profile, sendUplink, startInProcessHub, tempDir, until, uplink, UPLINK, useBroker } from './hub-support';

jest.setTimeout(180_000);

const CPR = '251248-1234';
const QUESTION = 'Tearing chest pain radiating to the back';
const SUMMARY = `Patient ${CPR}, blood pressure asymmetry between arms`;
const DIAGNOSIS = 'Stanford type B dissection, no malperfusion';

const amq = useBroker();
const data = tempDir('rts-consultation-audit-');
let hub: RunningHub;
const clients: RtsClient[] = [];

type Entry = { subject: string; role: string; systemId: string | null; action: string; patientKey: string | null; resource: string | null; ip: string; requestId: string; outcome: string; status: number; reason: string | null };
const search = async (query: Record<string, string>): Promise<Entry[]> => {
  const res = await fetch(`${hub.url}/audit/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(query) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: Entry[] }).items;
};
const client = async (systemId: string) => {
  const c = await RtsClient.connect({ systemId, url: amq.broker.url });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_UPLINK_MAX_ATTEMPTS: '2', RTS_UPLINK_RETRY_DELAY_MS: '0' } });
  for (const id of ['city-a', 'city-b', 'city-c']) await joinSystem(hub.url, amq.sender, id);
  await sendUplink(amq.sender, uplink.registered('city-b', 'e1', profile(1)));
  await until('the expert in the directory', async () => (await getJson(hub.url, '/experts/city-b:e1')).status === 200);
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  data.remove();
});

test('the AMQP accept and report of the expert system, and a refused report of another system, are in the audit trail by consultation and by envelope id', async () => {
  const res = await fetch(`${hub.url}/consultations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'desk-2001' },
    body: JSON.stringify({ applicantSystemId: 'city-a', applicantClinician: 'dr-wang', candidates: ['city-b:e1'], clinicalQuestion: QUESTION, summary: SUMMARY }),
  });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  const status = async () => (await getJson(hub.url, `/consultations/${id}`)).body.status as string;

  const b = await client('city-b');
  const c = await client('city-c');
  const acceptId = await b.acceptConsultation(id, 'city-b:e1');
  await until('accepted', async () => (await status()) === 'accepted');
  // A system that is not the expert's reports on the case: refused (not_your_consultation), dead-lettered.
  const strangerId = await c.issueReport(id, 'city-b:e1', { diagnosis: `Not mine, ${CPR}`, recommendations: 'none' });
  await until('the refused report in the trail', async () => (await search({ requestId: strangerId })).length === 1);
  const reportId = await b.issueReport(id, 'city-b:e1', { diagnosis: DIAGNOSIS, recommendations: 'Blood pressure control' });
  await until('reported', async () => (await status()) === 'reported');

  // Accepted only once its entry was stored: the report's entry is there as soon as the case shows it. (The test's
  // own reads of the case, GET /consultations/:id, are in the trail too: consultation.read.)
  const trail = (await search({ resource: id })).filter((e) => e.action === 'consultation.act');
  const amqp = { role: 'system', action: 'consultation.act', patientKey: null, resource: id, ip: '' };
  expect(trail).toEqual([
    expect.objectContaining({ requestId: 'desk-2001', action: 'consultation.act', status: 201, outcome: 'allowed' }),
    expect.objectContaining({ ...amqp, subject: 'system:city-b', systemId: 'city-b', requestId: acceptId, outcome: 'allowed', status: 200, reason: null }),
    expect.objectContaining({ ...amqp, subject: 'system:city-c', systemId: 'city-c', requestId: strangerId, outcome: 'denied', status: 403, reason: 'not_your_consultation' }),
    expect.objectContaining({ ...amqp, subject: 'system:city-b', systemId: 'city-b', requestId: reportId, outcome: 'allowed', status: 200, reason: null }),
  ]);

  // By the envelope id the city system logged: that one step.
  expect(await search({ requestId: acceptId })).toEqual([expect.objectContaining({ ...amqp, requestId: acceptId, subject: 'system:city-b', outcome: 'allowed' })]);
  expect(await search({ requestId: reportId })).toEqual([expect.objectContaining({ requestId: reportId, outcome: 'allowed', status: 200 })]);
  // By the system as the user (the subject an API-key caller of that system has over HTTP too).
  expect((await search({ user: 'system:city-b' })).map((e) => e.requestId)).toEqual(expect.arrayContaining([acceptId, reportId]));

  // Nothing of the case's texts or the patient's number in the trail.
  const text = JSON.stringify(await search({ resource: id }));
  for (const secret of [CPR, '251248', QUESTION, DIAGNOSIS, 'Not mine', 'city-b:e1']) expect(text).not.toContain(secret);

  const verify = await getJson(hub.url, '/audit/verify');
  expect(verify.status).toBe(200);
  expect(verify.body).toMatchObject({ ok: true, breaks: [] });
});

// A consultation message that comes with its attempts used up (delivery-count 2 = the hub's RTS_UPLINK_MAX_ATTEMPTS:
// the processes that took it died holding it) is dead-lettered without a handling. Before, that dead letter was the
// one final outcome of a consultation message with no entry in the trail.
test('a consultation message that arrives with its attempts used up is dead-lettered with an audit entry (error 503 max_attempts_exceeded)', async () => {
  const consultationId = randomUUID();
  const envelope = {
    id: randomUUID(),
    type: 'consultation.accept',
    version: 1,
    systemId: 'city-b',
    correlationId: randomUUID(),
    time: new Date().toISOString(),
    payload: { consultationId, expertId: 'city-b:e1' },
  } as ConsultationUplinkEnvelope;
  await amq.sender.sendRaw(UPLINK, {
    body: serializeConsultationUplink(envelope),
    message_id: envelope.id,
    delivery_count: 2,
    application_properties: { messageId: envelope.id, type: envelope.type, version: 1, systemId: 'city-b', correlationId: envelope.correlationId },
  });

  await until('the exhausted message in the trail', async () => (await search({ requestId: envelope.id })).length === 1);
  expect(await search({ requestId: envelope.id })).toEqual([
    expect.objectContaining({ subject: 'system:city-b', role: 'system', systemId: 'city-b', action: 'consultation.act', resource: consultationId, ip: '', outcome: 'error', status: 503, reason: 'max_attempts_exceeded' }),
  ]);
  // Dead-lettered with the consumer's reason, and not handled: no consultation came of it.
  await until('the dead letter', async () => {
    const items = ((await getJson(hub.url, '/dead-letters?limit=100')).body as { items?: { envelopeId?: string; reason?: string }[] }).items ?? [];
    return items.some((d) => d.envelopeId === envelope.id && /^max attempts exceeded/.test(d.reason ?? ''));
  });
  expect((await getJson(hub.url, `/consultations/${consultationId}`)).status).toBe(404);
});
