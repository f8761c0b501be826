jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { join } from 'node:path';
import { DateTime } from 'luxon';
import pino from 'pino';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { loadConfig } from '../../src/bootstrap/config';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * Who may read a consultation, and the patient seeing who did, against the hub as `npm start` composes it (startHub,
 * the embedded SQLite store, access control on, no broker; the directory written into the store first, as a hub with
 * a broker would have it).
 */
const PATIENT = '251248-1234';
const QUESTION = 'Zqx: rising morning pressure, second opinion please';
const CANCEL_REASON = 'Zqx: the patient was admitted here';

const data = tempDataDir('rts-consult-access-');
let hub: RunningHub;

const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`consult-access/${systemId}/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: new Date().toISOString(), payload }) as unknown as UplinkEnvelope;

beforeAll(async () => {
  const store = SqliteEventStore.open({ file: join(data.dir, DATA_FILES.events) });
  let n = 0;
  const directory = createDirectoryModule({ store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => uuidV5(`consult-access-ids/${n++}`) }, logger: { warn: () => undefined, error: () => undefined } });
  for (const s of ['aarhus', 'odense', 'aalborg']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  await directory.uplink.handleUplink(up('odense', 'expert.registered', { localExpertId: 'hansen', profile }, 'hansen'));
  await directory.uplink.handleUplink(up('aalborg', 'expert.registered', { localExpertId: 'berg', profile }, 'berg'));
  await directory.stop();
  await store.close();
  hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on' }), pino({ level: 'silent' }));
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
});

type Answer = { status: number; body: any };
const call = async (method: string, path: string, token: string | null, body?: unknown): Promise<Answer> => {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
};
const login = async (claims: Record<string, string>): Promise<string> => {
  const res = await call('POST', '/auth/dev-login', null, claims);
  expect(res.status).toBe(200);
  return res.body.token as string;
};

describe('consultations: who reads them', () => {
  let patient: string, applicant: string, odense: string, odenseClinician: string, aalborg: string;
  let document: string;

  beforeAll(async () => {
    patient = await login({ role: 'patient', patient: PATIENT });
    applicant = await login({ role: 'system', systemId: 'aarhus' });
    odense = await login({ role: 'system', systemId: 'odense' });
    odenseClinician = await login({ role: 'clinician', systemId: 'odense', sub: 'dr-hansen' });
    aalborg = await login({ role: 'system', systemId: 'aalborg' });
    const measuredAt = DateTime.utc().minus({ hours: 2 }).startOf('second').toISO({ suppressMilliseconds: true })!;
    const uploaded = await call('POST', '/observations', patient, { patientId: PATIENT, systolic: 150, diastolic: 90, measuredAt, observationId: 'o-1' });
    expect(uploaded.status).toBe(201);
    document = uploaded.body.uniqueId;
  });

  const request = async (consultationId: string, candidates: string[]) => {
    const res = await call('POST', '/consultations', applicant, { consultationId, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates, clinicalQuestion: QUESTION, summary: 'S', attachments: [document] });
    expect(res.status).toBe(201);
  };
  const listed = async (token: string, system: string) => ((await call('GET', `/consultations?system=${system}&role=any`, token)).body.items as { id: string }[]).map((c) => c.id);

  it('an expert system that only held the offer when the applicant cancelled reads the case no more (403), nor lists it; the applicant does', async () => {
    const id = '0b0e5c1a-1b2c-4d3e-8f4a-5b6c7d8e9f01';
    await request(id, ['odense:hansen']);
    // While the offer is open the case is with odense's expert: its system and clinicians read it.
    expect((await call('GET', `/consultations/${id}`, odense)).body).toMatchObject({ id, status: 'offered', clinicalQuestion: QUESTION });
    expect((await call('GET', `/consultations/${id}`, odenseClinician)).status).toBe(200);
    expect(await listed(odense, 'odense')).toEqual([id]);

    expect((await call('POST', `/consultations/${id}/cancel`, applicant, { systemId: 'aarhus', reason: CANCEL_REASON })).status).toBe(200);

    for (const token of [odense, odenseClinician]) {
      const read = await call('GET', `/consultations/${id}`, token);
      // It took part, so it hears that it may not read the case (403), not that there is none (404); and no text.
      expect({ status: read.status, code: read.body.code }).toEqual({ status: 403, code: 'forbidden' });
      expect(JSON.stringify(read.body)).not.toContain('Zqx');
    }
    expect(await listed(odense, 'odense')).toEqual([]);
    const byApplicant = await call('GET', `/consultations/${id}`, applicant);
    expect(byApplicant.body).toMatchObject({ status: 'cancelled', cancelled: { reason: CANCEL_REASON }, offers: [{ expertId: 'odense:hansen', outcome: 'cancelled' }] });
    expect(await listed(applicant, 'aarhus')).toContain(id);
  });

  it('an expert system that accepted the case keeps reading it after the applicant cancelled it', async () => {
    const id = '0b0e5c1a-1b2c-4d3e-8f4a-5b6c7d8e9f02';
    await request(id, ['aalborg:berg']);
    expect((await call('POST', `/consultations/${id}/accept`, aalborg, { expertId: 'aalborg:berg' })).status).toBe(200);
    expect((await call('POST', `/consultations/${id}/cancel`, applicant, { systemId: 'aarhus', reason: CANCEL_REASON })).status).toBe(200);
    expect((await call('GET', `/consultations/${id}`, aalborg)).body).toMatchObject({ status: 'cancelled', cancelled: { reason: CANCEL_REASON } });
    expect(await listed(aalborg, 'aalborg')).toContain(id);
  });

  it("a clinician's read of the consultation, and a system's list of it, are in the patient's export; after the erasure too, without the texts", async () => {
    const id = '0b0e5c1a-1b2c-4d3e-8f4a-5b6c7d8e9f03';
    await request(id, ['aalborg:berg']);
    expect((await call('POST', `/consultations/${id}/accept`, aalborg, { expertId: 'aalborg:berg' })).status).toBe(200);
    const clinician = await login({ role: 'clinician', systemId: 'aalborg', sub: 'dr-berg' });
    const read = await call('GET', `/consultations/${id}`, clinician);
    expect(read.body).toMatchObject({ id, clinicalQuestion: QUESTION });
    expect(await listed(aalborg, 'aalborg')).toContain(id);
    // Another patient's consultation, read by the same clinician: not in this patient's export.
    const other = await login({ role: 'patient', patient: '010203-2345' });
    const measuredAt = DateTime.utc().minus({ hours: 1 }).startOf('second').toISO({ suppressMilliseconds: true })!;
    const otherDocument = (await call('POST', '/observations', other, { patientId: '010203-2345', systolic: 140, diastolic: 85, measuredAt, observationId: 'o-2' })).body.uniqueId;
    const otherId = '0b0e5c1a-1b2c-4d3e-8f4a-5b6c7d8e9f04';
    expect((await call('POST', '/consultations', applicant, { consultationId: otherId, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['aalborg:berg'], clinicalQuestion: QUESTION, summary: 'S', attachments: [otherDocument] })).status).toBe(201);
    expect((await call('POST', `/consultations/${otherId}/accept`, aalborg, { expertId: 'aalborg:berg' })).status).toBe(200);
    expect((await call('GET', `/consultations/${otherId}`, clinician)).status).toBe(200);

    const readsIn = (exported: any) => (exported.audit.entries as any[]).filter((e) => e.action === 'consultation.read');
    const exported = (await call('POST', '/patients/export', patient, { patient: PATIENT })).body;
    expect(readsIn(exported)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ subject: 'dr-berg', role: 'clinician', systemId: 'aalborg', resource: id, outcome: 'allowed', status: 200 }),
        // The list of aalborg's consultations answered this one's texts too.
        expect.objectContaining({ role: 'system', systemId: 'aalborg', resource: id, outcome: 'allowed', status: 200 }),
      ]),
    );
    expect(JSON.stringify(exported.audit)).not.toContain(otherId);
    // And the steps that answered the texts: the request that made it, the expert system's accept.
    expect((exported.audit.entries as any[]).filter((e) => e.action === 'consultation.act' && e.resource === id).map((e) => [e.systemId, e.status])).toEqual([
      ['aarhus', 201],
      ['aalborg', 200],
    ]);

    const operator = await login({ role: 'operator', sub: 'dpo-jensen' });
    expect((await call('POST', '/erasures', operator, { patient: PATIENT })).status).toBe(200);
    expect((await call('GET', `/consultations/${id}`, clinician)).body).toMatchObject({ id, contentErased: true, clinicalQuestion: null });
    const afterErasure = (await call('POST', '/patients/export', operator, { patient: PATIENT })).body;
    expect(afterErasure.erasure).not.toBeNull();
    // The reads are still listed, the one after the erasure too: a pseudonymous key and a consultation id, no text.
    expect(readsIn(afterErasure).filter((e: any) => e.subject === 'dr-berg' && e.resource === id)).toHaveLength(2);
    expect(JSON.stringify(afterErasure)).not.toContain('Zqx');
  });
});
