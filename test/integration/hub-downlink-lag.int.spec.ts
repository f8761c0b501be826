// The downlink publishers' lag on /metrics, with the real broker: a hub whose broker goes away keeps taking
// consultations over HTTP, and its consultation publisher cannot send their offers. /metrics shows it behind
// (rts_downlink_lag_events and rts_downlink_lag_seconds above 0 for publisher="consultations"; the directory's
// publisher, with nothing to send, stays at the head), and 0 again once the broker is back and the offers are sent.
// Before, nothing on /metrics showed a publisher falling behind (a soak saw one starve at 4x the uplink rate).
import type { RunningHub } from '../../src/bootstrap/main';
import { DurableSender, type AmqpConnection } from '../../src/adapters/amqp';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';
import { connect, downlinkQueue, getJson, postJson, profile, registerSystem, sendUplink, startInProcessHub, tempDir, until, uplink } from './hub-support';

jest.setTimeout(240_000);

let broker: TestBroker;
let connection: AmqpConnection;
let sender: DurableSender;
let hub: RunningHub;
let proxy: StallingProxy | undefined;
const data = tempDir('rts-hub-downlink-lag-');

const lagOf = async (publisher: string): Promise<{ events: number; seconds: number }> => {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{publisher="${publisher}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  return { events: value('rts_downlink_lag_events'), seconds: value('rts_downlink_lag_seconds') };
};
const metricsText = async () => (await fetch(`${hub.url}/metrics`)).text();

beforeAll(async () => {
  broker = await startBroker();
  connection = connect(broker);
  await connection.waitConnected();
  sender = new DurableSender(connection);
  // Stalled after 10 s without progress (the shortest allowed), so the outage below shows it.
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_DOWNLINK_STALL_AFTER_MS: '10000' } });
});

afterAll(async () => {
  await sender?.close().catch(() => undefined);
  await connection?.close().catch(() => undefined);
  await hub?.stop();
  await proxy?.close();
  await broker?.destroy();
  data.remove();
});

