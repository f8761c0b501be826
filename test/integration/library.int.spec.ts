import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import { createTeleObservation, lastDays, openTeleMed, parseCpr, timeInterval } from '../../src';

/** The documented library entry point, used as a backend team would use it: no HTTP anywhere. */
describe('openTeleMed (library entry point)', () => {
  const now = DateTime.utc();
  const reading = (systolic: number, minutesAgo: number) =>
    createTeleObservation({ patientId: '251248-1234', systolic, diastolic: 70, measuredAt: now.minus({ minutes: minutesAgo }).toISO() }, now);

  it('stores and queries on the embedded SQLite store, and survives reopening', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-'));
    try {
      let rts = await openTeleMed({ dataDir });
      const a = await rts.telemed.processAndStore(reading(126, 30));
      const b = await rts.telemed.processAndStore(reading(131, 10));
      expect(a).toMatch(/^2\.25\.\d+$/);
      expect(b).not.toBe(a);
      await rts.close();

      rts = await openTeleMed({ dataDir });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => [o.uniqueId, o.systolic.value])).toEqual([
        [a, 126],
        [b, 131],
      ]);
      // The seed's retrieveDocumentSet returns the HL7 documents themselves.
      const docs = await rts.xds.retrieveDocumentSet(parseCpr('251248-1234'), now.minus({ days: 1 }), now.plus({ seconds: 1 }));
      expect(docs).toHaveLength(2);
      expect(docs[0]!.content).toContain('<id extension="251248-1234"/>');
      await rts.close();

      // The data directory holds the store and the pseudonym secret, and no file is named after the patient.
      expect(readdirSync(dataDir).join(' ')).not.toMatch(/251248/);
      expect(readFileSync(join(dataDir, 'pseudonym.secret'), 'utf8')).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('rebuilds the registry from the events to the same answers', async () => {
    const rts = await openTeleMed({ inMemory: true });
    const ids = [await rts.telemed.processAndStore(reading(120, 50)), await rts.telemed.processAndStore(reading(125, 40))];
    const corrected = await rts.telemed.correct(ids[0]!, reading(121, 50), { correctionId: 'fix-1' });
    const interval = timeInterval(now.minus({ hours: 2 }), now.plus({ minutes: 1 }));
    const before = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), interval);
    await rts.rebuildRegistry();
    const after = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), interval);
    expect(after).toEqual(before);
    expect(after.map((o) => o.uniqueId).sort()).toEqual([corrected.uniqueId, ids[1]].sort());
    await rts.close();
  });

  it('opens on PostgreSQL when the settings say so (events and registry in one schema)', async () => {
    const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `rts_lib_${process.pid}_${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-pg-'));
    const settings = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'cd'.repeat(32) };
    const admin = new Client({ connectionString });
    await admin.connect();
    try {
      let rts = await openTeleMed({ dataDir, settings });
      const a = await rts.telemed.processAndStore(reading(128, 20));
      await rts.close();
      rts = await openTeleMed({ dataDir, settings });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[a, 128]]);
      await rts.close();
      const { rows } = await admin.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema]);
      expect(rows.map((r: { table_name: string }) => r.table_name)).toEqual(expect.arrayContaining(['events', 'projection_checkpoints', 'registry_entries']));
      expect(readdirSync(dataDir)).toEqual([]); // nothing on disk: the secret was given, the store is PostgreSQL
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
