// Two hub processes' messaging on one PostgreSQL schema while the publishing lock is held by a session that publishes
// nothing (the orphaned session an outside review saw: the holder gone, its lock left behind). Before, each hub said
// downlink "standby" with rts_downlink_lag_events 0: only the publishing process sampled the lag. Now each samples
// the shared stored checkpoint (PostgresCheckpointStore), so the lag grows at both, and reading it neither takes the
// lock nor writes the checkpoint. Real PostgreSQL; one fresh schema, dropped at the end.
import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import pino from 'pino';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PUBLISHER_LOCK_CLASS, PostgresPublishingLease } from '../../src/adapters/event-store/postgres/publishing-lease';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { PostgresCheckpointStore } from '../../src/adapters/registry/postgres-checkpoints';
import { uuidV5 } from '../../src/application/ids';
import { loadConfig, messagingConfig } from '../../src/bootstrap/config';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { startHubMessaging, type HubMessaging } from '../../src/bootstrap/hub-messaging';
import { until } from './hub-support';
import { metricValue } from '../support/metric-value';

const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_standby_lag_${process.pid}_${randomBytes(4).toString('hex')}`;
const clock = { now: () => DateTime.utc() };
let n = 0;
const ids = { uuid: () => uuidV5(`standby-lag/${schema}/${n++}`) };

jest.setTimeout(60_000);

let admin: Client;
const opened: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});

afterAll(async () => {
  for (const o of opened.reverse()) await o.close().catch(() => undefined);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});


/** A hub process: its own pool, checkpoint store, directory module, metrics and messaging (with its own lease). */
const startHub = async (): Promise<{ store: PostgresEventStore; checkpoints: PostgresCheckpointStore; messaging: HubMessaging; gauge: (name: string) => number }> => {
  const store = await PostgresEventStore.open({ connectionString, schema });
  opened.push(store);
  const checkpoints = await PostgresCheckpointStore.open(store);
  const logger = pino({ level: 'silent' });
  const directory = createDirectoryModule({ store, clock, ids, logger, checkpoints });
  const metrics = new MetricsRegistry();
  const messaging = await startHubMessaging({
    // No broker there: the hub goes on without one, and stands by (it does not compete for the lock without one).
    messaging: messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqp://127.0.0.1:18252' })),
    directory,
    store,
    clock,
    ids,
    logger,
    metrics,
    protection: new PatientCipher({ keys: new InMemoryKeyStore() }),
    publishingLease: new PostgresPublishingLease({ connection: { connectionString }, schema: store.schema, retryMs: 200, heartbeatMs: 500 }),
    connectTimeoutMs: 20,
    downlinkLagEveryMs: 50,
  });
  opened.push({ close: () => messaging.stop() });
  const gauge = (name: string) => metricValue(metrics, name, '{publisher="directory"}');
  return { store, checkpoints, messaging, gauge };
};

it("two standby hubs on one schema, the lock held by a session that publishes nothing: each hub's lag grows from the shared stored checkpoint", async () => {
  // The holder: a lease that got the lock and runs no publishers (its process gone, its session left behind).
  const holder = new PostgresPublishingLease({ connection: { connectionString }, schema, retryMs: 200, heartbeatMs: 500 });
  opened.push({ close: () => holder.stop() });
  const one = await startHub();
  const two = await startHub();
  holder.start({ acquired: () => undefined, lost: () => undefined });
  await until('the holder holds the lock', () => holder.held(), 20_000);
  const lockHolder = async () =>
    (await admin.query<{ pid: number }>(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int::oid AND objid = hashtext($2)::oid AND objsubid = 2`, [PUBLISHER_LOCK_CLASS, schema])).rows.map((r) => r.pid);
  const held = await lockHolder();
  expect(held).toHaveLength(1);

  // The last publisher stored its checkpoint at the head; then events come and no one publishes.
  const append = (count: number) => one.store.appendToStream(`obs-${n}`, Array.from({ length: count }, () => ({ id: ids.uuid(), type: 'ObservationRecorded', data: {} })));
  await append(3);
  const storedAt = await one.store.headPosition();
  await one.checkpoints.set('downlink', storedAt);
  await until('both hubs at the head', () => one.gauge('rts_downlink_lag_events') === 0 && two.gauge('rts_downlink_lag_events') === 0, 20_000);

  await append(6);
  await until('the lag at hub one', () => one.gauge('rts_downlink_lag_events') === 6, 20_000);
  await until('the lag at hub two', () => two.gauge('rts_downlink_lag_events') === 6, 20_000);
  await append(4);
  await until('the lag grows at both', () => one.gauge('rts_downlink_lag_events') === 10 && two.gauge('rts_downlink_lag_events') === 10, 20_000);
  expect(one.messaging.publishing() || two.messaging.publishing()).toBe(false);

  // Reading the checkpoint took no lock and wrote nothing.
  expect(await lockHolder()).toEqual(held);
  expect(await one.checkpoints.get('downlink')).toBe(storedAt);
  await holder.stop();
});
