jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DateTime } from 'luxon';
import pino from 'pino';
import { backupDataDir, restoreDataDir } from '../../src/adapters/backup/data-dir-backup';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import { loadConfig } from '../../src/bootstrap/config';
import { openTeleMed } from '../../src/bootstrap/library';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { lastDays } from '../../src/domain/monitoring/time-interval';
import { tempDataDir } from '../support/hub-process';
import { appendOldBuildConsultation } from '../support/old-build-consultation';

/**
 * An erasure appends its event first and deletes the key second; `rts backup` copies the events first and the keys
 * second. A patient, and a consultation's content, erased while a backup copied its events are in that backup as a
 * tombstone without the event, with the patient's registry rows (readings in clear) still there. Restored, the hub
 * served those readings and GET /erasures did not list the erasure. Now the start completes such erasures before it
 * serves anything, at the original erasure's time, with the erasure's log line; and a second start does nothing.
 */
const ERASED = '251248-1234';
const KEPT = '010203-2345';
/** A consultation no patient's erasure reaches, its content erased by id during the backup. */
const CONSULTATION = 'a1b2c3d4-0000-4000-8000-00000000c0de';

const dirs = tempDataDir('rts-erasure-at-start-');
afterAll(() => dirs.remove());

const fileLogger = (file: string) => pino({ level: 'info' }, pino.destination({ dest: file, sync: true }));
const start = (dir: string, logFile: string): Promise<RunningHub> =>
  startHub(loadConfig({ RTS_DATA_DIR: dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on' }), fileLogger(logFile));

const token = async (url: string, claims: Record<string, string>): Promise<string> => {
  const res = await fetch(`${url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claims) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
};
const get = async (url: string, path: string, claims: Record<string, string>) => {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${await token(url, claims)}` } });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};
const logLines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
/** The items with their times as instants (an answer leaves out milliseconds that are zero, the key file does not). */
const timed = (items: readonly { erasedAt: string }[]) => items.map((i) => ({ ...i, erasedAt: Date.parse(i.erasedAt) }));
const eventCount = (dir: string): number => {
  const db = new BetterSqlite3(join(dir, DATA_FILES.events), { readonly: true });
  try {
    return Number(db.prepare('SELECT count(*) FROM events').pluck().get());
  } finally {
    db.close();
  }
};
const registryRowsOf = (dir: string, patientKey: string): number => {
  const db = new BetterSqlite3(join(dir, DATA_FILES.events), { readonly: true });
  try {
    return Number(db.prepare('SELECT count(*) FROM registry_entries WHERE patient_key = ?').pluck().get(patientKey));
  } finally {
    db.close();
  }
};

describe('erasures a restored backup holds the key deletion of and not the event', () => {
  let patientKey = '';
  let keptKey = '';
  let patientErasedAt = '';
  let consultationErasedAt = '';
  const backup = join(dirs.dir, 'backup');

  beforeAll(async () => {
    const data = join(dirs.dir, 'data');
    mkdirSync(data, { mode: 0o700 });
    const seed = SqliteEventStore.open({ file: join(data, DATA_FILES.events) });
    await appendOldBuildConsultation(seed, CONSULTATION, 1);
    await seed.close();
    const rts = await openTeleMed({ dataDir: data });
    try {
      const now = DateTime.utc();
      for (const [patientId, observationId] of [[ERASED, 'a-1'], [KEPT, 'b-1']] as const) {
        await rts.telemed.record(createTeleObservation({ patientId, systolic: 131, diastolic: 70, measuredAt: now.minus({ minutes: 1 }) }, now), { observationId });
      }
      // After the events are copied and before the keys: what a backup running during the erasures copies.
      await backupDataDir(data, backup, {
        onCopied: async ({ name }) => {
          if (name !== DATA_FILES.events) return;
          patientKey = (await rts.erasePatient(parseCpr(ERASED), { by: 'dpo' })).patientKey;
          await rts.eraseConsultationContent(CONSULTATION, { by: 'dpo' });
        },
      });
    } finally {
      await rts.close();
    }
    // The state itself: both keys deleted in the backup's key file, neither erasure in its events.
    const events = new BetterSqlite3(join(backup, DATA_FILES.events), { readonly: true });
    const keys = new BetterSqlite3(join(backup, DATA_FILES.patientKeys), { readonly: true });
    try {
      expect(events.prepare("SELECT count(*) FROM events WHERE type IN ('PatientErased', 'ConsultationContentErased')").pluck().get()).toBe(0);
      expect(Number(events.prepare('SELECT count(*) FROM registry_entries WHERE patient_key = ?').pluck().get(patientKey))).toBe(1);
      keptKey = String(events.prepare('SELECT patient_key FROM registry_entries WHERE patient_key <> ?').pluck().get(patientKey));
      expect(keys.prepare('SELECT count(*) FROM patient_keys WHERE erased_at IS NOT NULL').pluck().get()).toBe(2);
      // The original erasures' times, as the key file keeps them (the key deleted a moment after the answer's time).
      const tombstone = (keyId: string) => String(keys.prepare('SELECT erased_at FROM patient_keys WHERE patient_key = ?').pluck().get(keyId));
      patientErasedAt = tombstone(patientKey);
      consultationErasedAt = tombstone(consultationDataKey(CONSULTATION));
    } finally {
      events.close();
      keys.close();
    }
  });

  it('the hub completes them before it serves: 410 for the patient, no registry row, listed at their own time, logged; a second start does nothing', async () => {
    const dir = join(dirs.dir, 'restored-hub');
    await restoreDataDir(backup, dir);
    const firstLog = join(dirs.dir, 'first.log');
    const hub = await start(dir, firstLog);
    try {
      expect((await get(hub.url, `/patients/${ERASED}/observations`, { role: 'patient', patient: ERASED })).status).toBe(410);
      const kept = await get(hub.url, `/patients/${KEPT}/observations`, { role: 'patient', patient: KEPT });
      expect(kept.status).toBe(200);
      expect(JSON.stringify(kept.body)).toContain('131');
      const erasures = await get(hub.url, '/erasures', { role: 'operator', sub: 'dpo' });
      expect(timed(erasures.body.items)).toEqual([
        { kind: 'patient', patientKey, erasedAt: Date.parse(patientErasedAt) },
        { kind: 'consultation', consultationId: CONSULTATION, erasedAt: Date.parse(consultationErasedAt) },
      ]);
      const consultation = await get(hub.url, `/consultations/${CONSULTATION}`, { role: 'system', systemId: 'city-a' });
      expect(consultation).toMatchObject({ status: 200, body: { contentErased: true, clinicalQuestion: null } });
    } finally {
      await hub.stop();
    }
    expect(registryRowsOf(dir, patientKey)).toBe(0);
    expect(registryRowsOf(dir, keptKey)).toBe(1);
    const lines = logLines(firstLog);
    expect(timed(lines.filter((l) => l['msg'] === 'patient erased') as never)).toEqual([expect.objectContaining({ event: 'PatientErased', patientKey, erasedAt: Date.parse(patientErasedAt), known: true })]);
    expect(timed(lines.filter((l) => l['msg'] === 'consultation content erased') as never)).toEqual([
      expect.objectContaining({ event: 'ConsultationContentErased', consultationId: CONSULTATION, erasedAt: Date.parse(consultationErasedAt) }),
    ]);
    expect(lines.filter((l) => String(l['msg']).startsWith('completed 2 erasure(s) at start'))).toHaveLength(1);
    // Before the hub listened.
    expect(lines.findIndex((l) => l['msg'] === 'patient erased')).toBeLessThan(lines.findIndex((l) => l['msg'] === 'telemed-rts listening'));

    const events = eventCount(dir);
    const secondLog = join(dirs.dir, 'second.log');
    const again = await start(dir, secondLog);
    await again.stop();
    expect(eventCount(dir)).toBe(events);
    expect(logLines(secondLog).filter((l) => /erased|erasure/.test(String(l['msg'])))).toEqual([]);
  });

  it('openTeleMed completes them before it resolves, with the line in the embedder\'s logger', async () => {
    const dir = join(dirs.dir, 'restored-library');
    await restoreDataDir(backup, dir);
    const log = join(dirs.dir, 'library.log');
    const rts = await openTeleMed({ dataDir: dir, logger: fileLogger(log) });
    try {
      await expect(rts.telemed.getObservationsFor(parseCpr(ERASED), lastDays(7, DateTime.utc()))).rejects.toMatchObject({ code: 'patient_erased' });
      expect(await rts.telemed.getObservationsFor(parseCpr(KEPT), lastDays(7, DateTime.utc()))).toHaveLength(1);
      expect(timed((await rts.listErasures()).items)).toEqual([
        { kind: 'patient', patientKey, erasedAt: Date.parse(patientErasedAt) },
        { kind: 'consultation', consultationId: CONSULTATION, erasedAt: Date.parse(consultationErasedAt) },
      ]);
    } finally {
      await rts.close();
    }
    expect(registryRowsOf(dir, patientKey)).toBe(0);
    expect(timed(logLines(log).filter((l) => l['msg'] === 'patient erased') as never)).toEqual([expect.objectContaining({ patientKey, erasedAt: Date.parse(patientErasedAt) })]);

    const events = eventCount(dir);
    const again = await openTeleMed({ dataDir: dir, logger: fileLogger(log) });
    await again.close();
    expect(eventCount(dir)).toBe(events);
    expect(logLines(log).filter((l) => l['msg'] === 'patient erased')).toHaveLength(1);
  });
});
