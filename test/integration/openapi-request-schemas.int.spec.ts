jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';
import { openApiClient, type OpenApiClient } from '../support/openapi-client';

/**
 * The request side of the served OpenAPI document, held to what the hub does: a client that validates its requests
 * against the document (as generated clients do) neither sends a request the hub refuses as shaped wrong (400
 * invalid_request) nor holds back one the hub takes. A corpus of requests the hub refuses with 400, each sent to the
 * hub (the refusal is checked, so the corpus cannot rot) and then to the document's own schema (ajv, draft 2020-12,
 * strict: test/support/openapi-client.ts); and a sample of requests the hub takes, which the document must take too.
 * What no static JSON Schema can say is listed in EXCEPTIONS with the reason, and checked to be still so.
 */
const data = tempDataDir('rts-openapi-requests-');
let hub: RunningHub;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the served document, read as JSON
let doc: any;
let api: OpenApiClient;
const tokens: Record<'operator' | 'patient' | 'system', string> = { operator: '', patient: '', system: '' };
let uniqueId = '';

const P = '251248-1234';
const CONSULTATION = randomUUID();
const EXPERT = 'xian:li';

beforeAll(async () => {
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH_DEV_LOGIN: 'on' });
  hub = await startHub(config, pino({ level: 'silent' }));
  doc = await (await fetch(`${hub.url}/openapi.json`)).json();
  api = openApiClient(doc, hub.url);
  tokens.operator = await api.login({ role: 'operator', sub: 'op' });
  tokens.patient = await api.login({ role: 'patient', patient: P });
  tokens.system = await api.login({ role: 'system', systemId: 'xian' });
  const stored = await api.call('POST /observations', '/observations', { token: tokens.patient, body: { patientId: P, systolic: 120, diastolic: 80 } });
  expect(stored.status).toBe(201);
  uniqueId = stored.body.uniqueId;
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
});

type Who = keyof typeof tokens | 'none';
/** A request: the document's operation ('METHOD /path/{param}'), the URL sent, who sends it and its JSON body. */
type Sent = Readonly<{ route: string; url: () => string; who: Who; body?: unknown; why: string }>;

const requestSchemaOf = (route: string): object => {
  const [method = '', path = ''] = route.split(' ');
  return doc.paths[path][method.toLowerCase()].requestBody.content['application/json'].schema;
};
const parameterSchemaOf = (route: string, name: string, where: 'query' | 'path' = 'query'): object => {
  const [method = '', path = ''] = route.split(' ');
  return (doc.paths[path][method.toLowerCase()].parameters as { in: string; name: string; schema: object }[]).find((p) => p.in === where && p.name === name)!.schema;
};
const send = (s: Sent) => api.call(s.route, s.url(), { ...(s.who === 'none' ? {} : { token: tokens[s.who] }), ...(s.body === undefined ? {} : { body: s.body }) });

const observation = (observationId: string) => ({ patientId: P, systolic: 121, diastolic: 79, observationId });
const correction = (correctionId: string) => ({ systolic: 122, diastolic: 78, measuredAt: new Date(Date.now() - 3_600_000).toISOString(), correctionId });
const oneLineControls = ['a\u0000b', 'a\nb', 'a\u0085b', 'a\u202eb', 'a\u2028b', 'a\u007fb'];

/** Date-times in the right form with a clock field out of range: a leap second among them. */
const OFF_THE_CLOCK = ['2016-12-31T23:59:60Z', '2017-01-01T00:59:60.5+01:00', '2026-12-05T24:00:00Z', '2026-12-05T10:60Z', '2026-12-05T10:00:00+24:00'];

