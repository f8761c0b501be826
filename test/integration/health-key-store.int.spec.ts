jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * The embedded key store (patient-keys.sqlite) is a file of its own: another process holding its write lock (an
 * operator's `sqlite3` shell in a transaction, a tool copying it) makes every new patient's upload and every erasure
 * 503 storage_unavailable, while telemed.sqlite takes writes. /health said 200 ok and rts_store_writes_failing 0
 * meanwhile, so a load balancer kept sending uploads the hub could not store, and no alert fired.
 */
const data = tempDataDir('rts-health-keys-');
let hub: RunningHub | undefined;
afterAll(async () => {
  await hub?.stop();
  data.remove();
});

const token = async (url: string, claims: Record<string, string>): Promise<string> => {
  const res = await fetch(`${url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claims) });
  return ((await res.json()) as { token: string }).token;
};
const upload = async (url: string, patient: string) =>
  fetch(`${url}/observations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(url, { role: 'patient', patient })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ patientId: patient, systolic: 126, diastolic: 70, observationId: `o-${patient.slice(0, 2)}` }),
  });
const metric = async (url: string, name: string): Promise<number> => {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${await token(url, { role: 'operator' })}` } });
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await res.text())?.[1] ?? 'NaN');
};

it("/health and rts_store_writes_failing say so while the key store's writes fail, and recover without an upload once it takes them", async () => {
  hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on' }), pino({ level: 'silent' }));
  expect((await upload(hub.url, '251248-1234')).status).toBe(201);
  expect((await fetch(`${hub.url}/health`)).status).toBe(200);

  const other = new Database(join(data.dir, DATA_FILES.patientKeys));
  try {
    other.exec('BEGIN IMMEDIATE'); // the key store's write lock, held by another connection
    const refused = await upload(hub.url, '010203-4321');
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe('storage_unavailable');

    const health = await fetch(`${hub.url}/health`);
    expect(health.status).toBe(503);
    expect((await health.json()) as object).toMatchObject({ code: 'storage_unavailable', detail: expect.stringMatching(/SQLITE_BUSY.*another process holds patient-keys\.sqlite's lock/) });
    // Which file: the operator looking for the lock holder (lsof, fuser) found none on telemed.sqlite, "the store".
    expect(((await (await fetch(`${hub.url}/health`)).json()) as { detail: string }).detail).not.toContain('telemed.sqlite');
    expect(await metric(hub.url, 'rts_store_writes_failing')).toBe(1);
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }

  // No upload comes (a load balancer took the hub out): the health check's own write finds the key store writable.
  const back = await fetch(`${hub.url}/health`);
  expect(back.status).toBe(200);
  expect(await metric(hub.url, 'rts_store_writes_failing')).toBe(0);
  expect((await upload(hub.url, '010203-4321')).status).toBe(201);
});

it('rts_store_writes_failing goes back to 0 at the next scrape once the key store takes writes, without /health or an upload', async () => {
  hub ??= await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on' }), pino({ level: 'silent' }));
  const other = new Database(join(data.dir, DATA_FILES.patientKeys));
  try {
    other.exec('BEGIN IMMEDIATE');
    expect((await upload(hub.url, '020304-4321')).status).toBe(503);
    expect(await metric(hub.url, 'rts_store_writes_failing')).toBe(1);
    // Still held: the scrape's probe does not wait for the lock, and does not clear the gauge.
    expect(await metric(hub.url, 'rts_store_writes_failing')).toBe(1);
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
  // Prometheus scrapes; nobody calls /health (it is not the load balancer's hub any more) and no upload comes.
  // Before: the gauge stayed 1 (the alert kept firing) until one of those came.
  expect(await metric(hub.url, 'rts_store_writes_failing')).toBe(0);
  expect((await upload(hub.url, '020304-4321')).status).toBe(201);
});
