// A city system joins with 5,000 experts in batches of 500: the two systems already joined receive them all,
// exactly once in effect (dedupe by envelope id), and the newcomer receives the full directory as a snapshot.
import { DurableSender, type AmqpConnection } from '../../src/adapters/amqp';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { DownlinkCollector, batchesOf, connect, getJson, registerSystem, sendUplink, startInProcessHub, tempDir, uplink, until } from './hub-support';

jest.setTimeout(150_000);

let broker: TestBroker;
let connection: AmqpConnection;
let sender: DurableSender;
let hub: RunningHub;
const data = tempDir('rts-hub-join-');

beforeAll(async () => {
  broker = await startBroker();
  connection = connect(broker);
  await connection.waitConnected();
  sender = new DurableSender(connection);
  hub = await startInProcessHub(broker, data.dir);
});

afterAll(async () => {
  await hub?.stop();
  await sender?.close();
  await connection?.close();
  await broker?.destroy();
  data.remove();
});

it('city C joins with 5,000 experts: A and B get each once in effect, C gets the directory snapshot', async () => {
  const collectors: Record<string, DownlinkCollector> = {};
  for (const id of ['city-a', 'city-b', 'city-c']) {
    await registerSystem(hub.url, id);
    collectors[id] = new DownlinkCollector(connection, id);
    await collectors[id]!.start();
  }

  // A and B join with small batches (A first, then B: B's snapshot holds A's experts).
  for (const [id, count] of [['city-a', 30], ['city-b', 20]] as const) {
    const batches = batchesOf(id, count, 10, `${id[5]}`);
    await sendUplink(sender, uplink.join(id, batches.length, count));
    for (const b of batches) await sendUplink(sender, b);
    await until(`${id} joined`, async () => (await getJson(hub.url, `/systems/${id}`)).body.status === 'joined');
  }
  await until('B has A in its snapshot and A has B', () => collectors['city-b']!.upsertedExperts().size === 30 && collectors['city-a']!.upsertedExperts().size === 20);

  const started = Date.now();
  const batches = batchesOf('city-c', 5000, 500, 'c');
  expect(batches).toHaveLength(10);
  await sendUplink(sender, uplink.join('city-c', 10, 5000));
  await Promise.all(batches.map((b) => sendUplink(sender, b)));
  const sentIn = Date.now() - started;

  await until('C joined', async () => (await getJson(hub.url, '/systems/city-c')).body.status === 'joined', 120_000, 200);
  const joinedIn = Date.now() - started;
  const cExperts = (c: DownlinkCollector) => [...c.upsertedExperts()].filter((id) => id.startsWith('city-c:')).length;
  await until('A and B received C\'s 5,000 experts', () => cExperts(collectors['city-a']!) === 5000 && cExperts(collectors['city-b']!) === 5000, 120_000, 100);
  await until('C received the snapshot', () => collectors['city-c']!.distinct('directory.snapshot').length >= 1 && collectors['city-c']!.upsertedExperts().size === 50);
  const deliveredIn = Date.now() - started;

  const system = (await getJson(hub.url, '/systems/city-c')).body;
  expect(system).toMatchObject({ status: 'joined', activeExperts: 5000, join: { expectedBatches: 10, batchesImported: 10, expectedExperts: 5000, expertsImported: 5000, percent: 100 } });

  for (const id of ['city-a', 'city-b']) {
    const c = collectors[id]!;
    expect(c.bad).toEqual([]);
    const upserts = c.distinct('directory.expert.upserted').filter((e) => e.type === 'directory.expert.upserted' && e.payload.homeSystemId === 'city-c');
    // Exactly once in effect: one distinct message per expert (redeliveries share the id).
    expect(upserts).toHaveLength(5000);
    expect(new Set(upserts.map((e) => (e.type === 'directory.expert.upserted' ? e.payload.expertId : ''))).size).toBe(5000);
    expect(c.distinct('system.joined').filter((e) => e.type === 'system.joined' && e.payload.systemId === 'city-c')).toHaveLength(1);
    // Never their own experts back.
    expect([...c.upsertedExperts()].some((x) => x.startsWith(`${id}:`))).toBe(false);
    // The envelope fields travel as application-properties too.
    const one = c.deliveries.find((d) => d.envelope.type === 'directory.expert.upserted')!;
    expect(one.properties).toMatchObject({ messageId: one.envelope.id, type: 'directory.expert.upserted', version: 1, systemId: id, correlationId: one.envelope.correlationId });
  }

  const c = collectors['city-c']!;
  const snapshot = c.distinct('directory.snapshot');
  const snapshotExperts = snapshot.flatMap((e) => (e.type === 'directory.snapshot' ? e.payload.experts.map((x) => x.expertId) : []));
  expect(new Set(snapshotExperts).size).toBe(50);
  expect(snapshotExperts.filter((x) => x.startsWith('city-a:'))).toHaveLength(30);
  expect(snapshotExperts.filter((x) => x.startsWith('city-b:'))).toHaveLength(20);
  expect(c.distinct('system.joined').some((e) => e.type === 'system.joined' && e.payload.systemId === 'city-c')).toBe(true);
  expect([...c.upsertedExperts()].some((x) => x.startsWith('city-c:'))).toBe(false);

  const redeliveries = collectors['city-a']!.deliveries.length - collectors['city-a']!.distinct().length;
  // eslint-disable-next-line no-console
  console.log(`hub-join: 10 batches sent in ${sentIn} ms, C joined after ${joinedIn} ms, 2 x 5,000 upserts + snapshot delivered after ${deliveredIn} ms; A saw ${redeliveries} redeliveries`);
  for (const collector of Object.values(collectors)) await collector.stop();
});
