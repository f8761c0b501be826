import { DateTime } from 'luxon';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import type { AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { ConsultationContentErasure } from '../../src/application/consultation/consultation-erasure';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { EventStoreDocumentRepository } from '../../src/application/event-store-document-repository';
import { uuidV5 } from '../../src/application/ids';
import { PatientErasure } from '../../src/application/patient-erasure';
import { ANOTHER_PATIENT, PatientExport } from '../../src/application/patient-export';
import { patientSubject } from '../../src/application/access/patient-subject';
import { Projector } from '../../src/application/projector';
import { OpeningRegistry } from '../../src/application/sealed-documents';
import { TeleMedService } from '../../src/application/telemed';
import { XdsBackend } from '../../src/application/xds-backend';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';

/**
 * exportPatientData over the in-memory doubles, composed as the hub composes the parts it reads: the registry (sealed
 * documents opened), the consultation module, the audit trail, PatientErasure. What it holds of one patient, and
 * nothing of another.
 */
const A = parseCpr('251248-1234');
const B = parseCpr('010203-2345');
const QUESTION = 'Zqx: second opinion on a rising blood pressure';
const DECLINE = 'Zqx: not my field';
const DIAGNOSIS = 'Zqx: essential hypertension';

const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`export/${systemId}/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: '2026-02-01T10:00:00Z', payload }) as unknown as UplinkEnvelope;

const setup = async () => {
  let now = DateTime.fromISO('2026-02-01T10:00:00Z', { zone: 'utc' });
  const clock = { now: () => now };
  // The store's own clock: its first event (the hub's first day) is where the audit trail can begin.
  const store = new InMemoryEventStore(() => now.toJSDate());
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
  const registry = new OpeningRegistry(new InMemoryRegistry(), protection);
  const projector = new Projector(store, registry);
  const patientKeys = new HmacPatientKeys(Buffer.alloc(32, 7));
  let n = 0;
  const ids = { uuid: () => uuidV5(`export-ids/${n++}`) };
  const xds = new XdsBackend({ store, registry, projector, repositories: [new EventStoreDocumentRepository('2.25.9', store)], repositoryUniqueId: '2.25.9', patientKeys, clock, ids, protection });
  const telemed = new TeleMedService(xds);
  const logger = { warn: () => undefined, error: () => undefined };
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const s of ['aarhus', 'odense', 'aalborg']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  await directory.uplink.handleUplink(up('odense', 'expert.registered', { localExpertId: 'hansen', profile }, 'hansen'));
  await directory.uplink.handleUplink(up('aalborg', 'expert.registered', { localExpertId: 'berg', profile }, 'berg'));
  const consultations = createConsultationModule({ store, clock, ids, logger, directory, protection });
  const linked = new ConsultationContentErasure({ store, protection, clock });
  const erasure = new PatientErasure({ store, protection, patientKeys, registry, projectors: [projector, consultations.projector], clock, consultations: linked });
  const audit = new AuditTrail({ store });
  const exporter = new PatientExport({
    patientKeys,
    documents: xds,
    erasure,
    consultations: { linked, get: (id) => consultations.service.get(id) },
    audit,
    store,
    clock,
  });
  const upload = (patientId: typeof A, systolic: number, measuredAt: string, observationId: string) =>
    telemed.record(createTeleObservation({ patientId, systolic, diastolic: 80, measuredAt: DateTime.fromISO(measuredAt, { setZone: true }) }, now), { observationId });
  const auditEntry = (patientKey: string, at: string, action = 'observations.read', subject = 'patient-x'): AuditEntry => ({
    at,
    subject,
    role: 'patient',
    systemId: null,
    action,
    patientKey,
    resource: null,
    ip: '127.0.0.1',
    requestId: `r-${n++}`,
    outcome: 'allowed',
    status: 200,
    reason: null,
  });
  return { store, telemed, consultations, erasure, audit, exporter, patientKeys, upload, auditEntry, later: (iso: string) => (now = DateTime.fromISO(iso, { zone: 'utc' })) };
};

describe('PatientExport.exportPatientData', () => {
  it('gives every reading (a corrected one with what replaced it), the consultations naming the patient, and all audit entries; nothing of another patient', async () => {
    const h = await setup();
    const keyA = h.patientKeys.keyFor(A);
    const keyB = h.patientKeys.keyFor(B);
    const first = await h.upload(A, 150, '2026-01-30T08:00:00Z', 'a-1');
    const second = await h.upload(A, 131, '2026-01-31T08:00:00Z', 'a-2');
    const ofB = await h.upload(B, 140, '2026-01-31T09:00:00Z', 'b-1');
    const corrected = await h.telemed.correct(first.uniqueId, createTeleObservation({ patientId: A, systolic: 145, diastolic: 80, measuredAt: DateTime.fromISO('2026-01-30T08:00:00Z') }, DateTime.fromISO('2026-02-01T10:00:00Z')), { correctionId: 'fix-1' });
    // A consultation about both patients, as builds before requests were checked took it (a request now is refused
    // attachments_of_several_patients): declined by one expert, reported by the next.
    const id = '6f1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f00';
    const svc = h.consultations.service;
    const requestedAt = '2026-02-01T10:00:00.000Z';
    await h.store.appendToStream(consultationStreamName(id), [
      {
        id: uuidV5(`export-test/${id}/requested`),
        type: 'ConsultationRequested',
        data: {
          consultationId: id, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['odense:hansen', 'aalborg:berg'], clinicalQuestion: QUESTION, summary: 'S',
          attachments: [second.uniqueId, ofB.uniqueId], patientKeys: [keyA, keyB].sort(), deadlineSeconds: 86_400, reportResend: { intervalSeconds: 3600, maxAttempts: 5 }, correlationId: id, requestedAt,
        },
      },
      { id: uuidV5(`export-test/${id}/offered`), type: 'ConsultationOffered', data: { consultationId: id, expertId: 'odense:hansen', offerIndex: 0, offeredAt: requestedAt, expiresAt: '2026-02-02T10:00:00.000Z' } },
    ]);
    await svc.decline(id, { expertId: 'odense:hansen', bySystemId: 'odense', reason: DECLINE });
    await svc.accept(id, { expertId: 'aalborg:berg', bySystemId: 'aalborg' });
    await svc.issueReport(id, { expertId: 'aalborg:berg', bySystemId: 'aalborg', diagnosis: DIAGNOSIS, recommendations: 'R' });
    // A consultation of B alone is not A's.
    await svc.request({ consultationId: '6f1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f01', applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['odense:hansen'], clinicalQuestion: 'B only', summary: '', attachments: [ofB.uniqueId] });
    // The audit trail: more than one page on one day, and days more than 31 apart (more than one window).
    const entries = [
      h.auditEntry(keyA, '2026-02-01T09:00:00.000Z', 'observations.write'),
      ...Array.from({ length: 1_005 }, (_, i) => h.auditEntry(keyA, new Date(Date.parse('2026-02-02T00:00:00Z') + i * 1000).toISOString())),
      h.auditEntry(keyA, '2026-03-20T12:00:00.000Z', 'document.read', 'dr-aalborg'),
      h.auditEntry(keyB, '2026-02-02T00:00:00.500Z'),
    ];
    await Promise.all(entries.map((e) => h.audit.record(e)));
    h.later('2026-03-21T00:00:00Z');

    const exported = await h.exporter.exportPatientData(A);

    expect(exported).toMatchObject({ patientKey: keyA, exportedAt: '2026-03-21T00:00:00.000Z', erasure: null });
    expect(exported.observations).toEqual([
      { uniqueId: first.uniqueId, observationId: 'a-1', measuredAt: '2026-01-30T08:00:00Z', storedAt: '2026-02-01T10:00:00Z', systolic: { value: 150, unit: 'mmHg' }, diastolic: { value: 80, unit: 'mmHg' }, status: 'deprecated', replaces: null, replacedBy: corrected.uniqueId },
      { uniqueId: corrected.uniqueId, observationId: null, measuredAt: '2026-01-30T08:00:00Z', storedAt: '2026-02-01T10:00:00Z', systolic: { value: 145, unit: 'mmHg' }, diastolic: { value: 80, unit: 'mmHg' }, status: 'current', replaces: first.uniqueId, replacedBy: null },
      { uniqueId: second.uniqueId, observationId: 'a-2', measuredAt: '2026-01-31T08:00:00Z', storedAt: '2026-02-01T10:00:00Z', systolic: { value: 131, unit: 'mmHg' }, diastolic: { value: 80, unit: 'mmHg' }, status: 'current', replaces: null, replacedBy: null },
    ].sort((x, y) => x.measuredAt.localeCompare(y.measuredAt) || (x.uniqueId < y.uniqueId ? -1 : 1)));

    expect(exported.consultations).toHaveLength(1);
    expect(exported.consultations[0]).toMatchObject({
      consultationId: id,
      status: 'reported',
      requesting: { systemId: 'aarhus', clinician: 'dr-aarhus' },
      candidates: ['odense:hansen', 'aalborg:berg'],
      offers: [
        { expertId: 'odense:hansen', systemId: 'odense', outcome: 'declined' },
        { expertId: 'aalborg:berg', systemId: 'aalborg', outcome: 'accepted' },
      ],
      answering: { expertId: 'aalborg:berg', systemId: 'aalborg' },
      report: { expertId: 'aalborg:berg', acknowledgedAt: null },
      attachments: [second.uniqueId],
      otherAttachments: 1,
      contentErased: false,
      texts: { clinicalQuestion: QUESTION, summary: 'S', declineReasons: [{ offerIndex: 0, expertId: 'odense:hansen', reason: DECLINE }], report: { diagnosis: DIAGNOSIS, recommendations: 'R' }, cancelReason: null },
    });

    // Every entry under A's key, across both windows and every page, in order; none of B's.
    expect(exported.audit.entries).toHaveLength(1_007);
    expect(exported.audit.entries[0]).toEqual({ at: '2026-02-01T09:00:00.000Z', subject: 'patient-x', role: 'patient', systemId: null, action: 'observations.write', resource: null, outcome: 'allowed', status: 200, reason: null });
    expect(exported.audit.entries.at(-1)).toMatchObject({ at: '2026-03-20T12:00:00.000Z', action: 'document.read', subject: 'dr-aalborg' });
    expect(new Set(exported.audit.entries.map((e) => e.at)).size).toBe(1_007);
    expect(exported.audit).toMatchObject({ from: '2026-01-31T00:00:00.000Z', to: '2026-03-21T00:00:00.000Z' });

    // Nothing of B: not their key, their document, their consultation; no CPR number and no address.
    const text = JSON.stringify(exported);
    for (const absent of [keyB, ofB.uniqueId, 'B only', '251248-1234', '010203-2345', '127.0.0.1']) expect({ absent, found: text.includes(absent) }).toEqual({ absent, found: false });
  });

  it('finds a consultation an earlier build recorded without patient keys by its attachment of one of the patient\'s documents', async () => {
    const h = await setup();
    const doc = await h.upload(A, 128, '2026-01-31T08:00:00Z', 'a-1');
    const id = 'legacy-0001';
    await h.store.appendToStream(consultationStreamName(id), [
      {
        id: uuidV5('legacy/requested'),
        type: 'ConsultationRequested',
        data: { consultationId: id, applicantSystemId: 'aarhus', applicantClinician: 'dr-a', candidates: ['odense:hansen'], clinicalQuestion: 'in clear', summary: '', attachments: [doc.uniqueId], deadlineSeconds: 3600, reportResend: { intervalSeconds: 3600, maxAttempts: 3 }, correlationId: 'c-legacy', requestedAt: '2026-02-01T09:00:00Z' },
      },
    ]);
    const exported = await h.exporter.exportPatientData(A);
    expect(exported.consultations).toEqual([expect.objectContaining({ consultationId: id, attachments: [doc.uniqueId], otherAttachments: 0, texts: expect.objectContaining({ clinicalQuestion: 'in clear' }) })]);
  });

  it("shows an identity provider's patient their own failed requests as theirs, another patient's attempts as another patient's", async () => {
    const h = await setup();
    await h.upload(A, 128, '2026-01-31T08:00:00Z', 'a-1');
    h.later('2026-02-02T10:00:00Z');
    const keyA = h.patientKeys.keyFor(A);
    const failed = (at: string, subject: string, flag: Partial<AuditEntry>): AuditEntry => ({ ...h.auditEntry(keyA, at, 'observations.read', subject), outcome: 'error', status: 503, reason: 'storage_unavailable', ...flag });
    // The provider's sub is its own (never the hub's pseudonym of the key): only the entry's selfAccess can say whose.
    await h.audit.record(failed('2026-02-02T09:00:00.000Z', 'idp|a-4711', { selfAccess: true }));
    await h.audit.record({ ...failed('2026-02-02T09:00:01.000Z', 'idp|b-0815', { selfAccess: false }), outcome: 'denied', status: 403, reason: 'not_own_patient_data' });
    // Entries of builds before selfAccess: the subject decides, as it did (the hub's own tokens carry the pseudonym).
    await h.audit.record(failed('2026-02-02T09:00:02.000Z', patientSubject(keyA), {}));
    await h.audit.record(failed('2026-02-02T09:00:03.000Z', 'idp|b-0815', {}));
    const exported = await h.exporter.exportPatientData(A);
    expect(exported.audit.entries.map((e) => [e.at.slice(11, 19), e.subject, e.outcome])).toEqual([
      ['09:00:00', 'idp|a-4711', 'error'],
      ['09:00:01', ANOTHER_PATIENT, 'denied'],
      ['09:00:02', patientSubject(keyA), 'error'],
      ['09:00:03', ANOTHER_PATIENT, 'error'],
    ]);
    expect(JSON.stringify(exported.audit)).not.toContain('selfAccess');
  });

  it("holds an audit entry recorded in the export's own millisecond (an access just before it)", async () => {
    const h = await setup();
    await h.upload(A, 128, '2026-01-31T08:00:00Z', 'a-1');
    h.later('2026-02-02T09:00:00.250Z');
    await h.audit.record(h.auditEntry(h.patientKeys.keyFor(A), '2026-02-02T09:00:00.250Z', 'patient.export', 'dpo'));
    const exported = await h.exporter.exportPatientData(A);
    expect(exported.audit.entries.map((e) => [e.at, e.action])).toEqual([['2026-02-02T09:00:00.250Z', 'patient.export']]);
    expect(exported.audit.to).toBe('2026-02-02T09:00:00.250Z');
  });

  it('answers unknown_patient for a patient the hub holds nothing of, as an erasure does', async () => {
    const h = await setup();
    await h.upload(A, 128, '2026-01-31T08:00:00Z', 'a-1');
    await expect(h.exporter.exportPatientData(B)).rejects.toMatchObject({ kind: 'not_found', code: 'unknown_patient' });
  });

  it('says an erased patient was erased, and when: no readings left, the consultation kept with its texts marked erased, the audit trail', async () => {
    const h = await setup();
    const keyA = h.patientKeys.keyFor(A);
    const doc = await h.upload(A, 128, '2026-01-31T08:00:00Z', 'a-1');
    const id = '6f1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f02';
    await h.consultations.service.request({ consultationId: id, applicantSystemId: 'aarhus', applicantClinician: 'dr-aarhus', candidates: ['odense:hansen'], clinicalQuestion: QUESTION, summary: 'S', attachments: [doc.uniqueId] });
    await h.audit.record(h.auditEntry(keyA, '2026-02-01T09:30:00.000Z'));
    h.later('2026-02-03T12:00:00Z');
    await h.erasure.erase(A, { by: 'dpo' });
    h.later('2026-02-04T12:00:00Z');

    const exported = await h.exporter.exportPatientData(A);

    expect(exported.erasure).toEqual({ erasedAt: '2026-02-03T12:00:00Z' });
    expect(exported.observations).toEqual([]);
    expect(exported.consultations).toEqual([expect.objectContaining({ consultationId: id, attachments: [doc.uniqueId], otherAttachments: 0, contentErased: true, texts: null })]);
    expect(JSON.stringify(exported)).not.toContain('Zqx');
    expect(exported.audit.entries.map((e) => e.action)).toEqual(['observations.read']);
  });
});
