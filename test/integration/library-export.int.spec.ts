import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DateTime } from 'luxon';
import pino from 'pino';
import { createTeleObservation, openTeleMed, parseCpr, type EmbeddedTeleMed, type OpenOptions } from '../../src';
import { PatientExportResponse } from '../../src/adapters/http/response-schemas';

/**
 * The right of access through the embedded library (EmbeddedTeleMed.exportPatient): the document POST
 * /patients/export answers, audited as that route is (patient.export under the patient's key, `by` the subject), on
 * the in-memory and the SQLite library. The consultations of a hub's store, and the comparison with the HTTP
 * answer, are in patient-export.int.spec.ts.
 */
const A = '251248-1234';
const B = '010203-2345';
const NOBODY = '150381-6613';
const now = DateTime.utc();
const at = (minutesAgo: number) => now.minus({ minutes: minutesAgo }).startOf('second').toISO({ suppressMilliseconds: true })!;
const reading = (patientId: string, systolic: number, measuredAt: string) => createTeleObservation({ patientId, systolic, diastolic: 80, measuredAt }, now);

const modes: [string, () => { options: OpenOptions; remove(): void }][] = [
  ['in memory', () => ({ options: { inMemory: true }, remove: () => undefined })],
  [
    'on the embedded SQLite store',
    () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-export-'));
      return { options: { dataDir }, remove: () => rmSync(dataDir, { recursive: true, force: true }) };
    },
  ],
];

