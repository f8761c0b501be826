import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DateTime } from 'luxon';
import { backupDataDir, restoreDataDir } from '../../src/adapters/backup/data-dir-backup';
import { readRecordedErasures } from '../../src/adapters/backup/recorded-erasures';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import { openTeleMed } from '../../src/bootstrap/library';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { lastDays } from '../../src/domain/monitoring/time-interval';
import { tempDataDir } from '../support/hub-process';

/**
 * A backup copies the events first and the keys after them; an erasure appends its PatientErased first and deletes
 * the key after it. A patient erased while a backup copies its events is therefore in that backup's key file (a
 * tombstone) and not in its events. The README names "a newer backup" as a record of the erasures to repeat after
 * restoring an older one: read from the events alone, that record missed the patient, and `rts erasures apply`
 * left them readable on the restored hub.
 */
describe('a patient erased while a backup ran, as a record of erasures', () => {
  const ERASED = '251248-1234';
  const KEPT = '010203-4321';
  const dirs = tempDataDir('rts-erasure-during-backup-');
  afterAll(() => dirs.remove());

  it('is listed by the newer backup, and apply erases them on an older backup restored', async () => {
    const data = join(dirs.dir, 'data');
    const rts = await openTeleMed({ dataDir: data });
    const now = DateTime.utc();
    let erasedKey = '';
    try {
      for (const [patientId, observationId] of [[ERASED, 'a-1'], [KEPT, 'b-1']] as const) {
        await rts.telemed.record(createTeleObservation({ patientId, systolic: 126, diastolic: 70, measuredAt: now.minus({ minutes: 1 }) }, now), { observationId });
      }
      await backupDataDir(data, join(dirs.dir, 'old'));
      await backupDataDir(data, join(dirs.dir, 'new'), {
        onCopied: async ({ name }) => {
          if (name === 'telemed.sqlite') erasedKey = (await rts.erasePatient(parseCpr(ERASED), { by: 'dpo' })).patientKey;
        },
      });
    } finally {
      await rts.close();
    }

    const record = readRecordedErasures(join(dirs.dir, 'new'));
    expect(record.erasures).toEqual([{ kind: 'patient', patientKey: erasedKey, erasedAt: expect.any(String) }]);

    // Repeated on the older backup restored, as `rts erasures apply` does: the patient's readings are gone.
    await restoreDataDir(join(dirs.dir, 'old'), join(dirs.dir, 'restored'));
    const restored = await openTeleMed({ dataDir: join(dirs.dir, 'restored') });
    try {
      expect(await restored.telemed.getObservationsFor(parseCpr(ERASED), lastDays(7, DateTime.utc()))).toHaveLength(1);
      for (const e of record.erasures) if (e.kind === 'patient') await restored.eraseByKey(e.patientKey, { by: 'restore' });
      await expect(restored.telemed.getObservationsFor(parseCpr(ERASED), lastDays(7, DateTime.utc()))).rejects.toMatchObject({ code: 'patient_erased' });
      expect(await restored.telemed.getObservationsFor(parseCpr(KEPT), lastDays(7, DateTime.utc()))).toHaveLength(1);
    } finally {
      await restored.close();
    }
  });

  it("lists a consultation's content erased by id whose erasure only the key file holds, by the id of its request", () => {
    // A data directory whose events hold a consultation's request (no patient of it erased) and whose key file holds
    // that consultation's key erased: the state a backup leaves when the content was erased while it copied events.
    const dir = join(dirs.dir, 'consultation');
    mkdirSync(dir);
    copyFileSync(join(dirs.dir, 'old', 'telemed.sqlite'), join(dir, 'telemed.sqlite'));
    const id = '3f2b8a4e-1c5d-4e7f-9a0b-2c3d4e5f6a7b';
    const events = new BetterSqlite3(join(dir, 'telemed.sqlite'));
    events
      .prepare("INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, 0, ?, 'ConsultationRequested', ?, '{}', ?)")
      .run(`consultation-${id}`, 'e0c1b2a3-0000-4000-8000-000000000001', JSON.stringify({ consultationId: id, patientKeys: [] }), new Date().toISOString());
    events.close();
    const keys = new BetterSqlite3(join(dir, 'patient-keys.sqlite'));
    keys.exec('CREATE TABLE patient_keys (patient_key TEXT PRIMARY KEY, data_key BLOB, created_at TEXT NOT NULL, erased_at TEXT)');
    keys.prepare('INSERT INTO patient_keys VALUES (?, NULL, ?, ?)').run(consultationDataKey(id), '2026-12-06T07:00:00.000Z', '2026-12-06T07:00:01.000Z');
    keys.close();
    expect(readRecordedErasures(dir).erasures).toEqual([{ kind: 'consultation', consultationId: id, erasedAt: '2026-12-06T07:00:01.000Z' }]);
  });
});
