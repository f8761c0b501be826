// A connection the broker still holds after we gave it up must not lock us out (conformance report, finding 1).
//
// The broker's transport thread for the hub's connection blocked writing to the hub, so it read nothing; rhea's idle
// timeout dropped the connection on the hub's side, and the hub reconnected with the same container-id, which
// ActiveMQ takes as the connection's client id: "Client: rts-hub-... already connected from ...", a close with
// `amqp:invalid-field` right after the open. rhea fired `connection_open` and then ended the socket without a
// `disconnected` (a fatal close): the hub had no connection and made no more attempts, while `isConnected()`, /health
// (`broker: "connected"`, `uplink: "consuming"`) and rts_amqp_connected said it was up.
//
// Here a stalling proxy (test/support/stalling-proxy.ts) plays the stuck flow: the broker keeps its end of the old
// connection open until its own inactivity check (30 s) gives it up.
import { randomUUID } from 'node:crypto';
import { create_container, type Connection as RheaConnection, type EventContext } from 'rhea';
import { AmqpConnection, DurableSender, type DisconnectedEvent } from '../../src/adapters/amqp';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';
import { freePort, getJson, registerSystem, sendUplink, startInProcessHub, tempDir, until, uplink } from './hub-support';

jest.setTimeout(180_000);

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.destroy();
});

const queueName = () => `rts.test.stale.${randomUUID().slice(0, 8)}`;

/** Another client holding `id` as its container-id (client id) on the broker. */
const holdClientId = async (id: string): Promise<RheaConnection> => {
  const raw = create_container({ id }).connect({ host: broker.host, port: broker.amqpPort, reconnect: false, username: 'anonymous' } as never);
  await new Promise<void>((resolve, reject) => {
    raw.once('connection_open', () => resolve());
    raw.once('connection_error', (context: EventContext) => reject(context.connection.error as Error));
  });
  return raw;
};

