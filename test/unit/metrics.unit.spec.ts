import { MetricsRegistry } from '../../src/adapters/metrics/registry';

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
