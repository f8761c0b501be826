import { createServer, type AddressInfo, type Socket } from 'node:net';
import { AmqpConnection } from '../../src/adapters/amqp/connection';

// A connection closed while an attempt is half done (the TCP connection made, the broker's AMQP open not come yet:
// a reconnect under way, or a broker slow to answer) was cleaned up at once, and rhea then wrote its close on the next
// tick and armed its heartbeat timer again as it did (twice the idle timeout, 32 s by default, not unref'd), on a
// socket already destroyed: a city system's process that closed its client stayed alive that long (the SDK's
// reconnect test left "Timeout x1" behind, 3 runs in 8).
const live = () => {
  const byKind = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  return byKind;
};
const more = (before: Map<string, number>) => [...live()].filter(([kind, n]) => n > (before.get(kind) ?? 0)).map(([kind, n]) => `${kind} x${n - (before.get(kind) ?? 0)}`);
/** What is live beyond `before`, once it is gone or `ms` (a bound, not a measure) has passed. */
async function leftAfter(before: Map<string, number>, ms: number): Promise<string[]> {
  const deadline = performance.now() + ms;
  while (more(before).length > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20).unref());
  return more(before);
}

describe('AmqpConnection.close() during a half-done attempt', () => {
  it('leaves no rhea timer and no socket behind', async () => {
    // A "broker" that takes the TCP connection and never answers the AMQP header.
    const accepted: Socket[] = [];
    let headerSeen!: () => void;
    const header = new Promise<void>((resolve) => (headerSeen = resolve));
    const server = createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => headerSeen());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    const before = live();

    const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port }], initialReconnectDelayMs: 50, maxReconnectDelayMs: 100 });
    connection.on('error', () => undefined);
    // The attempt is half done: rhea's socket is connected (it wrote the protocol header), no AMQP open yet.
    await header;
    expect(connection.isConnected()).toBe(false);
    await connection.close();

    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await leftAfter(before, 2000)).toEqual([]);
  });
});
