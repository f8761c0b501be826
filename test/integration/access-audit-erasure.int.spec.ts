jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import pino from 'pino';
import { DateTime } from 'luxon';
import { buildHttpServer, type HttpServer } from '../../src/adapters/http/server';
import { sha256Hex } from '../../src/application/ids';
import { buildDocument } from '../../src/application/telemed';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import type { ConsultationReadModel } from '../../src/application/consultation/consultation-read-model';
import type { Clock } from '../../src/application/ports/clock';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import { authSecret, createSecurityModule, type SecurityModule } from '../../src/bootstrap/security-module';
import { signToken, type TokenClaims } from '../../src/adapters/auth/tokens';
import { tempDataDir } from '../support/hub-process';

const CPR_A = '251248-1234';
const CPR_B = '010203-2345';
const data = tempDataDir('rts-access-');
let http: HttpServer;
let store: EventStore;
let projector: Projector;
let security: SecurityModule;
let patientKeys: PatientKeys;
let consultationAttachments: string[] = [];
let consultationStatus = 'accepted';
let base = '';

const consultations = {
  list: async ({ systemId }: { systemId: string }) => ({
    items: systemId === 'aarhus' ? [{ consultationId: 'c-00000001', status: consultationStatus, requestedAt: '2024-01-01T00:00:00Z', attachments: consultationAttachments }] : [],
    hasMore: false,
  }),
  get: async () => null,
} as unknown as ConsultationReadModel;

const warnings: string[] = [];

beforeAll(async () => {
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_RATE_LIMIT_BURST: '400', RTS_RATE_LIMIT_PER_SECOND: '1' });
  const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _e, done) => (warnings.push(chunk.toString('utf8')), done()) }));
  const c = buildContainer(config, logger);
  store = c.get<EventStore>(TOKENS.EventStore);
  projector = c.get<Projector>(TOKENS.Projector);
  security = createSecurityModule({
    config: { ...config, RTS_AUTH_DEV_LOGIN: 'on' },
    logger,
    store,
    clock: c.get<Clock>(TOKENS.Clock),
    patientKeys: (patientKeys = c.get<PatientKeys>(TOKENS.PatientKeys)),
    xds: c.get<XdsBackend>(TOKENS.Xds),
    erasure: c.get<PatientErasure>(TOKENS.PatientErasure),
    consultations: () => consultations,
  });
  http = buildHttpServer({
    telemed: c.get<TeleMedService>(TOKENS.TeleMed),
    xds: c.get<XdsBackend>(TOKENS.Xds),
    clock: c.get<Clock>(TOKENS.Clock),
    logger,
    health: async () => ({}),
    beforeRoutes: security.install,
  });
  base = await http.app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await http.close(100);
  await security.close();
  // The shutdown's anchor line, at RTS_LOG_LEVEL=warn as at every level but silent (it was dropped at warn).
  expect(warnings.join('')).toMatch(/"auditAnchor":\{"audit-\d{4}-\d{2}-\d{2}-\d+":"[0-9a-f]{64}"[^\n]*"msg":"audit anchor"/);
  await projector.stop();
  await store.close();
  data.remove();
});

type Answer = { statusCode: number; headers: Record<string, string>; text: string; json(): any };
const call = async (method: 'GET' | 'HEAD' | 'POST' | 'DELETE' | 'PUT', url: string, token?: string, payload?: object): Promise<Answer> => {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
    ...(payload ? { body: JSON.stringify(payload) } : {}),
  });
  const text = await res.text();
  return { statusCode: res.status, headers: Object.fromEntries(res.headers), text, json: () => JSON.parse(text) };
};
const login = async (body: Record<string, string>): Promise<string> => {
  const res = await call('POST', '/auth/dev-login', undefined, body);
  expect(res.statusCode).toBe(200);
  return res.json().token as string;
};
/** A token as an identity provider issues it (it knows the CPR number, not our pseudonym), signed with the hub's secret. */
const idpToken = (claims: TokenClaims): Promise<string> => {
  const config = loadConfig({ RTS_DATA_DIR: data.dir });
  return signToken(authSecret(undefined, data.dir), claims, { issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE, ttlSeconds: 600 });
};
const upload = (token: string, patientId: string, systolic = 131) => call('POST', '/observations', token, { patientId, systolic, diastolic: 77, observationId: `o-${patientId === CPR_A ? 'a' : 'b'}-${systolic}` });