it('shows the consultation publisher behind while the broker is away, and at the head again once it is back', async () => {
  // Two joined systems, one with an expert the other can ask.
  await registerSystem(hub.url, 'city-a');
  await registerSystem(hub.url, 'city-b');
  await sendUplink(sender, uplink.join('city-b', 1, 1));
  await sendUplink(sender, uplink.batch('city-b', 0, 1, [{ localExpertId: 'wei', ...profile(1) }]));
  await sendUplink(sender, uplink.join('city-a', 0, 0));
  await until('both joined', async () => (await getJson(hub.url, '/systems')).body.items.filter((s: { status: string }) => s.status === 'joined').length === 2);
  // Both publishers at the head: their lag is sampled every 5 s.
  await until('no lag', async () => {
    const [d, c] = [await lagOf('directory'), await lagOf('consultations')];
    return d.events === 0 && d.seconds === 0 && c.events === 0 && c.seconds === 0;
  }, 60_000, 500);

  // The broker goes away; the hub still takes consultations, whose offers wait to be sent.
  await broker.stop();
  await until('broker disconnected', async () => (await getJson(hub.url, '/health')).body.broker === 'disconnected', 60_000, 200);
  const requested = await postJson<{ id: string; status: string }>(hub.url, '/consultations', { applicantSystemId: 'city-a', applicantClinician: 'dr-a', candidates: ['city-b:wei'], clinicalQuestion: 'Second opinion on an ECG', summary: '' });
  expect(requested.status).toBe(201);
  expect(requested.body.status).toBe('offered');
  let behind = { events: 0, seconds: 0 };
  await until('the consultation publisher behind, the directory one not', async () => {
    behind = await lagOf('consultations');
    const d = await lagOf('directory');
    return behind.events > 0 && behind.seconds > 0 && d.events === 0;
  }, 30_000, 500);
  // It keeps growing while nothing can be sent: more events, an older first one.
  await until('more behind', async () => {
    const now = await lagOf('consultations');
    return now.seconds > behind.seconds + 1;
  }, 30_000, 500);
  const second = await postJson<{ id: string; status: string }>(hub.url, '/consultations', { applicantSystemId: 'city-a', applicantClinician: 'dr-a', candidates: ['city-b:wei'], clinicalQuestion: 'A third opinion', summary: '' });
  expect(second.status).toBe(201);
  await until('more events behind', async () => (await lagOf('consultations')).events > behind.events, 30_000, 500);
  // No progress for 10 s with events waiting: /health says the downlink is stalled (still ok: uploads work).
  await until('downlink stalled', async () => (await getJson(hub.url, '/health')).body.downlink === 'stalled', 30_000, 500);
  expect((await getJson(hub.url, '/health')).body).toMatchObject({ status: 'degraded', broker: 'disconnected', downlink: 'stalled' });
  expect(await metricsText()).toMatch(/^rts_downlink_stalled\{publisher="consultations"\} 1$/m);
  expect(await metricsText()).toMatch(/^rts_downlink_stalled\{publisher="directory"\} 0$/m);
  // Labels: the fixed publisher names, nothing else.
  const labelled = (await metricsText()).match(/^rts_downlink_lag_\w+\{[^}]*\}/gm) ?? [];
  expect(new Set(labelled)).toEqual(
    new Set(['directory', 'consultations'].flatMap((p) => [`rts_downlink_lag_events{publisher="${p}"}`, `rts_downlink_lag_seconds{publisher="${p}"}`])),
  );

  // The broker is back: the offers go out, and the lag is 0 again.
  broker = await broker.startAgain(); // it owns the data dir now: afterAll's destroy() deletes it
  await until('caught up', async () => {
    const c = await lagOf('consultations');
    return c.events === 0 && c.seconds === 0;
  }, 120_000, 500);
  await until('downlink publishing again', async () => (await getJson(hub.url, '/health')).body.downlink === 'publishing', 30_000, 500);
  expect(await metricsText()).toMatch(/^rts_downlink_stalled\{publisher="consultations"\} 0$/m);
  const offers = await readQueue(broker, downlinkQueue('city-b'), { count: 50, idleMs: 3000 });
  const offered = offers.filter((m) => m.application_properties?.type === 'consultation.offered').map((m) => JSON.parse(String(m.body)).payload.consultationId as string);
  expect(offered).toEqual(expect.arrayContaining([requested.body.id, second.body.id]));
});

// The case /health missed (conformance report, finding 3): the broker keeps the hub's connection open and stops
// reading it, so the hub stays connected while nothing it sends arrives. The lag stood at ~10,000 events for ten
// minutes with `downlink: "publishing"`. Here a proxy stops carrying the hub's bytes; the broker's still arrive.
it('says the downlink is stalled while the broker is connected but takes nothing, and publishing once it moves again', async () => {
  await hub.stop();
  proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
  hub = await startInProcessHub({ ...broker, url: `amqp://127.0.0.1:${proxy.port}` }, data.dir, { env: { RTS_DOWNLINK_STALL_AFTER_MS: '10000' } });
  await until('consuming, at the head', async () => {
    const health = (await getJson(hub.url, '/health')).body;
    const c = await lagOf('consultations');
    return health.uplink === 'consuming' && health.downlink === 'publishing' && c.events === 0;
  }, 60_000, 500);

  proxy.deafen();
  const requested = await postJson<{ id: string }>(hub.url, '/consultations', { applicantSystemId: 'city-a', applicantClinician: 'dr-a', candidates: ['city-b:wei'], clinicalQuestion: 'Stalled broker', summary: '' });
  expect(requested.status).toBe(201);
  await until('downlink stalled', async () => (await getJson(hub.url, '/health')).body.downlink === 'stalled', 40_000, 500);
  // Connected all the while: only the stall rule tells.
  expect((await getJson(hub.url, '/health')).body).toMatchObject({ status: 'degraded', broker: 'connected', downlink: 'stalled' });

  // The flow ends (the hub's idle timeout, or the broker's); the hub reconnects, the offer goes out.
  proxy.stall();
  proxy.resume();
  await until('publishing again, at the head', async () => {
    const health = (await getJson(hub.url, '/health')).body;
    const c = await lagOf('consultations');
    return health.downlink === 'publishing' && c.events === 0;
  }, 90_000, 500);
});
