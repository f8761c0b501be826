// The downlink publishers' lag on /metrics: events after the stored checkpoint and the age of the first of them,
// read with two cheap calls (the head, one event by position), sampled while the publishers run. A publisher held
// back (its broker does not accept) shows a lag that grows with what is appended; once it has caught up, 0.
import { DateTime } from 'luxon';
import { DirectoryProjector } from '../../src/application/directory/directory-projector';
import { DirectoryService } from '../../src/application/directory/directory-service';
import { DownlinkPublisher } from '../../src/application/directory/downlink-publisher';
import { UplinkHandler } from '../../src/application/directory/uplink-handler';
import type { DownlinkEnvelope } from '../../src/application/directory/directory-messages';
import { DownlinkLagMonitor, countingSends, downlinkLag, type DownlinkLag } from '../../src/application/downlink/downlink-lag';
import { uuidV5 } from '../../src/application/ids';
import type { DownlinkOutbox } from '../../src/application/ports/downlink-outbox';
import type { EventStore } from '../../src/application/ports/event-store';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryCheckpointStore } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { downlinkLagRecorder } from '../../src/adapters/metrics/hub-metrics';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { InMemoryDirectory } from '../../src/adapters/registry/in-memory-directory';
import type { ExpertProfile } from '../../src/domain/directory/expert';
import { testExpert, testUplink } from '../support/directory-fixtures';
import { metricValue } from '../support/metric-value';

/** A clock the test moves; the store records events at it too. */
let nowMs = Date.parse('2024-05-01T10:00:00Z');
const clock = { now: () => DateTime.fromMillis(nowMs, { zone: 'utc' }) };
let counter = 0;
const ids = { uuid: () => uuidV5(`id/${counter++}`) };

const profile = (i: number): ExpertProfile => testExpert(i);

const uplink = testUplink;

const append = (store: EventStore, stream: string, n: number) =>
  store.appendToStream(stream, Array.from({ length: n }, () => ({ id: ids.uuid(), type: 'ObservationRecorded', data: { n } })));

describe('downlinkLag', () => {
  it('events after the checkpoint and how long ago the first of them was recorded; 0 at the head', async () => {
    const store = new InMemoryEventStore(() => new Date(nowMs));
    expect(await downlinkLag(store, 0n, clock.now(), true)).toEqual({ events: 0n, seconds: 0 });
    await append(store, 'a', 3); // positions 1-3 at 10:00:00
    nowMs += 90_000;
    await append(store, 'b', 2); // 4-5 at 10:01:30
    nowMs += 30_000;
    expect(await downlinkLag(store, 0n, clock.now(), true)).toEqual({ events: 5n, seconds: 120 });
    expect(await downlinkLag(store, 3n, clock.now(), true)).toEqual({ events: 2n, seconds: 30 });
    expect(await downlinkLag(store, 5n, clock.now(), true)).toEqual({ events: 0n, seconds: 0 });
    // EventStoreDB: positions are log offsets, not a count; the seconds still tell.
    expect(await downlinkLag(store, 3n, clock.now(), false)).toEqual({ events: null, seconds: 30 });
    // A clock behind the store's: not a negative age.
    expect(await downlinkLag(store, 3n, clock.now().minus({ minutes: 5 }), true)).toEqual({ events: 2n, seconds: 0 });
  });

  it('reads the head and one event, however far behind (no count over the stretch)', async () => {
    const store = new InMemoryEventStore(() => new Date(nowMs));
    await append(store, 'a', 5000);
    const reads: number[] = [];
    const counting = { headPosition: () => store.headPosition(), readAll: (o: Parameters<EventStore['readAll']>[0]) => (reads.push(o.maxCount), store.readAll(o)) };
    expect((await downlinkLag(counting, 0n, clock.now(), true)).events).toBe(5000n);
    expect(reads).toEqual([1]);
  });
});

/** A broker the test drives: each send waits until the test accepts it. */
class GatedOutbox implements DownlinkOutbox {
  readonly calls: { accept(): void }[] = [];
  send(_queue: string, _envelope: DownlinkEnvelope): Promise<void> {
    return new Promise<void>((resolve) => this.calls.push({ accept: resolve }));
  }
}

