import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import pino from 'pino';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import type { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PostgresRegistry } from '../../src/adapters/registry/postgres-registry';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientKeyStore } from '../../src/application/ports/patient-data-protection';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer, openStore } from '../../src/bootstrap/container';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { tempDataDir } from '../support/hub-process';

/**
 * Erasing a patient while the same patient uploads, on PostgreSQL (events, registry and data keys in one schema),
 * where erasing the key is a round trip. The key store's erase is held at a gate so the upload lands inside that
 * round trip every time; everything else is the real thing.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_erase_race_${process.pid}_${randomBytes(4).toString('hex')}`;
const CPR = '251248-1234';

it('an upload racing the erasure is refused and leaves no row behind', async () => {
  const data = tempDataDir('rts-erase-race-');
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const logger = pino({ level: 'silent' });
  const opened = (await openStore(config, logger))!;
  let openGate: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const keys = opened.keys!;
  const gated: PatientKeyStore = {
    get: (k) => keys.get(k),
    createIfAbsent: (k, key) => keys.createIfAbsent(k, key),
    erase: async (k, at) => {
      await gate;
      await keys.erase(k, at);
    },
    erasedAt: (k) => keys.erasedAt!(k),
    close: () => keys.close(),
  };
  // The hub's cipher over the gated keys, and the registry sealing its rows with that same cipher (as openStore
  // wires them), so the erasure everything sees is the gated one.
  const protection = new PatientCipher({ keys: gated, maxCached: config.RTS_PATIENT_KEY_CACHE_SIZE });
  const registry = await PostgresRegistry.open(opened.store as PostgresEventStore, protection);
  const c = buildContainer(config, logger, { ...opened, keys: gated, protection, registry });
  const store = c.get<EventStore>(TOKENS.EventStore);
  const telemed = c.get<TeleMedService>(TOKENS.TeleMed);
  const projector = c.get<Projector>(TOKENS.Projector);
  const xds = c.get<XdsBackend>(TOKENS.Xds);
  const patientKey = c.get<PatientKeys>(TOKENS.PatientKeys).keyFor(parseCpr(CPR));
  const admin = new Client({ connectionString });
  await admin.connect();
  const rows = async () => Number((await admin.query(`SELECT COUNT(*) AS n FROM "${schema}".registry_entries WHERE patient_key = $1`, [patientKey])).rows[0].n);
  const now = DateTime.utc();
  const reading = (systolic: number) => createTeleObservation({ patientId: CPR, systolic, diastolic: 70, measuredAt: now.minus({ minutes: 5 }).toISO()! }, now);
  try {
    await telemed.record(reading(120));
    await projector.catchUp();
    expect(await rows()).toBe(1);

    const erasing = c.get<PatientErasure>(TOKENS.PatientErasure).erase(parseCpr(CPR), { by: 'test' });
    // Wait until PatientErased is stored: the erasure is now inside the key store's round trip.
    for (let i = 0; i < 200 && (await store.readStream(`patient-${patientKey}`)).currentVersion === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await store.readStream(`patient-${patientKey}`)).currentVersion).toBe(0n);
    const late = await telemed.record(reading(121)).then(
      () => 'stored',
      (error: { code?: string }) => error.code,
    );
    // The projection runs while the key store is still erasing: it waits for the key's deletion before it passes the
    // erasure (it would delete the key itself, had the erasure been cut off), so it ends once the gate opens.
    const projecting = projector.catchUp();
    await new Promise((r) => setTimeout(r, 50));
    openGate();
    await erasing;
    await projecting;
    await projector.catchUp();

    expect(late).toBe('patient_erased'); // before the fix: 'stored', sealed with the key being erased
    expect(await rows()).toBe(0); // before the fix the racing upload could be projected after the rows were forgotten
    await expect(xds.findEntries(parseCpr(CPR), now.minus({ days: 1 }), now.plus({ minutes: 1 }))).rejects.toMatchObject({ code: 'patient_erased' });
  } finally {
    openGate();
    await projector.stop();
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
    data.remove();
  }
});