describe('access control, audit and erasure over SQLite', () => {
  let patientA: string, patientB: string, clinician: string, otherClinician: string, operator: string, system: string;
  let docA: string;

  beforeAll(async () => {
    patientA = await login({ role: 'patient', patient: CPR_A });
    patientB = await login({ role: 'patient', patient: CPR_B });
    clinician = await login({ role: 'clinician', systemId: 'aarhus', sub: 'dr-aarhus' });
    otherClinician = await login({ role: 'clinician', systemId: 'odense', sub: 'dr-odense' });
    operator = await login({ role: 'operator', sub: 'ops' });
    system = await login({ role: 'system', systemId: 'aarhus' });
  });

  it('warns at start that the development login is on, and why: set on by hand, it serves whoever reaches the address', () => {
    expect(warnings.join('')).toContain('POST /auth/dev-login is enabled (RTS_AUTH_DEV_LOGIN=on, on 127.0.0.1)');
  });

  it('answers 401 problem+json to anonymous callers and bad tokens, and keeps /health public', async () => {
    const anonymous = await call('GET', `/patients/${CPR_A}/observations`);
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['content-type']).toContain('application/problem+json');
    expect(anonymous.json()).toMatchObject({ code: 'unauthenticated' });
    expect((await call('GET', `/patients/${CPR_A}/observations`, 'not.a.token')).statusCode).toBe(401);
    expect((await call('GET', '/health')).statusCode).toBe(200);
  });

  it('refuses a CPR number in a token\'s sub or systemId, in any spelling, and keeps it out of the audit trail', async () => {
    // Signed with the hub's own secret, as an identity provider would (signToken refuses these claims itself).
    const config = loadConfig({ RTS_DATA_DIR: data.dir });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const forged = (claims: Record<string, unknown>) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, iss: config.RTS_AUTH_ISSUER, aud: config.RTS_AUTH_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 })}`;
      return `${unsigned}.${createHmac('sha256', authSecret(undefined, data.dir)).update(unsigned).digest('base64url')}`;
    };
    for (const systemId of ['251248-1234', '2512481234']) {
      const clinicianCpr = await call('POST', '/observations/search', forged({ sub: 'clin-cprsys', role: 'clinician', systemId }), { patientId: CPR_B });
      expect(clinicianCpr.statusCode).toBe(401);
      expect(clinicianCpr.json()).toMatchObject({ code: 'unauthenticated', detail: expect.stringContaining("systemId must not be a CPR number") });
      const devLogin = await call('POST', '/auth/dev-login', undefined, { role: 'clinician', systemId, sub: 'clin-cprsys' });
      expect(devLogin.json()).toMatchObject({ status: 422, code: 'invalid_subject', errors: [{ path: 'systemId' }] });
    }
    for (const sub of ['19481225-1234', '251248\u20131234', '2512481234x', 'user-2512481234']) {
      const refused = await call('GET', `/patients/${CPR_A}/observations`, forged({ sub, role: 'operator' }));
      expect({ sub, status: refused.statusCode, detail: refused.json().detail }).toEqual({ sub, status: 401, detail: expect.stringContaining("sub must not be a CPR number") });
      const devLogin = await call('POST', '/auth/dev-login', undefined, { role: 'operator', sub });
      expect({ sub, answer: devLogin.json() }).toMatchObject({ sub, answer: { status: 422, code: 'invalid_subject', errors: [{ path: 'sub' }] } });
    }
    // A compact timestamp inside a sub is no CPR number for a refusal: its user is not locked out.
    const timestamped = await call('POST', '/audit/search', forged({ sub: 'order-202612021030-17', role: 'operator' }), { user: 'nobody' });
    expect(timestamped.statusCode).toBe(200);
    const audit = await call('POST', '/audit/search', operator, { user: 'clin-cprsys' });
    expect(audit.statusCode).toBe(200);
    expect(audit.json().items).toEqual([]);
    // The refusals are audited (invalid_credentials), without the claims.
    const trail = readdirSync(data.dir).filter((f) => f.includes('sqlite')).map((f) => readFileSync(join(data.dir, f)).toString('latin1')).join('');
    expect(trail).not.toMatch(/251248.?1234|2512481234|19481225/);
  });

  it('lets a patient write and read their own data only', async () => {
    const own = await upload(patientA, CPR_A);
    expect(own.statusCode).toBe(201);
    docA = own.json().uniqueId;
    expect((await upload(patientA, CPR_B)).statusCode).toBe(403);
    expect((await call('GET', `/patients/${CPR_A}/observations`, patientA)).json().count).toBe(1);
    const other = await call('GET', `/patients/${CPR_A}/observations`, patientB);
    expect(other.statusCode).toBe(403);
    expect(other.json()).toMatchObject({ code: 'forbidden' });
    expect((await call('GET', `/documents/${docA}`, patientA)).statusCode).toBe(200);
    expect((await call('GET', `/documents/${docA}`, patientB)).json()).toMatchObject({ code: 'document_not_found' });
  });

  it("mints patients' tokens that hold their pseudonymous key, not the CPR number", async () => {
    const claims = JSON.parse(Buffer.from(patientA.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims).toMatchObject({ role: 'patient', patientKey: patientKeys.keyFor(parseCpr(CPR_A)) });
    expect(claims).not.toHaveProperty('patient');
    expect(JSON.stringify(claims)).not.toMatch(/251248|2512481234/);
  });

  it("takes an identity provider's token that names the patient by CPR number, for that patient only", async () => {
    const token = await idpToken({ sub: 'idp-anna', role: 'patient', patient: CPR_A });
    expect((await call('GET', `/patients/${CPR_A}/observations`, token)).statusCode).toBe(200);
    expect((await call('GET', `/patients/${CPR_B}/observations`, token)).statusCode).toBe(403);
  });

  it("hashes an identity provider's token's CPR number once per token, not once per request", async () => {
    // A subject of its own: a token equal to one an earlier test sent (same claims, same second) would be remembered.
    const token = await idpToken({ sub: 'keyfor-once', role: 'patient', patient: CPR_A });
    const keyFor = jest.spyOn(patientKeys, 'keyFor');
    try {
      const calls: number[] = [];
      for (let i = 0; i < 3; i++) {
        keyFor.mockClear();
        expect((await call('GET', `/patients/${CPR_A}/observations`, token)).statusCode).toBe(200);
        calls.push(keyFor.mock.calls.length);
      }
      // The first request also turns the token's patient claim into a key; the later ones reuse its principal.
      expect(calls[1]).toBe(calls[0]! - 1);
      expect(calls[2]).toBe(calls[1]);
    } finally {
      keyFor.mockRestore();
    }
  });

  it('lets a clinician read a patient only through a consultation offered to their system', async () => {
    expect((await call('GET', `/patients/${CPR_A}/observations`, clinician)).statusCode).toBe(403);
    consultationAttachments = [docA];
    expect((await call('GET', `/patients/${CPR_A}/observations`, clinician)).statusCode).toBe(200);
    expect((await call('GET', `/documents/${docA}`, clinician)).statusCode).toBe(200);
    // Of the patient's documents only the attached one: another (or an original since corrected) is no one's to read.
    const another = (await upload(patientA, CPR_A, 133)).json().uniqueId as string;
    expect(another).not.toBe(docA);
    const notAttached = await call('GET', `/documents/${another}`, clinician);
    expect({ status: notAttached.statusCode, code: notAttached.json().code }).toEqual({ status: 404, code: 'document_not_found' });
    expect((await call('GET', `/patients/${CPR_A}/observations`, otherClinician)).statusCode).toBe(403);
    expect((await upload(clinician, CPR_A, 140)).statusCode).toBe(403);
    // Only while the case is with the system's expert: not once it is closed.
    for (const closed of ['cancelled', 'acknowledged', 'unassigned']) {
      consultationStatus = closed;
      expect({ closed, status: (await call('GET', `/documents/${docA}`, clinician)).statusCode }).toEqual({ closed, status: 404 });
      expect({ closed, status: (await call('GET', `/patients/${CPR_A}/observations`, clinician)).statusCode }).toEqual({ closed, status: 403 });
    }
    consultationStatus = 'reported';
    expect((await call('GET', `/documents/${docA}`, clinician)).statusCode).toBe(200);
    consultationStatus = 'accepted';
  });

  it('answers POST /observations/search as the GET with the CPR number in the URL: the same answer, rules and audit', async () => {
    const day = (d: number) => new Date(Math.floor(Date.now() / 1000) * 1000 + d * 86_400_000).toISOString().replace('.000Z', 'Z');
    const interval = { from: day(-300), to: day(1) };
    const viaUrl = await call('GET', `/patients/${CPR_A}/observations?from=${interval.from}&to=${interval.to}`, patientA);
    const viaBody = await call('POST', '/observations/search', patientA, { patientId: CPR_A, ...interval });
    expect(viaBody.statusCode).toBe(200);
    expect(viaBody.json()).toEqual(viaUrl.json());
    expect(viaBody.json().count).toBeGreaterThan(0);
    expect(viaBody.headers['cache-control']).toBe('no-store');
    expect((await call('POST', '/observations/search', patientB, { patientId: CPR_A })).statusCode).toBe(403);
    expect((await call('POST', '/observations/search', operator, { patientId: CPR_A })).statusCode).toBe(403);
    expect((await call('POST', '/observations/search', system, { patientId: CPR_A })).statusCode).toBe(403);
    expect((await call('POST', '/observations/search', patientA, { patientId: CPR_A, from: 'yesterday' })).statusCode).toBe(400);
    expect((await call('POST', '/observations/search', patientA, { patientId: CPR_A, extra: 1 })).statusCode).toBe(400);
    // Audited as the read it is, under the patient's key; the trail holds no CPR number.
    await security.audit.drain();
    const reads = (await store.readAll({ after: 0n, maxCount: 100_000 }))
      .filter((e) => e.type === 'AuditRecorded')
      .map((e) => e.data as { action: string; outcome: string; subject: string })
      .filter((d) => d.action === 'observations.read');
    expect(reads.filter((d) => d.outcome === 'allowed').length).toBeGreaterThanOrEqual(2);
    expect(reads.filter((d) => d.outcome === 'denied').length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(reads)).not.toContain(CPR_A);
  });

  it('keeps systems and operators away from patient data and systems away from operations', async () => {
    expect((await call('GET', `/patients/${CPR_A}/observations`, system)).statusCode).toBe(403);
    expect((await call('GET', `/patients/${CPR_A}/observations`, operator)).statusCode).toBe(403);
    expect((await call('GET', '/audit/verify', system)).statusCode).toBe(403);
    expect((await call('GET', '/audit/verify', operator)).statusCode).toBe(200);
  });

  it('answers HEAD as the GET it stands for: the same access rules, the same audit', async () => {
    // fastify answers HEAD with the GET's handler (status, length, ETag): refused where the GET is refused.
    const opQuery = await call('HEAD', `/patients/${CPR_A}/observations`, operator);
    expect(opQuery.statusCode).toBe(403);
    expect(opQuery.headers['etag']).toBeUndefined();
    const opDocument = await call('HEAD', `/documents/${docA}`, operator);
    expect(opDocument.statusCode).toBe(404);
    expect(opDocument.headers['etag']).toBeUndefined();
    expect((await call('HEAD', `/documents/${docA}`, patientB)).statusCode).toBe(404);
    expect((await call('HEAD', `/patients/${CPR_A}/observations`, system)).statusCode).toBe(403);
    // The patient's own data, and the public documents, answer HEAD as they answer GET.
    expect((await call('HEAD', `/patients/${CPR_A}/observations`, patientA)).statusCode).toBe(200);
    const own = await call('HEAD', `/documents/${docA}`, patientA);
    expect(own.statusCode).toBe(200);
    expect(own.headers['etag']).toMatch(/^"[0-9a-f]{64}"$/);
    expect((await call('HEAD', '/openapi.json')).statusCode).toBe(200);
    expect((await call('HEAD', '/problems/forbidden')).statusCode).toBe(200);
    // And each is in the audit trail, allowed or denied, under the patient's key.
    await security.audit.drain();
    const items = (await call('GET', `/audit?patient=${CPR_A}`, operator)).json().items as { requestId: string; subject: string; outcome: string; action: string }[];
    for (const answer of [opQuery, opDocument]) {
      expect(items).toContainEqual(expect.objectContaining({ requestId: answer.headers['x-request-id'], subject: 'ops', outcome: 'denied' }));
    }
    expect(items).toContainEqual(expect.objectContaining({ requestId: own.headers['x-request-id'], action: 'document.read', outcome: 'allowed' }));
  });

  it('names no document id in the audit trail that may hold a CPR number, and the hub\'s own ids as they are', async () => {
    const digits = CPR_A.replace('-', '');
    const probes = [`1.2.${digits}`, `2.25.${digits}`, `1.2.25.12.48.1234`, `0.${digits}`];
    const answers = [];
    for (const id of probes) answers.push(await call('GET', `/documents/${id}`, patientA));
    answers.push(await call('POST', `/documents/1.2.${digits}/corrections`, patientA, { systolic: 120, diastolic: 80, measuredAt: '2024-01-01T00:00:00Z' }));
    const own = await call('GET', `/documents/${docA}`, patientA);
    await security.audit.drain();
    const entryOf = async (answer: Answer) => (await call('POST', '/audit/search', operator, { requestId: answer.headers['x-request-id'] })).json();
    for (const answer of answers) {
      const found = await entryOf(answer);
      expect({ status: answer.statusCode, resources: found.items.map((e: { resource: unknown }) => e.resource) }).toEqual({ status: 404, resources: [null] });
      expect(JSON.stringify(found)).not.toContain(digits.slice(0, 6));
    }
    expect((await entryOf(own)).items).toEqual([expect.objectContaining({ action: 'document.read', resource: docA })]);
  });

  it("answers a document the caller may not see with the same problem as one that does not exist", async () => {
    const hidden = await call('GET', `/documents/${docA}`, patientB);
    const missingId = `${docA.slice(0, -1)}${docA.endsWith('1') ? '2' : '1'}`;
    const missing = await call('GET', `/documents/${missingId}`, patientB);
    expect(hidden.statusCode).toBe(404);
    expect(missing.statusCode).toBe(404);
    // Byte for byte, but for the id in the instance (each names its own request).
    expect(hidden.json()).toEqual({ ...missing.json(), instance: `/documents/${docA}` });
    expect(missing.json().instance).toBe(`/documents/${missingId}`);
    const hiddenCorrection = await call('POST', `/documents/${docA}/corrections`, patientB, { systolic: 120, diastolic: 80, measuredAt: '2024-01-01T00:00:00Z' });
    const missingCorrection = await call('POST', `/documents/${missingId}/corrections`, patientB, { systolic: 120, diastolic: 80, measuredAt: '2024-01-01T00:00:00Z' });
    expect(hiddenCorrection.json()).toEqual({ ...missingCorrection.json(), instance: `/documents/${docA}/corrections` });
  });

  it("answers a correction of a document the caller may not see as one of a document that does not exist, whatever the body", async () => {
    const missingId = `${docA.slice(0, -1)}${docA.endsWith('1') ? '2' : '1'}`;
    const correct = async (uniqueId: string, token: string, body: 'json' | 'xml', query = '') => {
      const res = await fetch(`${base}/documents/${uniqueId}/corrections${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': body === 'xml' ? 'application/xml' : 'application/json' },
        body: body === 'xml' ? '<x/>' : '{}',
      });
      const { instance: _instance, ...problem } = (await res.json()) as Record<string, unknown>;
      return { status: res.status, ...problem };
    };
    // A bad body (JSON, XML) or a bad correctionId: a stranger's document and a missing one used to differ here
    // (404 against 400 or 422), which told every role which uniqueIds exist.
    const bodies: ['json' | 'xml', string][] = [['json', ''], ['xml', ''], ['json', '?correctionId=a%20b'], ['xml', '?correctionId=a%20b']];
    for (const token of [patientB, clinician, system, operator]) {
      for (const [body, query] of bodies) {
        const hidden = await correct(docA, token, body, query);
        expect({ body, query, hidden }).toEqual({ body, query, hidden: await correct(missingId, token, body, query) });
        expect(hidden).toMatchObject({ status: 404, code: 'document_not_found' });
      }
    }
    // The owner is told what is wrong with the body of a correction of their own document.
    expect(await correct(docA, patientA, 'json')).toMatchObject({ status: 400, code: 'invalid_request' });
    expect(await correct(docA, patientA, 'xml')).toMatchObject({ status: 422, code: 'invalid_document' });
    expect(await correct(docA, patientA, 'xml', '?correctionId=a%20b')).toMatchObject({ status: 400, code: 'invalid_request' });
  });

  it('records every access and refusal in hash-chained audit streams, queryable by patient and by user', async () => {
    const byPatient = await call('GET', `/audit?patient=${CPR_A}`, operator);
    expect(byPatient.statusCode).toBe(200);
    const items = byPatient.json().items as { subject: string; outcome: string; action: string; patientKey: string }[];
    expect(items.some((i) => i.subject === 'dr-odense' && i.outcome === 'denied' && i.action === 'observations.read')).toBe(true);
    expect(items.some((i) => i.outcome === 'allowed' && i.action === 'observations.write')).toBe(true);
    expect(JSON.stringify(byPatient.json())).not.toContain(CPR_A);
    // A path value that is no document id (a CPR number typed in its place, a name) is not kept in the trail.
    await call('GET', `/documents/${CPR_B}`, patientB);
    await call('GET', '/documents/Ingeborg%20Zylstra', patientB);
    await call('POST', `/documents/${CPR_B}/corrections`, patientB, { systolic: 120, diastolic: 80, measuredAt: '2024-01-01T00:00:00Z' });
    await security.audit.drain();
    const trail = JSON.stringify((await store.readAll({ after: 0n, maxCount: 100_000 })).filter((e) => e.type === 'AuditRecorded').map((e) => e.data));
    expect(trail).toContain('"resource":null');
    expect(trail).not.toContain(CPR_B);
    expect(trail).not.toContain('Zylstra');
    const byUser = await call('GET', '/audit?user=dr-aarhus', operator);
    expect((byUser.json().items as unknown[]).length).toBeGreaterThanOrEqual(4);
    const verify = (await call('GET', '/audit/verify', operator)).json();
    expect(verify).toMatchObject({ ok: true, breaks: [] });
    expect(verify.events).toBeGreaterThan(10);
  });

  it('answers POST /audit/search as GET /audit with the search in the body: the same answers, paging, rules and audit; the GET says it is deprecated', async () => {
    await security.audit.drain();
    const to = new Date().toISOString(); // a closed interval: the answers cannot grow between the two forms
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const viaUrl = await call('GET', `/audit?patient=${CPR_A}&from=${from}&to=${to}`, operator);
    const viaBody = await call('POST', '/audit/search', operator, { patient: CPR_A, from, to });
    expect(viaBody.statusCode).toBe(200);
    expect(viaBody.json()).toEqual(viaUrl.json());
    expect(viaBody.json().count).toBeGreaterThan(4);
    expect(viaBody.text).not.toContain(CPR_A);
    const byUser = await call('POST', '/audit/search', operator, { user: 'dr-aarhus', from, to });
    expect(byUser.json()).toEqual((await call('GET', `/audit?user=dr-aarhus&from=${from}&to=${to}`, operator)).json());
    expect(byUser.json().count).toBeGreaterThanOrEqual(4);

    // Paging: the same pages, and a cursor of one form goes on in the other (the cursor is of the search, not the route).
    const first = await call('POST', '/audit/search', operator, { patient: CPR_A, from, to, limit: 2 });
    expect(first.json()).toMatchObject({ count: 2, truncated: true, nextCursor: expect.any(String) });
    const cursor = first.json().nextCursor as string;
    const secondViaBody = await call('POST', '/audit/search', operator, { patient: CPR_A, from, to, limit: 2, cursor });
    const secondViaUrl = await call('GET', `/audit?patient=${CPR_A}&from=${from}&to=${to}&limit=2&cursor=${cursor}`, operator);
    expect(secondViaUrl.json()).toEqual(secondViaBody.json());
    const ids = (items: { requestId: string }[]) => items.map((i) => i.requestId);
    expect(ids(secondViaBody.json().items)).toEqual(ids(viaBody.json().items).slice(2, 4));
    expect((await call('POST', '/audit/search', operator, { user: 'dr-aarhus', from, to, limit: 2, cursor })).json()).toMatchObject({ status: 422, code: 'invalid_cursor' });

    // The same rules: operators only, the shape checked by zod (a JSON number for limit), the CPR number by parseCpr.
    const deniedToPatient = await call('POST', '/audit/search', patientA, { patient: CPR_A });
    expect(deniedToPatient.statusCode).toBe(403);
    expect((await call('POST', '/audit/search', clinician, { user: 'dr-aarhus' })).statusCode).toBe(403);
    for (const body of [{}, { patient: CPR_A, user: 'ops' }, { patient: CPR_A, limit: '10' }, { patient: CPR_A, limit: 0 }, { patient: CPR_A, extra: 1 }, { patient: 2512481234 }]) {
      const refused = await call('POST', '/audit/search', operator, body);
      expect({ body, status: refused.statusCode, code: refused.json().code }).toEqual({ body, status: 400, code: 'invalid_request' });
    }
    const malformed = await call('POST', '/audit/search', operator, { patient: '251348-1234' }); // no 13th month
    expect(malformed.statusCode).toBe(422);
    expect(malformed.json()).toMatchObject({ code: 'invalid_patient_id', errors: [{ path: 'body.patient' }] });
    expect(malformed.text).not.toContain('251348');
    expect((await call('POST', '/audit/search', operator, { patient: CPR_A, from: to, to: from })).json()).toMatchObject({ status: 422, code: 'invalid_interval', errors: [{ path: 'body.from' }] });
    expect((await call('GET', `/audit?user=ops&from=${encodeURIComponent(to)}&to=${encodeURIComponent(from)}`, operator)).json()).toMatchObject({ status: 422, code: 'invalid_interval', errors: [{ path: 'query.from' }] });
    const xml = await fetch(`${base}/audit/search`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/xml' }, body: '<patient>251248-1234</patient>' });
    expect(xml.status).toBe(415);

    // Audited alike, as audit.read (no patient key: the read is the operator's, not of patient data as such).
    await security.audit.drain();
    const trail = (await store.readAll({ after: 0n, maxCount: 100_000 })).filter((e) => e.type === 'AuditRecorded').map((e) => e.data as Record<string, unknown>);
    const eventOf = (answer: Answer) => trail.filter((d) => d['requestId'] === answer.headers['x-request-id']);
    for (const answer of [viaUrl, viaBody, byUser]) expect(eventOf(answer)).toEqual([expect.objectContaining({ action: 'audit.read', subject: 'ops', outcome: 'allowed', status: 200, patientKey: null })]);
    expect(eventOf(deniedToPatient)).toEqual([expect.objectContaining({ action: 'audit.read', outcome: 'denied', status: 403 })]);
    expect(eventOf(malformed)).toEqual([expect.objectContaining({ action: 'audit.read', outcome: 'error', reason: 'invalid_patient_id' })]);
    expect(JSON.stringify(trail)).not.toContain(CPR_A);

    // The GET, and only the GET, says it is deprecated and where to go: also in a HEAD and in a refusal.
    for (const answer of [viaUrl, secondViaUrl, await call('HEAD', `/audit?patient=${CPR_A}`, operator), await call('GET', `/audit?patient=${CPR_A}`, patientA)]) {
      expect(answer.headers['deprecation']).toMatch(/^@\d{10}$/);
      expect(answer.headers['link']).toBe('</audit/search>; rel="successor-version", </openapi.json>; rel="deprecation"; type="application/json"');
    }
    for (const answer of [viaBody, byUser, deniedToPatient]) {
      expect(answer.headers['deprecation']).toBeUndefined();
      expect(answer.headers['link']).toBeUndefined();
    }
  });

  it('limits the request rate per caller with 429 and Retry-After', async () => {
    const responses = await Promise.all(Array.from({ length: 420 }, () => call('GET', '/audit/verify', system)));
    const limited = responses.find((r) => r.statusCode === 429);
    expect(limited?.headers['retry-after']).toBeDefined();
    expect(limited?.json()).toMatchObject({ code: 'rate_limited' });
    // Every refusal is in the trail: the first of each second as `rate_limited`, the rest of that second counted in
    // one `rate_limited:N` entry when the second ends. Waited for here, so that entry does not land in a later test's
    // chains (it once moved a second chain under the cut-back test's upload, in a full run).
    const refused = responses.filter((r) => r.statusCode === 429).length;
    const counted = async () =>
      (await store.readAll({ after: 0n, maxCount: 100_000 }))
        .filter((e) => e.type === 'AuditRecorded')
        .map((e) => e.data as { role: string; reason: string | null })
        .filter((e) => e.role === 'system' && e.reason?.startsWith('rate_limited'))
        .reduce((sum, e) => sum + (e.reason === 'rate_limited' ? 1 : Number(e.reason!.slice('rate_limited:'.length))), 0);
    const deadline = Date.now() + 15_000;
    while ((await counted()) < refused && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await counted()).toBe(refused);
  });

  it('erases a patient by crypto-shredding: no store file holds their data in clear, queries answer 410', async () => {
    await upload(patientB, CPR_B, 142);
    const keysFile = join(data.dir, 'patient-keys.sqlite');
    const files = () => readdirSync(data.dir).filter((f) => f.includes('sqlite')).map((f) => readFileSync(join(data.dir, f)));
    const cprDigits = Buffer.from(CPR_A.replace('-', ''));
    const fragment = Buffer.from('value="131"');
    for (const bytes of files()) {
      expect(bytes.includes(Buffer.from(CPR_A))).toBe(false); // sealed from the start
      expect(bytes.includes(fragment)).toBe(false);
    }
    const keyRow = readFileSync(keysFile);
    expect(keyRow.length).toBeGreaterThan(0);
    // The document's hash in the event is keyed by the patient's data key; its SHA-256 is only in the registry
    // row (the ETag), which the erasure deletes. A plain SHA-256 in the event outlived the key and gave the
    // reading back to anyone who tried the plausible values for a suspected patient.
    const served = await call('GET', `/documents/${docA}`, patientA);
    expect(served.headers['etag']).toBe(`"${sha256Hex(served.text)}"`);
    const submitted = (await store.readStream(`document-${docA}`)).events[0]!.data;
    expect(String(submitted['hash'])).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect((await upload(patientA, CPR_A, 131)).statusCode).toBe(200); // a retry is still recognised by it

    expect((await call('DELETE', `/patients/${CPR_A}`, patientA)).statusCode).toBe(403);
    const erased = await call('DELETE', `/patients/${CPR_A}`, operator);
    expect(erased.statusCode).toBe(200);
    expect((await call('DELETE', `/patients/${CPR_A}`, operator)).json()).toMatchObject({ alreadyErased: true });

    const gone = await call('GET', `/patients/${CPR_A}/observations`, patientA);
    expect(gone.statusCode).toBe(410);
    expect(gone.json()).toMatchObject({ code: 'patient_erased' });
    expect((await upload(patientA, CPR_A, 150)).statusCode).toBe(410);
    expect((await call('GET', `/documents/${docA}`, patientA)).statusCode).toBe(404);
    expect((await call('GET', `/patients/${CPR_B}/observations`, patientB)).json().count).toBe(1);

    const { events } = await store.readStream(`document-${docA}`);
    const content = String(events[0]!.data['content']);
    // What an attacker with a copy of the store would try: every plausible systolic value at the stored time.
    const measuredAt = String(events[0]!.data['serviceStartTime']);
    const rebuilt = (systolic: number) => buildDocument(createTeleObservation({ patientId: CPR_A, systolic, diastolic: 77, measuredAt }, DateTime.now())).document;
    expect(sha256Hex(rebuilt(131))).toBe(sha256Hex(served.text)); // the attack is right about the document
    for (let systolic = 78; systolic <= 300; systolic++) expect(`${events[0]!.data['hash']}`).not.toContain(sha256Hex(rebuilt(systolic)));
    expect(content).toMatch(/^rts-sealed:v1:/);
    const stored = JSON.stringify(events.map((e) => e.data));
    expect(stored).not.toContain('systolic');
    expect(stored).not.toContain('value="131"');
    for (const bytes of files()) {
      expect(bytes.includes(Buffer.from(CPR_A))).toBe(false);
      expect(bytes.includes(cprDigits)).toBe(false);
      expect(bytes.includes(fragment)).toBe(false);
    }
  });

  // An operator's typo (one digit off) named a person the hub never saw: the erasure answered 200 and locked that
  // person out of uploading for good, and nothing told the operator there had been nothing to erase.
  it('answers 404 unknown_patient for a CPR number it holds nothing of and changes nothing; ?unknown=erase records it anyway', async () => {
    const STRANGER = '010190-2345';
    const typo = await call('DELETE', `/patients/${STRANGER}`, operator);
    expect(typo.statusCode).toBe(404);
    expect(typo.json()).toMatchObject({ code: 'unknown_patient', detail: expect.stringContaining('?unknown=erase') });
    expect(typo.text).not.toContain(STRANGER);
    expect(typo.text).not.toContain(STRANGER.replace('-', ''));
    const stranger = await login({ role: 'patient', patient: STRANGER });
    expect((await call('GET', `/patients/${STRANGER}/observations`, stranger)).json()).toMatchObject({ code: 'unknown_patient' }); // not erased
    expect((await call('DELETE', `/patients/${STRANGER}?unknown=maybe`, operator)).statusCode).toBe(400);

    const confirmed = await call('DELETE', `/patients/${STRANGER}?unknown=erase`, operator);
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json()).toMatchObject({ erased: true, alreadyErased: false, known: false, patientKey: patientKeys.keyFor(parseCpr(STRANGER)) });
    expect((await call('POST', '/observations', stranger, { patientId: STRANGER, systolic: 120, diastolic: 80 })).statusCode).toBe(410);
    // Idempotent from then on, with or without the confirmation.
    expect((await call('DELETE', `/patients/${STRANGER}`, operator)).json()).toMatchObject({ alreadyErased: true, known: false, erasedAt: confirmed.json().erasedAt });
    // A known patient needs no confirmation (the erasure test above), and the audit trail has both requests.
    const audited = (await call('GET', `/audit?patient=${STRANGER}`, operator)).json();
    expect(audited.items.filter((i: { action: string }) => i.action === 'patient.erase').map((i: { status: number }) => i.status)).toEqual(expect.arrayContaining([404, 200]));
  });

  it('answers POST /erasures as DELETE /patients/{cpr} with the CPR number in the body: the same answers, rules and audit; the DELETE says it is deprecated', async () => {
    // Two people the hub holds nothing of, one for each form: 404 unknown_patient, nothing changed.
    const [VIA_URL, VIA_BODY, KNOWN] = ['020304-4567', '030405-5678', '040506-6789'];
    const viaUrl = await call('DELETE', `/patients/${VIA_URL}`, operator);
    const viaBody = await call('POST', '/erasures', operator, { patient: VIA_BODY });
    expect([viaUrl.statusCode, viaBody.statusCode]).toEqual([404, 404]);
    const { detail: urlDetail, instance: urlInstance, ...urlProblem } = viaUrl.json();
    const { detail: bodyDetail, instance: bodyInstance, ...bodyProblem } = viaBody.json();
    expect(bodyProblem).toEqual(urlProblem);
    expect(bodyProblem).toMatchObject({ code: 'unknown_patient', status: 404 });
    // The same text, but for how to confirm: in the body, not in the query.
    expect(bodyDetail).toBe(urlDetail.replace('?unknown=erase', '"unknown": "erase" in its body'));
    expect(bodyInstance).toBe('/erasures');
    expect(urlInstance).toBe('/patients/[redacted]');
    expect(viaBody.text).not.toMatch(/030405-?5678/);

    // Confirmed, each form records the erasure (known: false); a repeat in the other form finds it.
    const confirmedUrl = await call('DELETE', `/patients/${VIA_URL}?unknown=erase`, operator);
    const confirmedBody = await call('POST', '/erasures', operator, { patient: VIA_BODY, unknown: 'erase' });
    for (const [answer, cpr] of [[confirmedUrl, VIA_URL], [confirmedBody, VIA_BODY]] as const) {
      expect(answer.statusCode).toBe(200);
      expect(answer.json()).toEqual({ erased: true, patientKey: patientKeys.keyFor(parseCpr(cpr)), erasedAt: expect.any(String), alreadyErased: false, known: false, consultationsWithTextsLeftInEvents: [] });
    }
    expect((await call('POST', '/erasures', operator, { patient: VIA_URL })).json()).toEqual({ ...confirmedUrl.json(), alreadyErased: true });
    expect((await call('DELETE', `/patients/${VIA_BODY}`, operator)).json()).toEqual({ ...confirmedBody.json(), alreadyErased: true });
    // "refuse" is the default, said out loud; the query takes it too.
    expect((await call('POST', '/erasures', operator, { patient: '050607-7890', unknown: 'refuse' })).json()).toMatchObject({ code: 'unknown_patient' });
    expect((await call('DELETE', '/patients/050607-7890?unknown=refuse', operator)).json()).toMatchObject({ code: 'unknown_patient' });

    // A patient with readings: erased by the body form, as CPR_A was by the DELETE above.
    const known = await login({ role: 'patient', patient: KNOWN });
    expect((await call('POST', '/observations', known, { patientId: KNOWN, systolic: 125, diastolic: 75 })).statusCode).toBe(201);
    const erasedKnown = await call('POST', '/erasures', operator, { patient: KNOWN });
    expect(erasedKnown.json()).toEqual({ erased: true, patientKey: patientKeys.keyFor(parseCpr(KNOWN)), erasedAt: expect.any(String), alreadyErased: false, known: true, consultationsWithTextsLeftInEvents: [] });
    expect((await call('POST', '/observations/search', known, { patientId: KNOWN })).json()).toMatchObject({ status: 410, code: 'patient_erased' });

    // The same rules: operators only; the shape checked by zod, the CPR number by parseCpr; JSON only.
    const deniedToPatient = await call('POST', '/erasures', patientB, { patient: CPR_B });
    expect(deniedToPatient.statusCode).toBe(403);
    expect((await call('POST', '/erasures', clinician, { patient: CPR_B })).statusCode).toBe(403);
    for (const body of [{}, { patientId: CPR_B }, { patient: CPR_B, unknown: 'maybe' }, { patient: CPR_B, extra: 1 }, { patient: 10203 }]) {
      const refused = await call('POST', '/erasures', operator, body);
      expect({ body, status: refused.statusCode, code: refused.json().code }).toEqual({ body, status: 400, code: 'invalid_request' });
    }
    const malformed = await call('POST', '/erasures', operator, { patient: '310203-2345' }); // no 31st of February
    expect(malformed.statusCode).toBe(422);
    expect(malformed.json()).toMatchObject({ code: 'invalid_patient_id', errors: [{ path: 'body.patient' }] });
    expect(malformed.text).not.toMatch(/310203/);
    const xml = await fetch(`${base}/erasures`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/xml' }, body: `<patient>${CPR_B}</patient>` });
    expect(xml.status).toBe(415);
    expect((await call('GET', `/patients/${CPR_B}/observations`, patientB)).json().count).toBeGreaterThan(0); // nobody else was erased

    // Audited alike: patient.erase under the patient's key, the refusal (404) too; no CPR number in the trail.
    await security.audit.drain();
    const trail = (await store.readAll({ after: 0n, maxCount: 100_000 })).filter((e) => e.type === 'AuditRecorded').map((e) => e.data as Record<string, unknown>);
    const eventOf = (answer: Answer) => trail.filter((d) => d['requestId'] === answer.headers['x-request-id']);
    for (const [answer, cpr, outcome, reason] of [
      [viaUrl, VIA_URL, 'error', 'unknown_patient'],
      [viaBody, VIA_BODY, 'error', 'unknown_patient'],
      [confirmedUrl, VIA_URL, 'allowed', null],
      [confirmedBody, VIA_BODY, 'allowed', null],
      [erasedKnown, KNOWN, 'allowed', null],
    ] as const) {
      expect(eventOf(answer)).toEqual([expect.objectContaining({ action: 'patient.erase', subject: 'ops', patientKey: patientKeys.keyFor(parseCpr(cpr)), status: answer.statusCode, outcome, reason })]);
    }
    expect(eventOf(deniedToPatient)).toEqual([expect.objectContaining({ action: 'patient.erase', outcome: 'denied', status: 403 })]);
    expect(eventOf(malformed)).toEqual([expect.objectContaining({ action: 'patient.erase', outcome: 'error', reason: 'invalid_patient_id', patientKey: null })]);
    const searched = await call('POST', '/audit/search', operator, { patient: VIA_BODY });
    expect(searched.json().items.filter((i: { action: string }) => i.action === 'patient.erase').map((i: { status: number }) => i.status)).toEqual([404, 200, 200]);
    for (const cpr of [VIA_URL, VIA_BODY, KNOWN, '310203-2345']) {
      expect(JSON.stringify(trail)).not.toContain(cpr);
      expect(warnings.join('')).not.toContain(cpr);
    }

    // The DELETE, and only the DELETE, says it is deprecated and where to go: also in a refusal.
    const deniedDelete = await call('DELETE', `/patients/${CPR_B}`, patientB);
    expect(deniedDelete.statusCode).toBe(403);
    for (const answer of [viaUrl, confirmedUrl, deniedDelete]) {
      expect(answer.headers['deprecation']).toMatch(/^@\d{10}$/);
      expect(answer.headers['link']).toBe('</erasures>; rel="successor-version", </openapi.json>; rel="deprecation"; type="application/json"');
    }
    for (const answer of [viaBody, confirmedBody, erasedKnown, deniedToPatient]) {
      expect(answer.headers['deprecation']).toBeUndefined();
      expect(answer.headers['link']).toBeUndefined();
    }
  });

  it('erases by pseudonymous key (operator only) and lists the recorded erasures with their times', async () => {
    const keyA = patientKeys.keyFor(parseCpr(CPR_A));
    expect((await call('PUT', `/erasures/${keyA}`, patientA)).statusCode).toBe(403);
    expect((await call('PUT', '/erasures/251248-1234', operator)).statusCode).toBe(400);
    expect((await call('PUT', `/erasures/${keyA}`, operator)).json()).toMatchObject({ erased: true, patientKey: keyA, alreadyErased: true, known: true });
    const listed = await call('GET', '/erasures', operator);
    expect(listed.statusCode).toBe(200);
    expect(listed.json().items.map((i: { patientKey: string }) => i.patientKey)).toContain(keyA);
    expect((await call('GET', '/erasures', patientA)).statusCode).toBe(403);
    const page = (await call('GET', '/erasures?limit=1', operator)).json();
    expect(page).toMatchObject({ count: 1, next: expect.stringMatching(/^\d+$/) });
    expect((await call('GET', `/erasures?after=${page.next}`, operator)).json().items[0].patientKey).not.toBe(page.items[0].patientKey);
    // A position past a 64-bit integer: 400, not the 500 the store's binding gave.
    for (const after of ['9223372036854775808', '9999999999999999999']) expect((await call('GET', `/erasures?after=${after}`, operator)).statusCode).toBe(400);
    // Not digits at all: 400 said of `after` (the range check ran anyway, and BigInt('x') answered 500).
    for (const after of ['x', 'abc%3Adef', '%00', '2026-12-01']) {
      const refused = await call('GET', `/erasures?after=${after}`, operator);
      expect([refused.statusCode, refused.json().code, refused.json().errors?.[0]?.path]).toEqual([400, 'invalid_request', 'query.after']);
    }
    expect((await call('GET', '/erasures?after=9223372036854775807', operator)).statusCode).toBe(200);
  });

  it('writes the patient erased line, the erasure record, although the log is at warn', () => {
    // This hub's logger is at warn (beforeAll): the line is written through a child at info whatever the root level.
    const recorded = warnings.flatMap((l) => l.split('\n')).filter((l) => l.includes('"patient erased"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recorded.map((l) => l['patientKey'])).toEqual(expect.arrayContaining([patientKeys.keyFor(parseCpr(CPR_A)), patientKeys.keyFor(parseCpr('010190-2345'))]));
    expect(recorded.every((l) => l['event'] === 'PatientErased' && l['level'] === 30 && typeof l['requestId'] === 'string')).toBe(true);
    expect(warnings.join('')).not.toContain(CPR_A);
  });

  it('audits a read of the erasure register as erasures.list, never as an erasure (patient.erase)', async () => {
    const lister = await login({ role: 'operator', sub: 'ops-lister' });
    expect((await call('GET', '/erasures?limit=1', lister)).statusCode).toBe(200);
    let actions: string[] = [];
    for (let i = 0; i < 50 && actions.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20)); // reads do not wait for their audit event
      actions = (await call('GET', '/audit?user=ops-lister', operator)).json().items.map((e: { action: string }) => e.action);
    }
    expect(actions).toEqual(['erasures.list']);
  });

  it('refuses a verification range it would not walk whole (422, as the search), rather than answering ok for part of it', async () => {
    const day = 86_400_000;
    const midnight = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    const iso = (ms: number) => new Date(ms).toISOString();
    const verify = (from: string, to?: string) => call('GET', `/audit/verify?from=${from}${to ? `&to=${to}` : ''}`, operator);
    // 32 days up to today's midnight: it used to check 31 of them and answer ok, today's chains unread.
    const wide = await verify(iso(midnight - 32 * day), iso(midnight));
    expect({ status: wide.statusCode, type: wide.headers['content-type'], code: wide.json().code, paths: wide.json().errors }).toEqual({
      status: 422,
      type: expect.stringContaining('application/problem+json'),
      code: 'interval_too_wide',
      paths: [{ path: 'query.from', message: 'at most 31 days before to' }],
    });
    expect((await verify('0001-01-01T00:00:00Z')).json()).toMatchObject({ status: 422, code: 'invalid_interval', errors: [{ path: 'query.from', message: 'before 1970' }] });
    expect((await verify(iso(midnight - 40 * day))).json()).toMatchObject({ status: 422, code: 'interval_too_wide' }); // up to now
    // Years 0-99 (Date.UTC made them 1900-1999): days named -000001-12-26, or none, or "from must lie before to".
    expect((await call('POST', '/audit/verify', operator, { to: '0000-01-01T00:00:00Z', anchors: {} })).json()).toMatchObject({ status: 422, code: 'invalid_interval', errors: [{ path: 'body.to' }] });
    for (const body of [{ user: 'dev-operator', to: '0001-01-03T00:00:00Z' }, { user: 'dev-operator', from: '0050-01-01T00:00:00Z', to: '0050-01-05T00:00:00Z' }]) {
      const early = (await call('POST', '/audit/search', operator, body)).json();
      expect({ body, code: early.code, message: early.errors?.[0]?.message }).toEqual({ body, code: 'invalid_interval', message: 'before 1970' });
    }
    const epoch = (await call('POST', '/audit/search', operator, { user: 'dev-operator', from: '1970-01-01T00:00:00Z', to: '1970-01-03T00:00:00Z' })).json();
    expect(epoch).toMatchObject({ days: { from: '1970-01-01', to: '1970-01-02' } });
    // A `to` near 1970 without `from`: the default from stops at 1970 rather than being refused for reaching before it.
    expect((await call('POST', '/audit/search', operator, { user: 'dev-operator', to: '1970-01-03T00:00:00Z' })).json()).toMatchObject({ days: { from: '1970-01-01', to: '1970-01-02' } });
    expect((await verify('1970-01-01T00:00:00Z', '1970-01-03T00:00:00Z')).json()).toMatchObject({ ok: true, days: { from: '1970-01-01', to: '1970-01-03' } });
    expect((await call('GET', '/audit/verify?to=1970-01-03T00:00:00Z', operator)).json()).toMatchObject({ ok: true, days: { from: '1970-01-01', to: '1970-01-03' } });
    expect((await verify(iso(midnight + day), iso(midnight - day))).json()).toMatchObject({ status: 422, code: 'invalid_interval' });
    expect((await verify(iso(midnight + 2 * day))).json()).toMatchObject({ status: 422, code: 'invalid_interval' }); // after now, no to
    const posted = await call('POST', '/audit/verify', operator, { from: iso(midnight - 40 * day), anchors: {} });
    expect(posted.json()).toMatchObject({ status: 422, code: 'interval_too_wide', errors: [{ path: 'body.from' }] });
    // The widest range walks every day it names, the day of `to` included (32 days' chains).
    const widest = (await verify(iso(midnight - 31 * day), iso(midnight))).json();
    expect(widest).toMatchObject({ ok: true, days: { from: iso(midnight - 31 * day).slice(0, 10), to: iso(midnight).slice(0, 10) } });
  });

  it('shows a chain cut back at its tail when verified against anchors kept from before', async () => {
    const first = (await call('GET', '/audit/verify', operator)).json();
    expect(first.ok).toBe(true);
    // Heads taken earlier stay valid anchors: the chains only grow (this very request is audited too).
    const anchored = await call('POST', '/audit/verify', operator, { anchors: first.heads });
    expect(anchored.json()).toMatchObject({ ok: true, breaks: [], anchorsChecked: Object.keys(first.heads).length });

    // The heads as the hub's 'audit anchor' log line carries them, taken when nothing else is being recorded;
    // the chain that patient B's uploads are audited in is the one whose head one upload moves.
    await security.audit.drain();
    const today = new Date().toISOString().slice(0, 10);
    const before = await security.audit.headsOf(today);
    expect((await upload(patientB, CPR_B, 149)).statusCode).toBe(201);
    await security.audit.drain();
    const anchors = await security.audit.headsOf(today);
    const moved = Object.keys(anchors).filter((stream) => anchors[stream] !== before[stream]);
    // On a failure, what else was recorded meanwhile: each moved chain's newest entry.
    const newest = async (stream: string) => {
      const { events } = await store.readStream(stream);
      const { action, subject, reason, outcome, at } = events.at(-1)!.data as Record<string, unknown>;
      return { stream, action, subject, reason, outcome, at };
    };
    expect({ moved: moved.length, newest: moved.length === 1 ? undefined : await Promise.all(moved.map(newest)) }).toEqual({ moved: 1 });
    // Someone with write access to the file deletes the newest audit event of that chain.
    const victim = moved[0]!;
    const db = new Database(join(data.dir, 'telemed.sqlite'));
    try {
      db.pragma('busy_timeout = 5000');
      const cut = db.prepare('DELETE FROM events WHERE global_position = (SELECT MAX(global_position) FROM events WHERE stream_name = ?)').run(victim);
      expect(cut.changes).toBe(1);
    } finally {
      db.close();
    }
    const checked = (await call('POST', '/audit/verify', operator, { anchors })).json();
    expect(checked.ok).toBe(false);
    expect(checked.breaks).toContainEqual({ streamName: victim, index: expect.any(Number), reason: 'anchor_missing' });
    // The hub goes on recording (a write waits for its audit event), whichever chain it lands in.
    for (let i = 0; i < 8; i++) expect((await upload(patientB, CPR_B, 150 + i)).statusCode).toBe(201);
    const plain = (await call('GET', '/audit/verify', operator)).json();
    // Whole in itself: no link of it is broken. But this hub wrote the event deleted, found it gone when it appended
    // next, and says so: GET's answer reports the chain and hands out the hash it wrote as the head to keep, not the
    // cut chain's (before: ok, and the head after the cut, which an operator then kept and so vouched for the cut).
    expect(plain.breaks.filter((b: { streamName: string; reason: string }) => b.streamName === victim && b.reason !== 'changed_behind_hub')).toEqual([]);
    expect(plain.ok).toBe(false);
    expect(plain.changedBehindHub).toEqual([{ streamName: victim, version: expect.any(Number), wrote: anchors[victim], stored: expect.any(String), head: expect.any(String) }]);
    expect(plain.breaks).toContainEqual({ streamName: victim, index: plain.changedBehindHub[0].version, reason: 'changed_behind_hub' });
    expect(plain.heads[victim]).toBe(anchors[victim]);

    expect((await call('POST', '/audit/verify', operator, { anchors: { 'audit-2001-01-01-0': 'a'.repeat(64) } })).json()).toMatchObject({ code: 'anchor_outside_days' });
    const bad = await call('POST', '/audit/verify', operator, { anchors: { nope: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    // (not `system`: the rate limit test above spent that caller's budget)
    expect((await call('POST', '/audit/verify', clinician, { anchors: {} })).statusCode).toBe(403);
  });
});
