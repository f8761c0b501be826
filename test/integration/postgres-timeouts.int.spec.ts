import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Client } from 'pg';
import { startHub, tempDataDir, type HubProcess } from '../support/hub-process';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';

/**
 * A running hub (the built program) whose PostgreSQL stops answering without closing anything: a proxy between
 * them stops forwarding (the pooled connections go silent, new ones are accepted and never answered). Before, every
 * upload and GET /health hung until the kernel gave up (~15 min). Now an upload gets 503 storage_unavailable within
 * the connect/statement bounds, /health within its deadline, and the hub recovers by itself once the database
 * answers again. And /health with the events table locked (a DBA's LOCK TABLE, VACUUM FULL) answers 503 within its
 * deadline instead of blocking.
 */
const ROOT = resolve(__dirname, '..', '..');
const base = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_timeouts_${process.pid}_${randomBytes(3).toString('hex')}`;
const QUERY_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_500;
const HEALTH_TIMEOUT_MS = 1_000;

jest.setTimeout(120_000);

let admin: Client;
let proxy: StallingProxy;
let hub: HubProcess;
const data = tempDataDir('rts-pg-timeouts-');

beforeAll(async () => {
  if (process.env['RTS_E2E_SKIP_BUILD'] !== '1') execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
  admin = new Client({ connectionString: base });
  await admin.connect();
  const target = new URL(base);
  proxy = await startStallingProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const url = new URL(base);
  url.port = String(proxy.port);
  hub = await startHub({
    dataDir: data.dir,
    env: {
      RTS_EVENT_STORE: 'postgres',
      RTS_POSTGRES_URL: url.toString(),
      RTS_POSTGRES_SCHEMA: schema,
      RTS_POSTGRES_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      RTS_POSTGRES_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      RTS_HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
      RTS_AUTH: 'off',
      RTS_LOG_LEVEL: 'info',
    },
  });
});

afterAll(async () => {
  await hub?.stop();
  await proxy?.close();
  await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin?.end();
  data.remove();
});

const timed = async (path: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown>; ms: number }> => {
  const started = Date.now();
  const res = await fetch(`${hub.url}${path}`, { ...init, signal: AbortSignal.timeout(60_000) });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body, ms: Date.now() - started };
};

const upload = (observationId: string) =>
  timed('/observations', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ observationId, patientId: '251248-1234', systolic: 126, diastolic: 70 }),
  });

it('the database stops answering: uploads and /health get 503 storage_unavailable within the bounds; the hub recovers by itself', async () => {
  expect((await upload('before-stall')).status).toBe(201);

  proxy.stall();
  const [write, health] = await Promise.all([upload('during-stall'), timed('/health')]);
  expect(health).toMatchObject({ status: 503, body: { code: 'storage_unavailable' } });
  expect(health.ms).toBeLessThan(HEALTH_TIMEOUT_MS + 1_000);
  expect(write).toMatchObject({ status: 503, body: { code: 'storage_unavailable' } });
  // One statement's bound, or a connect's (a pooled connection that went silent, or a new one never answered),
  // plus slack for a loaded machine: not the kernel's ~15 min.
  expect(write.ms).toBeLessThan(QUERY_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 3_000);
  // New connections meet the silent listener too: still bounded.
  const again = await upload('during-stall-2');
  expect(again).toMatchObject({ status: 503, body: { code: 'storage_unavailable' } });
  expect(again.ms).toBeLessThan(QUERY_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 3_000);
  expect(hub.child.exitCode).toBeNull();

  proxy.resume();
  const deadline = Date.now() + 20_000;
  let resent: Awaited<ReturnType<typeof upload>>;
  for (;;) {
    resent = await upload('during-stall');
    if (resent.status !== 503 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  expect([200, 201]).toContain(resent.status);
  expect((await timed('/health')).status).toBe(200);
  const log = hub.output();
  expect(log).toContain('answering 503 storage_unavailable');
  expect(log).not.toContain('251248-1234');
});

it('/health with the events table locked: 503 storage_unavailable within its deadline, 200 once the lock goes', async () => {
  const dba = new Client({ connectionString: base });
  await dba.connect();
  try {
    await dba.query('BEGIN');
    await dba.query(`LOCK TABLE "${schema}".events IN ACCESS EXCLUSIVE MODE`);
    const [first, second] = await Promise.all([timed('/health'), timed('/health')]);
    for (const probe of [first, second]) {
      expect(probe).toMatchObject({ status: 503, body: { code: 'storage_unavailable', detail: `the event store did not answer within ${HEALTH_TIMEOUT_MS} ms` } });
      expect(probe.ms).toBeLessThan(HEALTH_TIMEOUT_MS + 1_000);
    }
    await dba.query('COMMIT');
    const deadline = Date.now() + 10_000;
    let health = await timed('/health');
    while (health.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      health = await timed('/health');
    }
    expect(health.status).toBe(200);
  } finally {
    await dba.query('ROLLBACK').catch(() => undefined);
    await dba.end();
  }
});

it('/health names the cause when the database refuses connections (ECONNREFUSED), not "does not answer" as for a hung one', async () => {
  await proxy.close(); // the port it listened on refuses connections now; the pooled ones are cut
  const deadline = Date.now() + 15_000;
  let health = await timed('/health');
  while (!String(health.body['detail']).includes('ECONNREFUSED') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    health = await timed('/health');
  }
  expect(health).toMatchObject({ status: 503, body: { code: 'storage_unavailable', detail: 'the event store cannot be reached now (ECONNREFUSED)' } });
  expect(JSON.stringify(health.body)).not.toContain(String(proxy.port)); // no address: /health answers anyone
});
