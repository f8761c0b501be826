import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import pino from 'pino';
import { PostgresKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PostgresRegistry } from '../../src/adapters/registry/postgres-registry';
import { registryRowContext } from '../../src/adapters/registry/sealed-registry-rows';
import { sha256Hex } from '../../src/application/ids';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientDataProtection, PatientKeyStore } from '../../src/application/ports/patient-data-protection';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, openContainer } from '../../src/bootstrap/container';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { tempDataDir } from '../support/hub-process';

/**
 * On PostgreSQL the registry rows' personal values are sealed under the patient's data key: a deleted row's old
 * version stays in the table's pages, the WAL and backups (VACUUM does not zero freed space), so what keeps it
 * unreadable after an erasure is the key's erasure. Checked on the raw columns, through the service, and on a copy
 * of the rows taken before the erasure; and the migration of a table of the earlier layout, rows in clear.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const newSchema = (what: string): string => `wt_pgseal_${what}_${process.pid}_${randomBytes(3).toString('hex')}`;
const CPR = '251248-1234';
const OTHER_CPR = '170990-2468';

let admin: Client;
beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
});

type RawRow = Record<string, unknown> & { unique_id: string; patient_key: string; sealed: string | null };

describe('PostgreSQL profile: registry rows sealed under the patient key', () => {
  const schema = newSchema('profile');
  const data = tempDataDir('wt-pgseal-');
  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    data.remove();
  });

  it('keeps no reading, hash or observation id in clear; the service reads them; a copy taken before the erasure no longer opens', async () => {
    const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
    const c = await openContainer(config, pino({ level: 'silent' }));
    const store = c.get<EventStore>(TOKENS.EventStore);
    const projector = c.get<Projector>(TOKENS.Projector);
    try {
      const telemed = c.get<TeleMedService>(TOKENS.TeleMed);
      const xds = c.get<XdsBackend>(TOKENS.Xds);
      const protection = c.get<PatientDataProtection>(TOKENS.PatientDataProtection);
      const patientKey = c.get<PatientKeys>(TOKENS.PatientKeys).keyFor(parseCpr(CPR));
      const now = DateTime.fromISO('2026-12-01T12:00:00Z', { zone: 'utc' });
      const at = (minutes: number) => now.minus({ minutes }).toISO()!;
      const reading = (cpr: string, systolic: number, diastolic: number, minutes: number) => createTeleObservation({ patientId: cpr, systolic, diastolic, measuredAt: at(minutes) }, now);

      // Observation ids long enough that no sealed value (base64url, ~400 characters) holds one by chance: with 'pa3'
      // and 'pa1' about one run in a hundred failed, a ciphertext holding 'pa1' somewhere.
      const [pa3, pa1] = ['observation-pa3-in-clear', 'observation-pa1-in-clear'];
      await telemed.record(reading(CPR, 143, 93, 30), { observationId: pa3 });
      await telemed.record(reading(CPR, 141, 91, 20), { observationId: pa1 });
      await telemed.record(reading(OTHER_CPR, 127, 83, 10), { observationId: 'pc1' });
      await projector.catchUp();

      // The raw rows: personal values only in the envelope.
      const raw = (await admin.query<RawRow>(`SELECT * FROM "${schema}".registry_entries WHERE patient_key = $1 ORDER BY service_start_epoch`, [patientKey])).rows;
      expect(raw).toHaveLength(2);
      const entries = await xds.findEntries(parseCpr(CPR), now.minus({ hours: 1 }), now);
      expect(entries.map((e) => e.hash)).toHaveLength(2);
      for (const [i, row] of raw.entries()) {
        expect(row.sealed).toMatch(/^rts-sealed:v1:/);
        for (const column of ['systolic', 'diastolic', 'hash', 'observation_id', 'size', 'creation_time', 'service_start_time']) expect(row[column]).toBeNull();
        // No column holds a reading (as a number or text), an observation id or the plain hash.
        const values = Object.values(row).map(String);
        for (const clear of ['143', '93', '141', '91', '143.0', '93.0']) expect(values).not.toContain(clear);
        for (const clear of [pa3, pa1, entries[i]!.hash]) expect(values.filter((v) => v.includes(clear))).toEqual([]);
      }
      // In clear, what the queries go by.
      expect(raw.map((r) => [r['status'], Number(r['service_start_epoch'])])).toEqual([
        ['Approved', now.minus({ minutes: 30 }).toSeconds()],
        ['Approved', now.minus({ minutes: 20 }).toSeconds()],
      ]);

      // The service reads the values back: readings, observation ids, and the document's keyed digest (the row's, as
      // its event holds it); the plain SHA-256 where the document is served.
      const observations = await telemed.getObservationsFor(parseCpr(CPR), { from: now.minus({ hours: 1 }), to: now });
      expect(observations.map((o) => [o.systolic.value, o.diastolic.value])).toEqual([
        [143, 93],
        [141, 91],
      ]);
      expect(entries.map((e) => [e.observationId, e.systolic.value, e.diastolic.value, e.serviceStartTime])).toEqual([
        [pa3, 143, 93, at(30).replace('.000', '')],
        [pa1, 141, 91, at(20).replace('.000', '')],
      ]);
      for (const e of entries) {
        const served = await xds.retrieveDocument(e.uniqueId);
        expect(e.hash).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
        expect(served.entry).toEqual({ ...e, hash: sha256Hex(served.content) });
      }
      expect(await xds.entry(entries[0]!.uniqueId)).toEqual(entries[0]);

      // Erasure: the rows go, and the copy taken before (as a dead tuple, the WAL or a backup would keep it) no
      // longer opens, in this process or in another one reading the same key store.
      await c.get<PatientErasure>(TOKENS.PatientErasure).erase(parseCpr(CPR), { by: 'test' });
      expect((await admin.query(`SELECT 1 FROM "${schema}".registry_entries WHERE patient_key = $1`, [patientKey])).rows).toHaveLength(0);
      const elsewhere = new PatientCipher({ keys: c.get<PatientKeyStore>(TOKENS.PatientKeyStore) });
      for (const row of raw) {
        expect(await protection.open(row.patient_key, row.sealed!, registryRowContext(row.unique_id))).toBeNull();
        expect(await elsewhere.open(row.patient_key, row.sealed!, registryRowContext(row.unique_id))).toBeNull();
      }
      const keyRow = (await admin.query(`SELECT data_key FROM "${schema}".patient_keys WHERE patient_key = $1`, [patientKey])).rows[0];
      expect(keyRow).toEqual({ data_key: null });

      // The other patient's rows are untouched.
      const other = await telemed.getObservationsFor(parseCpr(OTHER_CPR), { from: now.minus({ hours: 1 }), to: now });
      expect(other.map((o) => [o.systolic.value, o.diastolic.value])).toEqual([[127, 83]]);
    } finally {
      await projector.stop();
      await store.close();
    }
  });
});

/** The registry table as PostgresRegistry created it before its rows were sealed. */
const OLD_REGISTRY_SQL = `
CREATE TABLE registry_entries (
  unique_id            text             PRIMARY KEY,
  patient_key          text             NOT NULL,
  repository_unique_id text             NOT NULL,
  status               text             NOT NULL CHECK (status IN ('Approved', 'Deprecated')),
  creation_time        text             NOT NULL,
  service_start_time   text             NOT NULL,
  service_start_epoch  bigint           NOT NULL,
  mime_type            text             NOT NULL,
  hash                 text             NOT NULL,
  size                 integer          NOT NULL,
  replaces             text,
  replaced_by          text,
  observation_id       text,
  systolic             double precision NOT NULL,
  diastolic            double precision NOT NULL
);
CREATE INDEX registry_entries_by_patient_time ON registry_entries (patient_key, status, service_start_epoch);
CREATE TABLE projection_checkpoints (name text PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE erased_patients (patient_key text PRIMARY KEY);
`;

