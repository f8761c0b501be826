// An expert retires while a consultation's offer to them is open, on the real hub over the real broker, with access
// control on: the expert's home system sends `expert.retired`, and at once (not at the offer's deadline, 30 days
// here) the applicant hears `consultation.declined` (reason expert_retired), the retired expert's system
// `consultation.cancelled` (reason 'expert_retired: ...') and loses its clinicians' access to the attached document,
// and the next candidate's system is offered the case; when the last candidate retires too, the case is unassigned.
// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomUUID } from 'node:crypto';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, generatePartyKeys, registerSystem } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { getJson, profile, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(180_000);

const CPR = '251248-1234';
const QUESTION = 'Suspected aortic dissection, tearing chest pain radiating to the back';
const THIRTY_DAYS = 30 * 24 * 3600;

let broker: TestBroker;
let hub: RunningHub;
let data: { dir: string; remove(): void };
const clients: RtsClient[] = [];

const send = async (method: 'POST', path: string, headers: Record<string, string>, body: unknown) => {
  const res = await fetch(new URL(path, hub.url), { method, headers: { 'content-type': 'application/json', accept: 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const bearer = async (who: Record<string, string>): Promise<Record<string, string>> => {
  const login = await send('POST', '/auth/dev-login', {}, who);
  if (login.status !== 200 || typeof login.body.token !== 'string') throw new Error(`dev-login ${JSON.stringify(who)}: HTTP ${login.status}`);
  return { authorization: `Bearer ${login.body.token}` };
};
const client = async (systemId: string) => {
  const c = await RtsClient.connect({ systemId, url: broker.url });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  broker = await startBroker();
  data = tempDir('rts-hub-consultation-retire-');
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_AUTH: 'on', RTS_AUTH_DEV_LOGIN: 'on' } });
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  await broker?.destroy();
  data?.remove();
});

