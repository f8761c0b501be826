import {
  LiveSet,
  announcedEndpoint,
  parseDiscoveryPacket,
} from '../../src/adapters/amqp/discovery';
import { EndpointRotation, backoffDelay, parseEndpoint, parseEndpointList } from '../../src/adapters/amqp/endpoint-set';

// Packets as captured from ActiveMQ 5.18.3 in a network namespace (scripts/cluster/cluster.sh).
const alive = (uri: string, group = 'default') => `${group}.ActiveMQ-4.alive.%localhost%${uri}`;
const dead = (uri: string, group = 'default') => `${group}.ActiveMQ-4.dead.%localhost%${uri}`;

describe('ActiveMQ discovery packets', () => {
  it('parses alive and dead announcements, group names with dots included', () => {
    expect(parseDiscoveryPacket('default.ActiveMQ-4.alive.%localhost%amqp://127.0.0.1:5701')).toEqual({
      group: 'default',
      kind: 'alive',
      serviceName: 'localhost',
      uri: 'amqp://127.0.0.1:5701',
    });
    expect(parseDiscoveryPacket('rts.prod.ActiveMQ-4.dead.%broker-1%amqp://10.0.0.5:5672?x=1')).toEqual({
      group: 'rts.prod',
      kind: 'dead',
      serviceName: 'broker-1',
      uri: 'amqp://10.0.0.5:5672?x=1',
    });
    expect(parseDiscoveryPacket('hello')).toBeUndefined();
    expect(parseDiscoveryPacket('default.ActiveMQ-4.sleeping.%x%amqp://a:1')).toBeUndefined();
  });

  it('maps announced URIs to AMQP endpoints: localhost to 127.0.0.1, wildcard to the sender, other schemes ignored', () => {
    expect(announcedEndpoint('amqp://127.0.0.1:5701', '127.0.0.1')).toEqual({ host: '127.0.0.1', port: 5701 });
    expect(announcedEndpoint('amqp://localhost:5701', '127.0.0.1')).toEqual({ host: '127.0.0.1', port: 5701 });
    expect(announcedEndpoint('amqp://0.0.0.0:5672?maximumConnections=10', '10.1.2.3')).toEqual({ host: '10.1.2.3', port: 5672 });
    expect(announcedEndpoint('amqp://mq-1.example:5672', undefined)).toEqual({ host: 'mq-1.example', port: 5672 });
    expect(announcedEndpoint('tcp://127.0.0.1:61616', '127.0.0.1')).toBeUndefined();
    expect(announcedEndpoint('amqp+ssl://localhost:5702', '127.0.0.1')).toEqual({ host: '127.0.0.1', port: 5702, tls: true });
    expect(announcedEndpoint('amqp://localhost:5701', '127.0.0.1', { hostAliases: {} })).toEqual({ host: 'localhost', port: 5701 });
  });
});

describe('LiveSet (fake clock)', () => {
  it('adds on the first alive, keeps on keep-alives, removes at once on dead', () => {
    const set = new LiveSet();
    expect(set.receive(alive('amqp://127.0.0.1:5701'), '127.0.0.1', 0).map((c) => [c.kind, c.endpoint.port])).toEqual([['added', 5701]]);
    expect(set.receive(alive('amqp://127.0.0.1:5701'), '127.0.0.1', 500)).toEqual([]);
    set.receive(alive('amqp://127.0.0.1:5703'), '127.0.0.1', 600);
    expect(set.endpoints()).toEqual([
      { host: '127.0.0.1', port: 5701 },
      { host: '127.0.0.1', port: 5703 },
    ]);
    const removed = set.receive(dead('amqp://127.0.0.1:5701'), '127.0.0.1', 700);
    expect(removed.map((c) => [c.kind, c.reason, c.endpoint.port])).toEqual([['removed', 'dead', 5701]]);
    expect(set.endpoints()).toEqual([{ host: '127.0.0.1', port: 5703 }]);
    expect(set.receive(dead('amqp://127.0.0.1:5701'), '127.0.0.1', 800)).toEqual([]);
  });

  it('expires a broker silent for 5 s, not one that keeps announcing', () => {
    const set = new LiveSet();
    set.receive(alive('amqp://127.0.0.1:5701'), '127.0.0.1', 0);
    set.receive(alive('amqp://127.0.0.1:5703'), '127.0.0.1', 0);
    for (let t = 500; t <= 4500; t += 500) set.receive(alive('amqp://127.0.0.1:5703'), '127.0.0.1', t);
    expect(set.expire(4999)).toEqual([]);
    const expired = set.expire(5000);
    expect(expired.map((c) => [c.reason, c.endpoint.port])).toEqual([['expired', 5701]]);
    expect(set.endpoints().map((e) => e.port)).toEqual([5703]);
    expect(set.expire(9499)).toEqual([]);
    expect(set.expire(9500).map((c) => c.endpoint.port)).toEqual([5703]);
  });

  it('ignores other groups, OpenWire announcements and garbage', () => {
    const set = new LiveSet({ group: 'rts', expiryMs: 1000 });
    expect(set.receive(alive('amqp://127.0.0.1:5701', 'default'), '127.0.0.1', 0)).toEqual([]);
    expect(set.receive(alive('tcp://127.0.0.1:61601', 'rts'), '127.0.0.1', 0)).toEqual([]);
    expect(set.receive(alive('tcp://127.0.0.1:61601', 'rts-net'), '127.0.0.1', 0)).toEqual([]);
    expect(set.receive('\u0000\u0001junk', '127.0.0.1', 0)).toEqual([]);
    expect(set.receive(alive('amqp://127.0.0.1:5701', 'rts'), '127.0.0.1', 0)).toHaveLength(1);
    expect(set.expire(1000)).toHaveLength(1);
  });

  it('a broker that comes back after expiry is added again', () => {
    const set = new LiveSet();
    set.receive(alive('amqp://127.0.0.1:5701'), '127.0.0.1', 0);
    set.expire(6000);
    expect(set.receive(alive('amqp://127.0.0.1:5701'), '127.0.0.1', 7000).map((c) => c.kind)).toEqual(['added']);
  });
});

