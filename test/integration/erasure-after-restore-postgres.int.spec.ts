jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import pino from 'pino';
import { runErasures } from '../../src/adapters/cli/erasures';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * The same way back on PostgreSQL, whose erasure has code of its own (the key table, VACUUM, the registry's
 * erased_patients, readAll of one type): pg_dump of the live database, erasures, pg_restore into a new database,
 * `rts erasures apply` from the saved GET /erasures answer; the erased patient's readings answer 410 and the key
 * table holds a tombstone only.
 */
const server = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const LIVE = `rts_erase_live_${suffix}`;
const RESTORED = `rts_erase_restored_${suffix}`;
const urlOf = (db: string): string => {
  const u = new URL(server);
  u.pathname = `/${db}`;
  return u.toString();
};
const KEPT = '010203-2345';
const ERASED = '251248-1234';

const data = tempDataDir('rts-erase-restore-pg-');
let admin: Client;

beforeAll(async () => {
  admin = new Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${LIVE}`);
  await admin.query(`CREATE DATABASE ${RESTORED}`);
});

afterAll(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${LIVE} WITH (FORCE)`);
  await admin.query(`DROP DATABASE IF EXISTS ${RESTORED} WITH (FORCE)`);
  await admin.end();
  data.remove();
});

const start = (db: string): Promise<RunningHub> =>
  startHub(
    loadConfig({
      RTS_EVENT_STORE: 'postgres',
      RTS_POSTGRES_URL: urlOf(db),
      RTS_DATA_DIR: data.dir,
      RTS_HTTP_HOST: '127.0.0.1',
      RTS_HTTP_PORT: '0',
      RTS_AUTH_DEV_LOGIN: 'on',
      RTS_PSEUDONYM_SECRET: 'ef'.repeat(32),
      RTS_AUTH_JWT_SECRET: 'cd'.repeat(32),
    }),
    pino({ level: 'silent' }),
  );
const token = async (url: string, claims: Record<string, string>): Promise<string> => {
  const res = await fetch(`${url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claims) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
};
const call = async (url: string, method: string, path: string, bearer: string, body?: object) => {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};
const asPatient = (url: string, patient: string) => token(url, { role: 'patient', patient });

it('repeats on a pg_restore of an older dump the erasures made since, by key: readings 410, key table tombstone only', async () => {
  let erasedKey = '';
  const dump = join(data.dir, 'live.dump');
  const live = await start(LIVE);
  try {
    for (const [patient, systolic] of [[KEPT, 121], [ERASED, 131]] as const) {
      expect((await call(live.url, 'POST', '/observations', await asPatient(live.url, patient), { patientId: patient, systolic, diastolic: 70, observationId: `o-${systolic}` })).status).toBe(201);
    }
    execFileSync('pg_dump', ['-Fc', '-f', dump, urlOf(LIVE)]);
    const operator = await token(live.url, { role: 'operator', sub: 'dpo' });
    erasedKey = (await call(live.url, 'DELETE', `/patients/${ERASED}`, operator)).body.patientKey;
    const list = await call(live.url, 'GET', '/erasures', operator);
    expect(list.body.items).toEqual([{ kind: 'patient', patientKey: erasedKey, erasedAt: expect.any(String) }]);
    writeFileSync(join(data.dir, 'erasures.json'), JSON.stringify(list.body));
  } finally {
    await live.stop();
  }

  execFileSync('pg_restore', ['--no-owner', '-d', urlOf(RESTORED), dump]);
  const restored = await start(RESTORED);
  try {
    expect((await call(restored.url, 'GET', `/patients/${ERASED}/observations`, await asPatient(restored.url, ERASED))).body.count).toBe(1); // back
    let out = '';
    const io = { stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: (s: string) => ((out += s), true) }, env: { RTS_TOKEN: await token(restored.url, { role: 'operator', sub: 'ops' }) } };
    expect(await runErasures(['apply', '--from', join(data.dir, 'erasures.json'), '--url', restored.url], io)).toBe(0);
    expect(out).toContain('Done: 1 erased now, 0 already erased here.');
    expect(await call(restored.url, 'GET', `/patients/${ERASED}/observations`, await asPatient(restored.url, ERASED))).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
    expect((await call(restored.url, 'GET', `/patients/${KEPT}/observations`, await asPatient(restored.url, KEPT))).body.count).toBe(1);
  } finally {
    await restored.stop();
  }
  const db = new Client({ connectionString: urlOf(RESTORED) });
  await db.connect();
  try {
    expect((await db.query('SELECT data_key, erased_at IS NOT NULL AS erased FROM patient_keys WHERE patient_key = $1', [erasedKey])).rows).toEqual([{ data_key: null, erased: true }]);
    expect((await db.query('SELECT COUNT(*)::int AS n FROM registry_entries WHERE patient_key = $1', [erasedKey])).rows[0].n).toBe(0);
  } finally {
    await db.end();
  }
});
