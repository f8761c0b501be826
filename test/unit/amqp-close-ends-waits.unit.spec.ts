import { createServer, type AddressInfo } from 'node:net';
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { SendError } from '../../src/adapters/amqp/durable-sender';
import { RetryingDurableSender } from '../../src/adapters/amqp/retrying-durable-sender';

// A wait for the broker must end when the connection or the sender waiting on it is closed: waitConnected said it
// rejects "if closed" but did so only when called after close(), so a wait under way sat out its whole timeout (the
// hub's 120 s send window, with a timer not unref'd that kept a stopped process alive), and a dead-letter replay in
// RetryingDurableSender's wait for a reconnect at the hub's stop hung as long (RetryingSender ends those at close()).

/** A port nothing listens on: every attempt is refused, the connection never comes up. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** How `promise` settled, or 'pending' once `ms` (a bound, far below the waits under test, not a measure) passed. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  const outcome = promise.then(
    () => 'resolved',
    (error: unknown) => (error instanceof SendError ? `rejected: ${error.reason}` : `rejected: ${(error as Error).message}`),
  );
  try {
    return await Promise.race([outcome, bound]);
  } finally {
    clearTimeout(timer);
  }
}

describe('closing ends the waits for a broker', () => {
  it('AmqpConnection.waitConnected under way rejects at close()', async () => {
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: await deadPort() }], initialReconnectDelayMs: 50, maxReconnectDelayMs: 100 });
    connection.on('error', () => undefined);
    const waiting = connection.waitConnected(120_000);
    const settled = settledWithin(waiting, 10_000);
    await connection.close();
    expect(await settled).toBe('rejected: AmqpConnection is closed');
  });

  it("RetryingDurableSender.close() ends a send's wait for the reconnect with 'closed'", async () => {
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: await deadPort() }], initialReconnectDelayMs: 50, maxReconnectDelayMs: 100 });
    connection.on('error', () => undefined);
    let retried!: () => void;
    const inWait = new Promise<void>((resolve) => (retried = resolve));
    // The first attempt times out (never connected); the send then waits for the reconnect, up to retryForMs.
    const sender = new RetryingDurableSender(connection, { sendTimeoutMs: 50, retryForMs: 120_000, onRetry: () => retried() });
    const sending = sender.sendRaw('rv.replay', { body: '{}' });
    await inWait;
    await sender.close();
    expect(await settledWithin(sending, 10_000)).toBe('rejected: closed');
    await connection.close();
  });
});