describe('AmqpConnection and a client id the broker already has', () => {
  let proxy: StallingProxy | undefined;
  let connection: AmqpConnection | undefined;
  const holders: RheaConnection[] = [];

  afterEach(async () => {
    await connection?.close();
    connection = undefined;
    for (const holder of holders.splice(0)) holder.close();
    await proxy?.close();
    proxy = undefined;
  });

  it('reconnects after its idle timeout dropped a flow the broker still holds, and sends again', async () => {
    proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
    connection = AmqpConnection.open({
      endpoints: [{ host: '127.0.0.1', port: proxy.port }],
      sasl: { mechanism: 'anonymous' },
      containerId: `rts-test-stale-${randomUUID().slice(0, 6)}`,
      idleTimeoutMs: 1000,
      initialReconnectDelayMs: 50,
      maxReconnectDelayMs: 500,
    });
    const disconnects: DisconnectedEvent[] = [];
    connection.on('disconnected', (e) => disconnects.push(e));
    connection.on('error', () => undefined);
    await connection.waitConnected();
    const sender = new DurableSender(connection, { sendTimeoutMs: 5000 });
    const queue = queueName();
    await sender.send(queue, { body: 'before' });

    // The flow goes quiet both ways; the broker's end stays open (its inactivity check takes 30 s). New flows pass.
    proxy.stall();
    proxy.resume();
    await until('idle timeout', () => disconnects.length > 0, 20_000);

    // Let in at once under a container-id of its own (before: refused while the broker held the old flow, and never
    // tried again).
    await until('connected again', () => connection!.isConnected(), 10_000);
    await sender.send(queue, { body: 'after' });
    await sender.close();
  });

  it('treats "already connected" as a failed attempt: says disconnected, backs off, and gets in under another id', async () => {
    const containerId = `rts-test-dup-${randomUUID().slice(0, 6)}`;
    // Whatever id the first attempt uses (the old code: the prefix itself; now: `<prefix>-1`) is taken.
    holders.push(await holdClientId(containerId), await holdClientId(`${containerId}-1`));
    connection = AmqpConnection.open({
      endpoints: [{ host: broker.host, port: broker.amqpPort }],
      sasl: { mechanism: 'anonymous' },
      containerId,
      initialReconnectDelayMs: 50,
      maxReconnectDelayMs: 500,
    });
    const disconnects: DisconnectedEvent[] = [];
    connection.on('disconnected', (e) => disconnects.push(e));
    const errors: Error[] = [];
    connection.on('error', (e) => errors.push(e));

    await until('the refused attempt reported', () => disconnects.length > 0, 10_000);
    expect(disconnects[0]).toMatchObject({ reconnecting: true, error: expect.objectContaining({ message: expect.stringMatching(/already connected/) }) });
    // A refusal we try again after is not a fatal error.
    expect(errors).toEqual([]);
    await connection.waitConnected(10_000);
    const sender = new DurableSender(connection, { sendTimeoutMs: 5000 });
    await sender.send(queueName(), { body: 'in' });
    await sender.close();
  });

  it('is not connected after a fatal close right after the open, and says so with `disconnected`', async () => {
    // A peer that opens and at once closes with a condition rhea gives up on: rhea says nothing more.
    const port = await freePort();
    const server = create_container({ id: 'fake-broker' });
    server.on('connection_open', (context: EventContext) => context.connection.close({ condition: 'amqp:not-allowed', description: 'go away' }));
    server.on('error', () => undefined);
    const listener = server.listen({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve) => listener.once('listening', () => resolve()));
    try {
      connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port }], initialReconnectDelayMs: 50 });
      const errors: Error[] = [];
      connection.on('error', (e) => errors.push(e));
      const disconnected = new Promise<DisconnectedEvent>((resolve) => connection!.once('disconnected', resolve));
      await until('opened', () => connection!.isConnected() || errors.length > 0, 10_000);
      const event = await Promise.race([disconnected, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))]);
      expect(event).toMatchObject({ reconnecting: false });
      expect(connection.isConnected()).toBe(false);
      expect(errors.map((e) => e.message)).toEqual(['go away']);
    } finally {
      await connection?.close();
      connection = undefined;
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
  });

  it('gives up an attempt the broker takes at TCP and never answers, and gets in at the next broker', async () => {
    // A broker whose transport threads are stuck: it accepts the connection and says nothing, ever. The idle timeout
    // runs only once a connection is open, so the attempt, and the hub, waited for ever.
    const accepted: import('node:net').Socket[] = [];
    const silent = await import('node:net').then(({ createServer }) => createServer((socket) => void accepted.push(socket.on('error', () => undefined))));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const silentPort = (silent.address() as import('node:net').AddressInfo).port;
    try {
      connection = AmqpConnection.open({
        endpoints: [{ host: '127.0.0.1', port: silentPort }, { host: broker.host, port: broker.amqpPort }],
        sasl: { mechanism: 'anonymous' },
        initialReconnectDelayMs: 50,
        openTimeoutMs: 1_000,
      });
      const lost: DisconnectedEvent[] = [];
      connection.on('disconnected', (e) => lost.push(e));
      await connection.waitConnected(15_000);
      expect(connection.isConnected()).toBe(true);
      expect(lost[0]).toMatchObject({ endpoint: { port: silentPort }, reconnecting: true });
      expect(String(lost[0]?.error?.message)).toContain('no AMQP open from the broker within 1000 ms');
    } finally {
      await connection?.close();
      connection = undefined;
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('a hub whose broker holds a stale connection of it', () => {
  let proxy: StallingProxy;
  let hub: RunningHub | undefined;
  let sender: DurableSender | undefined;
  let client: AmqpConnection | undefined;
  const data = tempDir('rts-hub-stale-connection-');

  afterAll(async () => {
    await sender?.close().catch(() => undefined);
    await client?.close();
    await hub?.stop();
    await proxy?.close();
    data.remove();
  });

  it('connects again and consumes, and /health says so only when it does', async () => {
    proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
    hub = await startInProcessHub({ ...broker, url: `amqp://127.0.0.1:${proxy.port}` }, data.dir);
    await until('consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming', 30_000, 200);
    client = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }], sasl: { mechanism: 'anonymous' } });
    await client.waitConnected();
    sender = new DurableSender(client);

    // The hub's flow goes quiet; its idle timeout (8 s: heartbeats missed for 16 s) drops it, and it reconnects while
    // the broker still holds the old one.
    const before = proxy.accepted();
    proxy.stall();
    proxy.resume();
    await until('the hub tries again', () => proxy.accepted() > before, 40_000, 100);

    // It gets in (before: refused once, then silent for good, with /health saying connected and consuming).
    await registerSystem(hub.url, 'city-stale');
    await sendUplink(sender, uplink.join('city-stale', 0, 0));
    await until('city-stale joined', async () => (await getJson(hub!.url, '/systems/city-stale')).body.status === 'joined', 60_000, 250);
    const health = (await getJson(hub.url, '/health')).body;
    expect(health).toMatchObject({ broker: 'connected', uplink: 'consuming' });
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/^rts_amqp_connected\{role="hub"\} 1$/m);
    expect(metrics).toMatch(/^rts_uplink_consuming 1$/m);
  });
});

