import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, InjectOptions as FastifyInjectOptions, LightMyRequestResponse } from 'fastify';
import { DateTime } from 'luxon';
import pino from 'pino';
import type { Clock } from '../../src/application/ports/clock';
import type { EventStore } from '../../src/application/ports/event-store';
import type { Projector } from '../../src/application/projector';
import type { PatientDataProtection } from '../../src/application/ports/patient-data-protection';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import { OPERATIONS } from '../../src/adapters/http/openapi';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import { Director, HL7Builder, parseHl7Observation } from '../../src/domain/documents/hl7';
import type { Cpr } from '../../src/domain/monitoring/cpr';
import { toIsoSeconds } from '../../src/domain/monitoring/tele-observation';
import { httpAppOver } from '../support/http-app';

// fastify's inject (light-my-request) requires `cookie`, which ships as ESM only. Node itself can require it,
// jest's module registry cannot: hand jest the module as Node loads it.
// (process.getBuiltinModule gives Node's own `module`, not jest's wrapper that would route back to this mock.)
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

/** Every CPR number this file sends, valid or not: none of them may ever reach the log. */
const PATIENT = '251248-1234';
const PATIENT_2 = '010203-4321';
const UNKNOWN_PATIENT = '150560-2123';
const PATIENT_3 = '070809-1357';
const BAD_DATE_CPR = '320148-1234';
/** Serial 5, year 37: born 1 January 2037, a number no one can have yet. */
// Born on the last day of next year (7th digit 5: 2000-2057), so in the future whatever day the tests run.
const BORN_NEXT_YEAR = `3112${String((new Date().getUTCFullYear() + 1) % 100).padStart(2, '0')}-5234`;
/** Only the tests of query-side corrections and content encodings upload for this one (the others list PATIENT's readings). */
const PATIENT_4 = '121212-1212';
/** Only the test of effectiveTime's offset over HTTP uploads for this one. */
const PATIENT_5 = '020290-1234';
/** Erased in the middle of a test, between its key's deletion and its registry rows' removal. */
const PATIENT_ERASED_MIDWAY = '040506-1234';
const CPRS = [PATIENT, PATIENT_2, PATIENT_3, PATIENT_4, PATIENT_5, PATIENT_ERASED_MIDWAY, UNKNOWN_PATIENT, BAD_DATE_CPR, BORN_NEXT_YEAR];

const logLines: string[] = [];
const logger = pino(
  { level: 'trace' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  }),
);

let dataDir: string;
let app: FastifyInstance;
let store: EventStore;
let projector: Projector;
let protection: PatientDataProtection;
let patientKeys: PatientKeys;
/** Seconds the server's clock runs ahead of the container's: lets a test retry "a moment later". */
let serverSkewSeconds = 0;
const responses: LightMyRequestResponse[] = [];

const iso = (dt: DateTime) => toIsoSeconds(dt);
const hoursAgo = (h: number) => DateTime.utc().startOf('second').minus({ hours: h });

type InjectOptions = { method: 'GET' | 'POST' | 'PUT' | 'DELETE'; url: string; payload?: string | object; headers?: Record<string, string> };
const call = async (options: InjectOptions): Promise<LightMyRequestResponse> => {
  const response = await app.inject(options as FastifyInjectOptions);
  responses.push(response);
  return response;
};
const post = (url: string, payload: object) => call({ method: 'POST', url, payload });
const get = (url: string) => call({ method: 'GET', url });

const hl7Of = (patientId: string, systolic: number, diastolic: number, measuredAt: string): string => {
  const builder = new HL7Builder();
  Director.construct({ patientId: patientId as Cpr, systolic: { value: systolic, unit: 'mmHg' }, diastolic: { value: diastolic, unit: 'mmHg' }, measuredAt }, builder);
  return builder.getResult();
};

/** A problem+json answer with its stable type and code. */
const expectProblem = (response: LightMyRequestResponse, status: number, code: string) => {
  expect({ status: response.statusCode, contentType: response.headers['content-type'], nosniff: response.headers['x-content-type-options'] }).toEqual({ status, contentType: expect.stringMatching(/^application\/problem\+json/), nosniff: 'nosniff' });
  const body = response.json();
  expect(body).toMatchObject({ type: `/problems/${code}`, code, status, title: expect.any(String), detail: expect.any(String) });
  return body as { detail: string; errors?: { path: string; message: string }[]; instance?: string };
};

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-http-'));
  const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_LOG_LEVEL: 'trace', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const container = buildContainer(config, logger);
  store = container.get<EventStore>(TOKENS.EventStore);
  projector = container.get<Projector>(TOKENS.Projector);
  protection = container.get<PatientDataProtection>(TOKENS.PatientDataProtection);
  patientKeys = container.get<PatientKeys>(TOKENS.PatientKeys);
  app = httpAppOver(container, logger, {
    bodyLimitBytes: config.RTS_BODY_LIMIT_BYTES,
    clock: { now: () => container.get<Clock>(TOKENS.Clock).now().plus({ seconds: serverSkewSeconds }) },
  });
});

