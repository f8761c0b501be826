// A city system joins with 5,000 experts in batches of 500: the two systems already joined receive them all,
// exactly once in effect (dedupe by envelope id), and the newcomer receives the full directory as a snapshot.
import { DurableSender, type AmqpConnection } from '../../src/adapters/amqp';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { DownlinkCollector, batchesOf, connect, getJson, profile, registerSystem, sendUplink, startInProcessHub, tempDir, uplink, until } from './hub-support';

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

it('a directory too large for one message reaches a newcomer in parts under the broker limit, and the downlink goes on', async () => {
  // Profiles at the schema's limits, in Chinese (three UTF-8 bytes a character): ~7.5 KiB of JSON an expert, so
  // 300 experts are ~2.2 MiB, where the broker takes 1 MiB a message. Cut by count alone (500 a part) the snapshot
  // was one message the broker refused, which the publisher sent again forever: no system got any downlink after it.
  const han = (n: number, length: number) => String.fromCharCode(0x4e00 + (n % 2000)).repeat(length);
  const big = (n: number) =>
    profile(n, {
      name: han(n, 200),
      title: han(n + 1, 100),
      specialties: Array.from({ length: 20 }, (_, i) => han(n + i, 100)),
      location: { city: han(n, 100), hospital: han(n + 2, 200) },
      languages: ['zh'],
    });
  const collectors: Record<string, DownlinkCollector> = {};
  for (const id of ['city-d', 'city-e']) {
    await registerSystem(hub.url, id);
    collectors[id] = new DownlinkCollector(connection, id);
    await collectors[id]!.start();
  }
  // D joins with 300 such experts, 25 a batch (each batch well under the limit).
  const count = 300;
  const batches = Array.from({ length: count / 25 }, (_, b) =>
    uplink.batch('city-d', b, count / 25, Array.from({ length: 25 }, (_, i) => ({ localExpertId: `big${b * 25 + i}`, ...big(b * 25 + i) }))),
  );
  await sendUplink(sender, uplink.join('city-d', batches.length, count));
  for (const b of batches) await sendUplink(sender, b);
  await until('D joined', async () => (await getJson(hub.url, '/systems/city-d')).body.status === 'joined', 60_000, 200);

  // E joins: its snapshot holds D's experts (and those of the systems joined before), D's alone far over 1 MiB.
  await sendUplink(sender, uplink.join('city-e', 1, 1));
  await sendUplink(sender, uplink.batch('city-e', 0, 1, [{ localExpertId: 'e0', ...profile(0) }]));
  const e = collectors['city-e']!;
  const dExperts = () => [...e.upsertedExperts()].filter((x) => x.startsWith('city-d:')).length;
  await until("E received D's 300 experts in its snapshot", () => dExperts() === count, 90_000, 200);
  const parts = e.distinct('directory.snapshot').filter((m) => m.type === 'directory.snapshot' && m.payload.snapshotId !== undefined);
  const ofE = parts.filter((m) => m.type === 'directory.snapshot' && m.payload.experts.some((x) => x.expertId.startsWith('city-d:')));
  expect(ofE.length).toBeGreaterThan(1);
  for (const part of ofE) expect(Buffer.byteLength(JSON.stringify(part))).toBeLessThan(1024 * 1024);
  const last = ofE[0]!;
  if (last.type !== 'directory.snapshot') throw new Error('not a snapshot');
  // One snapshot, every part of it, each index once.
  const mine = parts.filter((m) => m.type === 'directory.snapshot' && m.payload.snapshotId === last.payload.snapshotId);
  expect(mine).toHaveLength(last.payload.batchCount);
  expect(new Set(mine.map((m) => (m.type === 'directory.snapshot' ? m.payload.batchIndex : -1))).size).toBe(last.payload.batchCount);

  // And the downlink goes on: experts registered afterwards by D reach E, and by E reach D.
  await sendUplink(sender, uplink.registered('city-d', 'after-big', profile(999)));
  await sendUplink(sender, uplink.registered('city-e', 'after-big', profile(998)));
  await until('D and E got the later experts', () => collectors['city-d']!.upsertedExperts().has('city-e:after-big') && e.upsertedExperts().has('city-d:after-big'), 60_000, 100);
  expect(collectors['city-d']!.bad).toEqual([]);
  expect(e.bad).toEqual([]);
  for (const collector of Object.values(collectors)) await collector.stop();
});
