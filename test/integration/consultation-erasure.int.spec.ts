import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Fastify, { type FastifyInstance } from 'fastify';
import { DateTime } from 'luxon';
import pino from 'pino';
import { uuidV5 } from '../../src/application/ids';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientDataProtection } from '../../src/application/ports/patient-data-protection';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { TeleMedService } from '../../src/application/telemed';
import { registerConsultationRoutes } from '../../src/adapters/http/consultation-routes';
import { sendProblem, toProblem } from '../../src/adapters/http/problem';
import { loadConfig } from '../../src/bootstrap/config';
import { createConsultationModule, type ConsultationModule } from '../../src/bootstrap/consultation-module';
import { buildContainer, TOKENS } from '../../src/bootstrap/container';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';

/**
 * Crypto-shredding of consultations on the real SQLite store, composed as the hub composes it (the container's
 * key store, PatientErasure and data protection; the consultation module; the HTTP routes): a consultation with an
 * attachment of patient P is requested, declined by one expert (with a reason), accepted and reported by another;
 * P is erased; then no text of it is left in clear in the event rows, the HTTP view shows them erased and the rest
 * of the case is intact. Also: the data protection officer's erasure of one consultation by id, and events written
 * in clear by earlier builds, which stay readable.
 */
const P = '251248-1234';
const QUESTION = 'Zqx suspected aortic dissection, second opinion please';
const SUMMARY = 'Zqx summary: 64 years, chest pain radiating to the back';
const DIAGNOSIS = 'Zqx diagnosis: type B dissection';
const RECOMMENDATIONS = 'Zqx recommendations: CT angiography, blood pressure control';
const DECLINE = 'Zqx decline reason: patient known to me personally';
const TEXTS = [QUESTION, SUMMARY, DIAGNOSIS, RECOMMENDATIONS, DECLINE];

