jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { chmodSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { THIS_BUILD_STORE_FORMAT } from '../../src/application/store-format';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { devToken, tempDataDir } from '../support/hub-process';

/**
 * An upgrade from a real older build: the data directory that the landed build e62c91f (2026-11-30) wrote through
 * its HTTP API and AMQP uplink (test/fixtures/upgrade/e62c91f/README.md), opened by this build. Everything the old
 * build answered (answers.json) is answered the same, new writes work on top of it, and erasing a patient reaches
 * the consultations that build attached to their readings.
 */
jest.setTimeout(60_000);

const FIXTURE = join(__dirname, '..', 'fixtures', 'upgrade', 'e62c91f');
const answers = JSON.parse(readFileSync(join(FIXTURE, 'answers.json'), 'utf8'));
const [P1, P2, P3, P4] = ['251248-1234', '150375-4321', '120485-1122', '030303-3033'] as const;
const data = tempDataDir('rts-upgrade-e62c91f-');
const lines: Record<string, unknown>[] = [];
let hub: RunningHub;

beforeAll(async () => {
  cpSync(join(FIXTURE, 'data'), data.dir, { recursive: true });
  for (const f of readdirSync(data.dir)) chmodSync(join(data.dir, f), 0o600); // git keeps no modes; the old build made them 0600
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), done()) }));
  // The secret the fixture was written with (its README); the token secret is the fixture's own auth.secret.
  hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) }), logger);
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
});

const call = async (token: string, method: string, path: string, body?: object) => {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text.startsWith('{') ? JSON.parse(text) : text) as any };
};
const patient = (cpr: string) => devToken(hub.url, { role: 'patient', patient: cpr });
const system = (systemId: string) => devToken(hub.url, { role: 'system', systemId });
const operator = () => devToken(hub.url, { role: 'operator' });
const readings = async (cpr: string) => call(await patient(cpr), 'POST', '/observations/search', { patientId: cpr, from: '2026-11-01T00:00:00Z', to: '2026-12-31T00:00:00Z' });
const ownerOf = (doc: string) => [P1, P2, P3, P4][Number(/-p(\d)-/.exec(doc)![1]) - 1]!; // obs-p1-2, corr-p2-2: patient 1, 2

it('says what it migrates at start: the schema from 1 to 4, the store format from none, one open pre-UUID consultation', () => {
  const said = (start: string) => lines.find((l) => String(l['msg']).startsWith(start));
  expect(said('event store schema: migrating')).toMatchObject({ from: 1, to: 4 });
  expect(said('store format: upgraded')).toMatchObject({ from: 0, to: THIS_BUILD_STORE_FORMAT.format });
  expect(said('consultations with a pre-UUID id')).toMatchObject({ level: 40, consultations: 1 });
  expect(lines.filter((l) => Number(l['level']) >= 50)).toEqual([]);
});

it('answers readings and documents as the old build did', async () => {
  for (const cpr of [P1, P2, P4]) expect(await readings(cpr)).toMatchObject({ status: 200, body: { observations: answers.patients[cpr] } });
  expect((await readings(P3)).status).toBe(answers.patients[P3]); // erased by the old build: 410
  for (const [name, doc] of Object.entries<any>(answers.documents)) {
    const res = await call(await patient(ownerOf(name)), 'GET', `/documents/${doc.uniqueId}`);
    if (doc.httpStatus) {
      expect([name, res.status]).toEqual([name, doc.httpStatus]);
      continue;
    }
    expect([name, res.status, res.headers.get('etag'), res.headers.get('x-document-status'), res.headers.get('link')]).toEqual([name, 200, doc.etag, doc.status, doc.link]);
  }
});

it('answers the directory, the systems and their keys, the consultations and the audit trail as the old build did', async () => {
  const op = await operator();
  expect((await call(op, 'GET', '/experts')).body.items).toMatchObject(answers.experts);
  expect((await call(op, 'GET', '/systems')).body.items).toMatchObject(answers.systems);
  for (const [id, kids] of Object.entries<string[]>(answers.systemKeys)) expect((await call(op, 'GET', `/systems/${id}/keys`)).body.items.map((k: { kid: string }) => k.kid)).toEqual(kids);
  const cityA = await system('city-a');
  for (const [name, { diagnosis, ...c }] of Object.entries<any>(answers.consultations)) {
    const res = await call(cityA, 'GET', `/consultations/${c.id}`);
    expect([name, res.status, res.body]).toMatchObject([name, 200, { ...c, report: diagnosis === null ? null : { diagnosis }, contentErased: false }]);
  }
  expect((await call(op, 'GET', '/stats/consultations-per-month')).body.items).toEqual(answers.consultationsPerMonth);
  expect((await call(op, 'GET', '/erasures')).body).toMatchObject({ count: 1, items: [{ kind: 'patient' }] });
  // The old build's day (the hub's own reads add events, and chains when run that day).
  const verify = await call(op, 'GET', '/audit/verify?from=2026-12-03T00:00:00Z&to=2026-12-04T00:00:00Z');
  expect(verify.body).toMatchObject({ ok: true, breaks: [] });
  expect(verify.body.chains).toBeGreaterThanOrEqual(answers.audit.chains);
  expect(verify.body.events).toBeGreaterThanOrEqual(answers.audit.events);
});

it('takes new writes on top: uploads, retries of old uploads, corrections of old documents, consultation steps', async () => {
  const p1 = await patient(P1);
  const old = answers.documents['obs-p1-1'];
  const [oldReading] = answers.patients[P1];
  expect((await call(p1, 'POST', '/observations', { observationId: 'obs-p1-new', patientId: P1, systolic: 128, diastolic: 71 })).status).toBe(201);
  expect(await call(p1, 'POST', '/observations', { observationId: 'obs-p1-1', patientId: P1, systolic: 126, diastolic: 70, measuredAt: oldReading.measuredAt })).toMatchObject({ status: 200, body: { uniqueId: old.uniqueId } });
  expect((await call(p1, 'POST', `/documents/${old.uniqueId}/corrections`, { correctionId: 'corr-p1-1', systolic: 127, diastolic: 71, measuredAt: oldReading.measuredAt })).status).toBe(201);
  const cityB = await system('city-b');
  expect(await call(cityB, 'POST', `/consultations/${answers.consultations.offered.id}/accept`, { expertId: 'city-b:e1' })).toMatchObject({ status: 200, body: { status: 'accepted' } });
  expect(await call(cityB, 'POST', '/consultations/cons-0001/accept', { expertId: 'city-b:e2' })).toMatchObject({ status: 200, body: { status: 'accepted' } });
  expect(await call(await system('city-a'), 'POST', `/consultations/${answers.consultations.reported.id}/acknowledge`, { systemId: 'city-a' })).toMatchObject({ status: 200, body: { status: 'acknowledged' } });
});

it("erasing a patient erases the texts of the consultations the old build attached to the patient's readings", async () => {
  // e62c91f's requests recorded no patient keys; the attachment's own document stream names the patient's key.
  const attached = answers.consultations.attached;
  expect(attached.attachments).toEqual([answers.documents['obs-p1-1'].uniqueId]);
  expect((await call(await operator(), 'POST', '/erasures', { patient: P1 })).status).toBe(200);
  expect((await call(await system('city-a'), 'GET', `/consultations/${attached.id}`)).body).toMatchObject({ contentErased: true, clinicalQuestion: null, summary: null });
  // A consultation without attachments is reached by no patient.
  expect((await call(await system('city-a'), 'GET', `/consultations/${answers.consultations.offered.id}`)).body).toMatchObject({ contentErased: false });
});
