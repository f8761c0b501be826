import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeDateAt } from './fake-date';

/**
 * What an older build answered for the data it wrote (test/fixtures/upgrade/<sha>/answers.json, made by the upgrade
 * drill, see that fixture's README), held against this build started on the same store. `as(who)` calls this hub
 * as a patient, a system or an operator (a token, or nothing with access control off).
 */
export type Who = Readonly<{ role: 'patient'; patient: string } | { role: 'system'; systemId: string } | { role: 'operator' }>;
export type Call = (who: Who, method: string, path: string, body?: object) => Promise<{ status: number; headers: Headers; body: any }>;

export const [P1, P2, P3, P4] = ['251248-1234', '150375-4321', '120485-1122', '030303-3033'] as const;
const OPERATOR: Who = { role: 'operator' };
const cityA: Who = { role: 'system', systemId: 'city-a' };
const cityB: Who = { role: 'system', systemId: 'city-b' };
const patient = (cpr: string): Who => ({ role: 'patient', patient: cpr });
const ownerOf = (doc: string) => [P1, P2, P3, P4][Number(/-p(\d)-/.exec(doc)![1]) - 1]!; // obs-p1-2, corr-p2-2: patient 1, 2

/**
 * The instant the hub under test takes for now: the day the fixtures were written (2026-12-03, their events
 * 09:41-10:01 UTC), two hours after. Their answers hold for that day: the offers in them ran 24 hours, and from
 * 2026-12-04 09:41 this build refused to accept them (409 offer_expired, as it should) while its deadline runner moved
 * them on 30 s after start, so the answers the tests compare changed under them. Only `Date` is replaced (fakeDateAt).
 */
export const FIXTURE_NOW = '2026-12-03T12:00:00.000Z';

export const runOnFixtureDay = (): void => fakeDateAt(FIXTURE_NOW);

export const readAnswers = (fixtureDir: string): any => JSON.parse(readFileSync(join(fixtureDir, 'answers.json'), 'utf8'));

