import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { DateTime } from 'luxon';
import { uuidV5 } from '../../src/application/ids';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { registerConsultationRoutes } from '../../src/adapters/http/consultation-routes';
import { sendProblem, toProblem } from '../../src/adapters/http/problem';
import { ConsultationResponse, ConsultationsPage, ConsultationWithAttachmentsResponse, MonthlyCounts } from '../../src/adapters/http/response-schemas';
import { InMemoryConsultations } from '../../src/adapters/registry/in-memory-consultations';
import { SqliteConsultations } from '../../src/adapters/registry/sqlite-consultations';
import { Projector } from '../../src/application/projector';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { OpeningConsultations } from '../../src/application/consultation/opening-consultations';
import { createConsultationModule, type ConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { CONSULTATION_EVENT_TYPES } from '../../src/domain/consultation/consultation';
import { PATIENT_A, PATIENT_B, storeCorrection, storeDocument } from '../support/attachable-documents';

// fastify's inject needs `cookie`, which ships as ESM only: hand jest the module as Node loads it (as http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

let now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => uuidV5(`consult-http/${n++}`) };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`http/${systemId}/${key}`), type, version: 1, systemId, correlationId: 'c', time: '2024-05-01T10:00:00Z', payload }) as never;
const ID = '11111111-2222-4333-8444-555555555555';
const QUESTION = 'Suspected aortic dissection; tearing chest pain';

