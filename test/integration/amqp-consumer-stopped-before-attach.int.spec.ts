// A consumer stopped while the broker has not answered its attach must leave no link behind. The hub does this when
// its uplink check finds the link unattached on a live connection (uplink-attachment.ts): it stops the consumer and
// attaches a new one. rhea re-attaches at the next reconnect every link still open on our side, and the stopped
// consumer gives no credit: each such episode left one more consumer on the uplink queue that would never take a
// message, counted by the broker (and by the downlink depth's `consumers`).
//
// The broker is a real ActiveMQ behind a proxy that keeps back (hold) or drops (deafen) what the client sends, so the
// attach is answered late or never; the broker is then asked, on a connection of its own, how many consumers the
// queue has. A detach sent at once is not the answer either: rhea opens again a link whose attach is answered after
// its detach went out, and the two then loop.
import { randomUUID } from 'node:crypto';
import { AmqpConnection, QueueConsumer } from '../../src/adapters/amqp';
import { requestStatistics } from '../../src/adapters/messaging/broker-statistics';
import { startBroker, type TestBroker } from '../support/activemq';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';
import { until } from './hub-support';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a consumer stopped before the broker answered its attach', () => {
  let broker: TestBroker;
  let admin: AmqpConnection;
  let proxy: StallingProxy;
  const closing: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    broker = await startBroker();
    admin = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
    await admin.waitConnected(30_000);
  });
  beforeEach(async () => {
    proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
  });
  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close().catch(() => undefined);
    await proxy.close();
  });
  afterAll(async () => {
    await admin?.close();
    await broker?.destroy();
  });

  /** The queue's consumers as the broker counts them (0 for a queue it does not have). */
  const consumersOn = async (queue: string): Promise<number> => {
    const answer = await requestStatistics(admin, { destination: queue, timeoutMs: 10_000 });
    const map = answer.maps.find((m) => m.destinationName === `queue://${queue}`);
    return map === undefined ? 0 : Number(map.consumerCount);
  };

  const connectThroughProxy = async () => {
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: proxy.port }], initialReconnectDelayMs: 200, maxReconnectDelayMs: 200, reconnectJitter: 0 });
    closing.push(() => connection.close());
    await connection.waitConnected(30_000);
    return connection;
  };

  const consumerOn = (connection: AmqpConnection, queue: string) =>
    new QueueConsumer(connection, { queue, deadLetterQueue: `${queue}.dlq`, handler: async () => 'accept' });

  /** A consumer whose attach is on its way (and not answered), stopped: its start() rejects as stopped. */
  const stoppedBeforeAnswer = async (connection: AmqpConnection, queue: string): Promise<QueueConsumer> => {
    const stuck = consumerOn(connection, queue);
    const started = stuck.start(null).then(
      () => 'attached',
      (error: Error) => error.message,
    );
    await sleep(500);
    await stuck.stop(0);
    expect(await started).toMatch(/stopped before the broker answered its attach/);
    return stuck;
  };

  /** Drops the proxy's connections and waits for the client's next one. */
  const reconnect = async (connection: AmqpConnection) => {
    const again = new Promise<void>((resolve) => connection.once('connected', () => resolve()));
    proxy.drop();
    await again;
  };

  it('its attach never reaches the broker: after the next reconnect the queue has no consumer', async () => {
    const connection = await connectThroughProxy();
    // A witness: a consumer attached before and after, so a count of 1 is the witness and 2 is a link left behind.
    const queue = `rts.test.stopped-unattached.${randomUUID().slice(0, 8)}`;
    const witness = consumerOn(connection, queue);
    closing.push(() => witness.stop(0));
    await witness.start(15_000);
    await until('the witness counted', async () => (await consumersOn(queue)) === 1, 15_000);

    proxy.deafen();
    const stuck = await stoppedBeforeAnswer(connection, queue);

    await reconnect(connection);
    await until('the witness attached again', () => witness.attached(), 15_000);
    // Whatever rhea re-attaches goes out with the witness's attach, on the same connection: give it time to land.
    await sleep(1_500);
    expect(await consumersOn(queue)).toBe(1);
    expect(stuck.attached()).toBe(false);
  });

  it('its attach is answered late, after stop(): the link is closed then, and the queue keeps no consumer', async () => {
    const connection = await connectThroughProxy();
    const queue = `rts.test.stopped-late.${randomUUID().slice(0, 8)}`;
    proxy.hold();
    const stuck = await stoppedBeforeAnswer(connection, queue);

    proxy.release();
    // The broker now takes the attach and answers it: the consumer exists on the broker for a moment at most.
    await sleep(1_500);
    await until('no consumer left on the queue', async () => (await consumersOn(queue)) === 0, 10_000);
    // And the link is done with: a detach sent before the late answer made rhea attach the link again at each answer,
    // and the broker answer each attach, for as long as the connection lasted (thousands of frames a second).
    const before = proxy.forwarded();
    await sleep(1_000);
    expect(proxy.forwarded() - before).toBeLessThan(64);
    // Still none after a reconnect: nothing is re-attached either.
    await reconnect(connection);
    await sleep(1_500);
    expect(await consumersOn(queue)).toBe(0);
    expect(stuck.attached()).toBe(false);
  });
});