/** An AMQP peer (rhea as a server) that closes the first `fatalOpens` connections with `amqp:not-allowed` at once. */
const startRefusingPeer = async (fatalOpens: number) => {
  const port = await freePort();
  const opens: number[] = [];
  const server = create_container({ id: 'fake-broker' });
  server.on('connection_open', (context: EventContext) => {
    opens.push(Date.now());
    if (opens.length <= fatalOpens) context.connection.close({ condition: 'amqp:not-allowed', description: 'go away' });
  });
  server.on('error', () => undefined);
  server.on('disconnected', () => undefined);
  const listener = server.listen({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve) => listener.once('listening', () => resolve()));
  return { port, opens, close: () => new Promise<void>((resolve) => listener.close(() => resolve())) };
};

describe('AmqpConnection with retryFatalCloseMs', () => {
  it('reports a fatal close once, waits that long, and is let in at the next attempt', async () => {
    const peer = await startRefusingPeer(1);
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: peer.port }], initialReconnectDelayMs: 50, retryFatalCloseMs: 1500 });
    try {
      const errors: Error[] = [];
      const disconnects: DisconnectedEvent[] = [];
      connection.on('error', (e) => errors.push(e));
      connection.on('disconnected', (e) => disconnects.push(e));
      await until('closed by the peer', () => disconnects.length > 0, 10_000);
      expect(disconnects[0]).toMatchObject({ reconnecting: true, error: expect.objectContaining({ message: 'go away' }) });
      expect(errors.map((e) => e.message)).toEqual(['go away']);
      // Not at its usual 50 ms: the retry waits what it was told.
      await connection.waitConnected(10_000);
      expect(peer.opens).toHaveLength(2);
      expect(peer.opens[1]! - peer.opens[0]!).toBeGreaterThanOrEqual(1400);
      expect(connection.isConnected()).toBe(true);
      expect(errors).toHaveLength(1);
    } finally {
      await connection.close();
      await peer.close();
    }
  });

  it('makes no attempt after close() while it waits', async () => {
    const peer = await startRefusingPeer(Infinity);
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: peer.port }], initialReconnectDelayMs: 50, retryFatalCloseMs: 500 });
    connection.on('error', () => undefined);
    try {
      await until('closed by the peer', () => peer.opens.length > 0, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await connection.close();
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect(peer.opens).toHaveLength(1);
    } finally {
      await peer.close();
    }
  });
});

describe('a hub whose broker closes its connection with a fatal condition', () => {
  let hub: RunningHub | undefined;
  let server: import('node:net').Server | undefined;
  let peer: Awaited<ReturnType<typeof startRefusingPeer>> | undefined;
  const data = tempDir('rts-hub-fatal-close-');

  afterAll(async () => {
    await hub?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await peer?.close();
    data.remove();
  });

  it('tries again 10 s later and consumes again (before: disconnected until restarted)', async () => {
    const net = await import('node:net');
    peer = await startRefusingPeer(1);
    // A proxy in front of the real broker whose new connections can be sent to the refusing peer instead.
    let target = { host: broker.host, port: broker.amqpPort };
    const sockets = new Set<import('node:net').Socket>();
    server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as import('node:net').AddressInfo).port;
    hub = await startInProcessHub({ ...broker, url: `amqp://127.0.0.1:${port}` }, data.dir);
    await until('consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming', 30_000, 200);

    // The connection drops; the next attempt meets a broker that closes it with amqp:not-allowed.
    target = { host: '127.0.0.1', port: peer.port };
    for (const socket of sockets) socket.destroy();
    await until('refused once', () => peer!.opens.length === 1, 10_000, 50);
    target = { host: broker.host, port: broker.amqpPort };
    // The peer's open and its close reach the hub through the proxy, and may come in two reads (a CI run under load):
    // between them /health says connected, and the wait below ended 6 ms after the refusal. The refused connection's
    // sockets are gone once the hub has taken the close.
    await until('the refusal taken', () => sockets.size === 0, 5_000, 20);
    await until('disconnected', async () => (await getJson(hub!.url, '/health')).body.broker === 'disconnected', 5_000, 50);

    await until('connected again', async () => (await getJson(hub!.url, '/health')).body.broker === 'connected', 20_000, 250);
    expect(Date.now() - peer.opens[0]!).toBeGreaterThanOrEqual(9_000);
    expect(peer.opens).toHaveLength(1);
    await until('consuming again', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming', 20_000, 200);
    const client = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }], sasl: { mechanism: 'anonymous' } });
    const sender = new DurableSender(client);
    try {
      await client.waitConnected();
      await registerSystem(hub.url, 'city-fatal');
      await sendUplink(sender, uplink.join('city-fatal', 0, 0));
      await until('city-fatal joined', async () => (await getJson(hub!.url, '/systems/city-fatal')).body.status === 'joined', 60_000, 250);
    } finally {
      await sender.close().catch(() => undefined);
      await client.close();
    }
  });
});
