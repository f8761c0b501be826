jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import pino from 'pino';
import { DEPRECATED_ROUTES } from '../../src/adapters/http/deprecated-routes';
import { OPERATIONS, UNDESCRIBED_ROUTES } from '../../src/adapters/http/openapi';
import { discardedProblem } from '../../src/adapters/http/dead-letter-routes';
import { DeadLetterDiscardedError } from '../../src/application/directory/dead-letter-operations';
import { PROBLEM_TYPES } from '../../src/adapters/http/problem';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * The OpenAPI document against the hub as `npm start` composes it (startHub, embedded store, no broker):
 * every route it serves is described and every described route is served; and the answers the routes give match
 * what the document promises for that route and status (the 2xx bodies parsed with the same zod schemas the
 * document is generated from, the problems' codes among the ones it lists).
 */
const data = tempDataDir('rts-openapi-');
let hub: RunningHub;
let doc: any;

beforeAll(async () => {
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH_DEV_LOGIN: 'on' });
  hub = await startHub(config, pino({ level: 'silent' }));
  doc = await (await fetch(`${hub.url}/openapi.json`)).json();
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
});

const templateOf = (route: string): string => route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const described = (): string[] => Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));

describe('the OpenAPI document and the routes the hub serves', () => {
  it('describes every route the hub serves, and only those', () => {
    const served = hub.routes().filter((r) => !UNDESCRIBED_ROUTES.includes(r));
    expect(served.length).toBeGreaterThan(30);
    expect(described().sort()).toEqual(served.map((r) => { const [m, p] = r.split(' '); return `${m} ${templateOf(p!)}`; }).sort());
    // The routes left out are the browser page, and the hub does serve them.
    for (const route of UNDESCRIBED_ROUTES) expect(hub.routes()).toContain(route);
  });

  it('declares each path parameter of a template, and nothing else in the path', () => {
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      const inTemplate = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const op of Object.values(ops)) {
        const declared = (op.parameters as { in: string; name: string; required: boolean }[]).filter((p) => p.in === 'path');
        expect({ path, params: declared.map((p) => p.name).sort() }).toEqual({ path, params: inTemplate });
        for (const p of declared) expect(p.required).toBe(true);
      }
    }
  });

  it('marks DELETE /patients/{patientId} and GET /audit deprecated, and only those: each names its successor, which is described, not deprecated, and takes the CPR number in its body', () => {
    const deprecated = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
      Object.entries(ops).filter(([, op]) => op.deprecated === true).map(([m]) => `${m.toUpperCase()} ${path}`),
    );
    expect(deprecated.sort()).toEqual(['DELETE /patients/{patientId}', 'GET /audit']);
    expect(Object.keys(DEPRECATED_ROUTES).map((r) => { const [m, p] = r.split(' '); return `${m} ${templateOf(p!)}`; }).sort()).toEqual(deprecated.sort());
    for (const [route, { successor }] of Object.entries(DEPRECATED_ROUTES)) {
      const [m, p] = route.split(' ');
      const op = doc.paths[templateOf(p!)][m!.toLowerCase()];
      expect(op.description).toMatch(new RegExp(`^Deprecated: .*Use ${successor}`));
      expect(op.summary).toMatch(new RegExp(`^Deprecated: ${successor}\\.`));
      expect(op.responses['200'].headers.Deprecation.schema.const).toMatch(/^@\d{10}$/);
      expect(op.responses['200'].headers.Link.schema.const).toContain(`<${successor.split(' ')[1]}>; rel="successor-version"`);
      // Refusals and errors carry them too (the 401 beside its WWW-Authenticate).
      for (const [status, response] of Object.entries(op.responses as Record<string, { headers?: Record<string, unknown> }>)) {
        expect({ status, headers: Object.keys(response.headers ?? {}) }).toEqual({ status, headers: expect.arrayContaining(['Deprecation', 'Link']) });
      }
      expect(Object.keys(op.responses['401'].headers)).toContain('WWW-Authenticate');
      const [sm, sp] = successor.split(' ');
      const next = doc.paths[sp!][sm!.toLowerCase()];
      expect({ successor, described: next !== undefined, deprecated: next?.deprecated }).toEqual({ successor, described: true, deprecated: undefined });
      // The successor takes the same input, the CPR number in the body: no path or query parameters.
      expect(next.parameters).toEqual([]);
      expect(Object.keys(next.requestBody.content)).toEqual(['application/json']);
      // And answers alike: the same 2xx schema, the same problems (those of a body too: every operation lists them,
      // as a body sent where none is taken is read and refused alike).
      expect(next.responses['200'].content).toEqual(op.responses['200'].content);
      const codes = (o: any): string[] =>
        Object.entries(o.responses as Record<string, { description: string }>).filter(([status]) => Number(status) >= 400).flatMap(([, a]) => a.description.split('\n').map((part) => part.split(':')[0]!)).sort();
      // POST /audit/search searches also by resource and by request id, which the deprecated GET /audit (left as it
      // was) does not: their 422s are the successor's own.
      const successorOnly: Readonly<Record<string, readonly string[]>> = { 'POST /audit/search': ['invalid_request_id', 'invalid_resource'] };
      expect(codes(next)).toEqual([...codes(op), ...(successorOnly[successor] ?? [])].sort());
      expect(codes(op)).toEqual(expect.arrayContaining(['body_too_large', 'malformed_json', 'unsupported_media_type', 'invalid_request']));
    }
  });

  it("tells the HL7 documents' integrators how effectiveTime is written and read: +0000 out, an offset-less time in read as UTC", () => {
    const retrieve = doc.paths['/documents/{uniqueId}'].get;
    const correct = doc.paths['/documents/{uniqueId}/corrections'].post;
    for (const op of [retrieve, correct]) {
      expect(op.description).toContain('+0000');
      expect(op.description).toMatch(/without an offset is read as UTC/);
    }
    expect(correct.requestBody.content['application/xml'].schema.description).toMatch(/offset.*read as UTC/);
  });

  it('every $ref resolves, every operation has a success answer, every protected one its 401 and every problem its code', () => {
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(30);
    for (const ref of new Set(refs)) {
      const target = ref.slice(8, -1).replace(/^#\//, '').split('/').reduce((node: any, key) => node?.[key], doc);
      expect({ ref, resolved: target !== undefined }).toEqual({ ref, resolved: true });
    }
    for (const [key, op] of Object.entries(OPERATIONS)) {
      const [method, path] = key.split(' ');
      const served = doc.paths[templateOf(path!)][method!.toLowerCase()];
      expect(Object.keys(served.responses).some((s) => s.startsWith('2'))).toBe(true);
      if (op.access !== 'public') expect({ key, has401: '401' in served.responses }).toEqual({ key, has401: true });
      for (const [status, answer] of Object.entries(served.responses as Record<string, { description: string }>)) {
        if (Number(status) < 400) continue;
        const codes = answer.description.split('\n').map((part) => part.split(':')[0]!);
        for (const code of codes) expect((PROBLEM_TYPES as Record<string, readonly [number, string]>)[code]?.[0]).toBe(Number(status));
      }
    }
  });
});