describe.each(modes)('rts.exportPatient %s', (_mode, make) => {
  let place: ReturnType<typeof make>;
  let rts: EmbeddedTeleMed;
  beforeEach(async () => {
    place = make();
    rts = await openTeleMed(place.options);
  });
  afterEach(async () => {
    await rts.close();
    place.remove();
  });

  it('returns the HTTP export document: the reading and its correction; a second export holds the first one’s audit entry', async () => {
    const measuredAt = at(30);
    const first = await rts.telemed.record(reading(A, 150, measuredAt), { observationId: 'meter-1:0001' });
    const fixed = await rts.telemed.correct(first.uniqueId, reading(A, 145, measuredAt), { correctionId: 'fix-1' });
    await rts.telemed.processAndStore(reading(B, 130, at(10)));

    const e = await rts.exportPatient(parseCpr(A), { by: 'dpo Jane Hansen', correlationId: 'ticket-77' });
    const parsed = PatientExportResponse.safeParse(e);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
    expect(e).toMatchObject({ format: 'telemed-rts/patient-export', formatVersion: 1, patient: { cpr: A }, erasure: null, consultations: [] });
    expect(e.patient.patientKey).toMatch(/^p[0-9a-f]{32}$/);
    expect(Date.now() - Date.parse(e.exportedAt)).toBeLessThan(60_000);
    expect(
      e.observations
        .map((o) => [o.uniqueId, o.observationId, o.status, o.systolic.value, o.replaces, o.replacedBy])
        .sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)),
    ).toEqual(
      [
        [first.uniqueId, 'meter-1:0001', 'deprecated', 150, null, fixed.uniqueId],
        [fixed.uniqueId, null, 'current', 145, first.uniqueId, null],
      ].sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)),
    );
    // The library audits no reads or writes (no caller to name): the trail holds only the exports.
    expect(e.audit).toMatchObject({ bounds: '[from,to)', count: 0, entries: [] });
    // Nothing of the other patient.
    expect(JSON.stringify(e)).not.toContain(B);

    const again = await rts.exportPatient(parseCpr(A), { by: 'dpo-2' });
    expect(again.audit.entries).toEqual([
      { at: expect.any(String), subject: 'dpo Jane Hansen', role: 'library', systemId: null, action: 'patient.export', resource: null, outcome: 'allowed', status: 200, reason: null },
    ]);
    expect(Date.parse(again.audit.entries[0]!.at)).toBeGreaterThanOrEqual(Date.parse(e.exportedAt));
    expect(again.audit.count).toBe(1);
    // Under A's key only: B's export is not in A's trail, nor A's in B's.
    expect((await rts.exportPatient(parseCpr(B), { by: 'dpo-3' })).audit.entries).toEqual([]);
    expect((await rts.exportPatient(parseCpr(A), { by: 'dpo-4' })).audit.entries.map((x) => x.subject)).toEqual(['dpo Jane Hansen', 'dpo-2']);
  });

  it('throws NotFoundError unknown_patient for a patient the hub holds nothing of, recorded as over HTTP, and changes nothing', async () => {
    await expect(rts.exportPatient(parseCpr(NOBODY), { by: 'dpo' })).rejects.toMatchObject({ kind: 'not_found', code: 'unknown_patient' });
    // Still unknown: an erasure finds nothing of them (the audit entry is no data of theirs).
    await expect(rts.erasePatient(parseCpr(NOBODY), { by: 'dpo' })).rejects.toMatchObject({ code: 'unknown_patient' });
    // Once they upload, their export shows the refused one (the 404 HTTP answers, and its code).
    await rts.telemed.processAndStore(reading(NOBODY, 120, at(5)));
    const e = await rts.exportPatient(parseCpr(NOBODY), { by: 'dpo' });
    expect(e.audit.entries.map((x) => [x.action, x.subject, x.outcome, x.status, x.reason])).toEqual([['patient.export', 'dpo', 'error', 404, 'unknown_patient']]);
  });

  it("exports an erased patient as erased: no readings, the erasure's time, the earlier exports kept", async () => {
    await rts.telemed.processAndStore(reading(A, 128, at(20)));
    await rts.exportPatient(parseCpr(A), { by: 'dpo' });
    const erased = await rts.erasePatient(parseCpr(A), { by: 'dpo' });
    const e = await rts.exportPatient(parseCpr(A), { by: 'dpo' });
    expect(e.erasure).toEqual({ erasedAt: erased.erasedAt });
    expect(e.observations).toEqual([]);
    expect(e.audit.entries.map((x) => [x.action, x.outcome])).toEqual([['patient.export', 'allowed']]);
    // Recorded with `ifUnknown: 'erase'` only (never seen): still exported, as erased.
    await rts.erasePatient(parseCpr(NOBODY), { by: 'dpo', ifUnknown: 'erase' });
    expect((await rts.exportPatient(parseCpr(NOBODY), { by: 'dpo' })).erasure).not.toBeNull();
  });

  it('refuses an invalid CPR number as invalid_patient_id, and throws closed after close()', async () => {
    await expect(rts.exportPatient('251348-1234' as never, { by: 'dpo' })).rejects.toMatchObject({ code: 'invalid_patient_id', details: [expect.objectContaining({ path: 'patientId' })] });
    await rts.telemed.processAndStore(reading(A, 128, at(20)));
    const pending = rts.exportPatient(parseCpr(A), { by: 'dpo' });
    await rts.close();
    // Begun before close: it finishes (close waits for it).
    expect((await pending).observations).toHaveLength(1);
    await expect(rts.exportPatient(parseCpr(A), { by: 'dpo' })).rejects.toMatchObject({ kind: 'unavailable', code: 'closed' });
  });
});

describe('rts.exportPatient on a data directory opened again', () => {
  it('finds the earlier exports in the audit trail, and writes no CPR number to the logger', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-export-reopen-'));
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString('utf8')), done()) }));
    try {
      let rts = await openTeleMed({ dataDir, logger });
      await rts.telemed.processAndStore(reading(A, 128, at(20)));
      await rts.exportPatient(parseCpr(A), { by: 'dpo' });
      await rts.close();
      rts = await openTeleMed({ dataDir, logger });
      const e = await rts.exportPatient(parseCpr(A), { by: 'dpo' });
      await rts.close();
      expect(e.observations).toHaveLength(1);
      expect(e.audit.entries.map((x) => [x.action, x.subject, x.outcome])).toEqual([['patient.export', 'dpo', 'allowed']]);
      const log = lines.join('');
      expect(log).not.toContain(A);
      expect(log).not.toContain(A.replace('-', ''));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
