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

// The right of access shows every disclosure of the patient's consultation to another system: the steps city systems
// sent over AMQP (recorded under no patient key before, so the export lacked them) and the messages the hub sent them
// (the offer with the question and summary, the report with the diagnosis: recorded nowhere before). Each under the
// patient's key, naming the consultation and the system, none of the texts; another patient's export has none of it.
test("the patient's export lists the AMQP steps on their consultation and each message the hub sent about it, naming the system, without texts", async () => {
  const measuredAt = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const upload = async (patientId: string, observationId: string) => {
    const res = await fetch(`${hub.url}/observations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ patientId, systolic: 150, diastolic: 90, measuredAt, observationId }) });
    expect(res.status).toBe(201);
    return ((await res.json()) as { uniqueId: string }).uniqueId;
  };
  const document = await upload(CPR, 'o-export-1');
  const OTHER = '010203-2345';
  await upload(OTHER, 'o-export-2');
  const res = await fetch(`${hub.url}/consultations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ applicantSystemId: 'city-a', applicantClinician: 'dr-wang', candidates: ['city-b:e1'], clinicalQuestion: QUESTION, summary: SUMMARY, attachments: [document] }),
  });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  const b = await client('city-b');
  const c = await client('city-c');
  const acceptId = await b.acceptConsultation(id, 'city-b:e1');
  const strangerId = await c.issueReport(id, 'city-b:e1', { diagnosis: 'Not mine', recommendations: 'none' });
  await until('the refused report in the trail', async () => (await search({ requestId: strangerId })).length === 1);
  const reportId = await b.issueReport(id, 'city-b:e1', { diagnosis: DIAGNOSIS, recommendations: 'Blood pressure control' });

  type Exported = { subject: string; role: string; systemId: string | null; action: string; resource: string | null; outcome: string; status: number; reason: string | null };
  const exportOf = async (patient: string) => {
    const answer = await fetch(`${hub.url}/patients/export`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ patient }) });
    expect(answer.status).toBe(200);
    return (await answer.json()) as { audit: { entries: Exported[] } };
  };
  const aboutCase = async () => (await exportOf(CPR)).audit.entries.filter((e) => e.resource === id && e.action !== 'consultation.read');
  // The report's message to the applicant is the last thing to happen: the hub sends it once the report is stored.
  await until('the report sent to the applicant in the export', async () => (await aboutCase()).some((e) => e.action === 'consultation.sent' && e.reason === 'consultation.report'));

  const entries = await aboutCase();
  const steps = entries.filter((e) => e.action === 'consultation.act' && e.role === 'system' && e.systemId !== 'city-a');
  expect(steps).toEqual([
    expect.objectContaining({ subject: 'system:city-b', systemId: 'city-b', outcome: 'allowed', status: 200 }),
    expect.objectContaining({ subject: 'system:city-c', systemId: 'city-c', outcome: 'denied', status: 403, reason: 'not_your_consultation' }),
    expect.objectContaining({ subject: 'system:city-b', systemId: 'city-b', outcome: 'allowed', status: 200 }),
  ]);
  expect(await search({ requestId: acceptId })).toEqual([expect.objectContaining({ requestId: acceptId, patientKey: expect.any(String) })]);
  expect(await search({ requestId: reportId })).toEqual([expect.objectContaining({ requestId: reportId, patientKey: expect.any(String) })]);
  // What the hub sent, to whom: the offer to the expert's system, the accept and the report to the applicant's.
  const sent = entries.filter((e) => e.action === 'consultation.sent').map((e) => [e.systemId, e.reason, e.subject, e.role, e.outcome]);
  expect(sent).toEqual(
    expect.arrayContaining([
      ['city-b', 'consultation.offered', 'system:city-b', 'system', 'allowed'],
      ['city-a', 'consultation.accepted', 'system:city-a', 'system', 'allowed'],
      ['city-a', 'consultation.report', 'system:city-a', 'system', 'allowed'],
    ]),
  );
  const text = JSON.stringify(entries);
  for (const secret of [CPR, '251248', QUESTION, DIAGNOSIS, 'Not mine', 'city-b:e1']) expect(text).not.toContain(secret);
  // Another patient (a reading of their own, no part in this case): nothing of it in their export.
  expect(JSON.stringify((await exportOf(OTHER)).audit.entries)).not.toContain(id);
});