it('withdraws the open offer when its expert retires: the next candidate is offered it, the retired expert\'s system is told and loses access', async () => {
  const operator = await bearer({ role: 'operator', sub: 'ops' });
  for (const id of ['ret-a', 'ret-b', 'ret-c']) await registerSystem(hub.url, { id, name: id, area: 'Sichuan' }, await generatePartyKeys(id), operator);
  const a = await client('ret-a');
  const b = await client('ret-b');
  const c = await client('ret-c');
  await b.joinWithExperts([{ localExpertId: 'old', ...profile(1) }]);
  await c.joinWithExperts([{ localExpertId: 'next', ...profile(2) }]);
  await a.joinWithExperts([]);
  await until('all joined', async () => (await getJson(hub.url, '/systems', operator)).body.items.filter((s: { status: string }) => s.status === 'joined').length === 3);
  await until('both experts known', async () => (await getJson(hub.url, '/experts/ret-c:next', operator)).status === 200 && (await getJson(hub.url, '/experts/ret-b:old', operator)).status === 200);

  // A document of the patient, attached to the consultation.
  const patient = await bearer({ role: 'patient', patient: CPR });
  const upload = await send('POST', '/observations', patient, { patientId: CPR, systolic: 131, diastolic: 77, observationId: 'o-retire-1' });
  expect(upload.status).toBe(201);
  const uniqueId = String(upload.body.uniqueId);
  const clinicianB = await bearer({ role: 'clinician', systemId: 'ret-b', sub: 'dr-b' });
  const clinicianC = await bearer({ role: 'clinician', systemId: 'ret-c', sub: 'dr-c' });
  const documentStatus = async (who: Record<string, string>) => (await fetch(new URL(`/documents/${uniqueId}`, hub.url), { headers: who })).status;

  const got: string[] = [];
  const reasons: string[] = [];
  await a.subscribe({
    onConsultationDeclined: (m) => {
      got.push(`a:declined:${m.payload.expertId}:${m.payload.outcome}`);
      reasons.push(m.payload.reason);
    },
    onConsultationUnassigned: (m) => void got.push(`a:unassigned:${m.correlationId === m.payload.consultationId}`),
  });
  const cancelled: { expertId: string; reason: string }[] = [];
  for (const [name, system] of [['b', b], ['c', c]] as const) {
    await system.subscribe({
      onConsultationOffered: (m) => void got.push(`${name}:offered:${m.payload.expertId}:${m.payload.offerIndex}`),
      onConsultationCancelled: (m) => {
        got.push(`${name}:cancelled:${m.payload.expertId}`);
        cancelled.push({ expertId: m.payload.expertId, reason: m.payload.reason });
      },
    });
  }

  const consultationId = randomUUID();
  await a.requestConsultation({ consultationId, applicantClinician: 'dr-a', candidates: ['ret-b:old', 'ret-c:next'], clinicalQuestion: QUESTION, summary: '', attachments: [uniqueId], deadlineSeconds: THIRTY_DAYS });
  await until('offered to ret-b:old', async () => got.includes('b:offered:ret-b:old:0'));
  expect(await documentStatus(clinicianB)).toBe(200);
  expect(await documentStatus(clinicianC)).toBe(404);

  const retiredAt = Date.now();
  await b.retireExpert('old');
  await until('offered to ret-c:next', async () => got.includes('c:offered:ret-c:next:1'), 30_000, 50, () => got.join('\n'));
  await until('ret-b told, the applicant told', async () => got.includes('b:cancelled:ret-b:old') && got.includes('a:declined:ret-b:old:declined'), 30_000, 50, () => got.join('\n'));
  expect(Date.now() - retiredAt).toBeLessThan(30_000); // at once, not at the 30-day deadline
  expect(reasons).toEqual(['expert_retired']);
  expect(cancelled).toEqual([{ expertId: 'ret-b:old', reason: expect.stringMatching(/^expert_retired: /) }]);

  const applicant = await bearer({ role: 'system', systemId: 'ret-a' }); // an operator reads no consultation
  const view = (await getJson(hub.url, `/consultations/${consultationId}`, applicant)).body;
  expect(view).toMatchObject({ status: 'offered', expertId: 'ret-c:next' });
  expect(view.offers[0]).toMatchObject({ expertId: 'ret-b:old', outcome: 'withdrawn', reason: 'expert_retired' });
  // The retired expert's system no longer reads the attachment; the next candidate's does.
  expect(await documentStatus(clinicianB)).toBe(404);
  expect(await documentStatus(clinicianC)).toBe(200);

  // The last candidate retires too: unassigned, the applicant hears it, ret-c is told, nobody reads the document.
  await c.retireExpert('next');
  await until('unassigned', async () => got.includes('a:unassigned:true') && got.includes('c:cancelled:ret-c:next'), 30_000, 50, () => got.join('\n'));
  expect((await getJson(hub.url, `/consultations/${consultationId}`, applicant)).body.status).toBe('unassigned');
  expect(await documentStatus(clinicianC)).toBe(404);
  // Each message once (the SDK hands each message id to the handler once; the hub sent no second withdrawal).
  expect(got.filter((g) => g.startsWith('a:declined:'))).toEqual(['a:declined:ret-b:old:declined', 'a:declined:ret-c:next:declined']);
  expect(got.filter((g) => g.includes(':offered:'))).toEqual(['b:offered:ret-b:old:0', 'c:offered:ret-c:next:1']);
});

it('refuses a retired expert as a candidate of a new request, as before', async () => {
  const operator = await bearer({ role: 'operator', sub: 'ops' });
  const system = await bearer({ role: 'system', systemId: 'ret-a' });
  const res = await send('POST', '/consultations', system, { applicantSystemId: 'ret-a', applicantClinician: 'dr-a', candidates: ['ret-b:old'], clinicalQuestion: QUESTION, summary: '' });
  expect(res.status).toBe(422);
  expect(res.body).toMatchObject({ code: 'candidate_retired' });
  expect((await getJson(hub.url, '/experts/ret-b:old', operator)).body.status).toBe('retired');
});
