jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DateTime } from 'luxon';
import pino from 'pino';
import { run } from '../../src/adapters/cli/run';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { PatientExportResponse } from '../../src/adapters/http/response-schemas';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { loadConfig } from '../../src/bootstrap/config';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { openTeleMed, parseCpr } from '../../src';
import { tempDataDir } from '../support/hub-process';

/**
 * POST /patients/export and `rts export` against the hub as `npm start` composes it (startHub, the embedded SQLite
 * store, access control on, no broker): two patients upload, one corrects a reading, a consultation attaches a
 * document of each, is declined with a reason and reported. Then the export: its content, who may ask for it, its
 * own audit event, an unknown and an erased patient, the CLI writing it to a file of mode 0600, and no CPR number in
 * the hub's log.
 */
const A = '251248-1234';
const B = '010203-2345';
const NOBODY = '150381-6613';
const QUESTION = 'Zqx: rising morning pressure, second opinion please';
const DECLINE = 'Zqx: on leave';
const DIAGNOSIS = 'Zqx: white-coat effect unlikely';

const data = tempDataDir('rts-export-int-');
const out = tempDataDir('rts-export-out-');
const logLines: string[] = [];
let hub: RunningHub;

const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`export-int/${systemId}/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: new Date().toISOString(), payload }) as unknown as UplinkEnvelope;

beforeAll(async () => {
  // The directory the consultation needs (systems join and register experts over the broker, which this hub has not):
  // written into the store first, as a hub with a broker would have.
  const store = SqliteEventStore.open({ file: join(data.dir, DATA_FILES.events) });
  let n = 0;
  const directory = createDirectoryModule({ store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => uuidV5(`export-int-ids/${n++}`) }, logger: { warn: () => undefined, error: () => undefined } });
  for (const s of ['aarhus', 'odense', 'aalborg']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  await directory.uplink.handleUplink(up('odense', 'expert.registered', { localExpertId: 'hansen', profile }, 'hansen'));
  await directory.uplink.handleUplink(up('aalborg', 'expert.registered', { localExpertId: 'berg', profile }, 'berg'));
  await directory.stop();
  await store.close();
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(chunk.toString('utf8')), done()) }));
  hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on' }), logger);
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
  out.remove();
});

type Answer = { status: number; headers: Headers; body: any };
const call = async (method: string, path: string, token: string | null, body?: unknown, contentType = 'application/json'): Promise<Answer> => {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
};
const login = async (claims: Record<string, string>): Promise<string> => {
  const res = await call('POST', '/auth/dev-login', null, claims);
  expect(res.status).toBe(200);
  return res.body.token as string;
};
const exportOf = (token: string, patient: unknown) => call('POST', '/patients/export', token, { patient });

describe('POST /patients/export on the embedded store', () => {
  let patientA: string, patientB: string, operator: string, clinician: string, system: string;
  let docA1: string, docA2: string, docB: string, correction: string;
  const consultationId = '7a1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f10';

  beforeAll(async () => {
    patientA = await login({ role: 'patient', patient: A });
    patientB = await login({ role: 'patient', patient: B });
    operator = await login({ role: 'operator', sub: 'dpo-jensen' });
    clinician = await login({ role: 'clinician', systemId: 'aalborg', sub: 'dr-berg' });
    system = await login({ role: 'system', systemId: 'aarhus' });
    const at = (hoursAgo: number) => DateTime.utc().minus({ hours: hoursAgo }).startOf('second').toISO({ suppressMilliseconds: true })!;
    const upload = async (token: string, patientId: string, systolic: number, measuredAt: string) => {
      const res = await call('POST', '/observations', token, { patientId, systolic, diastolic: 80, measuredAt, observationId: `o-${systolic}` });
      expect(res.status).toBe(201);
      return res.body.uniqueId as string;
    };
    // The correction keeps the reading's time: the same string, not at(30) again, which a second boundary
    // between the two calls made a second later (CI saw the two then ordered by time, not by uniqueId).
    const firstReadingAt = at(30);
    docA1 = await upload(patientA, A, 150, firstReadingAt);
    docA2 = await upload(patientA, A, 131, at(20));
    docB = await upload(patientB, B, 142, at(10));
    const fixed = await call('POST', `/documents/${docA1}/corrections`, patientA, { systolic: 145, diastolic: 80, measuredAt: firstReadingAt, correctionId: 'fix-1' });
    expect(fixed.status).toBe(201);
    correction = fixed.body.uniqueId;
    const aalborg = await login({ role: 'system', systemId: 'aalborg' });
    const odense = await login({ role: 'system', systemId: 'odense' });
    const requested = await call('POST', '/consultations', system, { consultationId, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['odense:hansen', 'aalborg:berg'], clinicalQuestion: QUESTION, summary: 'S', attachments: [docA2] });
    expect(requested.status).toBe(201);
    expect((await call('POST', `/consultations/${consultationId}/decline`, odense, { expertId: 'odense:hansen', reason: DECLINE })).status).toBe(200);
    expect((await call('POST', `/consultations/${consultationId}/accept`, aalborg, { expertId: 'aalborg:berg' })).status).toBe(200);
    expect((await call('POST', `/consultations/${consultationId}/report`, aalborg, { expertId: 'aalborg:berg', diagnosis: DIAGNOSIS, recommendations: 'R' })).status).toBe(200);
    // B's own consultation (a request is about one patient: one with both patients' documents is refused).
    const ofB = '7a1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f11';
    expect((await call('POST', '/consultations', system, { consultationId: ofB, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['aalborg:berg'], clinicalQuestion: QUESTION, summary: 'S', attachments: [docB] })).status).toBe(201);
    expect((await call('POST', `/consultations/${ofB}/accept`, aalborg, { expertId: 'aalborg:berg' })).status).toBe(200);
    expect((await call('POST', `/consultations/${ofB}/report`, aalborg, { expertId: 'aalborg:berg', diagnosis: DIAGNOSIS, recommendations: 'R' })).status).toBe(200);
  });

  it("gives the patient their own data: every reading with its correction, the consultation with their document only, the audit trail", async () => {
    const res = await exportOf(patientA, A);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const parsed = PatientExportResponse.safeParse(res.body);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
    const e = res.body;
    expect(e).toMatchObject({ format: 'telemed-rts/patient-export', formatVersion: 1, patient: { cpr: A }, erasure: null });
    expect(Date.now() - Date.parse(e.exportedAt)).toBeLessThan(60_000);
    expect(e.patient.patientKey).toMatch(/^p[0-9a-f]{32}$/);
    expect(e.observations.map((o: any) => [o.uniqueId, o.status, o.systolic.value, o.replaces, o.replacedBy])).toEqual([
      ...[
        [docA1, 'deprecated', 150, null, correction],
        [correction, 'current', 145, docA1, null],
      ].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
      [docA2, 'current', 131, null, null],
    ]);
    expect(e.consultations).toHaveLength(1);
    expect(e.consultations[0]).toMatchObject({
      consultationId,
      status: 'reported',
      requesting: { systemId: 'aarhus', clinician: 'dr-aarhus' },
      answering: { expertId: 'aalborg:berg', systemId: 'aalborg' },
      attachments: [docA2],
      otherAttachments: 0,
      contentErased: false,
      texts: { clinicalQuestion: QUESTION, declineReasons: [{ expertId: 'odense:hansen', reason: DECLINE }], report: { diagnosis: DIAGNOSIS } },
    });
    // Their uploads and correction, as the trail recorded them: who, what, when, how it ended.
    const actions = e.audit.entries.map((x: any) => `${x.action}:${x.outcome}`);
    expect(actions.filter((a: string) => a === 'observations.write:allowed')).toHaveLength(2);
    expect(actions).toContain('document.correct:allowed');
    expect(e.audit.count).toBe(e.audit.entries.length);
    // Nothing of the other patient: not their CPR number, key, document or readings.
    const text = JSON.stringify(e);
    expect(text).not.toContain(B);
    expect(text).not.toContain(docB);
    expect(text).not.toContain((await exportOf(patientB, B)).body.patient.patientKey);
    expect(text.split(A)).toHaveLength(2); // the CPR number once, where it was asked for
  });

  it("refuses another patient's token, clinicians and systems (403); lets an operator (the DPO) export any patient", async () => {
    const refused = await exportOf(patientB, A);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body).toMatchObject({ code: 'forbidden' });
    expect(JSON.stringify(refused.body)).not.toContain(A);
    expect((await exportOf(clinician, A)).status).toBe(403);
    expect((await exportOf(system, A)).status).toBe(403);
    expect((await call('POST', '/patients/export', null, { patient: A })).status).toBe(401);
    const byDpo = await exportOf(operator, A);
    expect(byDpo.status).toBe(200);
    expect(byDpo.body.observations).toHaveLength(3);
  });

  it('records each export, allowed or refused, as patient.export under the patient’s key; the next export lists them', async () => {
    const res = await call('POST', '/audit/search', operator, { patient: A });
    const exports = (res.body.items as any[]).filter((x) => x.action === 'patient.export');
    expect(exports.map((x) => [x.subject, x.outcome, x.status])).toEqual(
      expect.arrayContaining([
        [expect.stringMatching(/^patient-[0-9a-f]{12}$/), 'allowed', 200],
        [expect.stringMatching(/^patient-[0-9a-f]{12}$/), 'denied', 403],
        ['dr-berg', 'denied', 403],
        ['dpo-jensen', 'allowed', 200],
      ]),
    );
    expect(exports.every((x) => x.patientKey === res.body.patientKey)).toBe(true);
    const again = await exportOf(patientA, A);
    expect(again.body.audit.entries.filter((x: any) => x.action === 'patient.export' && x.subject === 'dpo-jensen')).toEqual([expect.objectContaining({ role: 'operator', outcome: 'allowed', status: 200 })]);
    // Patient B's refused attempt is in A's trail, but not B's pseudonym (a piece of B's key, the same in every trail).
    const bSubject = exports.find((x) => x.role === 'patient' && x.outcome === 'denied')!.subject as string;
    const entries = again.body.audit.entries as any[];
    expect(JSON.stringify(entries)).not.toContain(bSubject);
    expect(entries.filter((x) => x.action === 'patient.export' && x.role === 'patient' && x.outcome === 'denied')).toEqual([expect.objectContaining({ subject: 'another patient', status: 403 })]);
    expect(entries.filter((x) => x.action === 'patient.export' && x.role === 'patient' && x.outcome === 'allowed').map((x) => x.subject)).toContain(
      exports.find((x) => x.role === 'patient' && x.outcome === 'allowed')!.subject,
    );
  });

  it('answers problems as the other routes do: malformed CPR 422, wrong shape 400, XML 415, GET 405; unknown patient 404, audited', async () => {
    expect((await exportOf(operator, '251348-1234')).body).toMatchObject({ code: 'invalid_patient_id', status: 422, errors: [{ path: 'body.patient' }] });
    expect((await exportOf(patientA, 'abc')).body).toMatchObject({ code: 'invalid_patient_id' });
    expect((await call('POST', '/patients/export', operator, { patientId: A })).body).toMatchObject({ code: 'invalid_request', status: 400 });
    expect((await call('POST', '/patients/export', operator, '<patient/>', 'application/xml')).status).toBe(415);
    const get = await call('GET', '/patients/export', operator);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    // DELETE reached the deprecated erasure DELETE /patients/{cpr} with "export" as the number (422 invalid_patient_id).
    // /patients/export is the export: DELETE is a method it does not answer, as PUT and GET, with or without a token
    // (as any route that does not exist; nothing is read, erased or audited).
    for (const [method, token] of [['DELETE', operator], ['DELETE', null], ['PUT', operator], ['PATCH', null]] as const) {
      const answer = await call(method, '/patients/export?unknown=erase', token);
      expect({ method, status: answer.status, allow: answer.headers.get('allow'), code: answer.body.code }).toEqual({ method, status: 405, allow: 'POST', code: 'method_not_allowed' });
      // Nor does it carry the deprecated erasure's Deprecation and Link: that route did not answer.
      expect({ method, deprecation: answer.headers.get('deprecation'), link: answer.headers.get('link') }).toEqual({ method, deprecation: null, link: null });
    }
    // Spelt with percent-escapes of plain letters, it is the same path (RFC 3986 6.2.2.2), not a patient "export".
    for (const path of ['/patients/%65xport', '/patients/%65%78%70ort', '/%70atients/export']) {
      const answer = await call('DELETE', `${path}?unknown=erase`, operator);
      expect({ path, status: answer.status, code: answer.body.code }).toEqual({ path, status: 405, code: 'method_not_allowed' });
    }
    expect((await call('POST', '/audit/search', operator, { user: 'dpo-jensen' })).body.items.filter((x: any) => x.action === 'patient.erase')).toEqual([]);
    const unknown = await exportOf(operator, NOBODY);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'unknown_patient' });
    expect(JSON.stringify(unknown.body)).not.toContain(NOBODY);
    const trail = await call('GET', `/audit?patient=${NOBODY}`, operator);
    expect(trail.body.items.map((x: any) => [x.action, x.outcome, x.reason])).toEqual([['patient.export', 'error', 'unknown_patient']]);
    // Nothing was recorded of them but that: an erasure still finds them unknown.
    expect((await call('DELETE', `/patients/${NOBODY}`, operator)).body).toMatchObject({ code: 'unknown_patient' });
  });

  it('rts export writes the export to a file of mode 0600, and refuses to overwrite one', async () => {
    const file = join(out.dir, 'export-a.json');
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: { RTS_URL: hub.url, RTS_TOKEN: patientA } };
    expect(await run(['export', '--patient', A, '--out', file], io)).toBe(EXIT.ok);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    expect(saved).toMatchObject({ format: 'telemed-rts/patient-export', patient: { cpr: A } });
    expect(saved.observations).toHaveLength(3);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/3 readings, 1 consultation, \d+ audit entries/);
    expect(stderr).not.toContain(A);
    writeFileSync(join(out.dir, 'taken.json'), 'keep me');
    stderr = '';
    expect(await run(['export', '--patient', A, '--out', join(out.dir, 'taken.json')], io)).toBe(EXIT.usage);
    expect(readFileSync(join(out.dir, 'taken.json'), 'utf8')).toBe('keep me');
    // Another patient's token: the hub's refusal, and no file.
    const refusedFile = join(out.dir, 'export-b.json');
    expect(await run(['export', '--patient', B, '--out', refusedFile], io)).toBe(EXIT.refused);
    expect(existsSync(refusedFile)).toBe(false);
  });

  it("exports an erased patient as erased: no readings, the consultation's texts marked erased, the audit trail kept", async () => {
    const erased = await call('DELETE', `/patients/${A}`, operator);
    expect(erased.status).toBe(200);
    const res = await exportOf(operator, A);
    expect(res.status).toBe(200);
    expect(res.body.erasure).toEqual({ erasedAt: erased.body.erasedAt });
    expect(res.body.observations).toEqual([]);
    expect(res.body.consultations).toEqual([expect.objectContaining({ consultationId, attachments: [docA2], otherAttachments: 0, contentErased: true, texts: null })]);
    expect(JSON.stringify(res.body)).not.toContain('Zqx');
    expect(res.body.audit.entries.map((x: any) => x.action)).toContain('patient.erase');
    // The patient's own token still reaches what is left of them.
    expect((await exportOf(patientA, A)).status).toBe(200);
  });

  it("the embedded library on the hub's data directory exports what the hub exports, consultations included", async () => {
    const overHttp: Record<string, any> = { [A]: (await exportOf(operator, A)).body, [B]: (await exportOf(operator, B)).body };
    await hub.stop(); // one process per embedded store
    const rts = await openTeleMed({ dataDir: data.dir });
    try {
      for (const cpr of [A, B]) {
        const http = overHttp[cpr];
        const lib = await rts.exportPatient(parseCpr(cpr), { by: 'dpo-library' });
        // The library runs no consultation read model: it folds each consultation's stream as the projection does,
        // and ends as the hub's live view did. Its texts were erased (A's erasure) before this fold, so its events
        // already open as erased; the erasure event still moves updatedAt to the erasure's time (before 2026-12-03
        // it did not, and the library's export said the report's time where the hub's said the erasure's).
        expect(lib.consultations).toHaveLength(1);
        expect(lib.consultations).toEqual(http.consultations);
        expect({ ...lib, exportedAt: null, audit: null, consultations: null }).toEqual({ ...http, exportedAt: null, audit: null, consultations: null });
        // The hub's trail, and the HTTP export just made (recorded after its answer).
        expect(lib.audit.entries).toEqual([...http.audit.entries, expect.objectContaining({ action: 'patient.export', subject: 'dpo-jensen', role: 'operator', outcome: 'allowed' })]);
      }
      expect((await rts.exportPatient(parseCpr(B), { by: 'dpo-library' })).audit.entries.filter((x) => x.role === 'library')).toEqual([
        expect.objectContaining({ action: 'patient.export', subject: 'dpo-library', outcome: 'allowed', status: 200 }),
      ]);
    } finally {
      await rts.close();
    }
  });

  it("never wrote a CPR number to the hub's log", () => {
    const log = logLines.join('');
    expect(log).toContain('"route":"/patients/export"');
    for (const cpr of [A, B, NOBODY]) {
      expect(log).not.toContain(cpr);
      expect(log).not.toContain(cpr.replace('-', ''));
    }
  });
});