describe('problems with members of their own', () => {
  const resolve = (node: any): any => (node?.$ref ? resolve(node.$ref.replace(/^#\//, '').split('/').reduce((n: any, k: string) => n?.[k], doc)) : node);
  const discardedIn = (status: string, op: any): any => resolve(op.responses[status]?.content?.['application/problem+json']?.schema);

  it("describes the 410 dead_letter_discarded problem's discard member on every answer that carries it, and on no other", async () => {
    const carrying = Object.entries(OPERATIONS).filter(([, op]) => op.problems?.includes('dead_letter_discarded')).map(([key]) => key);
    expect(carrying.sort()).toEqual(['GET /dead-letters/:id', 'POST /dead-letters/:id/discard', 'POST /dead-letters/:id/replay']);
    const record = { deadLetterId: 'd', envelopeId: 'e', deadLetterIds: ['d'], at: new Date().toISOString(), by: 'ops-1', reason: 'a duplicate', sourceQueue: 'rts.uplink', deadLetterReason: 'bad_schema', attempts: 1, replayCount: 0, removed: 1, recordedIn: 'dead-letter-e' };
    // The answer as the routes make it (dead-letter-routes.ts), member by member against the document.
    const answer = discardedProblem(new DeadLetterDiscardedError(record));
    for (const key of carrying) {
      const [method, path] = key.split(' ');
      const op = doc.paths[templateOf(path!)][method!.toLowerCase()];
      const schema = discardedIn('410', op);
      expect({ key, description: op.responses['410'].description }).toEqual({ key, description: expect.stringMatching(/^dead_letter_discarded: /) });
      const [problemPart, own] = schema.allOf.map(resolve);
      expect(problemPart).toBe(doc.components.schemas.Problem);
      expect(own.required).toEqual(['discard']);
      expect(own.properties.code).toEqual({ const: 'dead_letter_discarded' });
      const discard = own.properties.discard;
      expect(discard.description).toMatch(/who discarded/);
      expect(Object.keys(discard.properties).sort()).toEqual(Object.keys(record).sort());
      expect(discard.required).toEqual(expect.arrayContaining(['at', 'by', 'reason', 'recordedIn']));
      // Every member of the answer is described: the problem's own, and the record's.
      expect(Object.keys(answer).filter((m) => m !== 'discard' && !(m in problemPart.properties))).toEqual([]);
      expect(Object.keys(answer.discard).filter((m) => !(m in discard.properties))).toEqual([]);
    }
    // The other 410, patient_erased, is a plain problem.
    expect(doc.paths['/observations'].post.responses['410'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
  });

  it("describes the 409 document_deprecated problem's currentUniqueId member where corrections are answered, and lets it be absent", async () => {
    const carrying = Object.entries(OPERATIONS).filter(([, op]) => op.problems?.includes('document_deprecated')).map(([key]) => key);
    expect(carrying).toEqual(['POST /documents/:uniqueId/corrections']);
    const schema = discardedIn('409', doc.paths['/documents/{uniqueId}/corrections'].post);
    // The 409 also answers correction_id_reused and concurrency_conflict, plain problems.
    expect(schema.anyOf.map((s: { $ref: string }) => s.$ref).sort()).toEqual(['#/components/schemas/DocumentDeprecatedProblem', '#/components/schemas/Problem']);
    const [problemPart, own] = resolve(schema.anyOf.find((s: { $ref: string }) => s.$ref.endsWith('DocumentDeprecatedProblem'))).allOf.map(resolve);
    expect(problemPart).toBe(doc.components.schemas.Problem);
    expect(own.properties.code).toEqual({ const: 'document_deprecated' });
    expect(own.properties.currentUniqueId).toEqual({ type: 'string', description: expect.stringMatching(/^The uniqueId of the document that holds the reading now/) });
    expect(own.required).toEqual([]);
  });
});

describe('answers match the document', () => {
  type Answer = { status: number; body: any; contentType: string };
  /** Call a described route; check the status is documented for it, and its body against the schema or the problem codes. */
  const call = async (key: keyof typeof OPERATIONS & string, url: string, options: { token?: string; body?: unknown } = {}): Promise<Answer> => {
    const [method] = key.split(' ');
    const res = await fetch(`${hub.url}${url}`, {
      method,
      headers: { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await res.text();
    const contentType = res.headers.get('content-type') ?? '';
    const body = contentType.includes('json') ? JSON.parse(text) : text;
    const [m, path] = key.split(' ');
    const op = doc.paths[templateOf(path!)][m!.toLowerCase()];
    const documented = op.responses[String(res.status)];
    expect({ key, status: res.status, documented: documented !== undefined }).toEqual({ key, status: res.status, documented: true });
    // A deprecated route's answers carry the Deprecation field the document gives; no other route's do.
    expect({ key, deprecation: res.headers.get('deprecation') }).toEqual({ key, deprecation: op.deprecated ? op.responses['200'].headers.Deprecation.schema.const : null });
    if (res.status >= 400) {
      expect(contentType).toContain('application/problem+json');
      expect({ key, code: body.code, listed: documented.description.split('\n').map((p: string) => p.split(':')[0]).includes(body.code) }).toEqual({ key, code: body.code, listed: true });
    } else {
      const schema = OPERATIONS[key]!.ok[String(res.status)]!.schema;
      if (schema) {
        const parsed = schema.safeParse(body);
        expect({ key, issues: parsed.success ? [] : parsed.error.issues }).toEqual({ key, issues: [] });
      }
    }
    return { status: res.status, body, contentType };
  };
  const login = async (body: Record<string, string>): Promise<string> => (await call('POST /auth/dev-login', '/auth/dev-login', { body })).body.token;

  it('over the hub’s main routes, as each role uses them', async () => {
    const patientId = '251248-1234';
    const operator = await login({ role: 'operator' });
    const patient = await login({ role: 'patient', patient: patientId });
    const system = await login({ role: 'system', systemId: 'aarhus' });

    expect((await call('GET /health', '/health')).status).toBe(200);
    expect((await call('GET /problems/:code', '/problems/rate_limited')).body).toMatchObject({ status: 429 });
    expect((await call('GET /problems/:code', '/problems/no_such_code')).status).toBe(404);
    expect((await call('GET /.well-known/jwks.json', '/.well-known/jwks.json')).body.keys.length).toBeGreaterThan(0);

    // The TeleMed case.
    const stored = await call('POST /observations', '/observations', { token: patient, body: { patientId, systolic: 126, diastolic: 70, observationId: 'oa-1' } });
    expect(stored.status).toBe(201);
    expect((await call('POST /observations', '/observations', { token: patient, body: { patientId, systolic: 126, diastolic: 70, observationId: 'oa-1' } })).status).toBe(200);
    expect((await call('POST /observations', '/observations', { token: patient, body: { patientId, systolic: 60, diastolic: 70 } })).status).toBe(422);
    expect((await call('POST /observations', '/observations', { body: { patientId, systolic: 126, diastolic: 70 } })).status).toBe(401);
    expect((await call('GET /patients/:patientId/observations', `/patients/${patientId}/observations`, { token: patient })).body.count).toBe(1);
    expect((await call('GET /patients/:patientId/observations', `/patients/${patientId}/observations`, { token: system })).status).toBe(403);
    const document = await call('GET /documents/:uniqueId', stored.body.document, { token: patient });
    expect(document.contentType).toContain('application/xml');
    const corrected = await call('POST /documents/:uniqueId/corrections', `${stored.body.document}/corrections`, {
      token: patient,
      body: { systolic: 128, diastolic: 71, measuredAt: stored.body.measuredAt, correctionId: 'c-1' },
    });
    expect(corrected.status).toBe(201);
    expect((await call('GET /documents/:uniqueId', '/documents/2.25.1', { token: patient })).status).toBe(404);
    // The right of access: the reading and its correction; refused to a system; an unknown or malformed CPR number.
    expect((await call('POST /patients/export', '/patients/export', { token: patient, body: { patient: patientId } })).body.observations).toHaveLength(2);
    expect((await call('POST /patients/export', '/patients/export', { token: system, body: { patient: patientId } })).status).toBe(403);
    expect((await call('POST /patients/export', '/patients/export', { token: operator, body: { patient: '010203-2345' } })).status).toBe(404);
    expect((await call('POST /patients/export', '/patients/export', { token: operator, body: { patient: '2512481234' } })).status).toBe(422);

    // The directory and keys: a system registered by the operator.
    expect((await call('POST /systems', '/systems', { token: operator, body: { id: 'aarhus', name: 'Aarhus', area: 'Midtjylland' } })).status).toBe(201);
    expect((await call('POST /systems', '/systems', { token: system, body: { id: 'odense', name: 'Odense', area: 'Syddanmark' } })).status).toBe(403);
    expect((await call('GET /systems', '/systems', { token: system })).body.items).toHaveLength(1);
    expect((await call('GET /systems/:id', '/systems/aarhus', { token: system })).body.id).toBe('aarhus');
    expect((await call('GET /systems/:id', '/systems/nowhere', { token: system })).status).toBe(404);
    expect((await call('GET /systems/:id/keys', '/systems/aarhus/keys', { token: system })).body.items).toEqual([]);
    expect((await call('POST /systems/:id/keys', '/systems/aarhus/keys', { token: system, body: { keys: [{ kty: 'oct', k: 'AAAA' }] } })).status).toBe(422);
    expect((await call('GET /experts', '/experts?specialty=cardiology', { token: system })).body.items).toEqual([]);
    expect((await call('GET /experts/:id', '/experts/aarhus:nobody', { token: system })).status).toBe(404);

    // Consultations: nobody to ask yet.
    expect((await call('GET /consultations', '/consultations?system=aarhus', { token: system })).body.items).toEqual([]);
    expect((await call('GET /consultations/:id', '/consultations/0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01', { token: system })).status).toBe(404);
    const months = await call('GET /stats/consultations-per-month', '/stats/consultations-per-month?from=2026-01&to=2026-03', { token: system });
    expect(months.body.items).toHaveLength(3);

    // Operators: audit, dead letters (no broker here), metrics, erasure.
    expect((await call('POST /audit/search', '/audit/search', { token: operator, body: { patient: patientId } })).body.count).toBeGreaterThan(0);
    expect((await call('POST /audit/search', '/audit/search', { token: operator, body: { patient: '251348-1234' } })).status).toBe(422);
    expect((await call('POST /audit/search', '/audit/search', { token: patient, body: { patient: patientId } })).status).toBe(403);
    expect((await call('GET /audit', `/audit?patient=${patientId}`, { token: operator })).body.count).toBeGreaterThan(0);
    expect((await call('GET /audit', `/audit?patient=${patientId}`, { token: patient })).status).toBe(403);
    const verified = await call('GET /audit/verify', '/audit/verify', { token: operator });
    expect(verified.body.ok).toBe(true);
    expect((await call('POST /audit/verify', '/audit/verify', { token: operator, body: { anchors: verified.body.heads } })).body.anchorsChecked).toBe(Object.keys(verified.body.heads).length);
    expect((await call('GET /dead-letters', '/dead-letters', { token: operator })).status).toBe(503);
    expect((await call('GET /metrics', '/metrics', { token: operator })).body).toContain('rts_http_requests_total');
    const erased = await call('DELETE /patients/:patientId', `/patients/${patientId}`, { token: operator });
    expect(erased.body.alreadyErased).toBe(false);
    expect((await call('DELETE /patients/:patientId', '/patients/010101-1111', { token: operator })).body.code).toBe('unknown_patient');
    expect((await call('PUT /erasures/:patientKey', `/erasures/${erased.body.patientKey}`, { token: operator })).body.alreadyErased).toBe(true);
    expect((await call('GET /erasures', '/erasures?limit=10', { token: operator })).body.items).toEqual([{ kind: 'patient', patientKey: erased.body.patientKey, erasedAt: erased.body.erasedAt }]);
    expect((await call('POST /erasures', '/erasures', { token: operator, body: { patient: patientId } })).body.alreadyErased).toBe(true);
    expect((await call('POST /erasures', '/erasures', { token: operator, body: { patient: '020202-2222' } })).body.code).toBe('unknown_patient');
    expect((await call('POST /erasures', '/erasures', { token: operator, body: { patient: '020202-2222', unknown: 'erase' } })).body.known).toBe(false);
    expect((await call('POST /erasures', '/erasures', { token: patient, body: { patient: patientId } })).status).toBe(403);
  });
});
