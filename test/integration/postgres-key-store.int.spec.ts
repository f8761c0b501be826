import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { PostgresKeyStore } from '../../src/adapters/crypto/key-stores';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';

/** The patients' data keys in PostgreSQL, as several hub processes share them: one key per patient, for good. */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_keys_${process.pid}_${randomBytes(4).toString('hex')}`;
const stores: PostgresEventStore[] = [];
let admin: Client;

const openKeys = async (): Promise<PostgresKeyStore> => {
  const store = await PostgresEventStore.open({ connectionString, schema });
  stores.push(store);
  return PostgresKeyStore.open(store);
};

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

describe('PostgresKeyStore', () => {
  it('keeps the first key created for a patient, also when processes create one at the same moment', async () => {
    const [a, b] = [await openKeys(), await openKeys()];
    expect(await a.get('p1')).toBeNull();
    const first = randomBytes(32);
    expect(await a.createIfAbsent('p1', first)).toEqual(first);
    expect(await b.createIfAbsent('p1', randomBytes(32))).toEqual(first);
    expect(await b.get('p1')).toEqual(first);

    // Two processes, each its own connection, racing for a new patient: both end with the one stored key.
    for (let i = 0; i < 20; i++) {
      const [x, y] = await Promise.all([a.createIfAbsent(`race-${i}`, randomBytes(32)), b.createIfAbsent(`race-${i}`, randomBytes(32))]);
      expect(Buffer.isBuffer(x) && Buffer.isBuffer(y) && x.equals(y)).toBe(true);
    }
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".patient_keys WHERE patient_key LIKE 'race-%'`);
    expect(rows[0].n).toBe(20);
  });

  it('an erased patient stays erased: no key is created again', async () => {
    const keys = await openKeys();
    await keys.createIfAbsent('p2', randomBytes(32));
    await keys.erase('p2', '2026-11-30T00:00:00Z');
    expect(await keys.get('p2')).toBe('erased');
    expect(await keys.createIfAbsent('p2', randomBytes(32))).toBe('erased');
    const { rows } = await admin.query(`SELECT data_key FROM "${schema}".patient_keys WHERE patient_key = 'p2'`);
    expect(rows).toEqual([{ data_key: null }]);
    // When it was erased, for a repeat of an erasure whose event a restored copy lacks; a repeat keeps the first time.
    await keys.erase('p2', '2026-12-01T00:00:00Z');
    expect({ erased: await keys.erasedAt('p2'), never: await keys.erasedAt('p-none') }).toEqual({ erased: '2026-11-30T00:00:00.000Z', never: null });
  });
});