afterAll(async () => {
  await app?.close();
  await projector?.stop();
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('HTTP API over the real container (SQLite in a temp dir)', () => {
  const measuredAt = iso(hoursAgo(2));
  let uniqueId = '';

  describe('upload and query', () => {
    it('POST /observations: 201 with Location naming the document', async () => {
      const response = await post('/observations', { observationId: 'meter-1:0001', patientId: PATIENT, systolic: 126, diastolic: { value: 70, unit: 'mm(Hg)' }, measuredAt });
      expect(response.statusCode).toBe(201);
      const body = response.json();
      expect(body).toEqual({ uniqueId: expect.stringMatching(/^2\.25\.\d+$/), observationId: 'meter-1:0001', measuredAt, document: `/documents/${body.uniqueId}` });
      expect(response.headers['location']).toBe(`/documents/${body.uniqueId}`);
      // Read as JSON only, never sniffed into a page (as the web page's own assets).
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      uniqueId = body.uniqueId;
    });

    it('the same upload again: 200 with the same uniqueId', async () => {
      const response = await post('/observations', { observationId: 'meter-1:0001', patientId: PATIENT, systolic: 126, diastolic: { value: 70, unit: 'mm(Hg)' }, measuredAt });
      expect(response.statusCode).toBe(200);
      expect(response.json().uniqueId).toBe(uniqueId);
      expect(response.headers['location']).toBe(`/documents/${uniqueId}`);
    });

    it('the same observationId with another reading: 409 observation_id_reused', async () => {
      expectProblem(await post('/observations', { observationId: 'meter-1:0001', patientId: PATIENT, systolic: 150, diastolic: 70, measuredAt }), 409, 'observation_id_reused');
    });

    it('an upload without a time, retried after its answer was lost and the clock moved on: 200, the stored time', async () => {
      const upload = { observationId: 'meter-1:0002', patientId: PATIENT_3, systolic: 131, diastolic: 82 };
      const first = await post('/observations', upload);
      expect(first.statusCode).toBe(201);
      serverSkewSeconds = 3;
      try {
        const again = await post('/observations', upload);
        expect(again.statusCode).toBe(200);
        expect(again.json()).toEqual(first.json());
        expectProblem(await post('/observations', { ...upload, systolic: 132 }), 409, 'observation_id_reused');
      } finally {
        serverSkewSeconds = 0;
      }
    });

    it('GET /patients/{id}/observations with from and to returns the reading', async () => {
      const from = encodeURIComponent(iso(hoursAgo(3)));
      const to = encodeURIComponent(iso(hoursAgo(1)));
      const response = await get(`/patients/${PATIENT}/observations?from=${from}&to=${to}`);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({
        bounds: '[from,to)',
        count: 1,
        observations: [{ uniqueId, measuredAt, systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' } }],
      });
    });

    it('without from and to: the last 7 days up to now', async () => {
      const response = await get(`/patients/${PATIENT}/observations`);
      expect(response.statusCode).toBe(200);
      expect(response.json().observations.map((o: { uniqueId: string }) => o.uniqueId)).toEqual([uniqueId]);
    });

    it('bounds over HTTP: a reading at from is in, a reading at to is out', async () => {
      const at = encodeURIComponent(measuredAt);
      const inAtFrom = await get(`/patients/${PATIENT}/observations?from=${at}&to=${encodeURIComponent(iso(hoursAgo(1)))}`);
      expect(inAtFrom.json().count).toBe(1);
      const outAtTo = await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(iso(hoursAgo(3)))}&to=${at}`);
      expect(outAtTo.statusCode).toBe(200);
      expect(outAtTo.json().count).toBe(0);
    });

    it('GET /documents/{id}: the HL7 document as application/xml, which parses back to the reading', async () => {
      const response = await get(`/documents/${uniqueId}`);
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^application\/xml/);
      expect(response.headers['x-document-status']).toBe('Approved');
      expect(parseHl7Observation(response.body)).toEqual({ patientId: PATIENT, systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt });
    });
  });

  describe('corrections', () => {
    let corrected = '';

    it('JSON body: 201, the old reading leaves the queries, the old document says Deprecated and links its successor', async () => {
      const response = await post(`/documents/${uniqueId}/corrections`, { correctionId: 'fix-1', systolic: 128, diastolic: 72, measuredAt });
      expect(response.statusCode).toBe(201);
      corrected = response.json().uniqueId;
      expect(response.json()).toEqual({ uniqueId: corrected, replaces: uniqueId, document: `/documents/${corrected}` });
      expect(response.headers['location']).toBe(`/documents/${corrected}`);

      const list = (await get(`/patients/${PATIENT}/observations`)).json();
      expect(list.observations.map((o: { uniqueId: string; systolic: { value: number } }) => [o.uniqueId, o.systolic.value])).toEqual([[corrected, 128]]);

      const old = await get(`/documents/${uniqueId}`);
      expect(old.statusCode).toBe(200);
      expect(old.headers['x-document-status']).toBe('Deprecated');
      expect(String(old.headers['link'])).toContain(`</documents/${corrected}>; rel="successor-version"`);
    });

    it('the first upload repeated after its correction: 200 naming the replaced document, and the one that holds the reading now', async () => {
      const again = await post('/observations', { observationId: 'meter-1:0001', patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt });
      expect(again.statusCode).toBe(200);
      expect(again.json()).toEqual({ uniqueId, observationId: 'meter-1:0001', measuredAt, document: `/documents/${uniqueId}`, currentUniqueId: corrected });
    });

    it('the same correctionId again: 200, the same replacement', async () => {
      const response = await post(`/documents/${uniqueId}/corrections`, { correctionId: 'fix-1', systolic: 128, diastolic: 72, measuredAt });
      expect(response.statusCode).toBe(200);
      expect(response.json().uniqueId).toBe(corrected);
    });

    it('the same correctionId with other values: 409 correction_id_reused (not the upload code)', async () => {
      const problem = expectProblem(await post(`/documents/${uniqueId}/corrections`, { correctionId: 'fix-1', systolic: 140, diastolic: 72, measuredAt }), 409, 'correction_id_reused');
      expect(problem.detail).toMatch(/correction id/);
    });

    it('a JSON correction takes its correctionId from the query too, as the OpenAPI document declares; two different ids or an unknown parameter: 400', async () => {
      const at = iso(hoursAgo(30));
      const upload = await post('/observations', { patientId: PATIENT_4, systolic: 133, diastolic: 77, measuredAt: at });
      const id = upload.json().uniqueId as string;
      const first = await post(`/documents/${id}/corrections?correctionId=fix-q`, { systolic: 134, diastolic: 77, measuredAt: at });
      expect(first.statusCode).toBe(201);
      // The same query id with other values: the correction id's own conflict, not document_deprecated.
      expectProblem(await post(`/documents/${id}/corrections?correctionId=fix-q`, { systolic: 135, diastolic: 77, measuredAt: at }), 409, 'correction_id_reused');
      const again = await post(`/documents/${id}/corrections?correctionId=fix-q`, { systolic: 134, diastolic: 77, measuredAt: at });
      expect({ status: again.statusCode, uniqueId: again.json().uniqueId }).toEqual({ status: 200, uniqueId: first.json().uniqueId });
      expect(again.json()).not.toHaveProperty('currentUniqueId');
      // Its result corrected again: a repeat of the first correction names the document that holds the reading now.
      const second = await post(`/documents/${first.json().uniqueId}/corrections`, { systolic: 136, diastolic: 77, measuredAt: at });
      expect(second.statusCode).toBe(201);
      const late = await post(`/documents/${id}/corrections?correctionId=fix-q`, { systolic: 134, diastolic: 77, measuredAt: at });
      expect({ status: late.statusCode, body: late.json() }).toEqual({ status: 200, body: { uniqueId: first.json().uniqueId, replaces: id, document: `/documents/${first.json().uniqueId}`, currentUniqueId: second.json().uniqueId } });
      const twice = expectProblem(await post(`/documents/${id}/corrections?correctionId=fix-a`, { correctionId: 'fix-b', systolic: 134, diastolic: 77, measuredAt: at }), 400, 'invalid_request');
      expect(twice.errors).toEqual([{ path: 'query.correctionId', message: 'differs from body.correctionId' }]);
      const unknown = expectProblem(await post(`/documents/${id}/corrections?foo=bar`, { systolic: 134, diastolic: 77, measuredAt: at }), 400, 'invalid_request');
      expect(unknown.detail).toMatch(/query/);
    });

    it('another correction of the deprecated document: 409 document_deprecated, naming the document to correct instead', async () => {
      const response = await post(`/documents/${uniqueId}/corrections`, { correctionId: 'fix-2', systolic: 130, diastolic: 72, measuredAt });
      const problem = expectProblem(response, 409, 'document_deprecated');
      // A uniqueId is no personal data: its long digit run is not taken for a CPR number and redacted.
      expect(problem.instance).toBe(`/documents/${uniqueId}/corrections`);
      expect(response.json().currentUniqueId).toBe(corrected);
      expect(response.headers['link']).toBe(`</documents/${corrected}>; rel="latest-version"`);
    });

    it('application/xml body (a whole HL7 document): 201, and the chain keeps both links', async () => {
      const response = await call({
        method: 'POST',
        url: `/documents/${corrected}/corrections`,
        payload: hl7Of(PATIENT, 131, 74, measuredAt),
        headers: { 'content-type': 'application/xml' },
      });
      expect(response.statusCode).toBe(201);
      const newest = response.json().uniqueId;
      const list = (await get(`/patients/${PATIENT}/observations`)).json();
      expect(list.observations.map((o: { uniqueId: string; systolic: { value: number } }) => [o.uniqueId, o.systolic.value])).toEqual([[newest, 131]]);

      const middle = await get(`/documents/${corrected}`);
      expect(middle.headers['x-document-status']).toBe('Deprecated');
      const link = String(middle.headers['link']);
      expect(link).toContain(`</documents/${newest}>; rel="successor-version"`);
      expect(link).toContain(`</documents/${uniqueId}>; rel="predecessor-version"`);
      // The first document corrected once more: the 409 names the end of the chain, not the next link.
      const twoBack = await post(`/documents/${uniqueId}/corrections`, { correctionId: 'fix-3', systolic: 130, diastolic: 72, measuredAt });
      expectProblem(twoBack, 409, 'document_deprecated');
      expect(twoBack.json().currentUniqueId).toBe(newest);
    });

    it('an XML correction holding a character XML 1.0 does not allow (U+0000) is 422 invalid_document, nothing stored', async () => {
      const at = iso(hoursAgo(31));
      const id = (await post('/observations', { patientId: PATIENT_4, systolic: 141, diastolic: 81, measuredAt: at })).json().uniqueId as string;
      const response = await call({
        method: 'POST',
        url: `/documents/${id}/corrections`,
        payload: hl7Of(PATIENT_4, 142, 81, at).replace('<ClinicalDocument', '<!-- a\u0000b --><ClinicalDocument'),
        headers: { 'content-type': 'application/xml' },
      });
      const problem = expectProblem(response, 422, 'invalid_document');
      expect(problem.detail).toMatch(/U\+0000 at offset \d+ is no XML 1\.0 character/);
      expect((await get(`/documents/${id}`)).headers['x-document-status']).toBe('Approved');
    });

    it("effectiveTime: served with +0000; an HL7 correction's +0100 is read at its offset, one without an offset as UTC", async () => {
      // 00:30 yesterday in Copenhagen: 23:30 (winter) or 22:30 (summer) UTC the day before, the reading on the wrong day
      // for a Danish consumer when the document did not say the time was UTC.
      const local = DateTime.now().setZone('Europe/Copenhagen').startOf('day').minus({ days: 1 }).plus({ minutes: 30 });
      const utcDigits = local.toUTC().toFormat('yyyyMMddHHmmss');
      const uploaded = await post('/observations', { patientId: PATIENT_5, systolic: 126, diastolic: 70, measuredAt: local.toISO({ suppressMilliseconds: true }) });
      expect(uploaded.statusCode).toBe(201);
      const first = uploaded.json().uniqueId as string;
      expect((await get(`/documents/${first}`)).body).toContain(`<effectiveTime value="${utcDigits}+0000"/>`);

      const withEffectiveTime = (xml: string, ts: string) => xml.replace(/<effectiveTime value="[^"]*"\/>/, `<effectiveTime value="${ts}"/>`);
      const correct = (id: string, ts: string, systolic: number) =>
        call({ method: 'POST', url: `/documents/${id}/corrections`, payload: withEffectiveTime(hl7Of(PATIENT_5, systolic, 70, iso(local)), ts), headers: { 'content-type': 'application/xml' } });
      const readings = async () => (await get(`/patients/${PATIENT_5}/observations`)).json().observations.map((o: { systolic: { value: number }; measuredAt: string }) => [o.systolic.value, o.measuredAt]);

      // With the sender's offset (+0100 in winter, +0200 in summer): the instant meant.
      const second = await correct(first, local.toFormat('yyyyMMddHHmmssZZZ'), 127);
      expect(second.statusCode).toBe(201);
      expect(local.toFormat('ZZZ')).toMatch(/^\+0[12]00$/);
      expect(await readings()).toEqual([[127, iso(local)]]);
      const secondId = second.json().uniqueId as string;
      expect((await get(`/documents/${secondId}`)).body).toContain(`<effectiveTime value="${utcDigits}+0000"/>`);

      // Without an offset: UTC, whatever the sender meant (the OpenAPI document and the README say so).
      const third = await correct(secondId, local.toFormat('yyyyMMddHHmmss'), 128);
      expect(third.statusCode).toBe(201);
      const asUtc = DateTime.fromFormat(local.toFormat('yyyyMMddHHmmss'), 'yyyyMMddHHmmss', { zone: 'utc' });
      expect(await readings()).toEqual([[128, iso(asUtc)]]);
      expect((await get(`/documents/${third.json().uniqueId}`)).body).toContain(`<effectiveTime value="${asUtc.toFormat('yyyyMMddHHmmss')}+0000"/>`);
    });

    it('an HL7 correction naming another patient: 422 correction_patient_mismatch', async () => {
      const current = (await get(`/patients/${PATIENT}/observations`)).json().observations[0].uniqueId;
      const response = await call({ method: 'POST', url: `/documents/${current}/corrections`, payload: hl7Of(PATIENT_2, 131, 74, measuredAt), headers: { 'content-type': 'application/xml' } });
      expectProblem(response, 422, 'correction_patient_mismatch');
    });

    it('an HL7 correction naming a patient born in the future: 422 invalid_patient_id, a code /openapi.json lists for the route', async () => {
      const current = (await get(`/patients/${PATIENT}/observations`)).json().observations[0].uniqueId;
      const response = await call({ method: 'POST', url: `/documents/${current}/corrections`, payload: hl7Of(BORN_NEXT_YEAR, 131, 74, measuredAt), headers: { 'content-type': 'application/xml' } });
      expectProblem(response, 422, 'invalid_patient_id');
      expect(OPERATIONS['POST /documents/:uniqueId/corrections']!.problems).toContain('invalid_patient_id');
    });

    it('a correction of an unknown document: 404 document_not_found', async () => {
      expectProblem(await post('/documents/2.25.1/corrections', { systolic: 128, diastolic: 72, measuredAt }), 404, 'document_not_found');
    });
  });

  describe('problems: application/problem+json with a stable type and code', () => {
    it('malformed JSON: 400 malformed_json, the detail does not echo the body', async () => {
      const payload = `{"patientId": "${PATIENT}", "systolic": 12`;
      const response = await call({ method: 'POST', url: '/observations', payload, headers: { 'content-type': 'application/json' } });
      const body = expectProblem(response, 400, 'malformed_json');
      expect(body.detail).not.toContain('patientId');
      expect(response.body).not.toContain(PATIENT);
    });

    it('valid JSON with a "__proto__" key: 400 malformed_json that says which key, not that it is no JSON', async () => {
      const payload = `{"patientId": "${PATIENT}", "systolic": 126, "diastolic": 70, "__proto__": {"x": 1}}`;
      const body = expectProblem(await call({ method: 'POST', url: '/observations', payload, headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
      expect(body.detail).toContain('__proto__');
      expect(body.detail).not.toContain('could not be parsed');
    });

    it('an empty JSON body: 400 malformed_json', async () => {
      expectProblem(await call({ method: 'POST', url: '/observations', payload: '', headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
    });

    it('wrong types: 400 invalid_request listing the paths', async () => {
      const body = expectProblem(await post('/observations', { patientId: PATIENT, systolic: 'high', diastolic: 70, measuredAt: 'yesterday' }), 400, 'invalid_request');
      expect(body.errors?.map((e) => e.path).sort()).toEqual(['body.measuredAt', 'body.systolic']);
    });

    it('an unknown extra field: 400 invalid_request', async () => {
      const body = expectProblem(await post('/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt, heartRate: 60 }), 400, 'invalid_request');
      expect(body.errors).toEqual([{ path: 'body', message: 'unknown field: heartRate' }]);
    });

    it('a key that is not a plain field name is not quoted back (it could be a CPR number)', async () => {
      const response = await post('/observations', { patientId: PATIENT_2, systolic: 126, diastolic: 70, measuredAt, heartRate: 60, [UNKNOWN_PATIENT]: true });
      const body = expectProblem(response, 400, 'invalid_request');
      expect(body.errors).toEqual([{ path: 'body', message: 'unknown fields: heartRate and 1 more field whose name is not repeated here' }]);
      expect(response.body).not.toContain(UNKNOWN_PATIENT);
      // Nor a name or digits that look like a field name.
      const named = await post('/observations', { patientId: PATIENT_2, systolic: 126, diastolic: 70, measuredAt, cpr_0707894821: 1, Ingeborg_Zylstra: 2 });
      expect(expectProblem(named, 400, 'invalid_request').errors).toEqual([{ path: 'body', message: 'unknown fields: 2 fields whose names are not repeated here' }]);
    });

    it('a missing field is required, a mistyped one says what it must be', async () => {
      const body = expectProblem(await post('/observations', { systolic: 126, diastolic: 70, measuredAt, observationId: 42 }), 400, 'invalid_request');
      expect(body.errors).toEqual([
        { path: 'body.observationId', message: 'must be a string (not a number)' },
        { path: 'body.patientId', message: 'is required (a string)' },
      ]);
      expect(body.detail).toBe('the body does not have the expected shape: body.observationId: must be a string (not a number); body.patientId: is required (a string)');
      const long = expectProblem(await post('/observations', { patientId: 'x'.repeat(40), systolic: 126, diastolic: 70, measuredAt }), 400, 'invalid_request');
      expect(long.errors).toEqual([{ path: 'body.patientId', message: 'must have at most 32 characters' }]);
    });

    it('implausible values: 422 implausible_observation', async () => {
      expectProblem(await post('/observations', { patientId: PATIENT, systolic: 400, diastolic: 70, measuredAt }), 422, 'implausible_observation');
      expectProblem(await post('/observations', { patientId: PATIENT, systolic: 70, diastolic: 90, measuredAt }), 422, 'implausible_observation');
    });

    it('a unit other than mmHg: 422 invalid_observation', async () => {
      expectProblem(await post('/observations', { patientId: PATIENT, systolic: { value: 16, unit: 'kPa' }, diastolic: 70, measuredAt }), 422, 'invalid_observation');
    });

    it('a bad CPR number: 422 invalid_patient_id, in a body or in a path, without echoing it', async () => {
      const upload = await post('/observations', { patientId: BAD_DATE_CPR, systolic: 126, diastolic: 70, measuredAt });
      expectProblem(upload, 422, 'invalid_patient_id');
      expect(upload.body).not.toContain(BAD_DATE_CPR);
      const query = await get(`/patients/${BAD_DATE_CPR}/observations`);
      expectProblem(query, 422, 'invalid_patient_id');
      expect(query.body).not.toContain(BAD_DATE_CPR);
      // Over the router's 100 characters: the route's own problem, not a bare 400 before any route was chosen.
      const long = await get(`/patients/${'a'.repeat(101)}/observations`);
      expectProblem(long, 400, 'invalid_request');
      expect(long.json().errors).toEqual([expect.objectContaining({ path: 'path.patientId' })]);
    });

    it('a CPR number born in the future: 422 invalid_patient_id for a search as for an upload, not 404 unknown_patient', async () => {
      const upload = expectProblem(await post('/observations', { patientId: BORN_NEXT_YEAR, systolic: 126, diastolic: 70, measuredAt }), 422, 'invalid_patient_id');
      const searched = expectProblem(await post('/observations/search', { patientId: BORN_NEXT_YEAR }), 422, 'invalid_patient_id');
      const listed = expectProblem(await get(`/patients/${BORN_NEXT_YEAR}/observations`), 422, 'invalid_patient_id');
      expect(upload.errors).toEqual([{ path: 'patientId', message: 'the birth date in this CPR number lies in the future' }]);
      expect(searched.errors).toEqual(upload.errors);
      expect(listed.errors).toEqual(upload.errors);
      // The CPR number's problem comes first, whatever the bounds say.
      expectProblem(await post('/observations/search', { patientId: BORN_NEXT_YEAR, from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' }), 422, 'invalid_patient_id');
      // A valid number with no readings is still 404.
      expectProblem(await post('/observations/search', { patientId: UNKNOWN_PATIENT }), 404, 'unknown_patient');
    });

    it('a measurement time in the future: 422', async () => {
      const body = expectProblem(await post('/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt: iso(hoursAgo(-1)) }), 422, 'implausible_observation');
      expect(body.errors?.map((e) => e.path)).toEqual(['measuredAt']);
    });

    it('an offset outside RFC 3339 (+99:99) or a time before the patient was born: 422, nothing stored', async () => {
      expectProblem(await post('/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt: '2024-11-30T10:00:00+99:99' }), 422, 'invalid_observation');
      const year0 = expectProblem(await post('/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt: '0000-01-01T00:00:00+14:00' }), 422, 'implausible_observation');
      expect(year0.errors).toEqual([{ path: 'measuredAt', message: "lies before the patient's date of birth" }]);
      const stored = await get(`/patients/${PATIENT}/observations?from=2024-11-01T00:00:00Z&to=2024-12-31T00:00:00Z`);
      expect(stored.statusCode === 404 || stored.json().count === 0).toBe(true);
    });

    it('an observationId holding a CPR number: 400, naming the field and not the value (ids are stored in clear)', async () => {
      const body = expectProblem(await post('/observations', { observationId: PATIENT.replace('-', ''), patientId: PATIENT, systolic: 126, diastolic: 70 }), 400, 'invalid_request');
      expect(body.errors).toEqual([{ path: 'body.observationId', message: expect.stringMatching(/CPR/) }]);
      expect(JSON.stringify(body)).not.toContain(PATIENT.replace('-', ''));
    });

    it('a JSON body that is a string ("x") is the wrong shape, 400, for uploads and corrections alike', async () => {
      const json = { 'content-type': 'application/json' };
      expectProblem(await call({ method: 'POST', url: '/observations', payload: '"x"', headers: json }), 400, 'invalid_request');
      const created = await post('/observations', { patientId: PATIENT, systolic: 128, diastolic: 71, measuredAt: iso(hoursAgo(30)) });
      const uniqueId = created.json().uniqueId as string;
      expectProblem(await call({ method: 'POST', url: `/documents/${uniqueId}/corrections`, payload: '"x"', headers: json }), 400, 'invalid_request');
      // XML stays XML: a text/xml upload is still refused with 415.
      expectProblem(await call({ method: 'POST', url: '/observations', payload: '<x/>', headers: { 'content-type': 'text/xml; charset=utf-8' } }), 415, 'unsupported_media_type');
    });

    it('a from without a to: up to 5 minutes more than 366 days is taken as 366 days (a client clock behind ours)', async () => {
      const now = DateTime.utc().startOf('second');
      const slightly = await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(iso(now.minus({ days: 366, seconds: 90 })))}`);
      expect(slightly.statusCode).toBe(200);
      const answered = slightly.json() as { from: string; to: string };
      expect(DateTime.fromISO(answered.to).diff(DateTime.fromISO(answered.from), 'days').days).toBe(366);
      expectProblem(await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(iso(now.minus({ days: 366, minutes: 10 })))}`), 422, 'interval_too_wide');
      // With a `to`, the bounds are the caller's own: no slack.
      expectProblem(await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(iso(now.minus({ days: 366, seconds: 1 })))}&to=${encodeURIComponent(iso(now))}`), 422, 'interval_too_wide');
    });

    it('an interval wider than 366 days: 422 interval_too_wide', async () => {
      expectProblem(await get(`/patients/${PATIENT}/observations?from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z`), 422, 'interval_too_wide');
    });

    it('a bound off the clock or the calendar (24:00, +99:99, February 30): 400, not an interval moved by days', async () => {
      for (const bound of ['2017-05-10T14:50:14+99:99', '2017-05-10T14:00:00-30:00', '2017-05-10T24:00:00Z', '2017-05-10T14:00:00+24:00', '2017-02-30T00:00:00Z', '2017-04-31T00:00:00+02:00']) {
        const problem = expectProblem(await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(bound)}&to=2017-05-11T00:00:00Z`), 400, 'invalid_request');
        expect(JSON.stringify(problem)).toContain('offsets at most 23:59');
      }
    });

    it('to before from: 422 invalid_interval, naming the field as the other errors do (query.to, body.to)', async () => {
      const listed = expectProblem(await get(`/patients/${PATIENT}/observations?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z`), 422, 'invalid_interval');
      expect(listed.errors).toEqual([{ path: 'query.to', message: 'must be after from' }]);
      const searched = expectProblem(await post('/observations/search', { patientId: PATIENT, from: '2024-01-02T00:00:00Z', to: '2024-01-01T00:00:00Z' }), 422, 'invalid_interval');
      expect(searched.errors).toEqual([{ path: 'body.to', message: 'must be after from' }]);
    });

    it('a reading stored up to 5 minutes ahead (a meter clock drifting) is in the answer of a query without a to', async () => {
      const patient = '020304-1234';
      const ahead = DateTime.utc().startOf('second').plus({ minutes: 4 });
      expect((await post('/observations', { patientId: patient, systolic: 190, diastolic: 110, measuredAt: iso(ahead) })).statusCode).toBe(201);
      for (const answer of [
        await post('/observations/search', { patientId: patient }),
        await get(`/patients/${patient}/observations`),
        await post('/observations/search', { patientId: patient, from: iso(hoursAgo(1)) }),
      ]) {
        expect(answer.statusCode).toBe(200);
        expect(answer.json().observations.map((o: { measuredAt: string }) => o.measuredAt)).toEqual([iso(ahead)]);
        expect(Date.parse(answer.json().to)).toBeGreaterThan(ahead.toMillis()); // the answer's interval says how far it reached
      }
    });

    it('a from in the future without a to: 422 invalid_interval said of from, the field sent (was "to: must be after from")', async () => {
      const future = iso(hoursAgo(-2));
      const searched = expectProblem(await post('/observations/search', { patientId: PATIENT, from: future }), 422, 'invalid_interval');
      expect(searched.errors).toEqual([{ path: 'body.from', message: 'lies in the future (without a to, the interval ends now, 5 minutes ahead included)' }]);
      const listed = expectProblem(await get(`/patients/${PATIENT}/observations?from=${encodeURIComponent(future)}`), 422, 'invalid_interval');
      expect(listed.errors).toEqual([{ path: 'query.from', message: 'lies in the future (without a to, the interval ends now, 5 minutes ahead included)' }]);
      // Too far back, likewise.
      const old = expectProblem(await post('/observations/search', { patientId: PATIENT, from: iso(hoursAgo(24 * 367)) }), 422, 'interval_too_wide');
      expect(old.errors).toEqual([{ path: 'body.from', message: 'lies more than 366 days back (without a to, the interval ends now, 5 minutes ahead included)' }]);
    });

    it('a document whose patient is being erased (key gone, registry row not yet): 410 patient_erased, which /openapi.json lists for the route', async () => {
      const measuredAt = iso(hoursAgo(2));
      const stored = (await post('/observations', { observationId: 'midway-1', patientId: PATIENT_ERASED_MIDWAY, systolic: 126, diastolic: 70, measuredAt })).json().uniqueId as string;
      // An erasure deletes the key before its projection removes the rows (another hub process's erasure, on a shared
      // store, leaves them a moment longer): what GET and a correction meet in between.
      await protection.erase(patientKeys.keyFor(PATIENT_ERASED_MIDWAY as Cpr));
      expectProblem(await get(`/documents/${stored}`), 410, 'patient_erased');
      expectProblem(await post(`/documents/${stored}/corrections`, { systolic: 130, diastolic: 70, measuredAt }), 410, 'patient_erased');
      expect(OPERATIONS['GET /documents/:uniqueId']!.problems).toContain('patient_erased');
      expect(OPERATIONS['POST /documents/:uniqueId/corrections']!.problems).toContain('patient_erased');
      // A store that cannot be read (PostgreSQL down) answers these reads 503 storage_unavailable, as it does the writes.
      for (const read of ['GET /documents/:uniqueId', 'GET /patients/:patientId/observations', 'POST /observations/search']) expect({ read, problems: OPERATIONS[read]!.problems }).toEqual({ read, problems: expect.arrayContaining(['storage_unavailable']) });
    });

    it('a bound outside the years 0000-9999 in UTC: 422 invalid_interval naming the field sent, never an answer whose from or to is no RFC 3339 date-time', async () => {
      const late = expectProblem(await post('/observations/search', { patientId: PATIENT, from: '9999-12-31T00:00:00-23:59', to: '9999-12-31T23:59:59-23:59' }), 422, 'invalid_interval');
      expect(late.errors).toEqual([{ path: 'body.to', message: 'must lie in the years 0000-9999 in UTC' }]);
      const early = expectProblem(await get(`/patients/${PATIENT}/observations?from=0000-01-01T00:00:00%2B23:59&to=0000-01-01T23:00:00%2B23:59`), 422, 'invalid_interval');
      expect(early.errors).toEqual([{ path: 'query.from', message: 'must lie in the years 0000-9999 in UTC' }]);
      // A to alone starts 7 days before it: that start is the to's fault, the field sent.
      const toOnly = expectProblem(await post('/observations/search', { patientId: PATIENT, to: '0000-01-03T00:00:00Z' }), 422, 'invalid_interval');
      // Not "must lie in the years 0000-9999" of a to in the year 0000: its start, 7 days before, does not.
      expect(toOnly.errors).toEqual([{ path: 'body.to', message: expect.stringMatching(/^lies less than 7 days after 0000-01-01T00:00:00Z/) }]);
      expect(toOnly.detail).toMatch(/^the interval's end/);
      // A from alone in the year -1 UTC: said so, not "lies in the future".
      const fromOnly = expectProblem(await get(`/patients/${PATIENT}/observations?from=0000-01-01T00:00:00%2B23:59`), 422, 'invalid_interval');
      expect(fromOnly.errors).toEqual([{ path: 'query.from', message: 'must lie in the years 0000-9999 in UTC' }]);
      expect(fromOnly.detail).not.toMatch(/future/);
      expect((await post('/observations', { observationId: 'bounds-0000-9999', patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt: iso(hoursAgo(1)) })).statusCode).toBeLessThan(300);
      const edge = await post('/observations/search', { patientId: PATIENT, from: '9999-12-30T23:59:59Z', to: '9999-12-31T23:59:59Z' });
      expect(edge.statusCode).toBe(200);
      expect([edge.json().from, edge.json().to]).toEqual(['9999-12-30T23:59:59Z', '9999-12-31T23:59:59Z']);
    });

    it('an unencoded + in a query bound (read as a space): one message, which says to send it as %2B', async () => {
      const problem = expectProblem(await get(`/patients/${PATIENT}/observations?from=2026-11-30T10:00:00+05:45&to=2026-11-30T12:00:00Z`), 400, 'invalid_request');
      expect(problem.errors).toEqual([{ path: 'query.from', message: expect.stringContaining('%2B') }]);
      const encoded = await get(`/patients/${PATIENT}/observations?from=2026-11-30T10:00:00%2B05:45&to=2026-11-30T12:00:00Z`);
      expect(encoded.statusCode).toBe(200);
    });

    it('an unknown query parameter: 400 invalid_request', async () => {
      const problem = expectProblem(await get(`/patients/${PATIENT}/observations?since=2024-01-01T00:00:00Z`), 400, 'invalid_request');
      expect(problem.instance).toBe('/patients/[redacted]/observations?since=2024-01-01T00:00:00Z');
      const undashed = expectProblem(await get(`/patients/${PATIENT.replace('-', '')}x/observations?from=x`), 400, 'invalid_request');
      expect(undashed.instance).toBe('/patients/[redacted]x/observations?from=x');
      // Percent-encoded, the number is still a number: decoded before it is redacted.
      const encoded = expectProblem(await get(`/patients/${PATIENT.replace('-', '%2D')}/observations?since=1`), 400, 'invalid_request');
      expect(encoded.instance).toBe('/patients/[redacted]/observations?since=1');
      // Written with a space or a dot, or with a digit too many: still a CPR number to whoever reads the problem.
      for (const written of [PATIENT.replace('-', '%20'), PATIENT.replace('-', '.'), PATIENT.replace('-', '_'), PATIENT.replace('-', ':'), `${PATIENT.slice(0, 2)}.${PATIENT.slice(2, 4)}.${PATIENT.slice(4)}`, `${PATIENT.slice(0, 2)}-${PATIENT.slice(2, 4)}-${PATIENT.slice(4)}`, `${PATIENT.slice(0, 2)}-${PATIENT.slice(2, 4)}-19${PATIENT.slice(4)}`, PATIENT.replace('-', '+'), `${PATIENT}5`]) {
        expect(expectProblem(await get(`/patients/${written}/observations?since=1`), 400, 'invalid_request').instance).toBe('/patients/[redacted]/observations?since=1');
      }
      const digits = expectProblem(await get(`/patients/%32%35${PATIENT.slice(2)}/observations?since=1`), 400, 'invalid_request');
      expect(digits.instance).toBe('/patients/[redacted]/observations?since=1');
      // A query value that is no instant, number or plain token is not quoted back: it may name somebody.
      const named = expectProblem(await get(`/patients/${PATIENT}/observations?name=Ingeborg%20Zylstra&cpr=${PATIENT}&Karen=1`), 400, 'invalid_request');
      expect(named.instance).toBe('/patients/[redacted]/observations?name=[redacted]&cpr=[redacted]&Karen=1');
    });

    it("a problem's instance: every spelling of a CPR number redacted as a whole number, UUIDs and non-ASCII left as they are", async () => {
      const instanceOf = async (path: string) => (await get(path)).json().instance as string;
      // Glued to other digits, split after the month, an en dash (decoded as UTF-8, not as Latin-1), yyyymmdd-ssss.
      for (const written of ['12512481234', '2512-481234', '25124812345678', '251248%E2%80%931234', '19481225-1234', '2512481234x']) {
        expect({ written, instance: await instanceOf(`/x/${written}`) }).toEqual({ written, instance: `/x/[redacted]${written.endsWith('x') ? 'x' : ''}` });
      }
      // A UUID's hex groups are not cut up, whatever its digits; non-ASCII is shown as the characters it encodes.
      const uuid = '00000000-0000-4000-8000-000000000000';
      expect(await instanceOf(`/consultations/${uuid}/nowhere`)).toBe(`/consultations/${uuid}/nowhere`);
      expect(await instanceOf('/consultations/25124812-3400-4000-8000-002512481234/nowhere')).toBe('/consultations/25124812-3400-4000-8000-002512481234/nowhere');
      expect(await instanceOf('/x/%C3%A6%C3%B8%C3%A5-%E2%80%93')).toBe('/x/\u00e6\u00f8\u00e5-\u2013');
      // A number of a CPR number's shape as a whole goes whatever its date (a mistyped one is still somebody's).
      expect(await instanceOf('/x/320148-1234')).toBe('/x/[redacted]');
    });

    it('an unknown patient: 404 unknown_patient', async () => {
      expectProblem(await get(`/patients/${UNKNOWN_PATIENT}/observations`), 404, 'unknown_patient');
    });

    it('a path that exists with other methods: 405 method_not_allowed with Allow; a path that does not: 404', async () => {
      const del = await call({ method: 'DELETE', url: '/observations' });
      expectProblem(del, 405, 'method_not_allowed');
      expect(del.headers['allow']).toBe('POST');
      const put = await call({ method: 'PUT', url: '/documents/2.25.12345678901234567890' });
      expectProblem(put, 405, 'method_not_allowed');
      expect(put.headers['allow']).toBe('GET, HEAD');
      expect((await call({ method: 'POST', url: `/patients/${PATIENT}/observations` })).headers['allow']).toBe('GET, HEAD');
      expectProblem(await get('/no/such/thing'), 404, 'not_found');
      expectProblem(await call({ method: 'DELETE', url: '/no/such/thing' }), 404, 'not_found');
    });

    it('a 405 or 404 whatever the body: a body that is no JSON is not answered 400 malformed_json', async () => {
      const json = { 'content-type': 'application/json' };
      const put = await call({ method: 'PUT', url: '/observations', headers: json, payload: '{"patientId": ' });
      expectProblem(put, 405, 'method_not_allowed');
      expect(put.headers['allow']).toBe('POST');
      expectProblem(await call({ method: 'DELETE', url: '/documents/2.25.12345678901234567890', headers: json, payload: 'not json' }), 405, 'method_not_allowed');
      expectProblem(await call({ method: 'POST', url: '/observation', headers: json, payload: '{"patientId": ' }), 404, 'not_found');
    });

    it('an unknown document: 404 document_not_found', async () => {
      expectProblem(await get('/documents/2.25.12345678901234567890'), 404, 'document_not_found');
    });

    it('a document id that is not an OID: 400 invalid_request', async () => {
      expectProblem(await get('/documents/not-an-oid'), 400, 'invalid_request');
      expectProblem(await get('/documents/2.25.01'), 400, 'invalid_request');
    });

    it('a body of 20 KB: 413 body_too_large', async () => {
      const response = await post('/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, measuredAt, padding: 'x'.repeat(20 * 1024) });
      expectProblem(response, 413, 'body_too_large');
      expect(response.json().detail).toContain('(16384 bytes)');
    });

    it('an HL7 correction larger than the default body limit: taken up to the parser\'s 64 KiB, then 413 document_too_large, then body_too_large', async () => {
      const current = (await get(`/patients/${PATIENT}/observations`)).json().observations[0].uniqueId as string;
      const padded = (bytes: number) => hl7Of(PATIENT, 129, 71, measuredAt).replace('</ClinicalDocument>', `${' '.repeat(bytes)}</ClinicalDocument>`);
      const xml = (payload: string) => call({ method: 'POST', url: `/documents/${current}/corrections`, payload, headers: { 'content-type': 'application/xml' } });
      const tooLargeForTheParser = await xml(padded(70 * 1024));
      expectProblem(tooLargeForTheParser, 413, 'document_too_large');
      const tooLargeForTheRoute = await xml(padded(140 * 1024));
      expectProblem(tooLargeForTheRoute, 413, 'body_too_large');
      expect(tooLargeForTheRoute.json().detail).toContain('(131072 bytes)');
      // 20 KiB, over the default 16 KiB: a document the library would take is taken over HTTP too.
      const taken = await xml(padded(20 * 1024));
      expect(taken.statusCode).toBe(201);
    });

    it('an unsupported media type: 415 unsupported_media_type', async () => {
      const response = await call({ method: 'POST', url: '/observations', payload: `patientId=${PATIENT}`, headers: { 'content-type': 'text/plain' } });
      expectProblem(response, 415, 'unsupported_media_type');
      const xml = await call({ method: 'POST', url: '/observations', payload: hl7Of(PATIENT, 126, 70, measuredAt), headers: { 'content-type': 'application/xml' } });
      expectProblem(xml, 415, 'unsupported_media_type');
      const form = await call({ method: 'POST', url: `/documents/${uniqueId}/corrections`, payload: 'systolic=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expectProblem(form, 415, 'unsupported_media_type');
    });

    it('a body with a Content-Encoding (gzip, or br on a plain body): 415 unsupported_media_type, nothing stored', async () => {
      const reading = { patientId: PATIENT_4, systolic: 151, diastolic: 91, measuredAt: iso(hoursAgo(40)), observationId: 'encoded-1' };
      const gz = await call({ method: 'POST', url: '/observations', payload: gzipSync(JSON.stringify(reading)), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
      expectProblem(gz, 415, 'unsupported_media_type');
      expect(gz.headers['accept-encoding']).toBe('identity');
      const br = await call({ method: 'POST', url: '/observations', payload: JSON.stringify(reading), headers: { 'content-type': 'application/json', 'content-encoding': 'br' } });
      expectProblem(br, 415, 'unsupported_media_type');
      const plain = await call({ method: 'POST', url: '/observations', payload: JSON.stringify(reading), headers: { 'content-type': 'application/json', 'content-encoding': 'identity' } });
      expect(plain.statusCode).toBe(201); // the first time it is stored: neither refused request stored it
    });

    it('an unknown route: 404 not_found', async () => {
      expectProblem(await get('/nowhere'), 404, 'not_found');
      // The resource exists, not with this method: 405 (below).
      expectProblem(await call({ method: 'DELETE', url: `/documents/${uniqueId}` }), 405, 'method_not_allowed');
    });

    it('every problem type answered here resolves under /problems/{code}', async () => {
      const types = new Set(responses.filter((r) => String(r.headers['content-type']).startsWith('application/problem+json')).map((r) => r.json().type as string));
      expect(types.size).toBeGreaterThanOrEqual(12);
      for (const type of types) {
        const response = await get(type);
        expect(response.statusCode).toBe(200);
        expect(response.json()).toMatchObject({ type, status: expect.any(Number), title: expect.any(String) });
      }
      expectProblem(await get('/problems/no_such_problem'), 404, 'not_found');
      for (const inherited of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expectProblem(await get(`/problems/${inherited}`), 404, 'not_found');
    });

    it('no response body ever carries a stack trace', () => {
      expect(responses.length).toBeGreaterThan(20);
      for (const response of responses) {
        expect(response.body).not.toMatch(/"stack"/);
        expect(response.body).not.toMatch(/\bat \//);
        expect(response.body).not.toMatch(/node_modules|\.ts:\d+/);
      }
    });
  });

  describe('service documents and headers', () => {
    it('GET /openapi.json is OpenAPI 3.1 with the five API paths', async () => {
      const response = await get('/openapi.json');
      expect(response.statusCode).toBe(200);
      const doc = response.json();
      expect(doc.openapi).toMatch(/^3\.1\./);
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(['/observations', '/patients/{patientId}/observations', '/documents/{uniqueId}', '/documents/{uniqueId}/corrections', '/health']),
      );
      expect(doc.paths['/observations'].post.requestBody.content['application/json'].schema).toMatchObject({ type: 'object' });
    });

    it('GET /health answers ok', async () => {
      const response = await get('/health');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ status: 'ok' });
    });

    it('x-request-id: a generated one is echoed, a caller’s own plain token is kept', async () => {
      const generated = await get('/health');
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      const own = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': 'caller-42.a' } });
      expect(own.headers['x-request-id']).toBe('caller-42.a');
      const problem = await call({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'caller-43' } });
      expect(problem.headers['x-request-id']).toBe('caller-43');
      const unsafe = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': 'has spaces and <html>' } });
      expect(unsafe.headers['x-request-id']).not.toBe('has spaces and <html>');
    });

    it('a caller’s x-request-id holding a CPR number is not kept (it would be logged with every line)', async () => {
      const response = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': PATIENT_2 } });
      expect(response.headers['x-request-id']).not.toContain(PATIENT_2);
      // The other spellings a token's sub is refused for; the id's own characters allow them all.
      for (const spelling of ['010203.4321', '010203_4321', '010203:4321', '01.02.03-4321', 'req-010203.4321', '01-02-2003-4321', '20030201-4321', '010203--4321',
        // Glued inside a longer run of digits (the DPO's): no non-digit next to the CPR number.
        '20261201251248-1234', '0251248-1234', '9251248-1234', '12512481234', '251248-12345', '25124-81234']) {
        const other = await call({ method: 'GET', url: '/health', headers: { 'x-request-id': spelling } });
        expect({ spelling, kept: other.headers['x-request-id'] }).toEqual({ spelling, kept: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      }
      // A plain token with digits is still kept.
      expect((await call({ method: 'GET', url: '/health', headers: { 'x-request-id': 'batch-42.a-0001' } })).headers['x-request-id']).toBe('batch-42.a-0001');
      // And a UUID, unless by chance it holds ten such digits (about one in 500: then it is replaced too).
      expect((await call({ method: 'GET', url: '/health', headers: { 'x-request-id': '0f8fad5b-d9cb-469f-a165-70867728950e' } })).headers['x-request-id']).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    });
  });

  it('a request’s log lines carry its id as requestId, and fastify’s own request lines (raw URLs) are off', () => {
    const lines = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    // The x-request-id test above sent GET /health with the caller's own id.
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request', requestId: 'caller-42.a', route: '/health', status: 200 }));
    expect(lines.filter((line) => 'reqId' in line)).toEqual([]);
    expect(lines.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed')).toEqual([]);
  });

  it('after all of the above, the log holds no CPR number, with or without its hyphen', () => {
    const log = logLines.join('');
    expect(logLines.length).toBeGreaterThan(20);
    expect(log).toContain('"route":"/patients/:patientId/observations"');
    for (const cpr of CPRS) {
      expect(log).not.toContain(cpr);
      expect(log).not.toContain(cpr.replace('-', ''));
    }
  });
});

describe('loadConfig', () => {
  it('a bad RTS_HTTP_PORT throws a ConfigError naming it, without echoing the value', () => {
    let error: unknown;
    try {
      loadConfig({ RTS_HTTP_PORT: 'eighty-eighty' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('RTS_HTTP_PORT');
    expect((error as ConfigError).message).not.toContain('eighty-eighty');
    expect(() => loadConfig({ RTS_HTTP_PORT: '70000' })).toThrow(/RTS_HTTP_PORT/);
  });

  it('defaults need nothing, and only RTS_* variables are read', () => {
    expect(loadConfig({ PATH: '/bin', HTTP_PORT: 'x' })).toMatchObject({ RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: 8080, RTS_EVENT_STORE: 'sqlite' });
  });
});
