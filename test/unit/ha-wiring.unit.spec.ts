// Discovery URIs (RTS_BROKER_DISCOVERY and the SDK's `discovery`), the union of discovered and static brokers,
// reason codes for the uplink metrics, and the hub's /metrics route.
import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import Fastify from 'fastify';
import type { AmqpConnection } from '../../src/adapters/amqp/connection';
import { instrumentConnection } from '../../src/adapters/amqp/failover';
import { UnionEndpoints, parseDiscoveryUri, rebalanceProbability } from '../../src/adapters/amqp/discovery-provider';
import { LiveSet } from '../../src/adapters/amqp/discovery';
import type { EndpointChange, EndpointProvider } from '../../src/adapters/amqp/endpoint-set';
import { registerMetricsRoutes } from '../../src/adapters/http/metrics-routes';
import { warmUpOnAdded } from '../../src/adapters/amqp/warm-up';
import { create_container } from 'rhea';
import { reasonCode, uplinkOutcomeRecorder } from '../../src/adapters/metrics/hub-metrics';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { loadConfig, messagingConfig } from '../../src/bootstrap/config';

describe('parseDiscoveryUri', () => {
  it('reads address, port, group, interface and rebalance', () => {
    expect(parseDiscoveryUri('multicast://239.255.2.3:6155?group=rts-ha&interface=127.0.0.1')).toEqual({
      address: '239.255.2.3',
      port: 6155,
      group: 'rts-ha',
      interfaceAddress: '127.0.0.1',
      interfaceName: undefined,
      expiryMs: 5000,
      rebalance: 'auto',
    });
    expect(parseDiscoveryUri('multicast://239.1.2.3:7000?group=g&rebalance=off&expiryMs=3000')).toMatchObject({ address: '239.1.2.3', port: 7000, rebalance: 'off', expiryMs: 3000 });
  });
  it("takes ActiveMQ's multicast://default and networkInterface names", () => {
    expect(parseDiscoveryUri('multicast://default')).toMatchObject({ address: '239.255.2.3', port: 6155, group: 'default', interfaceAddress: undefined });
    expect(parseDiscoveryUri('multicast://default?group=x&networkInterface=eth1', (n) => (n === 'eth1' ? '10.0.0.5' : undefined))).toMatchObject({
      group: 'x',
      interfaceAddress: '10.0.0.5',
      interfaceName: 'eth1',
    });
  });
  it.each([
    ['amqp://127.0.0.1:5672', /multicast:\/\//],
    ['multicast://10.0.0.1:6155', /multicast address/],
    ['multicast://239.255.2.3:6155?grup=x', /unknown parameter "grup"/],
    ['multicast://default?interface=eth0', /IPv4 address/],
    ['multicast://default?rebalance=sometimes', /rebalance/],
    ['multicast://default?networkInterface=nope0', /no IPv4 address/],
  ])('refuses %s', (uri, message) => {
    expect(() => parseDiscoveryUri(uri, () => undefined)).toThrow(message);
  });
  it('rebalance modes', () => {
    expect(rebalanceProbability('off')).toBeUndefined();
    expect(rebalanceProbability('always')!(3)).toBe(1);
    expect(rebalanceProbability('auto')!(4)).toBe(0.25);
  });
});

describe('config: RTS_BROKER_DISCOVERY', () => {
  it('alone turns messaging on with discovery and no static list; with RTS_BROKER_URL both', () => {
    const only = messagingConfig(loadConfig({ RTS_BROKER_DISCOVERY: 'multicast://default?group=rts' }))!;
    expect(only.endpoints).toEqual([]);
    expect(only.discovery).toMatchObject({ group: 'rts' });
    const both = messagingConfig(loadConfig({ RTS_BROKER_DISCOVERY: 'multicast://default', RTS_BROKER_URL: 'amqp://mq:5672' }))!;
    expect(both.endpoints).toEqual([{ host: 'mq', port: 5672 }]);
    expect(both.discovery).toBeDefined();
  });
  it('names the setting when the URI is wrong', () => {
    expect(() => loadConfig({ RTS_BROKER_DISCOVERY: 'multicast://1.2.3.4' })).toThrow(/RTS_BROKER_DISCOVERY: .*multicast address/);
  });
});

describe('UnionEndpoints', () => {
  it('offers live brokers first, then static ones, and keeps a static one discovery dropped', () => {
    const live = new LiveSet({ group: 'g' });
    const listeners: Array<(c: EndpointChange) => void> = [];
    const discovered: EndpointProvider = { current: () => live.endpoints(), subscribe: (l) => (listeners.push(l), () => undefined) };
    const union = new UnionEndpoints(discovered, [{ host: '10.0.0.9', port: 5672 }, { host: '127.0.0.1', port: 5701 }]);
    const seen: EndpointChange[] = [];
    union.subscribe((c) => seen.push(c));
    live.receive('g.ActiveMQ-4.alive.%localhost%amqp://127.0.0.1:5701', '127.0.0.1', 0);
    live.receive('g.ActiveMQ-4.alive.%localhost%amqp://127.0.0.1:5703', '127.0.0.1', 0);
    expect(union.current()).toEqual([
      { host: '127.0.0.1', port: 5701 },
      { host: '127.0.0.1', port: 5703 },
      { host: '10.0.0.9', port: 5672 },
    ]);
    listeners[0]!({ kind: 'removed', endpoint: { host: '127.0.0.1', port: 5701 } });
    listeners[0]!({ kind: 'removed', endpoint: { host: '127.0.0.1', port: 5703 } });
    expect(seen).toEqual([{ kind: 'removed', endpoint: { host: '127.0.0.1', port: 5703 } }]);
  });
});

describe('uplink outcome metrics', () => {
  it.each([
    ['bad_schema: payload.profile: Required', 'bad_schema'],
    ['unknown_system', 'unknown_system'],
    ['retry limit (5) reached: transient failure: Error', 'retry_limit'],
    ['max attempts exceeded (5 failed deliveries)', 'max_attempts'],
    ['handler timed out after 60000 ms', 'handler_timeout'],
    ['transient failure: SqliteError (SQLITE_BUSY)', 'transient'],
    ['Patient 0101011234 could not be found', 'other'],
  ])('%s -> %s', (reason, code) => expect(reasonCode(reason)).toBe(code));

  it('counts by outcome and reason code only', () => {
    const metrics = new MetricsRegistry();
    const record = uplinkOutcomeRecorder(metrics);
    record({ kind: 'accepted', queue: 'rts.uplink', attempt: 1 });
    record({ kind: 'retried', queue: 'rts.uplink', attempt: 1, reason: 'system_not_joined' });
    record({ kind: 'dead-lettered', queue: 'rts.uplink', attempt: 1, reason: 'bad_json: Unexpected token x in "secret"', deadLetterQueue: 'rts.dlq', copy: { body: 'x' } });
    const text = metrics.render();
    expect(text).toContain('rts_uplink_accepted_total{queue="uplink"} 1');
    expect(text).toContain('rts_uplink_retried_total{queue="uplink",reason="system_not_joined"} 1');
    expect(text).toContain('rts_uplink_dead_lettered_total{queue="uplink",reason="bad_json"} 1');
    expect(text).not.toContain('secret');
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text format with HTTP requests by route pattern and status', async () => {
    const app = Fastify();
    const metrics = new MetricsRegistry();
    app.get('/experts/:id', async (request, reply) => reply.code((request.params as { id: string }).id === 'x' ? 404 : 200).send({}));
    registerMetricsRoutes(app, { metrics });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    await fetch(`${base}/experts/city-a:e1`);
    await fetch(`${base}/experts/x`);
    await fetch(`${base}/nowhere/0101011234`);
    const response = await fetch(`${base}/metrics`);
    const res = { statusCode: response.status, headers: { 'content-type': response.headers.get('content-type') }, body: await response.text() };
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.body).toContain('rts_http_requests_total{method="GET",route="/experts/:id",status="200"} 1');
    expect(res.body).toContain('rts_http_requests_total{method="GET",route="/experts/:id",status="404"} 1');
    expect(res.body).toContain('route="unmatched",status="404"} 1');
    expect(res.body).toMatch(/# TYPE rts_http_request_duration_seconds histogram/);
    expect(res.body).not.toMatch(/city-a|0101011234/);
    await app.close();
  });
});

describe('warmUpOnAdded', () => {
  it('opens and closes one AMQP connection to each broker discovery adds', async () => {
    const server = create_container({ id: 'warm-up-test-broker' });
    let opened = 0;
    server.on('connection_open', () => (opened += 1));
    const listener = server.listen({ port: 0, host: '127.0.0.1' }) as unknown as import('node:net').Server;
    await new Promise((r) => listener.once('listening', r));
    const port = (listener.address() as { port: number }).port;
    const listeners: Array<(c: EndpointChange) => void> = [];
    const provider: EndpointProvider = { current: () => [], subscribe: (l) => (listeners.push(l), () => undefined) };
    const probes: Array<{ endpoint: string; ok: boolean }> = [];
    const warmUp = warmUpOnAdded(provider, { spreadMs: 1, onProbe: (e) => probes.push(e) });
    listeners[0]!({ kind: 'added', endpoint: { host: '127.0.0.1', port } });
    listeners[0]!({ kind: 'removed', endpoint: { host: '127.0.0.1', port } });
    for (let i = 0; i < 100 && probes.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    warmUp.stop();
    listener.close();
    expect(probes).toEqual([expect.objectContaining({ endpoint: `127.0.0.1:${port}`, ok: true })]);
    expect(opened).toBe(1);
  });

  it("ready: the announcement's probe answer (waited for), then a probe of its own; false for a port that refuses and once stopped", async () => {
    const server = create_container({ id: 'warm-up-ready-broker' });
    let opened = 0;
    server.on('connection_open', () => (opened += 1));
    const listener = server.listen({ port: 0, host: '127.0.0.1' }) as unknown as import('node:net').Server;
    await new Promise((r) => listener.once('listening', r));
    const endpoint = { host: '127.0.0.1', port: (listener.address() as { port: number }).port };
    const refused = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const port = (probe.address() as { port: number }).port;
        probe.close(() => resolve(port));
      });
    });
    const listeners: Array<(c: EndpointChange) => void> = [];
    const provider: EndpointProvider = { current: () => [], subscribe: (l) => (listeners.push(l), () => undefined) };
    const warmUp = warmUpOnAdded(provider, { spreadMs: 50 });
    listeners[0]!({ kind: 'added', endpoint });
    listeners[0]!({ kind: 'added', endpoint: { host: '127.0.0.1', port: refused } });
    expect(await warmUp.ready(endpoint)).toBe(true);
    expect(opened).toBe(1);
    expect(await warmUp.ready({ host: '127.0.0.1', port: refused })).toBe(false);
    expect(await warmUp.ready(endpoint)).toBe(true);
    expect(opened).toBe(2);
    warmUp.stop();
    expect(await warmUp.ready(endpoint)).toBe(false);
    listener.close();
  });
});

