// How far behind each system is (rts_downlink_queue_depth{system}): what the statistics plugin's answer to a wildcard
// says about the systems the hub knows, and how the gauges show it: only known systems, a system no longer listed
// dropped, nothing at all while the figure is unknown. The reading against a real broker:
// test/integration/downlink-queue-depth.int.spec.ts.
import type { StatisticsAnswer } from '../../src/adapters/messaging/broker-statistics';
import { EventEmitter } from 'node:events';
import type { AmqpConnection } from '../../src/adapters/amqp/connection';
import { AmqpDownlinkDepthReader, DownlinkDepthMonitor, downlinkDepthsFrom, statisticsPatternFor, statisticsRequestsFor } from '../../src/adapters/messaging/downlink-queue-depth';
import { downlinkQueueDepthRecorder } from '../../src/adapters/metrics/hub-metrics';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';

const systems = [
  { systemId: 'city-a', downlinkQueue: 'rts.downlink.city-a' },
  { systemId: 'city-b', downlinkQueue: 'rts.downlink.city-b' },
  { systemId: 'city-c', downlinkQueue: 'rts.downlink.city-c' },
];
// As ActiveMQ 5.18.3 sends it over AMQP, trimmed; firstMessageTimestamp only where the queue holds a message.
const map = (queue: string, size: number | bigint, over: Record<string, unknown> = {}) => ({ destinationName: `queue://${queue}`, size, consumerCount: 0, enqueueCount: size, ...over });
const answer = (maps: Record<string, unknown>[], brokerNow: number | null = 1_800_000_060_000): StatisticsAnswer => ({ maps, ended: true, brokerNow });

describe('statisticsPatternFor', () => {
  it('covers every queue of the prefix with whole segments', () => {
    expect(statisticsPatternFor('rts.downlink.')).toBe('rts.downlink.>');
    expect(statisticsPatternFor('hub.down.city')).toBe('hub.down.>');
    expect(statisticsPatternFor('city-')).toBe('>');
  });
});

describe('downlinkDepthsFrom', () => {
  it('gives every known system its queue: the size, the age of its first message by the broker clock, its consumers; 0 where the broker has no queue', () => {
    const depths = downlinkDepthsFrom(
      answer([map('rts.downlink.city-a', 412, { firstMessageTimestamp: 1_800_000_000_000 }), map('rts.downlink.city-b', 0n, { consumerCount: 1n })]),
      systems,
      'rts.downlink.>',
    );
    expect(Object.fromEntries(depths)).toEqual({
      'city-a': { messages: 412, oldestMessageAgeSeconds: 60, consumers: 0 },
      'city-b': { messages: 0, oldestMessageAgeSeconds: 0, consumers: 1 },
      'city-c': { messages: 0, oldestMessageAgeSeconds: 0, consumers: 0 },
    });
  });

  it('passes over queues of no known system (a name a sender made up, a queue under a system queue, a topic)', () => {
    const depths = downlinkDepthsFrom(answer([map('rts.downlink.ghost', 5), map('rts.downlink.city-a.extra', 7), { destinationName: 'topic://rts.downlink.city-a', size: 9 }]), systems, 'rts.downlink.>');
    expect([...depths.keys()]).toEqual(['city-a', 'city-b', 'city-c']);
    expect([...depths.values()].map((d) => d.messages)).toEqual([0, 0, 0]);
  });

  it('no age where the broker did not say (an older plugin): null, not 0', () => {
    expect(downlinkDepthsFrom(answer([map('rts.downlink.city-a', 3)]), systems, 'rts.downlink.>').get('city-a')?.oldestMessageAgeSeconds).toBeNull();
    expect(downlinkDepthsFrom(answer([map('rts.downlink.city-a', 3, { firstMessageTimestamp: 1 })], null), systems, 'rts.downlink.>').get('city-a')?.oldestMessageAgeSeconds).toBeNull();
  });

  it('leaves out a system whose queue the pattern does not cover (an earlier prefix): the answer cannot say its depth', () => {
    const depths = downlinkDepthsFrom(answer([]), [...systems, { systemId: 'old', downlinkQueue: 'legacy.down.old' }], 'rts.downlink.>');
    expect(depths.has('old')).toBe(false);
  });

  it('asks once for the systems under the prefix, and once more per earlier prefix still in use', () => {
    const old = [
      { systemId: 'old-1', downlinkQueue: 'legacy.down.old-1' },
      { systemId: 'old-2', downlinkQueue: 'legacy.down.old-2' },
      { systemId: 'older', downlinkQueue: 'oldest.older' },
    ];
    const requests = statisticsRequestsFor('rts.downlink.>', [old[0]!, ...systems, old[1]!, old[2]!]);
    expect([...requests.keys()]).toEqual(['rts.downlink.>', 'legacy.down.>', 'oldest.>']);
    expect(requests.get('rts.downlink.>')).toEqual(systems);
    expect(requests.get('legacy.down.>')).toEqual([old[0], old[1]]);
    expect(requests.get('oldest.>')).toEqual([old[2]]);
    expect([...statisticsRequestsFor('rts.downlink.>', systems).keys()]).toEqual(['rts.downlink.>']);
    expect(statisticsRequestsFor('rts.downlink.>', []).size).toBe(0);
  });

  it('a queue with no dot in its name is read with the broker-wide wildcard', () => {
    expect([...statisticsRequestsFor('rts.downlink.>', [{ systemId: 'flat', downlinkQueue: 'flatqueue' }]).keys()]).toEqual(['>']);
  });

  it('a known queue without a count is no figure at all', () => {
    expect(() => downlinkDepthsFrom(answer([map('rts.downlink.city-a', -1)]), systems, 'rts.downlink.>')).toThrow(expect.objectContaining({ reason: 'unexpected_reply' }));
  });
});

