// jose (the hub keys) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { loadHubKeys } from '../../src/adapters/crypto/hub-keys';
import { readQueue } from '../support/sdk-queues';
import { downlinkQueue, getJson, joinSystem, profile, sendUplink, startChildHub, tempDir, until, uplink, useBroker, type ChildHub } from './hub-support';

/**
 * Two hub processes on one PostgreSQL schema and one broker (the distributed profile), counting what reaches the
 * systems' downlink queues: one process publishes, the other stands by (GET /health `downlink`); each message
 * leaves once; a clean stop of the publisher hands publishing over, and the process started again sends nothing it
 * sent before (the checkpoint is in PostgreSQL); kill -9 of the publisher hands over too, and nothing is lost.
 * Before the checkpoint was durable, a restart re-sent the whole downlink history, and both processes published.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_hub_publishing_${process.pid}_${randomBytes(4).toString('hex')}`;
const SYSTEMS = ['city-a', 'city-b'] as const;

jest.setTimeout(240_000);

const amq = useBroker();
let admin: Client;
const dirs: { remove(): void }[] = [];
const hubs: ChildHub[] = [];
let env: Record<string, string> = {};

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
  const keys = tempDir('rts-hub-publishing-keys-');
  dirs.push(keys);
  env = {
    RTS_EVENT_STORE: 'postgres',
    RTS_POSTGRES_URL: connectionString,
    RTS_POSTGRES_SCHEMA: schema,
    RTS_PSEUDONYM_SECRET: randomBytes(32).toString('hex'),
    RTS_HUB_KEYS_FILE: (await loadHubKeys({ dataDir: keys.dir })).file,
  };
});

afterAll(async () => {
  await Promise.all(hubs.map((h) => h.kill()));
  for (const d of dirs) d.remove();
  await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin?.end();
});

const startHub = async (): Promise<ChildHub> => {
  const dir = tempDir('rts-hub-publishing-');
  dirs.push(dir);
  const hub = await startChildHub(amq.broker, dir.dir, undefined, env);
  hubs.push(hub);
  return hub;
};

const downlinkRole = async (hub: ChildHub): Promise<string> => String((await getJson(hub.url, '/health')).body.downlink);

/** Everything on the systems' downlink queues now (taken off them), once no message came for `idleMs`. */
const drainDownlink = async (idleMs = 3000): Promise<{ id: string; type: string; systemId: string; expertId?: string }[]> => {
  const all = [];
  for (const systemId of SYSTEMS) {
    const messages = await readQueue(amq.broker, downlinkQueue(systemId), { count: 10_000, idleMs, timeoutMs: 60_000 });
    for (const m of messages) {
      const envelope = JSON.parse(String(m.body)) as { id: string; type: string; payload: { expertId?: string } };
      all.push({ id: envelope.id, type: envelope.type, systemId, ...(envelope.payload.expertId ? { expertId: envelope.payload.expertId } : {}) });
    }
  }
  return all;
};

const register = async (from: number, count: number): Promise<void> => {
  for (let i = from; i < from + count; i++) await sendUplink(amq.sender, uplink.registered('city-a', `e${i}`, profile(i)));
};

/** The upserts city-b got, once they number `expected` (or the wait ends), with everything else drained. */
const collect = async (expected: number) => {
  const got: Awaited<ReturnType<typeof drainDownlink>> = [];
  await until(`${expected} upserts for city-b`, async () => {
    got.push(...(await drainDownlink(1500)));
    return got.filter((m) => m.systemId === 'city-b' && m.type === 'directory.expert.upserted').length >= expected;
  }, 60_000, 0);
  got.push(...(await drainDownlink(2000))); // anything sent twice arrives by now
  return got;
};

it('one publisher among hub processes on PostgreSQL; a stop, a restart and a kill -9 re-send nothing and lose nothing', async () => {
  const first = await startHub();
  await until('the first hub publishes', async () => (await downlinkRole(first)) === 'publishing');
  const second = await startHub();
  await until('the second hub stands by', async () => (await downlinkRole(second)) === 'standby', 15_000);

  // Two systems join; city-a registers 20 experts: city-b gets each once, from one process.
  for (const id of SYSTEMS) await joinSystem(first.url, amq.sender, id);
  await register(0, 20);
  const initial = await collect(20);
  expect(initial.length).toBe(new Set(initial.map((m) => m.id)).size); // not published by both processes
  expect(initial.filter((m) => m.systemId === 'city-b' && m.type === 'directory.expert.upserted')).toHaveLength(20);
  expect(initial.filter((m) => m.type === 'directory.snapshot').length).toBeGreaterThan(0);

  // A clean stop of the publisher: the other takes over; started again, the stopped one sends nothing old.
  await first.stop();
  await until('the second hub takes over', async () => (await downlinkRole(second)) === 'publishing', 20_000);
  // The log line is written before /health can say 'publishing', but this process may read the HTTP answer before
  // the pipe's last lines (CI at 53b3817 failed on that): wait for it too.
  await until('the takeover is logged', () => second.output().includes('downlink publishing taken over'), 5_000);
  const restarted = await startHub();
  await until('the restarted hub stands by', async () => (await downlinkRole(restarted)) === 'standby', 15_000);
  expect(await drainDownlink(6000)).toEqual([]); // before: the whole history again (894 messages in the tester's run)

  await register(20, 5);
  const afterStop = await collect(5);
  expect(afterStop.map((m) => m.expertId).sort()).toEqual(['city-a:e20', 'city-a:e21', 'city-a:e22', 'city-a:e23', 'city-a:e24']);

  // kill -9 of the publisher: its database session ends, the standby takes over from the checkpoint.
  await second.kill();
  await until('the restarted hub takes over', async () => (await downlinkRole(restarted)) === 'publishing', 20_000);
  await register(25, 5);
  const afterKill = await collect(5);
  expect(afterKill.map((m) => m.expertId).sort()).toEqual(['city-a:e25', 'city-a:e26', 'city-a:e27', 'city-a:e28', 'city-a:e29']);
  const again = await startHub();
  await until('the hub started after the kill stands by', async () => (await downlinkRole(again)) === 'standby', 15_000);
  expect(await drainDownlink(6000)).toEqual([]);

  // The store's checkpoints are where the publishers got to (the retired-expert reactor stores none: no expert
  // retired and no case was offered here); the log says nothing of patients or experts.
  const { rows } = await admin.query<{ name: string }>(`SELECT name FROM "${schema}".subscription_checkpoints ORDER BY name`);
  expect(rows.map((r) => r.name)).toEqual(['consultation-downlink', 'downlink']);
  for (const hub of [first, second, restarted, again]) expect(hub.output()).not.toMatch(/city-a:e\d/);
});
