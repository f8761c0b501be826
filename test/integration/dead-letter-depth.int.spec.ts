// rts_dead_letters on /metrics, against real ActiveMQ: the depth of the dead letter queue as the broker the hub is
// connected to counts it (its statistics plugin, which scripts/activemq/broker.sh enables). The hub dead-letters
// messages and a sender puts 2,500 more there, as systems' accounts may: the gauge reads them all, past what a browse
// shows (at most 1000, `more: true`); discards and replays take it down. The hub then fails over to a broker without
// the plugin: the figure of the first broker is gone at once (no sample, never a stale one), the hub logs one
// warning however many readings fail, and the time of the last reading stays for an alert on its age.
//
// Before: no metric of the dead letter queue at all; GET /dead-letters lists at most 1000 and says only `more`.
import { DLQ_AT, DLQ_ATTEMPTS, DLQ_REASON, DLQ_SOURCE_QUEUE } from '../../src/adapters/amqp/queue-consumer';
import { DLQ_ID } from '../../src/adapters/messaging/amqp-uplink-consumer';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { DLQ, downlinkQueue, getJson, plainUuid, postJson, profile, registerSystem, sendUplink, jsonLines, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(240_000);

const amq = useBroker();
const data = tempDir('rts-dlq-depth-');
let withoutPlugin: TestBroker | undefined;
let hub: RunningHub | undefined;
const { logger, lines: logLines } = jsonLines();

const metricsText = async (): Promise<string> => (await fetch(`${hub!.url}/metrics`)).text();
/** The sample of a metric without labels, or undefined when it has none (HELP and TYPE only). */
const sample = async (name: string, labels = ''): Promise<number | undefined> => {
  const line = (await metricsText()).split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};
const depthIs = (n: number) => until(`rts_dead_letters ${n}`, async () => (await sample('rts_dead_letters')) === n, 60_000, 200, () => `log: ${JSON.stringify(logLines.slice(-5))}`);
const warnings = () => logLines.filter((l) => String(l.msg).startsWith('the depth of the dead letter queue cannot be read'));

/** Dead letters put on the queue straight, as a system's account may: selectable by their id, for a registered system's downlink. */
const crafted = (count: number, systemId: string) =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      amq.sender.sendRaw(DLQ, {
        body: JSON.stringify({ n: i }),
        durable: true,
        application_properties: { [DLQ_ID]: plainUuid(), [DLQ_REASON]: 'bad_schema: test', [DLQ_SOURCE_QUEUE]: downlinkQueue(systemId), [DLQ_ATTEMPTS]: 1, [DLQ_AT]: new Date().toISOString() },
      }),
    ),
  );

beforeAll(async () => {
  withoutPlugin = await startBroker({ statistics: false });
  // The broker with the plugin first: the hub connects there, and fails over to the other one when it stops.
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_BROKER_URL: `${amq.broker.url},${withoutPlugin.url}`, RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' }, logger });
});
afterAll(async () => {
  await hub?.stop();
  await withoutPlugin?.destroy();
  data.remove();
});

test('a dead letter queue the broker does not have yet reads 0, with the time of the reading', async () => {
  await depthIs(0);
  expect(await sample('rts_dead_letters_read_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 600);
  expect(warnings()).toEqual([]);
});

test('the gauge reads every dead letter, past what a browse lists, and follows discards and replays', async () => {
  // 20 the hub dead-letters itself (registrations of a system it does not know)...
  const envelopes = Array.from({ length: 20 }, (_, i) => uplink.registered('ghost-sys', `g${i}`, profile(i)));
  await Promise.all(envelopes.map((e) => sendUplink(amq.sender, e)));
  // ...and 2,500 a sender put there, for a system the hub knows (so that they may be replayed to its downlink queue).
  await registerSystem(hub!.url, 'depth-sys');
  await crafted(2_500, 'depth-sys');
  await depthIs(2_520);
  // The hub's own dead-lettering, by reason code (a counter that was there before).
  expect(await sample('rts_uplink_dead_lettered_total', '{queue="uplink",reason="unknown_system"}')).toBe(20);
  const listed = await getJson<{ items: Array<{ id: string; envelopeId: string | null; sourceQueue: string }>; more: boolean }>(hub!.url, '/dead-letters?limit=1000');
  // A failure says why: the problem's detail and the hub's last log lines (a 503 in 2 of 6 full runs on 2026-12-05).
  expect({ status: listed.status, problem: listed.status === 200 ? undefined : listed.body, log: listed.status === 200 ? undefined : logLines.slice(-8) }).toEqual({ status: 200 });
  expect(listed.body.items).toHaveLength(1000);
  expect(listed.body.more).toBe(true);

  // Two of the hub's discarded, three of the sender's replayed (to depth-sys's downlink queue, which nobody reads).
  const ours = listed.body.items.filter((l) => envelopes.some((e) => e.id === l.envelopeId)).slice(0, 2);
  const theirs = listed.body.items.filter((l) => l.sourceQueue === downlinkQueue('depth-sys')).slice(0, 3);
  expect(ours).toHaveLength(2);
  expect(theirs).toHaveLength(3);
  for (const l of ours) expect((await postJson(hub!.url, `/dead-letters/${l.id}/discard`, { reason: 'test: a duplicate' })).status).toBe(200);
  for (const l of theirs) expect((await postJson(hub!.url, `/dead-letters/${l.id}/replay`, { by: 'test', reason: 'test: system registered' })).status).toBe(200);
  await depthIs(2_515);
  expect(warnings()).toEqual([]);
});

test('after a failover to a broker without the statistics plugin: no sample at once, one warning, the last reading time kept', async () => {
  const readAt = await sample('rts_dead_letters_read_timestamp_seconds');
  expect(await sample('rts_dead_letters')).toBe(2_515);
  await amq.broker.stop();
  await until('the hub on the broker without the plugin, two readings unanswered', async () => {
    const health = await getJson<{ broker: string }>(hub!.url, '/health');
    return health.body.broker === 'connected' && ((await sample('rts_dead_letters_readings_total', '{result="no_answer"}')) ?? 0) >= 2;
  });
  expect(await sample('rts_dead_letters')).toBeUndefined();
  expect(await metricsText()).toContain('# TYPE rts_dead_letters gauge');
  expect(await sample('rts_dead_letters_read_timestamp_seconds')).toBe(readAt);
  expect(warnings()).toEqual([expect.objectContaining({ level: 40, reason: 'no_answer', queue: DLQ })]);
});
