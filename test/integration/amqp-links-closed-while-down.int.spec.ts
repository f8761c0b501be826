// A link closed while the broker is away must stay closed when the connection comes back. rhea attaches again at
// the reconnect every link that was open when the connection dropped, one closed meanwhile included: the leak hunter
// (2026-12-02) counted one more consumer on the broker per subscription closed during an outage, and a zombie
// receiver on rts.dlq after a listing cut off by a broker kill -9, each held until the process stopped.
import { randomUUID } from 'node:crypto';
import { AmqpConnection, DurableSender, QueueConsumer } from '../../src/adapters/amqp';
import { startBroker, type TestBroker } from '../support/activemq';
import { linksOnQueue } from '../support/broker-advisory';
import { until } from './hub-support';

jest.setTimeout(120000);

const queueName = (label: string) => `rts.test.${label}.${randomUUID().slice(0, 8)}`;

describe('links closed while the broker is away', () => {
  let broker: TestBroker;
  let connection: AmqpConnection | undefined;

  afterAll(async () => {
    await connection?.close().catch(() => undefined);
    await broker?.destroy();
  });

  it('are not attached again at the reconnect: consumer, own-session receiver and sender', async () => {
    broker = await startBroker();
    connection = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }], initialReconnectDelayMs: 100, maxReconnectDelayMs: 500 });
    const c = connection;
    await until('connected', () => c.isConnected(), 30_000);
    const consumed = queueName('consumer');
    const browsed = queueName('own-session');
    const sentTo = queueName('sender');

    const consumer = new QueueConsumer(c, { queue: consumed, deadLetterQueue: `${consumed}.dlq`, handler: async () => 'accept' });
    await consumer.start();
    const own = c.openReceiverOnOwnSession({ source: { address: browsed }, credit_window: 10, autoaccept: false });
    await new Promise<void>((resolve) => own.receiver.once('receiver_open', () => resolve()));
    const sender = new DurableSender(c);
    await sender.send(sentTo, { body: 'one' });
    // What is there before: one of each (the count the broker reports, so the check below can see a zombie).
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Consumer', consumed)).toBe(1);
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Consumer', browsed)).toBe(1);
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Producer', sentTo)).toBe(1);

    await broker.stop();
    await until('disconnected', () => !c.isConnected(), 30_000);
    await consumer.stop(1000);
    own.close();
    await sender.close();
    broker = await broker.startAgain();
    await until('connected', () => c.isConnected(), 30_000);
    await new Promise((r) => setTimeout(r, 1500)); // what rhea re-attaches, it does right after the open

    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Consumer', consumed)).toBe(0);
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Consumer', browsed)).toBe(0);
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Producer', sentTo)).toBe(0);

    // And the connection itself still works: a new consumer of the same queue gets what is sent to it.
    const got: string[] = [];
    const again = new QueueConsumer(c, {
      queue: consumed,
      deadLetterQueue: `${consumed}.dlq`,
      handler: async (m) => {
        got.push(m.body);
        return 'accept';
      },
    });
    await again.start();
    const sender2 = new DurableSender(c);
    await sender2.send(consumed, { body: 'after' });
    await until('the message after the restart', () => got.length === 1, 30_000);
    expect(got).toEqual(['after']);
    expect(await linksOnQueue(broker.host, broker.amqpPort, 'Consumer', consumed)).toBe(1);
    await again.stop();
    await sender2.close();
  });
});
