jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import pino from 'pino';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * Two hub processes' compositions on one PostgreSQL database: hub B erases a patient whose data key hub A has in
 * its key cache (A stored the patient's reading a moment before). A's next query of that patient answers 410
 * patient_erased at once, not 404 unknown_patient ("we hold nothing of you") until A's cache entry expires a
 * minute later: where the registry holds nothing of a patient, the key store itself is asked.
 *
 * And uploads: hub A forgets the erased patient's cached key when its erasure subscriber sees B's PatientErased
 * in the store (erased-keys.ts), so A refuses the next upload with 410 within moments, not after the key cache's
 * 60 s (both hubs run with that default TTL here).
 */
const server = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = `wt_upgrade_erase_${process.pid}_${randomBytes(3).toString('hex')}`;
const urlOf = (db: string): string => {
  const u = new URL(server);
  u.pathname = `/${db}`;
  return u.toString();
};
const PATIENT = '251248-1234';
const OTHER = '010203-2345';
const UPLOADER = '030405-3456';

jest.setTimeout(60_000);

const data = tempDataDir('wt-upgrade-erase-two-');
let admin: Client;
const hubs: RunningHub[] = [];

const start = (port: number): Promise<RunningHub> =>
  startHub(
    loadConfig({
      RTS_EVENT_STORE: 'postgres',
      RTS_POSTGRES_URL: urlOf(DB),
      RTS_DATA_DIR: data.dir, // one data directory: the same hub keys, as the README asks of hubs on one store
      RTS_HTTP_HOST: '127.0.0.1',
      RTS_HTTP_PORT: String(port),
      RTS_AUTH: 'off',
      RTS_PSEUDONYM_SECRET: 'ef'.repeat(32),
    }),
    pino({ level: 'silent' }),
  );

beforeAll(async () => {
  admin = new Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DB}`);
  hubs.push(await start(23511));
  hubs.push(await start(23512));
});

afterAll(async () => {
  for (const hub of hubs) await hub.stop();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
  data.remove();
});

const call = async (url: string, method: string, path: string, body?: object) => {
  const res = await fetch(`${url}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const query = (patient: string) => `/patients/${patient}/observations?from=${encodeURIComponent(minutesAgo(60))}&to=${encodeURIComponent(minutesAgo(-1))}`;

it('a patient erased on hub B answers 410 patient_erased on hub A at once, though A still caches their key', async () => {
  const [a, b] = hubs as [RunningHub, RunningHub];
  expect((await call(a.url, 'POST', '/observations', { observationId: 'o-1', patientId: PATIENT, systolic: 120, diastolic: 70, measuredAt: minutesAgo(5) })).status).toBe(201);
  expect((await call(a.url, 'GET', query(PATIENT))).body.count).toBe(1); // A has the key in its cache now

  expect((await call(b.url, 'DELETE', `/patients/${PATIENT}`)).status).toBe(200);

  expect(await call(a.url, 'GET', query(PATIENT))).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
  expect(await call(b.url, 'GET', query(PATIENT))).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
  // A patient the hub never held anything of is still unknown, on either hub.
  expect(await call(a.url, 'GET', query(OTHER))).toMatchObject({ status: 404, body: { code: 'unknown_patient' } });
});

it('an upload on hub A for a patient erased on hub B is refused (410) within seconds, though A cached their key a moment before', async () => {
  const [a, b] = hubs as [RunningHub, RunningHub];
  const upload = (n: number) => call(a.url, 'POST', '/observations', { observationId: `u-${n}`, patientId: UPLOADER, systolic: 121, diastolic: 71, measuredAt: minutesAgo(4) });
  expect((await upload(0)).status).toBe(201); // the key is in A's cache now (TTL 60 s)

  const erasedAt = Date.now();
  expect((await call(b.url, 'POST', '/erasures', { patient: UPLOADER })).status).toBe(200);

  // Bounded: 10 s, far below the 60 s the cache would keep the key for.
  let answer = await upload(1);
  for (let n = 2; answer.status !== 410 && Date.now() - erasedAt < 10_000; n++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    answer = await upload(n);
  }
  expect(answer).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
  expect(Date.now() - erasedAt).toBeLessThan(10_000);
  // Nothing A accepted in that window shows up for the erased patient, on either hub.
  expect(await call(a.url, 'GET', query(UPLOADER))).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
  expect(await call(b.url, 'GET', query(UPLOADER))).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
});
