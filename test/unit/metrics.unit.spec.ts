import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { deadLetterDepthRecorder, heldDownlinkRecorder, uplinkOutcomeRecorder } from '../../src/adapters/metrics/hub-metrics';

describe('MetricsRegistry (Prometheus text format)', () => {
  it('renders counters, gauges and histograms with labels', () => {
    const registry = new MetricsRegistry();
    const failovers = registry.counter('rts_amqp_failovers_total', 'Reconnects after a loss', ['role']);
    const connected = registry.gauge('rts_amqp_connected', 'Connection up', ['role']);
    const pause = registry.histogram('rts_amqp_failover_pause_seconds', 'Pause', ['role'], [0.5, 1, 2]);
    failovers.inc({ role: 'hub' });
    failovers.inc({ role: 'hub' }, 2);
    connected.set({ role: 'hub' }, 1);
    connected.set({ role: 'sdk' }, 0);
    pause.observe({ role: 'hub' }, 0.4);
    pause.observe({ role: 'hub' }, 1.5);
    expect(registry.render()).toBe(
      [
        '# HELP rts_amqp_failovers_total Reconnects after a loss',
        '# TYPE rts_amqp_failovers_total counter',
        'rts_amqp_failovers_total{role="hub"} 3',
        '# HELP rts_amqp_connected Connection up',
        '# TYPE rts_amqp_connected gauge',
        'rts_amqp_connected{role="hub"} 1',
        'rts_amqp_connected{role="sdk"} 0',
        '# HELP rts_amqp_failover_pause_seconds Pause',
        '# TYPE rts_amqp_failover_pause_seconds histogram',
        'rts_amqp_failover_pause_seconds_bucket{role="hub",le="0.5"} 1',
        'rts_amqp_failover_pause_seconds_bucket{role="hub",le="1"} 1',
        'rts_amqp_failover_pause_seconds_bucket{role="hub",le="2"} 2',
        'rts_amqp_failover_pause_seconds_bucket{role="hub",le="+Inf"} 2',
        'rts_amqp_failover_pause_seconds_sum{role="hub"} 1.9',
        'rts_amqp_failover_pause_seconds_count{role="hub"} 2',
        '',
      ].join('\n'),
    );
    expect(failovers.get({ role: 'hub' })).toBe(3);
    expect(pause.snapshot({ role: 'hub' })).toEqual({ count: 2, sum: 1.9 });
  });

  it('escapes label values and help text; unlabelled metrics have no braces', () => {
    const registry = new MetricsRegistry();
    registry.counter('x_total', 'line\nbreak').inc({}, 1);
    registry.gauge('g', 'g', ['q']).set({ q: 'a"b\\c\nd' }, 2.5);
    expect(registry.render()).toContain('# HELP x_total line\\nbreak\n# TYPE x_total counter\nx_total 1\n');
    expect(registry.render()).toContain('g{q="a\\"b\\\\c\\nd"} 2.5');
  });

  it('refuses bad names, wrong label sets, decreasing counters and type clashes; same name returns the same metric', () => {
    const registry = new MetricsRegistry();
    expect(() => registry.counter('bad-name', 'x')).toThrow(/invalid metric name/);
    expect(() => registry.gauge('ok', 'x', ['le'])).toThrow(/reserved/);
    expect(() => registry.gauge('ok2', 'x', ['__x'])).toThrow(/invalid label/);
    const c = registry.counter('c_total', 'c', ['role']);
    expect(() => c.inc({})).toThrow(/takes labels/);
    expect(() => c.inc({ role: 'a', other: 'b' })).toThrow(/takes labels/);
    expect(() => c.inc({ role: 'a' }, -1)).toThrow(/only goes up/);
    expect(registry.counter('c_total', 'c', ['role'])).toBe(c);
    expect(() => registry.gauge('c_total', 'c')).toThrow(/already registered/);
    expect(MetricsRegistry.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('counters exist from 0, before their first increment', () => {
  // Prometheus's increase() and rate() need a sample before the first event: a series that appears at 1 shows no
  // increase, so an alert on `increase(rts_amqp_failovers_total[5m]) > 0` stayed silent on the first failover.
  it('an unlabelled counter renders 0 before any increment; a gauge without a value renders no sample', () => {
    const registry = new MetricsRegistry();
    registry.counter('x_total', 'x');
    registry.gauge('g', 'g');
    expect(registry.render()).toBe('# HELP x_total x\n# TYPE x_total counter\nx_total 0\n# HELP g g\n# TYPE g gauge\n');
  });

  it('zero() starts the given series of a labelled counter at 0 and keeps a value already counted', () => {
    const registry = new MetricsRegistry();
    const c = registry.counter('c_total', 'c', ['role']);
    c.inc({ role: 'sdk' }, 2);
    expect(c.zero({ role: 'hub' }, { role: 'sdk' })).toBe(c);
    expect(registry.render()).toContain('c_total{role="sdk"} 2\nc_total{role="hub"} 0\n');
    expect(() => c.zero({})).toThrow(/takes labels/);
  });
});

describe("the hub's recorders: the series of their fixed vocabularies are there at 0 before the first event", () => {
  const samples = (registry: MetricsRegistry) => registry.render().split('\n').filter((l) => l !== '' && !l.startsWith('#'));

  it('uplink outcomes: accepted, dead-letter failed and stale per queue kind (reasons come with their events)', () => {
    const registry = new MetricsRegistry();
    uplinkOutcomeRecorder(registry);
    expect(samples(registry)).toEqual(['rts_uplink_accepted_total{queue="uplink"} 0', 'rts_uplink_dead_letter_failed_total{queue="uplink"} 0', 'rts_uplink_stale_total{queue="uplink"} 0']);
  });

  it('held downlink: both reasons, the released total and the pending gauge', () => {
    const registry = new MetricsRegistry();
    heldDownlinkRecorder(registry);
    expect(samples(registry)).toEqual([
      'rts_downlink_held_total{reason="no_encryption_key"} 0',
      'rts_downlink_held_total{reason="behind_held"} 0',
      'rts_downlink_held_released_total 0',
      'rts_downlink_held_pending 0',
    ]);
  });

  it('dead letter depth readings: every result; the depth itself has no sample until read, its timestamp the start', () => {
    const registry = new MetricsRegistry();
    deadLetterDepthRecorder(registry, 1_700_000_000_000);
    expect(samples(registry)).toEqual([
      'rts_dead_letters_read_timestamp_seconds 1700000000',
      ...['ok', 'no_answer', 'refused', 'unexpected_reply', 'connection_lost'].map((r) => `rts_dead_letters_readings_total{result="${r}"} 0`),
    ]);
  });
});
