// rts_downlink_queue_depth{system} on /metrics and `downlinkQueueDepth` on GET /systems, against real ActiveMQ: how
// many messages wait on each known system's downlink queue, as the broker the hub is connected to counts them (its
// statistics plugin, one wildcard request per reading). Three joined systems, one of them offline while another
// registers 300 experts: its queue grows to 300 and more, the two online ones stay at 0; a queue of a name no system has
// is not reported; the offline system comes back, drains its queue and the figure falls to 0. Then the hub fails over
// to a broker without the plugin: every series gone at once, GET /systems says null, one warning.
//
// Before: nothing on the hub showed what a system had not consumed (/health and rts_downlink_lag_* say only what the
// hub has published); the last session measured an offline system's queue at 20,000 with the hub saying `ok`.
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { DownlinkCollector, downlinkQueue, getJson, joinSystem, profile, sendUplink, jsonLines, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(240_000);

const amq = useBroker();
const data = tempDir('rts-downlink-depth-');
let withoutPlugin: TestBroker | undefined;
let hub: RunningHub | undefined;
const collectors: DownlinkCollector[] = [];
const { logger, lines: logLines } = jsonLines();

type QueueDepth = { messages: number; oldestMessageAgeSeconds: number | null; consumers: number | null; readAt: string } | null;
type System = { id: string; downlinkQueueDepth: QueueDepth };

const metricsText = async (): Promise<string> => (await fetch(`${hub!.url}/metrics`)).text();
const sample = async (name: string, system: string): Promise<number | undefined> => {
  const line = (await metricsText()).split('\n').find((l) => l.startsWith(`${name}{system="${system}"} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};
const depthOf = (system: string) => sample('rts_downlink_queue_depth', system);
const systems = async (): Promise<Record<string, QueueDepth>> => {
  const res = await getJson<{ items: System[] }>(hub!.url, '/systems');
  expect(res.status).toBe(200);
  return Object.fromEntries(res.body.items.map((s) => [s.id, s.downlinkQueueDepth]));
};
const detail = () => `log: ${JSON.stringify(logLines.slice(-5))}`;
const online = async (systemId: string): Promise<DownlinkCollector> => {
  const collector = new DownlinkCollector(amq.connection, systemId);
  collectors.push(collector);
  await collector.start();
  return collector;
};

beforeAll(async () => {
  withoutPlugin = await startBroker({ statistics: false });
  // The broker with the plugin first: the hub connects there, and fails over to the other one when it stops.
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_BROKER_URL: `${amq.broker.url},${withoutPlugin.url}`, RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' }, logger });
});
afterAll(async () => {
  for (const c of collectors) await c.stop();
  await hub?.stop();
  await withoutPlugin?.destroy();
  data.remove();
});

test('an offline system whose queue grows shows per system, the online ones at 0, a queue of no known system not at all', async () => {
  // Online: city-on and city-src take their downlink; city-off joined and went away.
  await online('city-on');
  await online('city-src');
  for (const id of ['city-on', 'city-off', 'city-src']) await joinSystem(hub!.url, amq.sender, id);
  await until('every joined system read', async () => (await depthOf('city-src')) !== undefined && (await depthOf('city-off')) !== undefined, 60_000, 200, detail);
  // A queue under the prefix that no system has (a name a sender made up): never reported.
  await amq.sender.send(downlinkQueue('ghost'), { body: 'x' });

  // 300 experts from city-src: each goes to every other joined system.
  await Promise.all(Array.from({ length: 300 }, (_, i) => sendUplink(amq.sender, uplink.registered('city-src', `e${i}`, profile(i)))));
  await until('city-on has all 300', () => collectors[0]!.upsertedExperts().size === 300, 120_000, 200, () => collectors[0]!.describe());
  await until('city-off at 300 or more', async () => ((await depthOf('city-off')) ?? 0) >= 300, 60_000, 200, detail);
  await until('city-on at 0', async () => (await depthOf('city-on')) === 0, 60_000, 200, detail);
  expect(await depthOf('city-src')).toBe(0);
  expect(await depthOf('ghost')).toBeUndefined();
  // The first message on city-off's queue has waited since the joins, by the broker's clock.
  expect(await sample('rts_downlink_oldest_message_age_seconds', 'city-off')).toBeGreaterThan(0);
  expect(await sample('rts_downlink_oldest_message_age_seconds', 'city-on')).toBe(0);

  const view = await systems();
  expect(Object.keys(view).sort()).toEqual(['city-off', 'city-on', 'city-src']);
  expect(view['city-off']).toEqual({ messages: expect.any(Number), oldestMessageAgeSeconds: expect.any(Number), consumers: 0, readAt: expect.any(String) });
  expect(view['city-off']!.messages).toBeGreaterThanOrEqual(300);
  expect(view['city-on']).toMatchObject({ messages: 0, oldestMessageAgeSeconds: 0, consumers: 1 });
  expect(Date.parse(view['city-off']!.readAt)).toBeGreaterThan(Date.now() - 60_000);
  const single = await getJson<System>(hub!.url, '/systems/city-off');
  expect(single.body.downlinkQueueDepth?.messages).toBeGreaterThanOrEqual(300);
});

test('the offline system comes back and drains its queue: the figure falls to 0', async () => {
  const before = (await depthOf('city-off'))!;
  const back = await online('city-off');
  await until('city-off has every expert', () => back.upsertedExperts().size === 300, 120_000, 200, () => back.describe());
  await until('city-off at 0', async () => (await depthOf('city-off')) === 0, 60_000, 200, detail);
  expect(before).toBeGreaterThanOrEqual(300);
  expect((await systems())['city-off']).toMatchObject({ messages: 0, oldestMessageAgeSeconds: 0, consumers: 1 });
});

test('after a failover to a broker without the statistics plugin: no series and null on GET /systems, one warning however many readings fail', async () => {
  expect(await depthOf('city-on')).toBe(0);
  // The warnings from here on: on a loaded machine a reading before the failover may have gone unanswered too (its
  // warning, then a reading that worked again, which ends that one; ci117 saw two lines so).
  const from = logLines.length;
  const warnings = () => logLines.slice(from).filter((l) => String(l.msg).startsWith('the depth of the downlink queues cannot be read'));
  await amq.broker.stop();
  await until('the hub on the broker without the plugin, a reading unanswered', async () => {
    const health = await getJson<{ broker: string }>(hub!.url, '/health');
    return health.body.broker === 'connected' && warnings().length > 0;
  }, 60_000, 200, detail);
  const text = await metricsText();
  expect(text).toContain('# TYPE rts_downlink_queue_depth gauge');
  expect(text).not.toMatch(/^rts_downlink_queue_depth\{/m);
  expect(text).not.toMatch(/^rts_downlink_oldest_message_age_seconds\{/m);
  expect(Object.values(await systems())).toEqual([null, null, null]);
  // Two more readings, still one warning; the readings are counted, and when the figures were last read is kept.
  const readings = async () => (await metricsText()).match(/^rts_downlink_queue_depth_readings_total\{result="no_answer"\} (\d+)$/m)?.[1];
  const readAt = async () => Number((await metricsText()).match(/^rts_downlink_queue_depth_read_timestamp_seconds (\S+)$/m)?.[1]);
  const lastRead = await readAt();
  const now = Number(await readings());
  expect(now).toBeGreaterThanOrEqual(1);
  await until('two more readings', async () => Number(await readings()) >= now + 2, 60_000, 200, detail);
  expect(await readAt()).toBe(lastRead);
  expect(lastRead).toBeGreaterThan(Date.now() / 1000 - 300);
  expect((await metricsText()).match(/^rts_downlink_queue_depth_readings_total\{result="ok"\} (\d+)$/m)?.[1]).toMatch(/^[1-9]\d*$/);
  expect(warnings()).toEqual([
    expect.objectContaining({ level: 40, reason: 'no_answer', queues: 'rts.downlink.>' }),
  ]);
});