describe('PostgresRegistry on a table of the earlier layout (rows in clear)', () => {
  const schema = newSchema('migrate');
  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });

  it('adds the sealed column, re-seals every clear row at open (two hubs opening together), and reads the same values', async () => {
    const T0 = Date.parse('2026-11-01T00:00:00Z') / 1000;
    const PATIENTS = 7;
    const N = 1_234; // more than one re-seal batch
    await admin.query(`CREATE SCHEMA "${schema}"; SET search_path TO "${schema}"; ${OLD_REGISTRY_SQL}; SET search_path TO DEFAULT`);
    await admin.query(
      `INSERT INTO "${schema}".registry_entries
       SELECT '2.25.' || i, 'p' || lpad((i % ${PATIENTS})::text, 32, '0'), '2.25.1', CASE WHEN i % 10 = 0 THEN 'Deprecated' ELSE 'Approved' END,
              to_char(to_timestamp(${T0} + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
              to_char(to_timestamp(${T0} + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), ${T0} + i, 'text/xml',
              md5(i::text) || md5(i::text), 1000 + i % 3, NULL, CASE WHEN i % 10 = 0 THEN '2.25.x' || i END, 'obs-' || i, 100 + i % 50, 60 + i % 30
         FROM generate_series(1, ${N}) AS i`,
    );
    await admin.query(`INSERT INTO "${schema}".projection_checkpoints VALUES ('registry', 42)`);

    // An erased patient whose rows the projector has not forgotten yet: their rows cannot be sealed, and stay for forgetPatient.
    const store = await PostgresEventStore.open({ connectionString, schema });
    try {
      const keys = await PostgresKeyStore.open(store);
      const erasedKey = 'p'.padEnd(33, 'e');
      await admin.query(`INSERT INTO "${schema}".registry_entries SELECT '2.25.e', $1, repository_unique_id, status, creation_time, service_start_time, service_start_epoch, mime_type, hash, size, NULL, NULL, 'obs-e', 150, 95 FROM "${schema}".registry_entries WHERE unique_id = '2.25.1'`, [erasedKey]);
      await keys.erase(erasedKey, new Date().toISOString());

      const hubs = [new PatientCipher({ keys }), new PatientCipher({ keys })];
      const [registry, other] = await Promise.all(hubs.map((p) => PostgresRegistry.open(store, p)));

      const counts = (await admin.query(`SELECT count(*) FILTER (WHERE sealed IS NOT NULL)::int AS sealed, count(*) FILTER (WHERE systolic IS NOT NULL OR hash IS NOT NULL OR observation_id IS NOT NULL)::int AS clear FROM "${schema}".registry_entries WHERE patient_key <> $1`, [erasedKey])).rows[0];
      expect(counts).toEqual({ sealed: N, clear: 0 });
      expect((await admin.query(`SELECT sealed, systolic FROM "${schema}".registry_entries WHERE unique_id = '2.25.e'`)).rows[0]).toEqual({ sealed: null, systolic: 150 });

      const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
      for (const i of [1, 10, 499, 500, 501, 1000, N]) {
        expect(await other!.get(`2.25.${i}`)).toEqual({
          uniqueId: `2.25.${i}`,
          patientKey: `p${String(i % PATIENTS).padStart(32, '0')}`,
          repositoryUniqueId: '2.25.1',
          status: i % 10 === 0 ? 'Deprecated' : 'Approved',
          creationTime: iso(T0 + i),
          serviceStartTime: iso(T0 + i),
          serviceStartEpoch: T0 + i,
          mimeType: 'text/xml',
          hash: expect.stringMatching(/^[0-9a-f]{64}$/),
          size: 1000 + (i % 3),
          replaces: null,
          replacedBy: i % 10 === 0 ? `2.25.x${i}` : null,
          observationId: `obs-${i}`,
          systolic: { value: 100 + (i % 50), unit: 'mmHg' },
          diastolic: { value: 60 + (i % 30), unit: 'mmHg' },
        });
      }
      const current = await registry!.findCurrent(`p${'0'.padStart(32, '0')}`, T0, T0 + N + 1, 10_000);
      expect(current.map((v) => v.uniqueId)).toEqual(
        Array.from({ length: N }, (_, k) => k + 1)
          .filter((i) => i % PATIENTS === 0 && i % 10 !== 0)
          .map((i) => `2.25.${i}`),
      );
      expect(current.every((v) => v.systolic.value === 100 + (Number(v.uniqueId.slice(5)) % 50))).toBe(true);
      expect(await registry!.checkpoint()).toBe(42n);

      // A later open finds nothing left to seal; forgetting the erased patient takes their clear row.
      expect(await registry!.resealClearRows()).toBe(0);
      await registry!.forgetPatient(erasedKey);
      expect((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".registry_entries WHERE sealed IS NULL`)).rows[0].n).toBe(0);
    } finally {
      await store.close();
    }
  });
});