const until = async (what: string, predicate: () => boolean | Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 2000; i++) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for: ${what}`);
};

describe('DownlinkLagMonitor with a publisher held back', () => {
  it('shows the lag growing while the broker accepts nothing, 0 once the publisher has caught up, and 0 when stopped', async () => {
    const store = new InMemoryEventStore(() => new Date(nowMs));
    const directory = new InMemoryDirectory();
    const projector = new DirectoryProjector(store, directory);
    const service = new DirectoryService({ store, directory, projector, clock, ids });
    const handler = new UplinkHandler({ store, clock });
    const checkpoints = new InMemoryCheckpointStore();
    for (const id of ['beijing', 'chengdu']) await service.registerSystem({ systemId: id, name: id, area: id });
    for (const id of ['beijing', 'chengdu']) await handler.handleUplink(uplink(id, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, 'join'));
    await new DownlinkPublisher({ store, directory, projector, outbox: { send: async () => undefined }, checkpoints }).catchUp();

    const metrics = new MetricsRegistry();
    const outbox = new GatedOutbox();
    const publisher = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
    const samples: (DownlinkLag | null)[] = [];
    const record = downlinkLagRecorder(metrics, { publishers: ['directory'], positionsCountEvents: true });
    const monitor = new DownlinkLagMonitor({
      store,
      clock,
      publishers: [{ name: 'directory', checkpoint: () => publisher.checkpoint() }],
      positionsCountEvents: true,
      everyMs: 60_000, // the test samples by hand
      onSample: (name, lag) => (samples.push(lag), record(name, lag)),
    });
    const gauge = (name: string) => metricValue(metrics, name, '{publisher="directory"}');
    expect([gauge('rts_downlink_lag_events'), gauge('rts_downlink_lag_seconds')]).toEqual([0, 0]);

    monitor.start();
    publisher.start();
    await monitor.sample();
    expect([gauge('rts_downlink_lag_events'), gauge('rts_downlink_lag_seconds')]).toEqual([0, 0]);

    // chengdu registers experts while the broker takes nothing: the publisher hands them over, none is accepted.
    const caughtUpAt = await store.headPosition();
    for (let i = 0; i < 5; i++) await handler.handleUplink(uplink('chengdu', 'expert.registered', { localExpertId: `e-${i}`, profile: profile(i) }, `reg-${i}`));
    await until('the first message handed over', () => outbox.calls.length > 0);
    nowMs += 45_000;
    await monitor.sample();
    const behind = (await store.headPosition()) - caughtUpAt;
    expect(behind).toBeGreaterThan(0n);
    expect(gauge('rts_downlink_lag_events')).toBe(Number(behind));
    expect(gauge('rts_downlink_lag_seconds')).toBe(45);

    // More appended meanwhile: the lag grows with it.
    for (let i = 5; i < 8; i++) await handler.handleUplink(uplink('chengdu', 'expert.registered', { localExpertId: `e-${i}`, profile: profile(i) }, `reg-${i}`));
    nowMs += 15_000;
    await monitor.sample();
    expect(gauge('rts_downlink_lag_events')).toBe(Number((await store.headPosition()) - caughtUpAt));
    expect(gauge('rts_downlink_lag_seconds')).toBe(60);

    // The broker accepts again: the publisher catches up, and the lag is 0.
    for (let accepted = 0; accepted < 8; accepted++) {
      await until(`message ${accepted + 1} handed over`, () => outbox.calls.length > accepted);
      outbox.calls[accepted]!.accept();
    }
    await until('the publisher at the head', async () => (await publisher.checkpoint()) === (await store.headPosition()));
    await monitor.sample();
    expect([gauge('rts_downlink_lag_events'), gauge('rts_downlink_lag_seconds')]).toEqual([0, 0]);

    await publisher.stop();
    // Stopped (this process no longer publishes): 0, whatever is appended after.
    await append(store, 'later', 3);
    await monitor.stop();
    expect(samples[samples.length - 1]).toBeNull();
    expect([gauge('rts_downlink_lag_events'), gauge('rts_downlink_lag_seconds')]).toEqual([0, 0]);
    // Labels are the fixed publisher name only.
    expect(metrics.render().match(/^rts_downlink_lag_\w+\{[^}]*\}/gm)).toEqual(['rts_downlink_lag_events{publisher="directory"}', 'rts_downlink_lag_seconds{publisher="directory"}']);
  });

  it('on EventStoreDB reports seconds only: no events series at all', () => {
    const metrics = new MetricsRegistry();
    const record = downlinkLagRecorder(metrics, { publishers: ['directory', 'consultations'], positionsCountEvents: false });
    record('directory', { events: null, seconds: 12.5 });
    const text = metrics.render();
    expect(text).not.toContain('rts_downlink_lag_events');
    expect(text).toMatch(/^rts_downlink_lag_seconds\{publisher="directory"\} 12\.5$/m);
    expect(text).toMatch(/^rts_downlink_lag_seconds\{publisher="consultations"\} 0$/m);
  });
});

// A publisher that makes no progress while there is lag is "stalled" (/health `downlink: "stalled"`): a broker that
// kept the hub's connection open and stopped reading it left the lag at ~10,000 events for ten minutes while /health
// said ok. The rule: behind the store and the same checkpoint for stallAfterMs. A quiet hub is never stalled.
describe('DownlinkLagMonitor: a stalled publisher', () => {
  const setUp = (stallAfterMs = 60_000) => {
    const store = new InMemoryEventStore(() => new Date(nowMs));
    let checkpoint = 0n;
    const told: [string, number | null][] = [];
    const monitor = new DownlinkLagMonitor({
      store,
      clock,
      publishers: [{ name: 'directory', checkpoint: async () => checkpoint }],
      positionsCountEvents: true,
      everyMs: 3_600_000, // the test samples by hand
      stallAfterMs,
      onSample: () => undefined,
      onStall: (name, stall) => told.push([name, stall === null ? null : stall.stillForSeconds]),
    });
    return { store, monitor, told, move: (to: bigint) => (checkpoint = to) };
  };
  const tick = async (monitor: DownlinkLagMonitor, ms: number) => {
    nowMs += ms;
    await monitor.sample();
  };

  it('is stalled once its checkpoint has stood still for stallAfterMs with events waiting, and not once it moves', async () => {
    const { store, monitor, told, move } = setUp();
    monitor.start();
    await monitor.sample();
    await append(store, 'a', 10);
    await tick(monitor, 30_000);
    expect(monitor.stalled()).toEqual([]); // behind, but only for 30 s
    await tick(monitor, 29_000);
    expect(monitor.stalled()).toEqual([]);
    await tick(monitor, 1_000); // 60 s since the last sample at the head
    expect(monitor.stalled()).toEqual(['directory']);
    await tick(monitor, 300_000);
    expect(monitor.stalled()).toEqual(['directory']);
    expect(told).toEqual([['directory', 60]]); // told once, not at every sample

    // One page goes out: it moves, so it is not stalled, and the time starts again from there.
    move(4n);
    await tick(monitor, 5_000);
    expect(monitor.stalled()).toEqual([]);
    await tick(monitor, 59_000);
    expect(monitor.stalled()).toEqual([]);
    await tick(monitor, 1_000);
    expect(monitor.stalled()).toEqual(['directory']);
    expect(told).toEqual([['directory', 60], ['directory', null], ['directory', 60]]);

    // Stopped (another process publishes, or the hub stops): nothing of this process is stalled.
    await monitor.stop();
    expect(monitor.stalled()).toEqual([]);
    expect(told[told.length - 1]).toEqual(['directory', null]);
  });

  it('is not stalled while the broker accepts its messages within a long page (a fan-out to 80 systems), and is once none go', async () => {
    const store = new InMemoryEventStore(() => new Date(nowMs));
    const sent: string[] = [];
    const counted = countingSends({ send: async (queue: string, _envelope: never) => void sent.push(queue) });
    const monitor = new DownlinkLagMonitor({
      store,
      clock,
      publishers: [{ name: 'directory', checkpoint: async () => 0n, sent: counted.sent }],
      positionsCountEvents: true,
      everyMs: 3_600_000,
      stallAfterMs: 60_000,
      onSample: () => undefined,
    });
    await monitor.sample();
    await append(store, 'a', 200);
    // The page's checkpoint stands still for minutes while its messages go out (before: stalled after 60 s).
    for (let i = 0; i < 30; i++) {
      for (let j = 0; j < 50; j++) await counted.outbox.send(`rts.downlink.s${j}`, undefined as never);
      await tick(monitor, 10_000);
      expect(monitor.stalled()).toEqual([]);
    }
    expect(counted.sent()).toBe(1_500);
    // Nothing accepted any more: stalled after stallAfterMs, as before.
    await tick(monitor, 30_000);
    expect(monitor.stalled()).toEqual([]);
    await tick(monitor, 30_000);
    expect(monitor.stalled()).toEqual(['directory']);
    // A send that fails is no progress.
    const failing = countingSends({ send: async (_queue: string, _envelope: never): Promise<void> => Promise.reject(new Error('released')) });
    await expect(failing.outbox.send('q', undefined as never)).rejects.toThrow('released');
    expect(failing.sent()).toBe(0);
  });

  it('is never stalled at the head, however long the hub is quiet', async () => {
    const { store, monitor, move } = setUp();
    await append(store, 'a', 3);
    move(3n);
    for (let i = 0; i < 100; i++) await tick(monitor, 60_000);
    expect(monitor.stalled()).toEqual([]);
    // Events after a long quiet spell: the time runs from the last sample at the head, not from the last move.
    await append(store, 'b', 1);
    await tick(monitor, 5_000);
    expect(monitor.stalled()).toEqual([]);
  });

  it('keeps its view when a sample fails (the store away), and measures afresh after a restart', async () => {
    const { store, monitor, move } = setUp(10_000);
    await append(store, 'a', 2);
    await monitor.sample();
    const head = store.headPosition.bind(store);
    store.headPosition = () => Promise.reject(new Error('store away'));
    await tick(monitor, 20_000);
    expect(monitor.stalled()).toEqual([]);
    store.headPosition = head;
    await tick(monitor, 0);
    expect(monitor.stalled()).toEqual(['directory']);
    monitor.start();
    await monitor.stop();
    monitor.start();
    await monitor.sample();
    expect(monitor.stalled()).toEqual([]);
    move(2n);
    await monitor.stop();
  });
});