describe('static endpoint lists', () => {
  it('parses failover:(...) and plain lists, with default ports and de-duplication', () => {
    expect(parseEndpointList('failover:(amqp://a:5673,amqp://b:5673)')).toEqual([
      { host: 'a', port: 5673 },
      { host: 'b', port: 5673 },
    ]);
    expect(parseEndpointList('failover:(amqp://a:5673, amqp://b:5674)?randomize=false&maxReconnectAttempts=-1')).toEqual([
      { host: 'a', port: 5673 },
      { host: 'b', port: 5674 },
    ]);
    expect(parseEndpointList('amqp://a:5673,b, [::1]:5701 amqp://a:5673')).toEqual([
      { host: 'a', port: 5673 },
      { host: 'b', port: 5672 },
      { host: '::1', port: 5701 },
    ]);
    expect(parseEndpointList('a', 5673)).toEqual([{ host: 'a', port: 5673 }]);
    expect(parseEndpoint('amqp://user:pw@h:1/x?y')).toEqual({ host: 'h', port: 1 });
  });

  it('refuses entries that are not AMQP endpoints and empty lists', () => {
    expect(() => parseEndpointList('failover:(tcp://a:61616,amqp://b:5673)')).toThrow(/not an AMQP endpoint/);
    expect(() => parseEndpointList('a:99999')).toThrow();
    expect(() => parseEndpointList('failover:()')).toThrow(/no broker endpoints/);
  });
});

describe('EndpointRotation and backoff', () => {
  const a = { host: 'h', port: 1 };
  const b = { host: 'h', port: 2 };
  const c = { host: 'h', port: 3 };

  it('round-robins, skipping brokers that failed within the cooldown while others are offered', () => {
    const r = new EndpointRotation({ start: 'first', failureCooldownMs: 3000 });
    expect(r.next([a, b, c], 0)).toEqual(a);
    r.markFailed(a, 0);
    expect(r.next([a, b, c], 10)).toEqual(b);
    r.markFailed(b, 10);
    expect(r.next([a, b, c], 20)).toEqual(c);
    r.markFailed(c, 20);
    // all failed recently: the one that failed longest ago
    expect(r.next([a, b, c], 30)).toEqual(a);
    // cooldown over for a
    expect(r.next([a, b, c], 3001)).toEqual(a);
    r.markConnected(b);
    expect(r.next([a, b, c], 3002)).toEqual(b);
  });

  it('honours a one-shot preference while it is offered', () => {
    const r = new EndpointRotation({ start: 'first' });
    r.prefer(c);
    expect(r.next([a, b, c], 0)).toEqual(c);
    expect(r.next([a, b, c], 0)).toEqual(a);
    r.prefer({ host: 'gone', port: 9 });
    expect(r.next([a, b, c], 0)).toEqual(b);
    expect(r.next([], 0)).toBeUndefined();
  });

  it('starts at a random place when asked (spreading clients)', () => {
    expect(new EndpointRotation({ start: 'random', random: () => 0.99 }).next([a, b, c], 0)).toEqual(c);
  });

  it('backs off exponentially to the cap with jitter below the nominal delay', () => {
    const o = { initialMs: 100, maxMs: 2000, jitter: 0.5 };
    expect([0, 1, 2, 3, 4, 5, 10].map((f) => backoffDelay(f, o, () => 0))).toEqual([100, 200, 400, 800, 1600, 2000, 2000]);
    expect(backoffDelay(0, o, () => 1)).toBe(50);
    expect(backoffDelay(5, o, () => 0.5)).toBe(1500);
  });
});