/** JSON bodies the hub refuses with 400 invalid_request naming a body field. */
const REFUSED_BODIES: readonly Sent[] = [
  // POST /audit/search: exactly one of patient, user, resource, requestId.
  ...[{}, { patient: P, user: 'op' }, { user: 'op', resource: '2.25.1' }, { resource: '2.25.1', requestId: 'r-1' }, { patient: P, user: 'op', resource: '2.25.1', requestId: 'r-1' }, { from: '2026-12-01T00:00:00Z' }].map(
    (body): Sent => ({ route: 'POST /audit/search', url: () => '/audit/search', who: 'operator', body, why: 'not exactly one of patient, user, resource, requestId' }),
  ),
  // An idempotency key that is, as a whole, a CPR number in any spelling (idempotency-key.ts).
  ...['2512481234', '251248-1234', '9999999999', '999999-9999', '25.12.48-1234', '25-12-48_1234', '25124-81234', '-251248:1234.', '29.02.48-1234', '25-12-1948-1234', '251219481234', '2512:19:48:1234'].flatMap((key): Sent[] => [
    { route: 'POST /observations', url: () => '/observations', who: 'patient', body: observation(key), why: `observationId ${key} is a CPR number` },
    { route: 'POST /documents/{uniqueId}/corrections', url: () => `/documents/${uniqueId}/corrections`, who: 'patient', body: correction(key), why: `correctionId ${key} is a CPR number` },
    { route: 'POST /consultations/{id}/accept', url: () => `/consultations/${CONSULTATION}/accept`, who: 'system', body: { expertId: EXPERT, actionId: key }, why: `actionId ${key} is a CPR number` },
  ]),
  // A leap second (:60) and other clock fields out of range: the hub refuses them, and `format: date-time` alone takes
  // 23:59:60Z (ajv-formats, RFC 3339 5.7): the pattern says it.
  ...OFF_THE_CLOCK.map((from): Sent => ({ route: 'POST /observations/search', url: () => '/observations/search', who: 'patient', body: { patientId: P, from }, why: `from ${from}` })),
  // dev-login: a sub of one line, and the patient only for role patient.
  ...oneLineControls.map((sub): Sent => ({ route: 'POST /auth/dev-login', url: () => '/auth/dev-login', who: 'none', body: { role: 'operator', sub }, why: `sub with ${JSON.stringify(sub)}` })),
  { route: 'POST /auth/dev-login', url: () => '/auth/dev-login', who: 'none', body: { role: 'clinician', systemId: 'xian', patient: P }, why: 'patient for another role than patient' },
  // Texts the hub trims and then needs one character of.
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'aarhus', name: '   ', area: 'Midt' }, why: 'a name of white space only' },
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'aarhus', name: 'Aarhus', area: '\t\n' }, why: 'an area of white space only' },
  { route: 'POST /consultations', url: () => '/consultations', who: 'system', body: { applicantSystemId: 'xian', applicantClinician: '  ', candidates: [EXPERT], clinicalQuestion: 'Q?', summary: '' }, why: 'an applicantClinician of white space only' },
  { route: 'POST /consultations', url: () => '/consultations', who: 'system', body: { applicantSystemId: 'xian', applicantClinician: 'Dr A', candidates: [EXPERT], clinicalQuestion: ' \u00a0 ', summary: '' }, why: 'a clinicalQuestion of white space only' },
  { route: 'POST /consultations/{id}/report', url: () => `/consultations/${CONSULTATION}/report`, who: 'system', body: { expertId: EXPERT, diagnosis: '   ' }, why: 'a diagnosis of white space only' },
  // Texts the hub trims, over their limit as sent: the document's maxLength counts white space around a text too, so
  // the hub does (it counted after the trim, and took a padded text a generated client refused).
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'vejle', name: ` ${'V'.repeat(200)}`, area: 'Syddanmark' }, why: 'a name of 201 characters, 200 once trimmed' },
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'vejle', name: 'Vejle', area: `${'S'.repeat(199)}\n\n` }, why: 'an area of 201 characters, 199 once trimmed' },
  { route: 'POST /consultations', url: () => '/consultations', who: 'system', body: { applicantSystemId: 'xian', applicantClinician: `  Dr ${'A'.repeat(196)}`, candidates: [EXPERT], clinicalQuestion: 'Q?', summary: '' }, why: 'an applicantClinician of 201 characters, 199 once trimmed' },
  { route: 'POST /consultations', url: () => '/consultations', who: 'system', body: { applicantSystemId: 'xian', applicantClinician: 'Dr A', candidates: [EXPERT], clinicalQuestion: `${'Q'.repeat(10_000)}\n`, summary: '' }, why: 'a clinicalQuestion of 10,001 characters, 10,000 once trimmed' },
  { route: 'POST /consultations/{id}/report', url: () => `/consultations/${CONSULTATION}/report`, who: 'system', body: { expertId: EXPERT, diagnosis: `\t${'D'.repeat(10_000)}` }, why: 'a diagnosis of 10,001 characters, 10,000 once trimmed' },
  { route: 'POST /dead-letters/{id}/discard', url: () => '/dead-letters/x/discard', who: 'operator', body: { reason: `${'r'.repeat(500)} ` }, why: 'a reason of 501 characters, 500 once trimmed' },
  { route: 'POST /dead-letters/{id}/replay', url: () => '/dead-letters/x/replay', who: 'operator', body: { by: ` ${'b'.repeat(100)}` }, why: 'a note of 101 characters, 100 once trimmed' },
  // The dead letters' notes and reasons: one line, not only white space (answered before the broker is asked).
  { route: 'POST /dead-letters/{id}/discard', url: () => '/dead-letters/x/discard', who: 'operator', body: { reason: '   ' }, why: 'a reason of white space only' },
  ...oneLineControls.map((reason): Sent => ({ route: 'POST /dead-letters/{id}/discard', url: () => '/dead-letters/x/discard', who: 'operator', body: { reason }, why: `a reason with ${JSON.stringify(reason)}` })),
  ...oneLineControls.map((by): Sent => ({ route: 'POST /dead-letters/{id}/replay', url: () => '/dead-letters/x/replay', who: 'operator', body: { by }, why: `a note with ${JSON.stringify(by)}` })),
];

