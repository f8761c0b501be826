// A system offline while its downlink queue fills the broker's store (scripts/activemq/broker.sh, rendered here
// with a 12 MB store). ActiveMQ's default is to block a send that finds the store full, on the sending connection's
// own thread: before, every send stopped (a system's uplink too, its connection dropped by the idle timeout) and the
// hub's /health said all was well, since nothing reached it. broker.sh now lets the downlink queues fill the store
// only to 80 % (storeUsageHighWaterMark) and refuses a send without space (sendFailIfNoSpace): the uplink goes on,
// the downlink publisher's sends are rejected (resource-limit-exceeded), /health and /metrics say it is stalled,
// and once the offline system has drained its queue the hub sends what waited, to everyone, by itself.
import type { RunningHub } from '../../src/bootstrap/main';
import { DurableSender, SendError, type AmqpConnection } from '../../src/adapters/amqp';
import { startBroker, type TestBroker } from '../support/activemq';
import { connect, DownlinkCollector, downlinkQueue, getJson, joinSystem, profile, sendUplink, startInProcessHub, tempDir, until, uplink } from './hub-support';

jest.setTimeout(180_000);

let broker: TestBroker;
let connection: AmqpConnection;
let sender: DurableSender;
let filler: DurableSender;
let hub: RunningHub;
const collectors: DownlinkCollector[] = [];
const data = tempDir('rts-hub-full-broker-');

beforeAll(async () => {
  broker = await startBroker({ storeLimit: '12 mb', journalFileLength: '2mb' });
  connection = connect(broker);
  await connection.waitConnected();
  sender = new DurableSender(connection);
  filler = new DurableSender(connection, { sendTimeoutMs: 20_000 });
  // Stalled after 10 s without progress (the shortest allowed).
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_DOWNLINK_STALL_AFTER_MS: '10000' } });
});

afterAll(async () => {
  for (const c of collectors) await c.stop().catch(() => undefined);
  await filler?.close().catch(() => undefined);
  await sender?.close().catch(() => undefined);
  await connection?.close().catch(() => undefined);
  await hub?.stop();
  await broker?.destroy();
  data.remove();
});

const metricsText = async () => (await fetch(`${hub.url}/metrics`)).text();

it('keeps the uplink going while an offline system fills the store, says the downlink is stalled, and recovers once it drains', async () => {
  for (const s of ['city-a', 'city-b', 'city-c']) await joinSystem(hub.url, sender, s);
  const a = new DownlinkCollector(connection, 'city-a');
  collectors.push(a);
  await a.start();

  // city-c is offline; what waits for it fills the store (64 KB a message, as ~100 directory changes each).
  const body = 'x'.repeat(64 * 1024);
  let filled = 0;
  let refusal: unknown;
  while (refusal === undefined) {
    await filler.send(downlinkQueue('city-c'), { body, applicationProperties: { filler: true } }).then(
      () => filled++,
      (error: unknown) => (refusal = error),
    );
  }
  // Refused at once, not held: held, the send timed out or the connection was dropped.
  expect(refusal).toBeInstanceOf(SendError);
  expect((refusal as SendError).reason).toBe('rejected');
  expect((refusal as SendError).message).toMatch(/resource-limit-exceeded/);
  expect(filled).toBeGreaterThan(50);

  // A change from city-b: the uplink still takes it, and the hub applies it.
  await sendUplink(sender, uplink.registered('city-b', 'wei', profile(1)));
  await until('the hub has the expert', async () => (await getJson(hub.url, '/experts/city-b:wei')).status === 200, 30_000, 200);
  // Its upsert cannot be stored for anyone: the publisher is stalled, and says so.
  await until('downlink stalled', async () => (await getJson(hub.url, '/health')).body.downlink === 'stalled', 40_000, 500);
  expect((await getJson(hub.url, '/health')).body).toMatchObject({ status: 'degraded', broker: 'connected', uplink: 'consuming', downlink: 'stalled' });
  expect(await metricsText()).toMatch(/^rts_downlink_stalled\{publisher="directory"\} 1$/m);
  expect(a.upsertedExperts().has('city-b:wei')).toBe(false);

  // city-c comes back and takes its queue: the fillers, then the upsert, which the hub sends by itself, to both.
  const c = new DownlinkCollector(connection, 'city-c');
  collectors.push(c);
  await c.start();
  await until('both have the upsert', () => a.upsertedExperts().has('city-b:wei') && c.upsertedExperts().has('city-b:wei'), 90_000, 200, () => `${a.describe()}\n${c.describe()}`);
  expect(c.bad.length).toBe(filled);
  await until('downlink publishing again', async () => (await getJson(hub.url, '/health')).body.downlink === 'publishing', 30_000, 500);
  expect(await metricsText()).toMatch(/^rts_downlink_stalled\{publisher="directory"\} 0$/m);
});