describe('consultations over HTTP and in SQLite', () => {
  let dir: string;
  let store: SqliteEventStore;
  let app: FastifyInstance;
  let module: ConsultationModule;
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rts-consult-'));
    store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite') });
    const directory = createDirectoryModule({ store, clock, ids, logger });
    for (const s of ['xian', 'chengdu', 'beijing']) {
      await directory.service.registerSystem({ systemId: s, name: s, area: s });
      await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
    }
    await directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'li', profile }, 'li'));
    await directory.uplink.handleUplink(up('beijing', 'expert.registered', { localExpertId: 'wang', profile }, 'wang'));
    await storeDocument(store, '1.2.3');
    module = createConsultationModule({ store, clock, ids, logger, directory, protection });
    expect((module.readModel as OpeningConsultations).inner).toBeInstanceOf(SqliteConsultations);
    app = Fastify({ bodyLimit: 16 * 1024 }); // the hub's default RTS_BODY_LIMIT_BYTES
    app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, request.url)));
    registerConsultationRoutes(app, { consultations: module.service });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const body = { consultationId: ID, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: QUESTION, summary: 'CT', attachments: ['1.2.3'] };

  it('creates (201, then 200 for the same), shows, and lists by system, role and state', async () => {
    const created = await app.inject({ method: 'POST', url: '/consultations', payload: body });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe(`/consultations/${ID}`);
    expect(created.json()).toMatchObject({ id: ID, status: 'offered', expertId: 'chengdu:li', offers: [{ expertId: 'chengdu:li', outcome: 'open' }] });
    expect((await app.inject({ method: 'POST', url: '/consultations', payload: body })).statusCode).toBe(200);
    expect((await app.inject({ url: `/consultations/${ID}` })).json()).toMatchObject({ clinicalQuestion: QUESTION });
    expect((await app.inject({ url: '/consultations?system=chengdu&role=expert&state=offered' })).json().items.map((c: { id: string }) => c.id)).toEqual([ID]);
    expect((await app.inject({ url: '/consultations?system=chengdu&role=applicant' })).json().items).toEqual([]);
    expect((await app.inject({ url: '/consultations/aaaaaaaa-0000-4000-8000-000000000000' })).json()).toMatchObject({ status: 404, code: 'consultation_not_found' });
  });

  it('refuses with problem+json and stable codes, without echoing the clinical text', async () => {
    const refusals: [string, object, number, string][] = [
      // A party knows the consultation: it hears what it may not do (the offered expert's system, the applicant's).
      ['accept', { expertId: 'chengdu:zhao' }, 403, 'expert_not_offered'],
      ['accept', { expertId: 'xian:chen' }, 403, 'expert_not_offered'],
      ['report', { expertId: 'chengdu:li', diagnosis: 'd' }, 409, 'consultation_not_accepted'],
      ['acknowledge', { systemId: 'xian' }, 409, 'report_not_issued'],
      ['cancel', { systemId: 'chengdu' }, 403, 'not_your_consultation'],
      // beijing is a later candidate, not offered the case yet: it has no part, and is answered as for an unknown id.
      ['accept', { expertId: 'beijing:wang' }, 404, 'consultation_not_found'],
    ];
    for (const [action, payload, status, code] of refusals) {
      const res = await app.inject({ method: 'POST', url: `/consultations/${ID}/${action}`, payload });
      expect({ status: res.statusCode, code: res.json().code }).toEqual({ status, code });
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const bad = await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: undefined, candidates: ['chengdu:nobody'] } });
    expect(bad.json()).toMatchObject({ code: 'unknown_candidate', errors: [{ path: 'candidates.0' }] });
    expect(bad.body).not.toContain('aortic');
    expect((await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, candidates: [] } })).statusCode).toBe(400);
    // Only a UUID, as in the consultation messages: 'case-2026-0001' was taken and then stopped the downlink.
    for (const consultationId of ['case-2026-0001', '070789-4821xx']) {
      const res = await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId } });
      expect({ status: res.statusCode, errors: res.json().errors }).toEqual({ status: 400, errors: [{ path: 'body.consultationId', message: 'a UUID' }] });
      expect(res.body).not.toContain(consultationId);
    }
  });

  it('answers a system with no part in a consultation as for an id that does not exist, whatever the step', async () => {
    const unknown = 'aaaaaaaa-0000-4000-8000-000000000000';
    const steps: [string, object][] = [
      ['accept', { expertId: 'beijing:wang' }],
      ['decline', { expertId: 'beijing:wang', reason: 'no' }],
      ['report', { expertId: 'beijing:wang', diagnosis: 'd' }],
      ['acknowledge', { systemId: 'beijing' }],
      ['cancel', { systemId: 'beijing' }],
    ];
    for (const [action, payload] of steps) {
      const answer = async (id: string) => {
        const res = await app.inject({ method: 'POST', url: `/consultations/${id}/${action}`, payload });
        const { instance: _instance, ...problem } = res.json();
        return { action, status: res.statusCode, problem };
      };
      const stranger = await answer(ID);
      expect(stranger).toEqual(await answer(unknown));
      expect(stranger).toMatchObject({ status: 404, problem: { code: 'consultation_not_found' } });
    }
    expect((await app.inject({ url: `/consultations/${ID}` })).json()).toMatchObject({ status: 'offered', expertId: 'chengdu:li' }); // nothing changed
  });

  it('decline, accept, report, acknowledge; cancel after the report is refused; counts per month', async () => {
    const decline = await app.inject({ method: 'POST', url: `/consultations/${ID}/decline`, payload: { expertId: 'chengdu:li', reason: 'on leave' } });
    expect(decline.json()).toMatchObject({ expertId: 'beijing:wang', offers: [{ outcome: 'declined', reason: 'on leave' }, { outcome: 'open' }] });
    // chengdu's offer ended, but it took part: a step it may not take is still a 403 (or the offer's own 409).
    expect((await app.inject({ method: 'POST', url: `/consultations/${ID}/cancel`, payload: { systemId: 'chengdu' } })).json()).toMatchObject({ status: 403, code: 'not_your_consultation' });
    expect((await app.inject({ method: 'POST', url: `/consultations/${ID}/accept`, payload: { expertId: 'chengdu:li' } })).json()).toMatchObject({ status: 409, code: 'offer_declined' });
    expect((await app.inject({ method: 'POST', url: `/consultations/${ID}/accept`, payload: { expertId: 'beijing:wang', actionId: 'a1' } })).json()).toMatchObject({ status: 'accepted' });
    // Control characters in a report: each a 6-byte JSON escape, so 110,000 made a report the broker could not carry;
    // it was answered 200 and never delivered. Refused now, and nothing recorded. (After a visible character: a text
    // of control characters only shows nothing, and is refused 400 by the body's schema before.)
    const bells = { expertId: 'beijing:wang', diagnosis: `x${'\u0007'.repeat(9_999)}`, recommendations: `x${'\u0007'.repeat(99_999)}` };
    const refused = await app.inject({ method: 'POST', url: `/consultations/${ID}/report`, payload: bells });
    expect({ status: refused.statusCode, code: refused.json().code, paths: refused.json().errors.map((e: { path: string }) => e.path) }).toEqual({ status: 422, code: 'invalid_report', paths: ['diagnosis', 'recommendations'] });
    expect((await app.inject({ url: `/consultations/${ID}` })).json()).toMatchObject({ status: 'accepted', report: null });
    const report = await app.inject({ method: 'POST', url: `/consultations/${ID}/report`, payload: { expertId: 'beijing:wang', diagnosis: 'Type B', recommendations: 'Transfer' } });
    expect(report.json()).toMatchObject({ status: 'reported', report: { diagnosis: 'Type B', resends: 0 } });
    // As the OpenAPI document describes a consultation (its schema), with offers settled and a report.
    expect(ConsultationResponse.safeParse(report.json()).error?.issues).toBeUndefined();
    expect(ConsultationsPage.safeParse((await app.inject({ url: '/consultations?system=xian' })).json()).error?.issues).toBeUndefined();
    const cancel = await app.inject({ method: 'POST', url: `/consultations/${ID}/cancel`, payload: { systemId: 'xian' } });
    expect(cancel.json()).toMatchObject({ status: 409, code: 'report_already_issued' });

    now = now.plus({ hours: 2 }); // past the default resend interval (1 h)
    expect(await module.deadlines.runOnce()).toBe(1);
    expect((await app.inject({ url: `/consultations/${ID}` })).json().report).toMatchObject({ resends: 1 });
    expect((await app.inject({ method: 'POST', url: `/consultations/${ID}/acknowledge`, payload: { systemId: 'xian' } })).json()).toMatchObject({ status: 'acknowledged' });
    // chengdu's expert declined: it may not read the case (GET 403 at the edge), so a retry of its decline (200, no
    // event) does not answer beijing's report to it either, nor other experts' reasons; its own offer it keeps.
    const retried = await app.inject({ method: 'POST', url: `/consultations/${ID}/decline`, payload: { expertId: 'chengdu:li', reason: 'on leave' } });
    expect(retried.statusCode).toBe(200);
    expect(retried.body).not.toContain('Type B');
    expect(retried.body).not.toContain('Transfer');
    expect(retried.json()).toMatchObject({ status: 'acknowledged', report: null, offers: [{ expertId: 'chengdu:li', outcome: 'declined', reason: 'on leave' }, { expertId: 'beijing:wang', outcome: 'accepted' }] });
    expect(ConsultationResponse.safeParse(retried.json()).error?.issues).toBeUndefined();
    // beijing's (the reader's) own retry of its report still answers the whole case.
    const reported = await app.inject({ method: 'POST', url: `/consultations/${ID}/report`, payload: { expertId: 'beijing:wang', diagnosis: 'Type B', recommendations: 'Transfer' } });
    expect(reported.json()).toMatchObject({ report: { diagnosis: 'Type B', recommendations: 'Transfer' } });

    now = DateTime.fromISO('2024-07-15T10:00:00Z', { zone: 'utc' });
    await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: '22222222-2222-4333-8444-555555555555' } });
    const stats = await app.inject({ url: '/stats/consultations-per-month' });
    expect(stats.json()).toEqual({ items: [{ month: '2024-05', requested: 1 }, { month: '2024-06', requested: 0 }, { month: '2024-07', requested: 1 }] });
    expect(MonthlyCounts.safeParse(stats.json()).error?.issues).toBeUndefined();
    expect((await app.inject({ url: '/stats/consultations-per-month?from=2024-07&to=2024-08' })).json().items).toEqual([{ month: '2024-07', requested: 1 }, { month: '2024-08', requested: 0 }]);
    expect((await app.inject({ url: '/stats/consultations-per-month?from=2024-13' })).statusCode).toBe(400);
    // Over 1200 months: refused, not cut at 1900-1999 without the months that have data.
    for (const q of ['from=1900-01&to=2026-12', 'from=0000-01&to=9999-12', 'from=1900-01']) {
      expect((await app.inject({ url: `/stats/consultations-per-month?${q}` })).json()).toMatchObject({ status: 422, code: 'interval_too_wide' });
    }
    expect((await app.inject({ url: '/stats/consultations-per-month?from=1924-08&to=2024-07' })).json().items).toHaveLength(1200);
  });

  it('the SQLite model answers like the in-memory one, and is rebuilt to the same rows', async () => {
    // Fed as the module feeds its own (texts opened): the events hold them sealed.
    const memory = new OpeningConsultations(new InMemoryConsultations(), protection);
    await new Projector(store, memory).catchUp();
    const sqlite = module.readModel;
    await module.projector.catchUp();
    for (const id of [ID, '22222222-2222-4333-8444-555555555555']) expect(await sqlite.get(id)).toEqual(await memory.get(id));
    for (const q of [{ systemId: 'xian', limit: 10 }, { systemId: 'beijing', role: 'expert' as const, limit: 10 }, { systemId: 'xian', status: 'offered' as const, limit: 1 }]) {
      expect(await sqlite.list(q)).toEqual(await memory.list(q));
    }
    expect(await sqlite.monthlyCounts({})).toEqual(await memory.monthlyCounts({}));
    const due = '2024-08-01T00:00:00Z';
    expect(await sqlite.dueTimers(due, 10)).toEqual(await memory.dueTimers(due, 10));
    expect((await sqlite.dueTimers(due, 10)).map((t) => t.kind)).toEqual(['offer']);

    const before = await sqlite.list({ systemId: 'xian', limit: 10 });
    const readAll = jest.spyOn(store, 'readAll');
    try {
      await module.projector.rebuild();
      // Only consultation events are read (the store skips the directory's), and the checkpoint still reaches the head.
      expect(readAll.mock.calls.length).toBeGreaterThan(0);
      expect(readAll.mock.calls.every(([o]) => o.types !== undefined && [...o.types].every((t) => (CONSULTATION_EVENT_TYPES as readonly string[]).includes(t)))).toBe(true);
    } finally {
      readAll.mockRestore();
    }
    expect(await sqlite.list({ systemId: 'xian', limit: 10 })).toEqual(before);
    expect(await sqlite.checkpoint()).toBe(await store.headPosition());

    // Pages: newest first, keyset cursor.
    const page1 = (await app.inject({ url: '/consultations?system=xian&limit=1' })).json();
    expect(page1.items.map((c: { id: string }) => c.id)).toEqual(['22222222-2222-4333-8444-555555555555']);
    const page2 = (await app.inject({ url: `/consultations?system=xian&limit=1&cursor=${page1.nextCursor}` })).json();
    expect(page2.items.map((c: { id: string }) => c.id)).toEqual([ID]);
    expect(page2.nextCursor).toBeNull();
    const empty = await app.inject({ url: '/consultations?system=xian&limit=1&cursor=' }); // the first page
    expect({ status: empty.statusCode, body: empty.json() }).toEqual({ status: 200, body: page1 });
  });

  it('takes texts up to their documented lengths under the hub-wide 16 KiB body limit', async () => {
    const id = '55555555-2222-4333-8444-555555555555';
    const summary = '\u00e9\u4e2d'.repeat(50_000); // 100,000 characters, 250,000 bytes of UTF-8
    const res = await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: id, summary } });
    expect(res.statusCode).toBe(201);
    expect((await app.inject({ url: `/consultations/${id}` })).json().summary).toHaveLength(100_000);
    // Other consultation routes keep the hub-wide limit.
    expect((await app.inject({ method: 'POST', url: `/consultations/${id}/decline`, payload: { expertId: 'chengdu:li', reason: 'x'.repeat(20_000) } })).statusCode).toBe(413);
  });

  it("logs the steps on a consultation with the consultation's correlation id, refused ones too", async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({ write: (chunk: Buffer, _e, done) => (chunk.toString('utf8').split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))), done()) });
    const logged = Fastify({ loggerInstance: pino({ level: 'info' }, stream) as unknown as FastifyBaseLogger });
    logged.setErrorHandler((error, request, reply) => {
      const p = toProblem(error, request.url);
      request.log.info({ problem: p.code }, 'request refused'); // as server.ts
      return sendProblem(reply, p);
    });
    registerConsultationRoutes(logged, { consultations: module.service });
    try {
      const { correlationId } = (await logged.inject({ url: `/consultations/${ID}` })).json();
      expect(correlationId).toEqual(expect.any(String));
      const refused = await logged.inject({ method: 'POST', url: `/consultations/${ID}/decline`, payload: { expertId: 'beijing:wang' } });
      expect(refused.json().code).toBe('consultation_already_accepted');
      expect(lines.filter((l) => l.msg === 'request refused').map((l) => l.correlationId)).toEqual([correlationId]);
    } finally {
      await logged.close();
    }
  });

  it("one expert's actionId does not swallow another expert's step; an id reused for another step is refused", async () => {
    const id = '33333333-2222-4333-8444-555555555555';
    expect((await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: id } })).statusCode).toBe(201);
    const first = await app.inject({ method: 'POST', url: `/consultations/${id}/decline`, payload: { expertId: 'chengdu:li', reason: 'busy', actionId: '1' } });
    expect(first.json()).toMatchObject({ expertId: 'beijing:wang' });
    const second = await app.inject({ method: 'POST', url: `/consultations/${id}/decline`, payload: { expertId: 'beijing:wang', reason: 'busy too', actionId: '1' } });
    expect(second.statusCode).toBe(200);
    // Unassigned: beijing may no longer read the case, so chengdu's reason is not in beijing's answer (its own is).
    expect(second.json()).toMatchObject({ status: 'unassigned', offers: [{ outcome: 'declined', reason: null }, { outcome: 'declined', reason: 'busy too' }] });
    expect((await app.inject({ url: `/consultations/${id}` })).json()).toMatchObject({ offers: [{ reason: 'busy' }, { reason: 'busy too' }] });

    // The same command id for another expert's step (e.g. an uplink message id sent twice by different systems).
    const other = '44444444-2222-4333-8444-555555555555';
    await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: other } });
    await module.service.decline(other, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: '' }, { commandId: 'reused' });
    await expect(module.service.decline(other, { expertId: 'beijing:wang', bySystemId: 'beijing', reason: '' }, { commandId: 'reused' })).rejects.toMatchObject({ code: 'action_id_reused' });
    expect((await app.inject({ url: `/consultations/${other}` })).json()).toMatchObject({ status: 'offered', expertId: 'beijing:wang' });
  });

  // These run last: the months' counts and the listings above count the requests made before them.
  it('refuses attachments that are not registered, replaced by a correction, or of two patients (422, naming the place, never a patient)', async () => {
    await storeDocument(store, '2.25.100', PATIENT_A);
    await storeDocument(store, '2.25.200', PATIENT_B);
    await storeDocument(store, '2.25.300', PATIENT_A);
    await storeCorrection(store, '2.25.300', '2.25.301', PATIENT_A);
    const ask = (attachments: string[]) =>
      app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: 'a1a1a1a1-2222-4333-8444-555555555555', attachments } });
    const cases: [string[], string, { path: string; message: string }[], RegExp][] = [
      [['2.25.100', '2.25.1234567890'], 'unknown_attachment', [{ path: 'attachments.1', message: 'no document of this hub has this uniqueId' }], /not a document registered/],
      [['2.25.300'], 'attachment_replaced', [{ path: 'attachments.0', message: 'replaced by a correction; attach its current version 2.25.301' }], /attachments\.0 by 2\.25\.301/],
      [['2.25.100', '2.25.200'], 'attachments_of_several_patients', [{ path: 'attachments.1', message: 'of another patient than attachments.0' }], /more than one patient/],
    ];
    for (const [attachments, code, errors, detail] of cases) {
      const res = await ask(attachments);
      expect({ status: res.statusCode, code: res.json().code, errors: res.json().errors }).toEqual({ status: 422, code, errors });
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.json()).toMatchObject({ type: `/problems/${code}` });
      expect(res.json().detail).toMatch(detail);
      expect(res.body).not.toMatch(/p[ab]{32}|aortic/);
    }
    // Nothing was stored; the current version is taken.
    expect((await app.inject({ url: '/consultations/a1a1a1a1-2222-4333-8444-555555555555' })).statusCode).toBe(404);
    expect((await ask(['2.25.301', '2.25.100'])).statusCode).toBe(201);
  });

  it('GET shows each attachment Approved, then Deprecated with its replacement once corrected; a retried request is still 200', async () => {
    const id = 'b2b2b2b2-2222-4333-8444-555555555555';
    await storeDocument(store, '2.25.400', PATIENT_A);
    await storeDocument(store, '2.25.500', PATIENT_A);
    const request = { ...body, consultationId: id, attachments: ['2.25.400', '2.25.500'] };
    expect((await app.inject({ method: 'POST', url: '/consultations', payload: request })).statusCode).toBe(201);
    const before = await app.inject({ url: `/consultations/${id}` });
    expect(ConsultationWithAttachmentsResponse.safeParse(before.json()).success).toBe(true);
    expect(before.json().attachmentStatus).toEqual([
      { uniqueId: '2.25.400', status: 'Approved', replacedBy: null, currentVersion: '2.25.400' },
      { uniqueId: '2.25.500', status: 'Approved', replacedBy: null, currentVersion: '2.25.500' },
    ]);
    // Corrected twice while the expert works on the case.
    await storeCorrection(store, '2.25.400', '2.25.401', PATIENT_A);
    await storeCorrection(store, '2.25.401', '2.25.402', PATIENT_A);
    const after = await app.inject({ url: `/consultations/${id}` });
    expect(after.json().attachments).toEqual(['2.25.400', '2.25.500']);
    expect(after.json().attachmentStatus).toEqual([
      { uniqueId: '2.25.400', status: 'Deprecated', replacedBy: '2.25.401', currentVersion: '2.25.402' },
      { uniqueId: '2.25.500', status: 'Approved', replacedBy: null, currentVersion: '2.25.500' },
    ]);
    // The applicant's retry of the request it made before the correction is answered as then.
    const retried = await app.inject({ method: 'POST', url: '/consultations', payload: request });
    expect({ status: retried.statusCode, id: retried.json().id }).toEqual({ status: 200, id });
  });

  it('a request under a stored id with another deadline is 409 consultation_id_reused naming deadlineSeconds; the same deadline, or none, is 200', async () => {
    const id = 'd1d1d1d1-2222-4333-8444-555555555555';
    expect((await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: id, deadlineSeconds: 600 } })).statusCode).toBe(201);
    const res = await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: id, deadlineSeconds: 7200 } });
    expect(res.statusCode).toBe(409);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 409, code: 'consultation_id_reused', errors: [{ path: 'deadlineSeconds', message: "differs from the stored request's (600)" }] });
    expect(res.json().detail).toContain('deadlineSeconds 600');
    expect(res.body).not.toContain('aortic');
    for (const deadlineSeconds of [600, undefined]) {
      const again = await app.inject({ method: 'POST', url: '/consultations', payload: { ...body, consultationId: id, deadlineSeconds } });
      expect({ status: again.statusCode, deadlineSeconds: again.json().deadlineSeconds }).toEqual({ status: 200, deadlineSeconds: 600 });
    }
  });
});