describe('instrumentConnection', () => {
  /** What instrumentConnection listens to, driven by hand. */
  const fakeConnection = () => {
    const emitter = new EventEmitter();
    let up = false;
    return Object.assign(emitter, {
      isConnected: () => up,
      up(port: number, count: number) {
        up = true;
        emitter.emit('connected', { endpoint: { host: '127.0.0.1', port }, connectionCount: count });
      },
      down(port: number) {
        up = false;
        emitter.emit('disconnected', { endpoint: { host: '127.0.0.1', port }, error: new Error('connect ECONNREFUSED'), reconnecting: true });
      },
    });
  };

  it('a first connection after refused attempts (a start while the broker is down) is not a failover; a later loss is', () => {
    let t = 1_000;
    const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
    const log = (fields: Record<string, unknown>, msg: string) => lines.push({ msg, fields });
    const metrics = new MetricsRegistry();
    const connection = fakeConnection();
    const handle = instrumentConnection(connection as unknown as AmqpConnection, { role: 'hub', metrics, logger: { info: log, warn: log }, now: () => t });

    connection.down(5673);
    t += 1_000;
    connection.down(5673);
    t += 2_500;
    connection.up(5673, 1);
    expect(handle.failovers).toHaveLength(0);
    expect(lines.map((l) => l.msg)).toEqual(['amqp disconnected', 'amqp connected']);
    expect(lines[1]!.fields).toMatchObject({ event: 'amqp.connected', waitedMs: 3_500 });
    expect(metrics.render()).not.toMatch(/^rts_amqp_failovers_total\{role="hub"\} [1-9]/m);

    connection.down(5673);
    t += 400;
    connection.up(5674, 2);
    expect(handle.failovers).toEqual([expect.objectContaining({ from: '127.0.0.1:5673', to: '127.0.0.1:5674', pauseMs: 400 })]);
    expect(metrics.render()).toMatch(/^rts_amqp_failovers_total\{role="hub"\} 1$/m);
    handle.detach();
  });

  it('counts failovers from 0, and a pause across a wall clock stepped back is observed as 0, never negative', () => {
    // A negative observation takes the histogram's _sum down: Prometheus reads that as a counter reset, and
    // rate(rts_amqp_failover_pause_seconds_sum[5m]) jumps. An NTP step back during an outage made one.
    let t = 1_000_000;
    const metrics = new MetricsRegistry();
    const connection = fakeConnection();
    const handle = instrumentConnection(connection as unknown as AmqpConnection, { role: 'hub', metrics, now: () => t });
    connection.up(5673, 1);
    expect(metrics.render()).toMatch(/^rts_amqp_failovers_total\{role="hub"\} 0$/m);
    connection.down(5673);
    t -= 60_000; // the clock steps back a minute while the hub is reconnecting
    connection.up(5674, 2);
    const text = metrics.render();
    expect(text).toMatch(/^rts_amqp_failovers_total\{role="hub"\} 1$/m);
    expect(text).toMatch(/^rts_amqp_failover_pause_seconds_sum\{role="hub"\} 0$/m);
    expect(text).toMatch(/^rts_amqp_failover_pause_seconds_bucket\{role="hub",le="0.1"\} 1$/m);
    handle.detach();
  });

  it('a pause of minutes (a broker restarted) lands in a bucket of its own, not only in +Inf past 30 s', () => {
    let t = 0;
    const metrics = new MetricsRegistry();
    const connection = fakeConnection();
    const handle = instrumentConnection(connection as unknown as AmqpConnection, { role: 'hub', metrics, now: () => t });
    connection.up(5673, 1);
    connection.down(5673);
    t += 4 * 60_000;
    connection.up(5673, 2);
    const text = metrics.render();
    expect(text).toMatch(/^rts_amqp_failover_pause_seconds_bucket\{role="hub",le="120"\} 0$/m);
    expect(text).toMatch(/^rts_amqp_failover_pause_seconds_bucket\{role="hub",le="300"\} 1$/m);
    handle.detach();
  });
});
