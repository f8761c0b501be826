// The downlink lag and stall at a hub process that does not publish (a standby on a shared PostgreSQL store). An
// outside review of two hubs on PostgreSQL: with NO process publishing (the holder gone, the lock left with an
// orphaned session; or both standing by while their sessions were terminated) each hub said downlink "standby",
// rts_downlink_lag_events 0 and rts_downlink_stalled 0: the lag was sampled only in the process that publishes, so the
// README's alert (the max over hubs of the lag and stall metrics) never fired. Now every process samples the stored
// checkpoint: here one that never gets the lease sees the lag grow while events are appended and the checkpoint stands
// still, and reports the stall after RTS_DOWNLINK_STALL_AFTER_MS on the injected clock.
import { DateTime } from 'luxon';
import pino from 'pino';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryCheckpointStore } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { uuidV5 } from '../../src/application/ids';
import type { PublishingLease, PublishingLeaseListener } from '../../src/application/ports/publishing-lease';
import { loadConfig, messagingConfig } from '../../src/bootstrap/config';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { startHubMessaging, type HubMessaging } from '../../src/bootstrap/hub-messaging';
import { metricValue } from '../support/metric-value';

jest.setTimeout(30_000);

let nowMs = Date.parse('2024-05-01T10:00:00Z');
const clock = { now: () => DateTime.fromMillis(nowMs, { zone: 'utc' }) };
let counter = 0;
const ids = { uuid: () => uuidV5(`standby-lag/${counter++}`) };

/** A lease another process holds for good (it never publishes either: the orphaned session). */
class HeldElsewhere implements PublishingLease {
  started = 0;
  start(listener: PublishingLeaseListener): void {
    this.started += 1;
    listener.standby?.();
  }
  held(): boolean {
    return false;
  }
  async stop(): Promise<void> {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(10);
  }
};

let messaging: HubMessaging | undefined;
afterEach(async () => {
  await messaging?.stop();
  messaging = undefined;
});

it('a hub process that stands by samples the stored checkpoint: the lag grows while nobody publishes, and the stall is reported after RTS_DOWNLINK_STALL_AFTER_MS', async () => {
  const store = new InMemoryEventStore(() => new Date(nowMs));
  const checkpoints = new InMemoryCheckpointStore();
  const lines: { msg: string; publisher?: string; publishing?: boolean }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const directory = createDirectoryModule({ store, clock, ids, logger, checkpoints });
  const metrics = new MetricsRegistry();
  const gauge = (name: string, labels = '{publisher="directory"}') => metricValue(metrics, name, labels);
  const append = (n: number) => store.appendToStream(`obs-${counter}`, Array.from({ length: n }, () => ({ id: ids.uuid(), type: 'ObservationRecorded', data: { n } })));

  // The publisher (another process, or none) got through position 2 and stored it.
  await append(5);
  await checkpoints.set('downlink', 2n);

  const lease = new HeldElsewhere();
  messaging = await startHubMessaging({
    // No broker listens there: the hub goes on without one (it would not compete for the lease either).
    messaging: messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqp://127.0.0.1:18251', RTS_DOWNLINK_STALL_AFTER_MS: '60000' })),
    directory,
    store,
    clock,
    ids,
    logger,
    metrics,
    protection: new PatientCipher({ keys: new InMemoryKeyStore() }),
    publishingLease: lease,
    connectTimeoutMs: 20,
    downlinkLagEveryMs: 10,
  });
  expect(messaging.publishing()).toBe(false);
  expect(gauge('rts_downlink_publishing', '')).toBe(0);

  // Sampled at the standby: the store's head less the stored checkpoint (before: 0, only the publisher sampled).
  await until('the standby reports the lag', () => gauge('rts_downlink_lag_events') === 3);
  nowMs += 20_000;
  await append(4);
  await until('the lag grows with what is appended', () => gauge('rts_downlink_lag_events') === 7 && gauge('rts_downlink_lag_seconds') === 20);
  expect(gauge('rts_downlink_stalled')).toBe(0);
  expect(messaging.stalledPublishers()).toEqual([]);

  // The checkpoint has stood still for RTS_DOWNLINK_STALL_AFTER_MS (60 s on the injected clock) while events waited.
  nowMs += 60_000;
  await until('the standby reports the stall', () => gauge('rts_downlink_stalled') === 1);
  expect(messaging.stalledPublishers()).toEqual(['directory']);
  expect(gauge('rts_downlink_publishing', '')).toBe(0);
  expect(gauge('rts_downlink_lag_seconds')).toBe(80);
  const warning = lines.find((l) => l.msg.startsWith('the downlink publisher makes no progress'));
  expect(warning).toMatchObject({ publisher: 'directory', publishing: false });
  expect(warning?.msg).toContain('no hub process gets this downlink out');

  // The publisher (elsewhere) moves the shared checkpoint to the head: no lag, no stall, here too.
  await checkpoints.set('downlink', await store.headPosition());
  await until('the standby sees the publisher at the head', () => gauge('rts_downlink_lag_events') === 0 && gauge('rts_downlink_stalled') === 0);
  expect(messaging.stalledPublishers()).toEqual([]);
  expect(lines.some((l) => l.msg === 'the downlink publisher is no longer stalled' && l.publisher === 'directory')).toBe(true);
  // Reading the checkpoint took no lease and wrote nothing: it is where the publisher put it.
  expect(await checkpoints.get('downlink')).toBe(await store.headPosition());
  expect(lease.started).toBe(0); // no broker: this process never competed for the lease (BrokerGatedLease)
});