/** A caller over fetch: `token(who)` gives the Authorization header's token, or null for none. */
export const caller =
  (url: () => string, token: (who: Who) => Promise<string | null>): Call =>
  async (who, method, path, body) => {
    const t = await token(who);
    const res = await fetch(`${url()}${path}`, {
      method,
      headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
  };

const readings = (call: Call, cpr: string) => call(patient(cpr), 'POST', '/observations/search', { patientId: cpr, from: '2026-11-01T00:00:00Z', to: '2026-12-31T00:00:00Z' });

export const expectReadingsAndDocuments = async (call: Call, answers: any): Promise<void> => {
  for (const cpr of [P1, P2, P4]) expect(await readings(call, cpr)).toMatchObject({ status: 200, body: { observations: answers.patients[cpr] } });
  expect((await readings(call, P3)).status).toBe(answers.patients[P3]); // erased by the old build: 410
  for (const [name, doc] of Object.entries<any>(answers.documents)) {
    const res = await call(patient(ownerOf(name)), 'GET', `/documents/${doc.uniqueId}`);
    if (doc.httpStatus) expect([name, res.status]).toEqual([name, doc.httpStatus]);
    else expect([name, res.status, res.headers.get('etag'), res.headers.get('x-document-status'), res.headers.get('link')]).toEqual([name, 200, doc.etag, doc.status, doc.link]);
  }
};

export const expectDirectoryConsultationsAudit = async (call: Call, answers: any): Promise<void> => {
  expect((await call(OPERATOR, 'GET', '/experts')).body.items).toMatchObject(answers.experts);
  expect((await call(OPERATOR, 'GET', '/systems')).body.items).toMatchObject(answers.systems);
  for (const [id, kids] of Object.entries<string[]>(answers.systemKeys)) expect((await call(OPERATOR, 'GET', `/systems/${id}/keys`)).body.items.map((k: { kid: string }) => k.kid)).toEqual(kids);
  for (const [name, { diagnosis, ...c }] of Object.entries<any>(answers.consultations)) {
    const res = await call(cityA, 'GET', `/consultations/${c.id}`);
    expect([name, res.status, res.body]).toMatchObject([name, 200, { ...c, report: diagnosis === null ? null : { diagnosis }, contentErased: false }]);
  }
  expect((await call(OPERATOR, 'GET', '/stats/consultations-per-month')).body.items).toEqual(answers.consultationsPerMonth);
  expect((await call(OPERATOR, 'GET', '/erasures')).body).toMatchObject({ count: 1, items: [{ kind: 'patient' }] });
  // The old build's day (this hub's own reads add events, and chains when run that day).
  const verify = await call(OPERATOR, 'GET', '/audit/verify?from=2026-12-03T00:00:00Z&to=2026-12-04T00:00:00Z');
  expect(verify.body).toMatchObject({ ok: true, breaks: [] });
  expect(verify.body.chains).toBeGreaterThanOrEqual(answers.audit.chains);
  expect(verify.body.events).toBeGreaterThanOrEqual(answers.audit.events);
};

export const expectNewWrites = async (call: Call, answers: any): Promise<void> => {
  const old = answers.documents['obs-p1-1'];
  const [oldReading] = answers.patients[P1];
  const p1 = patient(P1);
  expect((await call(p1, 'POST', '/observations', { observationId: 'obs-p1-new', patientId: P1, systolic: 128, diastolic: 71 })).status).toBe(201);
  expect(await call(p1, 'POST', '/observations', { observationId: 'obs-p1-1', patientId: P1, systolic: 126, diastolic: 70, measuredAt: oldReading.measuredAt })).toMatchObject({ status: 200, body: { uniqueId: old.uniqueId } });
  expect((await call(p1, 'POST', `/documents/${old.uniqueId}/corrections`, { correctionId: 'corr-p1-1', systolic: 127, diastolic: 71, measuredAt: oldReading.measuredAt })).status).toBe(201);
  expect(await call(cityB, 'POST', `/consultations/${answers.consultations.offered.id}/accept`, { expertId: 'city-b:e1' })).toMatchObject({ status: 200, body: { status: 'accepted' } });
  if (answers.consultations.legacy) expect(await call(cityB, 'POST', `/consultations/${answers.consultations.legacy.id}/accept`, { expertId: 'city-b:e2' })).toMatchObject({ status: 200, body: { status: 'accepted' } });
  expect(await call(cityA, 'POST', `/consultations/${answers.consultations.reported.id}/acknowledge`, { systemId: 'city-a' })).toMatchObject({ status: 200, body: { status: 'acknowledged' } });
};

/** The old build's requests recorded no patient keys; the attachment's own document stream names the patient's key. */
export const expectAttachedConsultationErasedWithPatient = async (call: Call, answers: any): Promise<void> => {
  const attached = answers.consultations.attached;
  expect(attached.attachments).toEqual([answers.documents['obs-p1-1'].uniqueId]);
  // The answer names it as one whose texts stay in clear in its events (that build did not seal them).
  expect(await call(OPERATOR, 'POST', '/erasures', { patient: P1 })).toMatchObject({ status: 200, body: { consultationsWithTextsLeftInEvents: [attached.id] } });
  expect((await call(cityA, 'GET', `/consultations/${attached.id}`)).body).toMatchObject({ contentErased: true, clinicalQuestion: null, summary: null });
  // A consultation without attachments is reached by no patient; erased by id, it is said to be left in clear too.
  const offered = answers.consultations.offered.id;
  expect((await call(cityA, 'GET', `/consultations/${offered}`)).body).toMatchObject({ contentErased: false });
  expect(await call(OPERATOR, 'DELETE', `/consultations/${offered}/content`)).toMatchObject({ status: 200, body: { erased: true, textsLeftInEvents: true } });
};

/**
 * A consultation the old build stored, attached to a reading of P1 (its request recorded no patient keys, nor does its
 * row: the key comes from the attachment's document stream): read by id and in a page of GET /consultations, each read
 * is audited under P1's key, so P1's export lists both, and P2's lists neither.
 */
export const expectOldConsultationReadsAuditedUnderItsPatient = async (call: Call, answers: any): Promise<void> => {
  const attached = answers.consultations.attached;
  const exported = async (cpr: string) => {
    const res = await call(OPERATOR, 'POST', '/patients/export', { patient: cpr });
    expect(res.status).toBe(200);
    return (res.body.audit.entries as { action: string; resource: string | null; subject: string; role: string; systemId: string | null; outcome: string; status: number }[]).filter((e) => e.resource === attached.id);
  };
  const readsOf = async (cpr: string) => (await exported(cpr)).filter((e) => e.action === 'consultation.read');
  const before = (await readsOf(P1)).length;
  expect((await call(cityA, 'GET', `/consultations/${attached.id}`)).status).toBe(200);
  expect(await readsOf(P1)).toHaveLength(before + 1);
  const page = await call(cityA, 'GET', '/consultations?system=city-a');
  expect(page.status).toBe(200);
  expect(page.body.items.map((c: { id: string }) => c.id)).toContain(attached.id);
  const reads = await readsOf(P1);
  expect(reads).toHaveLength(before + 2);
  // The caller as this hub knows it (a system's token, or anonymous with access control off), both reads alike.
  const [byId, inPage] = reads.slice(before);
  expect(byId).toMatchObject({ outcome: 'allowed', status: 200 });
  expect(inPage).toMatchObject({ outcome: 'allowed', status: 200, subject: byId!.subject, role: byId!.role, systemId: byId!.systemId });
  // Another patient's export names nothing of that consultation.
  expect(await exported(P2)).toEqual([]);
};