/** Query and path parameters the hub refuses with 400 invalid_request naming that parameter. */
const REFUSED_PARAMETERS: readonly (Sent & Readonly<{ parameter: string; value: string; in?: 'query' | 'path' }>)[] = [
  ...['2512481234', 'cpr-251248-1234', 'x_25_12_48_1234'].map((id) => ({ route: 'GET /consultations/{id}/trace', url: () => `/consultations/${id}/trace`, who: 'operator' as const, parameter: 'id', in: 'path' as const, value: id, why: `a consultation id ${id} holding a CPR number` })),
  ...['specialty', 'city', 'language'].map((parameter) => ({ route: 'GET /experts', url: () => `/experts?${parameter}=%20%20`, who: 'operator' as const, parameter, value: '  ', why: `${parameter} of white space only` })),
  ...['specialty', 'city', 'language'].map((parameter) => ({ route: 'GET /experts', url: () => `/experts?${parameter}=%20${'a'.repeat(100)}`, who: 'operator' as const, parameter, value: ` ${'a'.repeat(100)}`, why: `${parameter} of 101 characters, 100 once trimmed` })),
  ...['2016-12-31T23:59:60Z', '2016-12-31T23:59:60.999Z'].map((to) => ({ route: 'GET /patients/{patientId}/observations', url: () => `/patients/${P}/observations?to=${to}`, who: 'patient' as const, parameter: 'to', value: to, why: `a leap second ${to}` })),
  { route: 'POST /documents/{uniqueId}/corrections', url: () => `/documents/${uniqueId}/corrections?correctionId=2512481234`, who: 'patient', parameter: 'correctionId', value: '2512481234', why: 'a correctionId that is a CPR number', body: { systolic: 122, diastolic: 78, measuredAt: new Date(Date.now() - 3_600_000).toISOString() } },
];

/**
 * Refusals no static schema of the document can say, each with the reason (the description of the field says it).
 * Checked: each still is a 400 the document's schema takes, so a fix that makes the document say it removes it here.
 */
const EXCEPTIONS: readonly (Sent & Readonly<{ parameter?: string; value?: unknown }>)[] = [
  // OpenAPI describes query parameters one by one: "exactly one of" two of them has no place (its successor, POST
  // /audit/search, says it in its body's schema).
  { route: 'GET /audit', url: () => `/audit?patient=${P}&user=op`, who: 'operator', parameter: 'patient', value: P, why: 'exactly one of patient and user, across two query parameters' },
  // A store position is at most 2^63-1: a pattern could spell the bound, digit by digit, but none of it helps a
  // client, which sends back the `next` of an earlier page.
  { route: 'GET /erasures', url: () => '/erasures?after=9999999999999999999', who: 'operator', parameter: 'after', value: '9999999999999999999', why: 'a position over 2^63-1' },
];

/** Requests the hub takes (2xx), which the document must take too. */
const TAKEN: readonly Sent[] = [
  ...['2026-11-30-0001', randomUUID(), 'meter-7:0042', '31.02.48-1234', '30-02-1948-1234', '29.02.47-1234', '1950-01-01-0001', '0101-50-12-34', '10101501234', '010150----1234'].map(
    (key): Sent => ({ route: 'POST /observations', url: () => '/observations', who: 'patient', body: observation(key), why: `observationId ${key}: no CPR number as a whole` }),
  ),
  { route: 'POST /observations/search', url: () => '/observations/search', who: 'patient', body: { patientId: P }, why: 'a search' },
  { route: 'POST /observations/search', url: () => '/observations/search', who: 'patient', body: { patientId: P, from: '2026-12-04T23:59:59.999+14:00', to: '2026-12-05T09:30:59-23:59' }, why: 'bounds at the clock\'s edges' },
  { route: 'POST /audit/search', url: () => '/audit/search', who: 'operator', body: { user: 'op', limit: 5 }, why: 'by user' },
  { route: 'POST /audit/search', url: () => '/audit/search', who: 'operator', body: { patient: P }, why: 'by patient' },
  { route: 'POST /audit/search', url: () => '/audit/search', who: 'operator', body: { resource: '2.25.1', from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z' }, why: 'by resource' },
  { route: 'POST /audit/search', url: () => '/audit/search', who: 'operator', body: { requestId: 'r-1', cursor: '' }, why: 'by request id' },
  { route: 'POST /auth/dev-login', url: () => '/auth/dev-login', who: 'none', body: { role: 'clinician', systemId: 'xian', sub: 'Dr. Ole Hansen \u00e6\u00f8\u00e5 \u4e2d\u6587' }, why: 'a clinician' },
  { route: 'POST /auth/dev-login', url: () => '/auth/dev-login', who: 'none', body: { role: 'patient', patient: P }, why: 'a patient' },
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'aarhus', name: ' Aarhus ', area: 'Midt' }, why: 'a name with white space around it' },
  { route: 'GET /experts', url: () => '/experts?specialty=%20Cardiology%20', who: 'operator', why: 'a term with white space around it' },
  { route: 'GET /experts', url: () => `/experts?city=%20${'c'.repeat(98)}%20`, who: 'operator', why: 'a term of 100 characters as sent, white space around it included' },
  { route: 'POST /systems', url: () => '/systems', who: 'operator', body: { id: 'randers', name: ` ${'R'.repeat(198)} `, area: `\t${'M'.repeat(199)}` }, why: 'a name and an area of 200 characters as sent, white space around them included' },
];

