// POST /audit/search by resource and by request id, as an incident investigator asks it ("who read or acted on this
// consultation or document, and what did request X do?"), on the hub as it runs (startHub: real HTTP, real SQLite and
// PostgreSQL stores). Before, the search took a patient or a user only: an investigator holding a consultation id (from
// GET /consultations/{id}/trace, a log line, a desk's call) or a request id (X-Request-Id) could not ask.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { signToken } from '../../src/adapters/auth/tokens';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';
import { dropSchema } from '../support/postgres-schema';

jest.setTimeout(120_000);

const CPR = '251248-1234';
const SECRET = randomBytes(32).toString('hex');
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

type Item = { at: string; subject: string; role: string; action: string; resource: string | null; requestId: string; outcome: string; status: number; patientKey: string | null };
type Page = { resource?: string; requestId?: string; user?: string; patientKey?: string; count: number; truncated: boolean; nextCursor: string | null; items: Item[] };

describe.each(['sqlite', 'postgres'] as const)('POST /audit/search by resource and by request id (%s)', (storeKind) => {
  const data = tempDataDir('rts-audit-investigation-');
  const schema = `rts_audit_inv_${process.pid}_${randomBytes(4).toString('hex')}`;
  /** Every line the hub logs, at info: the searches' values must not turn up in them when refused. */
  const logged: string[] = [];
  let hub: RunningHub;
  const tokens: Record<'patient' | 'operator' | 'clinician' | 'system', string> = { patient: '', operator: '', clinician: '', system: '' };
  const consultationId = randomUUID();
  let uniqueId = '';

  const call = async (method: string, path: string, as: keyof typeof tokens, requestId: string, body?: unknown) => {
    const res = await fetch(`${hub.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${tokens[as]}`, accept: 'application/json', 'x-request-id': requestId, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    expect(res.headers.get('x-request-id')).toBe(requestId);
    // A document is read as its HL7 XML; everything else answers JSON.
    return { status: res.status, text, body: /json/.test(res.headers.get('content-type') ?? '') ? (JSON.parse(text) as any) : null };
  };
  const search = async (query: Record<string, unknown>, requestId = `search-${randomUUID()}`, as: keyof typeof tokens = 'operator') => call('POST', '/audit/search', as, requestId, query);

  beforeAll(async () => {
    const postgres = storeKind === 'postgres' ? { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema } : {};
    const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'info', RTS_AUTH_JWT_SECRET: SECRET, ...postgres });
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString('utf8')), done()) });
    hub = await startHub(config, pino({ level: 'info' }, sink));
    const sign = (claims: Parameters<typeof signToken>[1]) => signToken(Buffer.from(SECRET, 'hex'), claims, { issuer: 'telemed-rts', audience: 'telemed-rts', ttlSeconds: 600 });
    tokens.patient = await sign({ sub: 'patient-one', role: 'patient', patient: CPR });
    tokens.operator = await sign({ sub: 'investigator', role: 'operator' });
    tokens.clinician = await sign({ sub: 'dr-b', role: 'clinician', systemId: 'city-b' });
    tokens.system = await sign({ sub: 'system:city-a', role: 'system', systemId: 'city-a' });

    // A document: uploaded and read by its patient, and a clinician whose system has no consultation of it refused.
    const uploaded = await call('POST', '/observations', 'patient', 'upload-1', { observationId: 'o-1', patientId: CPR, systolic: 126, diastolic: 70 });
    expect(uploaded.status).toBe(201);
    uniqueId = uploaded.body.uniqueId as string;
    expect((await call('GET', `/documents/${uniqueId}`, 'patient', 'patient-reads-doc')).status).toBe(200);
    expect((await call('GET', `/documents/${uniqueId}`, 'clinician', 'clinician-tries-doc')).status).toBe(404);
    // A consultation id the hub does not know: three callers act on it (a system, a patient refused, the operator).
    expect((await call('POST', `/consultations/${consultationId}/accept`, 'system', 'system-accepts', { expertId: 'city-a:e1' })).status).toBe(404);
    expect((await call('DELETE', `/consultations/${consultationId}/content`, 'patient', 'patient-tries-erase')).status).toBe(403);
    expect((await call('DELETE', `/consultations/${consultationId}/content`, 'operator', 'operator-erases')).status).toBe(404);
    // Others' events in the same chains and minutes: the search must leave them out.
    expect((await call('DELETE', `/consultations/${randomUUID()}/content`, 'operator', 'operator-erases-another')).status).toBe(404);
    expect((await call('GET', `/patients/${CPR}/observations`, 'patient', 'patient-reads-list')).status).toBe(200);
  });

  afterAll(async () => {
    await hub?.stop();
    data.remove();
    if (storeKind === 'postgres') await dropSchema(connectionString, schema);
  });

  it('answers who read or acted on a consultation, oldest first, refusals and errors included', async () => {
    const answer = await search({ resource: consultationId });
    expect(answer.status).toBe(200);
    const page = answer.body as Page;
    expect(page).toMatchObject({ resource: consultationId, count: 3, truncated: false, nextCursor: null, bounds: '[from,to)' });
    expect(page.items.map((i) => [i.requestId, i.subject, i.action, i.outcome, i.status])).toEqual([
      ['system-accepts', 'system:city-a', 'consultation.act', 'error', 404],
      ['patient-tries-erase', 'patient-one', 'consultation.erase', 'denied', 403],
      ['operator-erases', 'investigator', 'consultation.erase', 'error', 404],
    ]);
    expect(page.items.every((i) => i.resource === consultationId)).toBe(true);
    const times = page.items.map((i) => i.at);
    expect([...times].sort()).toEqual(times);
  });

  it('names no consultation or dead letter id a caller typed that may hold a CPR number (glued to other digits, in a UUID\'s shape)', async () => {
    const digits = CPR.replace('-', '');
    const typed: [string, string][] = [
      ['GET', `/consultations/x1${digits}/trace`],
      ['GET', `/consultations/0${digits}`],
      ['DELETE', `/consultations/00${CPR}-0000-0000-000000000000/content`],
      ['POST', `/dead-letters/00${CPR}-0000-0000-000000000000/discard`],
    ];
    for (const [method, path] of typed) {
      const requestId = `typed-${randomUUID()}`;
      await call(method, path, 'operator', requestId);
      const found = (await search({ requestId })).body as Page;
      expect({ path, count: found.count, resources: found.items.map((i) => i.resource) }).toEqual({ path, count: 1, resources: [null] });
      expect(JSON.stringify(found)).not.toContain(digits.slice(0, 6));
    }
  });

  it("answers who read a document, and what one request did", async () => {
    const byDocument = (await search({ resource: uniqueId })).body as Page;
    expect(byDocument.items.map((i) => [i.requestId, i.action, i.outcome])).toEqual([
      ['patient-reads-doc', 'document.read', 'allowed'],
      ['clinician-tries-doc', 'document.read', 'denied'],
    ]);
    const byRequest = await search({ requestId: 'clinician-tries-doc' });
    expect(byRequest.status).toBe(200);
    expect(byRequest.body).toMatchObject({ requestId: 'clinician-tries-doc', count: 1 });
    expect(byRequest.body.items[0]).toMatchObject({ subject: 'dr-b', role: 'clinician', action: 'document.read', resource: uniqueId, outcome: 'denied', status: 404 });
    // The search itself is audited as audit.read, under the investigator: found by its own request id.
    await search({ resource: consultationId }, 'the-investigators-search');
    const ofSearch = (await search({ requestId: 'the-investigators-search' })).body as Page;
    expect(ofSearch.items.map((i) => [i.subject, i.action, i.outcome, i.status])).toEqual([['investigator', 'audit.read', 'allowed', 200]]);
    // A request id nothing was audited under: an empty answer, not an error.
    expect((await search({ requestId: 'never-sent' })).body).toMatchObject({ count: 0, items: [] });
  });

  it('pages with cursors that go on only the same search, and keeps the interval rules', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 5; n++) {
      const page: Page = (await search({ resource: consultationId, limit: 1, ...(cursor ? { cursor } : {}) })).body;
      seen.push(...page.items.map((i) => i.requestId));
      if (!page.truncated) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(['system-accepts', 'patient-tries-erase', 'operator-erases']);
    const first = (await search({ resource: consultationId, limit: 1 })).body as Page;
    expect((await search({ resource: uniqueId, limit: 1, cursor: first.nextCursor })).body).toMatchObject({ code: 'invalid_cursor' });
    expect((await search({ user: consultationId, limit: 1, cursor: first.nextCursor })).body).toMatchObject({ code: 'invalid_cursor' });
    const now = Date.now();
    expect((await search({ resource: consultationId, from: new Date(now - 40 * 86_400_000).toISOString(), to: new Date(now).toISOString() })).body).toMatchObject({ code: 'interval_too_wide' });
    expect((await search({ requestId: 'operator-erases', from: new Date(now + 3_600_000).toISOString() })).body).toMatchObject({ code: 'invalid_interval' });
    // [from, to): an interval that ends before the events finds none.
    expect((await search({ resource: consultationId, from: new Date(now - 86_400_000).toISOString(), to: new Date(now - 3_600_000).toISOString() })).body).toMatchObject({ count: 0 });
  });

  it('refuses a resource or request id of another shape (422), naming the rule and never the value', async () => {
    for (const [query, code] of [
      [{ resource: CPR }, 'invalid_resource'],
      [{ resource: '2512481234' }, 'invalid_resource'],
      [{ resource: 'documents/1.2.3' }, 'invalid_resource'],
      [{ resource: '1.2.3.251248-1234' }, 'invalid_resource'],
      [{ requestId: CPR }, 'invalid_request_id'],
      [{ requestId: `desk-${CPR}` }, 'invalid_request_id'],
      [{ requestId: 'a b' }, 'invalid_request_id'],
      [{ requestId: 'x'.repeat(65) }, 'invalid_request_id'],
      // No token's sub holds a CPR number (tokens.ts refuses one): a patient's number typed as the user.
      [{ user: CPR }, 'invalid_subject'],
      [{ user: '2512481234' }, 'invalid_subject'],
      [{ user: `pt-${CPR}` }, 'invalid_subject'],
    ] as const) {
      const answer = await search(query);
      expect({ query, status: answer.status, code: answer.body.code }).toEqual({ query, status: 422, code });
      const rule = { invalid_resource: /uniqueId .* consultation's id/, invalid_request_id: /characters of A-Z a-z 0-9/, invalid_subject: /token subject/ }[code];
      expect(answer.body.detail).toMatch(rule);
      expect(answer.text).not.toMatch(/251248|2512481234/);
    }
    // The deprecated GET /audit alike, the error naming the query's field.
    const viaUrl = await call('GET', `/audit?user=${CPR}`, 'operator', `search-${randomUUID()}`);
    expect(viaUrl.body).toMatchObject({ status: 422, code: 'invalid_subject', errors: [{ path: 'query.user' }] });
    expect(viaUrl.text).not.toMatch(/251248/);
    // A user of another shape is searched as before.
    expect((await search({ user: 'dr-251248' })).body).toMatchObject({ user: 'dr-251248', count: 0 });
    // Exactly one of the four; and a value that is no string is the body's shape (400).
    expect((await search({ resource: consultationId, requestId: 'operator-erases' })).body).toMatchObject({ code: 'invalid_request', errors: [{ path: 'body.patient', message: expect.stringMatching(/exactly one of patient, user, resource or requestId/) }] });
    expect((await search({ patient: CPR, resource: consultationId })).status).toBe(400);
    expect((await search({ resource: 42 })).body).toMatchObject({ code: 'invalid_request' });
    // Nothing of the refused values in the hub's log either.
    await new Promise((r) => setTimeout(r, 50));
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.filter((line) => /251248|2512481234/.test(line))).toEqual([]);
  });

  it('is for operators only, as the other searches (403 for a clinician, audited as audit.read)', async () => {
    const refused = await search({ resource: consultationId }, 'clinician-searches', 'clinician');
    expect(refused.status).toBe(403);
    expect((await search({ requestId: 'clinician-searches' })).body.items).toMatchObject([{ subject: 'dr-b', action: 'audit.read', outcome: 'denied', status: 403 }]);
    expect((await search({ resource: uniqueId }, 'patient-searches', 'patient')).status).toBe(403);
  });
});
