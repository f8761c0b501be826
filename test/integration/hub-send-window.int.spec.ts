// The hub's retrying senders (the downlink outbox's RetryingSender, the dead-letter copies' and replays'
// RetryingDurableSender) give up on a message when their retry window (`retryForMs`) is spent, resends across
// reconnects included: an attempt started late in the window gets what is left of it, not a whole sendTimeoutMs, and
// none starts after it. A real broker behind a proxy that holds a transfer, then is unreachable late in the window
// and back half a window after it: a send still open then would be accepted long after its window.
import { AmqpConnection, SendError } from '../../src/adapters/amqp';
import { RetryingSender } from '../../src/adapters/amqp/failover';
import { RetryingDurableSender } from '../../src/adapters/amqp/retrying-durable-sender';
import { startBroker, type TestBroker } from '../support/activemq';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';

jest.setTimeout(120000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Send = (queue: string, body: string) => Promise<unknown>;
type Subject = { send: Send; close(): Promise<void> };

const senders: Array<[string, (connection: AmqpConnection, retryForMs: number) => Subject]> = [
  [
    'RetryingSender (the downlink outbox)',
    (connection, retryForMs) => {
      // sendTimeoutMs left at its default (15 s), as the hub has it: longer than this window.
      const sender = new RetryingSender(connection, { retryForMs, retryDelayMs: 50 });
      return { send: (queue, body) => sender.send(queue, { body }), close: () => sender.close() };
    },
  ],
  [
    'RetryingDurableSender (dead-letter copies and replays)',
    (connection, retryForMs) => {
      const sender = new RetryingDurableSender(connection, { retryForMs, retryDelayMs: 50 });
      return { send: (queue, body) => sender.sendRaw(queue, { body }), close: () => sender.close() };
    },
  ],
];

describe('the hub retrying senders: retryForMs bounds a send, resends across reconnects included', () => {
  let broker: TestBroker;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    broker = await startBroker();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  afterAll(async () => {
    await broker?.destroy();
  });

  /** A connection to the broker through a proxy the test stalls, refuses and resumes; both closed after the test. */
  const connectedThroughProxy = async (): Promise<{ proxy: StallingProxy; connection: AmqpConnection }> => {
    const proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
    cleanups.push(() => proxy.close());
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: proxy.port }], initialReconnectDelayMs: 50, maxReconnectDelayMs: 200 });
    connection.on('error', () => undefined);
    cleanups.push(() => connection.close());
    await connection.waitConnected(30000);
    return { proxy, connection };
  };

  it.each(senders)('%s: a send lost to a disconnect late in its window rejects when the window is spent, not a sendTimeoutMs later', async (_name, make) => {
    const retryForMs = 4000;
    const { proxy, connection } = await connectedThroughProxy();
    const sender = make(connection, retryForMs);
    cleanups.push(() => sender.close());
    const queue = `rts.test.send-window.${Math.random().toString(36).slice(2, 8)}`;
    // The link is attached (and has credit) before the broker stops reading: the send below goes out.
    await sender.send(queue, 'warm-up');

    // The transfer goes out but never reaches the broker: no outcome while the window runs.
    proxy.hold();
    const order: string[] = [];
    const outcome = sender.send(queue, 'late-loss').then(
      () => 'accepted',
      (error: unknown) => error,
    );
    void outcome.then(() => order.push('send settled'));
    await sleep(retryForMs * 0.75);
    // Late in the window the connection is lost (and the broker stays unreachable): the message is sent again after
    // the reconnect, with only what is left of the window.
    proxy.refuse();
    await sleep(retryForMs * 0.75);
    // Half a window after the send's bound the broker is reachable again: a send still open then gets the message
    // through, well past retryForMs.
    order.push('broker back');
    proxy.resume();
    const result = await outcome;

    expect(result).toBeInstanceOf(SendError);
    expect((result as SendError).retryable).toBe(true);
    expect(order).toEqual(['send settled', 'broker back']);
  });

  it("RetryingDurableSender: a caller's timeoutMs bounds the send as the window does (as for DurableSender)", async () => {
    const timeoutMs = 2000;
    const { proxy, connection } = await connectedThroughProxy();
    // A window far longer than the caller's own deadline.
    const sender = new RetryingDurableSender(connection, { retryForMs: 120000, retryDelayMs: 50 });
    cleanups.push(() => sender.close());
    const queue = `rts.test.send-window.${Math.random().toString(36).slice(2, 8)}`;
    await sender.sendRaw(queue, { body: 'warm-up' });

    proxy.refuse();
    const order: string[] = [];
    const outcome = sender.sendRaw(queue, { body: 'own deadline' }, { timeoutMs }).then(
      () => 'accepted',
      (error: unknown) => error,
    );
    void outcome.then(() => order.push('send settled'));
    await sleep(timeoutMs * 1.5);
    order.push('broker back');
    proxy.resume();
    const result = await outcome;

    expect(result).toBeInstanceOf(SendError);
    expect(order).toEqual(['send settled', 'broker back']);
  });
});
