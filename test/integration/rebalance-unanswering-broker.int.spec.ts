// A broker that discovery announces but that does not answer AMQP must not take a good connection away. A move
// (rebalanceOnAdded) drops the connection it leaves: to a wrong port each of its 3 tries cost a pause and
// redeliveries, and to a listener that accepts TCP and never speaks AMQP (a broker out of heap, still announcing)
// each waited openTimeoutMs (15 s) with no broker at all while the old one was fine. The client now moves only to
// a broker whose warm-up probe answered.
//
// No JVM: the good broker is a stand-in written with rhea's server side (as amqp-session-ended.int.spec.ts), the
// silent one a plain TCP server. Multicast needs a network namespace, so discovery is replaced by a provider the
// test feeds (as sdk-discovery.unit.spec.ts).
import { createServer, type Server, type Socket } from 'node:net';
import { create_container } from 'rhea';
import type { AmqpEndpoint } from '../../src/adapters/amqp/connection';
import { FedEndpointProvider } from '../support/fed-endpoint-provider';
import { freePort, until } from './hub-support';

jest.setTimeout(60_000);

const fed = { provider: new FedEndpointProvider() };
jest.mock('../../src/adapters/amqp/discovery-provider', () => {
  const actual = jest.requireActual('../../src/adapters/amqp/discovery-provider');
  return { ...actual, openEndpointProvider: async () => ({ provider: fed.provider, stop: async () => undefined }) };
});
import { RtsClient, jsonCodec } from '../../src/sdk';

/** A peer that opens AMQP connections and nothing more; counts the connections it saw open and close. */
const goodBroker = async () => {
  const port = await freePort();
  const server = create_container({ id: 'good-broker' });
  const seen = { opened: 0, closed: 0 };
  server.on('connection_open', () => (seen.opened += 1));
  server.on('connection_close', () => (seen.closed += 1));
  server.on('disconnected', () => (seen.closed += 1));
  server.on('error', () => undefined);
  const listener: Server = server.listen({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve) => listener.once('listening', () => resolve()));
  return { port, seen, close: () => new Promise<void>((resolve) => listener.close(() => resolve())) };
};

/** Accepts TCP and never says a word. */
const silentListener = async () => {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

describe('a broker announced that does not answer AMQP', () => {
  let client: RtsClient | undefined;
  let good: Awaited<ReturnType<typeof goodBroker>> | undefined;
  let silent: Awaited<ReturnType<typeof silentListener>> | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await good?.close();
    good = undefined;
    await silent?.close();
    silent = undefined;
  });

  /** A client on the good broker, with `rebalance=always` (every announcement is a move's chance). */
  const connected = async () => {
    good = await goodBroker();
    fed.provider = new FedEndpointProvider();
    fed.provider.live = [{ host: '127.0.0.1', port: good.port }];
    const logged: Array<Record<string, unknown>> = [];
    const c = await RtsClient.connect({
      systemId: 'city-a',
      discovery: 'multicast://default?rebalance=always',
      codec: jsonCodec,
      connectTimeoutMs: 10_000,
      logger: { info: (fields) => void logged.push(fields as Record<string, unknown>) },
    });
    client = c;
    const disconnects: unknown[] = [];
    c.on('disconnected', (event) => void disconnects.push(event));
    const skipped = () => logged.filter((f) => f.event === 'amqp.rebalance.skipped').length;
    return { c, disconnects, skipped, logged };
  };

  it('that accepts TCP and never speaks: the client stays on its broker (no move, no disconnect)', async () => {
    const { c, disconnects, skipped } = await connected();
    silent = await silentListener();
    fed.provider.add({ host: '127.0.0.1', port: silent.port });
    // Each of the 3 tries is a probe that gets no answer (or, as before, a move that drops the connection).
    await until('three skipped moves or a disconnect', () => disconnects.length > 0 || skipped() >= 3, 45_000);
    expect(disconnects).toEqual([]);
    expect(c.isConnected()).toBe(true);
    expect(good!.seen).toEqual({ opened: 1, closed: 0 });
    // The warm-up probe and one probe for each later try: no connection of the client's waited there.
    expect(silent.accepted()).toBe(3);
  });

  it('on a port that refuses: the client stays on its broker (no move, no disconnect)', async () => {
    const { c, disconnects, skipped } = await connected();
    const refused = await freePort();
    fed.provider.add({ host: '127.0.0.1', port: refused });
    await until('three skipped moves or a disconnect', () => disconnects.length > 0 || skipped() >= 3, 45_000);
    expect(disconnects).toEqual([]);
    expect(c.isConnected()).toBe(true);
    expect(good!.seen).toEqual({ opened: 1, closed: 0 });
  });

  it('a broker that answers: the client moves there, once', async () => {
    const { c, logged } = await connected();
    const other = await goodBroker();
    try {
      fed.provider.add({ host: '127.0.0.1', port: other.port });
      await until('the client on the new broker', () => c.isConnected() && other.seen.opened >= 2, 20_000);
      // The warm-up probe's connection, then the client's.
      expect(other.seen.opened).toBe(2);
      expect(good!.seen.closed).toBeGreaterThanOrEqual(1);
      expect(logged.filter((f) => f.event === 'amqp.rebalance')).toHaveLength(1);
    } finally {
      await c.close();
      client = undefined;
      await other.close();
    }
  });
});