const clock = { now: () => DateTime.utc() };
let n = 0;
const ids = { uuid: () => uuidV5(`consult-erasure/${n++}/${Date.now()}`) };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' as const };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the directory's uplink envelopes, built loosely
const up = (systemId: string, type: string, payload: unknown, key: string): any => ({ id: uuidV5(`ce/${systemId}/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: new Date().toISOString(), payload });

describe('consultation texts on the SQLite store: sealed, and erased with the patient', () => {
  let dir: string;
  let store: EventStore;
  let module: ConsultationModule;
  let erasure: PatientErasure;
  let protection: PatientDataProtection;
  let telemed: TeleMedService;
  let url: string;
  let app: FastifyInstance;
  let stopAll: () => Promise<void>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rts-consult-erasure-'));
    const container = buildContainer(loadConfig({ RTS_DATA_DIR: dir, RTS_AUTH: 'off' }), pino({ level: 'silent' }));
    store = container.get<EventStore>(TOKENS.EventStore);
    erasure = container.get<PatientErasure>(TOKENS.PatientErasure);
    protection = container.get<PatientDataProtection>(TOKENS.PatientDataProtection);
    telemed = container.get<TeleMedService>(TOKENS.TeleMed);
    const directory = createDirectoryModule({ store, clock, ids, logger });
    for (const s of ['xian', 'chengdu', 'beijing']) {
      await directory.service.registerSystem({ systemId: s, name: s, area: s });
      await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
    }
    await directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'li', profile }, 'li'));
    await directory.uplink.handleUplink(up('beijing', 'expert.registered', { localExpertId: 'wang', profile }, 'wang'));
    module = createConsultationModule({ store, clock, ids, logger, directory, protection });
    app = Fastify();
    app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, request.url)));
    registerConsultationRoutes(app, { consultations: module.service });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    stopAll = async () => {
      await app.close();
      await module.stop();
      await directory.stop();
      await store.close();
    };
  });
  afterAll(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every event row's data as stored, for one stream (or all). */
  const rawData = (streamName?: string): string[] => {
    const db = new Database(join(dir, 'telemed.sqlite'), { readonly: true });
    try {
      const rows = streamName === undefined ? db.prepare('SELECT data FROM events').all() : db.prepare('SELECT data FROM events WHERE stream_name = ?').all(streamName);
      return (rows as { data: string }[]).map((r) => r.data);
    } finally {
      db.close();
    }
  };
  const http = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${url}${path}`, { method, ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers checked field by field
    return { statusCode: res.status, json: () => json };
  };
  const view = async (id: string) => (await http('GET', `/consultations/${id}`)).json();

  it('a request with P’s document, a decline, a report: texts sealed in the rows; erasing P leaves none readable, and the case intact', async () => {
    const uniqueId = await telemed.processAndStore(createTeleObservation({ patientId: P, systolic: 150, diastolic: 95, measuredAt: DateTime.utc().minus({ hours: 1 }) }, DateTime.utc()));
    const id = '0c0ffee0-0000-4000-8000-000000000001';
    const svc = module.service;
    await svc.request({ consultationId: id, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: QUESTION, summary: SUMMARY, attachments: [uniqueId] });
    await svc.decline(id, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: DECLINE });
    await svc.accept(id, { expertId: 'beijing:wang', bySystemId: 'beijing' });
    await svc.issueReport(id, { expertId: 'beijing:wang', bySystemId: 'beijing', diagnosis: DIAGNOSIS, recommendations: RECOMMENDATIONS });
    // While P exists: sealed in the rows, in clear in the view; the request names P's pseudonymous key, not the CPR number.
    const rows = rawData(consultationStreamName(id)).join('\n');
    for (const text of TEXTS) expect(rows).not.toContain(text);
    expect(rows).toContain('rts-sealed:v1:');
    expect(rows).not.toContain(P);
    expect(rows).not.toContain(P.replace('-', ''));
    const before = await view(id);
    expect(before).toMatchObject({ clinicalQuestion: QUESTION, summary: SUMMARY, contentErased: false, status: 'reported', report: { diagnosis: DIAGNOSIS, recommendations: RECOMMENDATIONS } });
    expect(before.offers[0].reason).toBe(DECLINE);

    const erased = await erasure.erase(parseCpr(P), { by: 'dpo' });
    await module.projector.catchUp();
    // Nowhere in clear in the store (any stream), nor in the read model's rows.
    const all = rawData().join('\n');
    for (const text of TEXTS) expect(all).not.toContain(text);
    const db = new Database(join(dir, 'telemed.sqlite'), { readonly: true });
    const modelRows = (db.prepare('SELECT row FROM consultations').all() as { row: string }[]).map((r) => r.row).join('\n');
    db.close();
    for (const text of TEXTS) expect(modelRows).not.toContain(text);
    // Nor in the file's bytes: the row as it was, freed when rewritten, stayed in the page's slack space (an outside
    // review read the texts there after the erasure); and the WAL's older frames are folded in and truncated.
    const bytes = ['telemed.sqlite', 'telemed.sqlite-wal'].filter((f) => existsSync(join(dir, f))).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('');
    for (const text of TEXTS) expect({ text, inFile: bytes.includes(text) }).toEqual({ text, inFile: false });
    // The view says erased; the rest of the case is as it was.
    const after = await view(id);
    expect(after).toMatchObject({
      id,
      status: 'reported',
      applicantSystemId: 'xian',
      candidates: ['chengdu:li', 'beijing:wang'],
      attachments: [uniqueId],
      expertId: 'beijing:wang',
      clinicalQuestion: null,
      summary: null,
      contentErased: true,
      report: { expertId: 'beijing:wang', diagnosis: null, recommendations: null, nextResendAt: null },
    });
    expect(after.offers.map((o: { outcome: string; reason: unknown }) => [o.outcome, o.reason])).toEqual([['declined', null], ['accepted', null]]);
    // A rebuild from the events gives the same.
    await module.readModel.reset();
    await module.projector.catchUp();
    expect(await view(id)).toMatchObject({ clinicalQuestion: null, summary: null, contentErased: true, report: { diagnosis: null } });
    // Repeatable (as `rts erasures apply` repeats it by key), and the applicant may still acknowledge.
    await expect(erasure.eraseKey(erased.patientKey, { by: 'dpo', ifUnknown: 'erase' })).resolves.toMatchObject({ alreadyErased: true });
    await expect(svc.acknowledge(id, { bySystemId: 'xian' })).resolves.toMatchObject({ changed: true, consultation: { status: 'acknowledged', contentErased: true } });
    // Nothing more is recorded about P: a new request with P's document is refused.
    await expect(
      svc.request({ applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: QUESTION, summary: '', attachments: [uniqueId] }),
    ).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('DELETE /consultations/{id}/content erases a consultation without attachments; idempotent; 404 for an unknown id; a report after it is 410', async () => {
    const id = '0c0ffee0-0000-4000-8000-000000000002';
    await module.service.request({ consultationId: id, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: QUESTION, summary: SUMMARY });
    await module.service.accept(id, { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    const first = await http('DELETE', `/consultations/${id}/content`);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ erased: true, consultationId: id, alreadyErased: false });
    const again = await http('DELETE', `/consultations/${id}/content`);
    expect(again.json()).toMatchObject({ alreadyErased: true, erasedAt: first.json().erasedAt });
    const rows = rawData(consultationStreamName(id)).join('\n');
    for (const text of [QUESTION, SUMMARY]) expect(rows).not.toContain(text);
    expect(await view(id)).toMatchObject({ status: 'accepted', clinicalQuestion: null, summary: null, contentErased: true });
    const report = await http('POST', `/consultations/${id}/report`, { expertId: 'chengdu:li', diagnosis: DIAGNOSIS });
    expect(report.statusCode).toBe(410);
    expect(report.json()).toMatchObject({ code: 'consultation_erased' });
    const unknown = await http('DELETE', '/consultations/0c0ffee0-0000-4000-8000-0000000000ff/content');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'consultation_not_found' });
  });

  it('long texts, the row rewritten at each step: once erased, no copy of them is left in the file\'s free pages or WAL', async () => {
    // A row of several thousand characters spills onto overflow pages; each step freed the row as it was, and only
    // the erasing batch zeroed what it freed: an outside review read the question and summary in the file after.
    const id = '0c0ffee0-0000-4000-8000-000000000004';
    const long = (marker: string, n: number) => `${marker} ${'Qv'.repeat(n / 2)}`;
    const texts = { clinicalQuestion: long('Zqx-long-question', 3000), summary: long('Zqx-long-summary', 20_000), reason: 'Zqx-long-reason away', diagnosis: long('Zqx-long-diagnosis', 5000), recommendations: long('Zqx-long-recommendations', 12_000) };
    const svc = module.service;
    await svc.request({ consultationId: id, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: texts.clinicalQuestion, summary: texts.summary });
    await module.projector.catchUp();
    await svc.decline(id, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: texts.reason });
    await module.projector.catchUp();
    await svc.accept(id, { expertId: 'beijing:wang', bySystemId: 'beijing' });
    await module.projector.catchUp();
    await svc.issueReport(id, { expertId: 'beijing:wang', bySystemId: 'beijing', diagnosis: texts.diagnosis, recommendations: texts.recommendations });
    await module.projector.catchUp();
    expect(await view(id)).toMatchObject({ status: 'reported', summary: texts.summary });
    expect((await http('DELETE', `/consultations/${id}/content`)).statusCode).toBe(200);
    await module.projector.catchUp();
    const bytes = ['telemed.sqlite', 'telemed.sqlite-wal'].filter((f) => existsSync(join(dir, f))).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('');
    const markers = ['Zqx-long-question', 'Zqx-long-summary', 'Zqx-long-reason', 'Zqx-long-diagnosis', 'Zqx-long-recommendations'];
    expect(markers.filter((m) => bytes.includes(m))).toEqual([]);
  });

  it('reads a consultation written in clear by an earlier build (no erasure reaches it)', async () => {
    const id = '0c0ffee0-0000-4000-8000-000000000003';
    const now = new Date().toISOString();
    await store.appendToStream(consultationStreamName(id), [
      {
        id: uuidV5(`old/${id}/0`),
        type: 'ConsultationRequested',
        data: { consultationId: id, applicantSystemId: 'xian', applicantClinician: 'dr-old', candidates: ['chengdu:li'], clinicalQuestion: 'old question', summary: 'old summary', attachments: [], deadlineSeconds: 3600, reportResend: { intervalSeconds: 3600, maxAttempts: 1 }, correlationId: id, requestedAt: now },
      },
      { id: uuidV5(`old/${id}/1`), type: 'ConsultationOffered', data: { consultationId: id, expertId: 'chengdu:li', offerIndex: 0, offeredAt: now, expiresAt: new Date(Date.now() + 3600_000).toISOString() } },
    ]);
    expect(await view(id)).toMatchObject({ clinicalQuestion: 'old question', summary: 'old summary', contentErased: false });
    // A repeat of the same request is still recognised (the decider compares the clear texts).
    await expect(
      module.service.request({ consultationId: id, applicantSystemId: 'xian', applicantClinician: 'dr-old', candidates: ['chengdu:li'], clinicalQuestion: 'old question', summary: 'old summary' }),
    ).resolves.toMatchObject({ created: false });
    await module.service.decline(id, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: 'new reason' });
    expect(rawData(consultationStreamName(id)).join('\n')).not.toContain('new reason');
    expect((await view(id)).offers[0].reason).toBe('new reason');
    void protection;
  });
});