describe('downlinkQueueDepthRecorder', () => {
  const setup = () => {
    const metrics = new MetricsRegistry();
    const record = downlinkQueueDepthRecorder(metrics, 1_700_000_000_000);
    const lines = () => metrics.render().split('\n').filter((l) => /^rts_downlink_(queue_depth|oldest_message_age_seconds)\{/.test(l));
    const depths = (entries: Array<[string, number, number | null]>) => new Map(entries.map(([id, messages, age]) => [id, { messages, oldestMessageAgeSeconds: age, consumers: 0 }]));
    return { metrics, record, lines, depths };
  };

  it('one series per known system, and none at all while the figure is unknown (HELP and TYPE stay)', () => {
    const t = setup();
    t.record({ depth: t.depths([['city-a', 412, 60], ['city-b', 0, 0]]), at: 1 });
    expect(t.lines()).toEqual([
      'rts_downlink_queue_depth{system="city-a"} 412',
      'rts_downlink_queue_depth{system="city-b"} 0',
      'rts_downlink_oldest_message_age_seconds{system="city-a"} 60',
      'rts_downlink_oldest_message_age_seconds{system="city-b"} 0',
    ]);
    t.record({ depth: null, reason: 'connection_lost' });
    expect(t.lines()).toEqual([]);
    expect(t.metrics.render()).toContain('# TYPE rts_downlink_queue_depth gauge');
  });

  it('drops a system the next reading no longer lists, and an age the broker no longer tells', () => {
    const t = setup();
    t.record({ depth: t.depths([['city-a', 412, 60], ['city-b', 3, 5]]), at: 1 });
    t.record({ depth: t.depths([['city-a', 400, null]]), at: 2 });
    expect(t.lines()).toEqual(['rts_downlink_queue_depth{system="city-a"} 400']);
  });

  it('counts the readings by result and keeps when the figures were last read, so that figures gone missing can be alerted on', () => {
    const t = setup();
    const readings = (result: string) => t.metrics.counter('rts_downlink_queue_depth_readings_total', '', ['result']).get({ result });
    const readAt = () => t.metrics.render().split('\n').find((l) => l.startsWith('rts_downlink_queue_depth_read_timestamp_seconds '));
    expect(['ok', 'no_answer', 'refused', 'unexpected_reply', 'connection_lost', 'store_unavailable'].map(readings)).toEqual([0, 0, 0, 0, 0, 0]);
    t.record({ depth: null, reason: 'not_connected' }); // nothing was asked: no reading
    // The hub's start until a first reading: with no sample the alert on its age never fired after a restart.
    expect(readAt()).toBe('rts_downlink_queue_depth_read_timestamp_seconds 1700000000');
    t.record({ depth: t.depths([['city-a', 1, 2]]), at: 1_800_000_000_000 });
    t.record({ depth: null, reason: 'store_unavailable' });
    t.record({ depth: null, reason: 'store_unavailable' });
    t.record({ depth: null, reason: 'no_answer' });
    expect([readings('ok'), readings('store_unavailable'), readings('no_answer')]).toEqual([1, 2, 1]);
    expect(t.metrics.render()).not.toContain('result="not_connected"');
    expect(readAt()).toBe('rts_downlink_queue_depth_read_timestamp_seconds 1800000000'); // kept while unknown
    expect(t.lines()).toEqual([]);
  });
});

describe('a reading when the hub cannot list its systems', () => {
  class Connection extends EventEmitter {
    isConnected(): boolean {
      return true;
    }
  }

  it('is store_unavailable, not a broker fault; the broker is not asked, and the warning says it is the store', async () => {
    const asked: string[] = [];
    // Any use of the connection would be a statistics request to the broker: record it.
    const connection = new Proxy(new Connection(), {
      get: (target, key) => {
        if (key !== 'isConnected' && key !== 'on' && key !== 'off') asked.push(String(key));
        return Reflect.get(target, key, target) as unknown;
      },
    }) as unknown as AmqpConnection;
    const reader = new AmqpDownlinkDepthReader(connection, {
      prefix: 'rts.downlink.',
      systems: () => Promise.reject(new Error('SQLITE_BUSY: database is locked')),
    });
    await expect(reader.read()).rejects.toMatchObject({ reason: 'store_unavailable', message: expect.stringContaining('could not list its systems') });
    expect(asked).toEqual([]);

    const warnings: Array<{ obj: object; msg: string }> = [];
    const samples: unknown[] = [];
    const monitor = new DownlinkDepthMonitor({
      read: () => reader.read(),
      connection: new Connection(),
      everyMs: 3_600_000,
      onSample: (sample) => samples.push(sample),
      logger: { warn: (obj, msg) => warnings.push({ obj, msg }), info: () => undefined },
      pattern: reader.pattern,
    });
    monitor.start();
    await monitor.readNow();
    monitor.stop();
    expect(samples.at(-1)).toEqual({ depth: null, reason: 'store_unavailable' });
    expect(warnings).toEqual([
      {
        obj: expect.objectContaining({ reason: 'store_unavailable', queues: 'rts.downlink.>' }),
        msg: "the depth of the downlink queues cannot be read (the hub's store did not list its systems): rts_downlink_queue_depth is not reported (README: \"How far behind each system is\")",
      },
    ]);
  });
});