describe('the request schemas of /openapi.json refuse what the hub refuses, and take what it takes', () => {
  it('each JSON body the hub refuses with 400 invalid_request, the document refuses too', async () => {
    const gaps: string[] = [];
    for (const sent of REFUSED_BODIES) {
      const answer = await send(sent);
      expect({ sent: `${sent.route}: ${sent.why}`, status: answer.status, code: answer.body?.code }).toEqual({ sent: `${sent.route}: ${sent.why}`, status: 400, code: 'invalid_request' });
      expect(answer.body.errors.some((e: { path: string }) => e.path.startsWith('body'))).toBe(true);
      if (api.validatorOf(requestSchemaOf(sent.route))(sent.body)) gaps.push(`${sent.route}: ${sent.why}`);
    }
    expect(gaps).toEqual([]);
  });

  it('each query or path parameter the hub refuses with 400 invalid_request, the document refuses too', async () => {
    const gaps: string[] = [];
    for (const sent of REFUSED_PARAMETERS) {
      const answer = await send(sent);
      expect({ sent: `${sent.route}: ${sent.why}`, status: answer.status, paths: (answer.body?.errors ?? []).map((e: { path: string }) => e.path) }).toEqual({
        sent: `${sent.route}: ${sent.why}`,
        status: 400,
        paths: expect.arrayContaining([`${sent.in ?? 'query'}.${sent.parameter}`]),
      });
      if (api.validatorOf(parameterSchemaOf(sent.route, sent.parameter, sent.in))(sent.value)) gaps.push(`${sent.route}: ${sent.why}`);
    }
    expect(gaps).toEqual([]);
  });

  it("a reading's measuredAt off the clock (a leap second, 24:00), which the hub refuses 422, the document refuses too", async () => {
    const gaps: string[] = [];
    for (const measuredAt of OFF_THE_CLOCK) {
      const body = { patientId: P, systolic: 120, diastolic: 80, measuredAt };
      const answer = await send({ route: 'POST /observations', url: () => '/observations', who: 'patient', body, why: measuredAt });
      expect({ measuredAt, status: answer.status, code: answer.body?.code, paths: answer.body?.errors?.map((e: { path: string }) => e.path) }).toEqual({ measuredAt, status: 422, code: 'invalid_observation', paths: ['measuredAt'] });
      if (api.validatorOf(requestSchemaOf('POST /observations'))(body)) gaps.push(measuredAt);
    }
    expect(gaps).toEqual([]);
  });

  it('the exceptions are still refused by the hub and taken by the document (the field says it in words)', async () => {
    for (const sent of EXCEPTIONS) {
      const answer = await send(sent);
      expect({ sent: sent.why, status: answer.status }).toEqual({ sent: sent.why, status: 400 });
      expect({ sent: sent.why, taken: api.validatorOf(parameterSchemaOf(sent.route, sent.parameter!))(sent.value) }).toEqual({ sent: sent.why, taken: true });
    }
  });

  it('each request the hub takes, the document takes too', async () => {
    for (const sent of TAKEN) {
      const answer = await send(sent);
      expect({ sent: `${sent.route}: ${sent.why}`, status: answer.status < 300 }).toEqual({ sent: `${sent.route}: ${sent.why}`, status: true });
      if (sent.body !== undefined) expect({ sent: sent.why, taken: api.validatorOf(requestSchemaOf(sent.route))(sent.body) }).toEqual({ sent: sent.why, taken: true });
    }
    // The client's own checks of every call above (query parameters and bodies taken, answers as described).
    expect([...api.mismatches]).toEqual([]);
  });
});
