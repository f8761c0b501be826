import { createServer } from 'node:net';
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { RetryingDurableSender } from '../../src/adapters/amqp/retrying-durable-sender';

// The time tester stepped the hub's wall clock and the rate limiter locked callers out; the same clock measured
// every retry window and shutdown grace. A wall clock stepped forward by an hour ended a send's 2-minute retry
// window at once (and one stepped back stretched it by the step). Durations now run on the monotonic clock.
describe('retry windows and deadlines on the monotonic clock', () => {
  it('a send keeps retrying for its whole window when the wall clock jumps an hour ahead', async () => {
    // A port nobody answers on: every attempt fails, retryably.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as import('node:net').AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port }], initialReconnectDelayMs: 50, maxReconnectDelayMs: 100 });
    connection.on('error', () => undefined);
    const sender = new RetryingDurableSender(connection, { retryForMs: 1_500, sendTimeoutMs: 200, retryDelayMs: 50 });
    const realNow = Date.now.bind(Date);
    const wall = jest.spyOn(Date, 'now');
    let calls = 0;
    // The first reading is the real time; every later one an hour ahead (an NTP step, a VM resumed).
    wall.mockImplementation(() => (calls++ === 0 ? realNow() : realNow() + 3_600_000));
    const started = performance.now();
    try {
      await expect(sender.sendRaw('rts.test.monotonic', { body: 'x' })).rejects.toBeDefined();
      expect(performance.now() - started).toBeGreaterThanOrEqual(1_400);
    } finally {
      wall.mockRestore();
      await sender.close().catch(() => undefined);
      await connection.close();
    }
  });
});
