// rebalanceOnAdded: moving to a broker that joins, including when the move cannot happen at once (the connection
// is down) or does not get there (the new broker refused and the rotation picked another).
import { EventEmitter } from 'node:events';
import type { AmqpEndpoint } from '../../src/adapters/amqp/connection';
import { FedEndpointProvider } from '../support/fed-endpoint-provider';
import { rebalanceOnAdded } from '../../src/adapters/amqp/failover';

const a = { host: '127.0.0.1', port: 5701 };
const b = { host: '127.0.0.1', port: 5703 };
const c = { host: '127.0.0.1', port: 5705 };

/** A connection whose moves are decided by the test: `land` says where the reconnect ends. */
class FakeConnection extends EventEmitter {
  connected = true;
  current: AmqpEndpoint | undefined = a;
  moves: AmqpEndpoint[] = [];
  moveTo(endpoint: AmqpEndpoint): boolean {
    if (!this.connected || this.current?.port === endpoint.port) return false;
    this.moves.push(endpoint);
    this.connected = false;
    return true;
  }
  endpoint() {
    return this.current;
  }
  isConnected() {
    return this.connected;
  }
  land(endpoint: AmqpEndpoint) {
    this.connected = true;
    this.current = endpoint;
    this.emit('connected', { endpoint, connectionCount: 1 });
  }
  drop() {
    this.connected = false;
  }
}

describe('rebalanceOnAdded', () => {
  let provider: FedEndpointProvider;
  let connection: FakeConnection;
  const logged: Array<Record<string, unknown>> = [];
  const logger = { info: (f: object) => void logged.push(f as Record<string, unknown>), warn: (f: object) => void logged.push(f as Record<string, unknown>) };
  const start = (extra: Parameters<typeof rebalanceOnAdded>[2] = {}) =>
    rebalanceOnAdded(connection as never, provider, { probability: () => 1, random: () => 0.5, maxDelayMs: 1000, retryDelayMs: 2000, logger, role: 'hub', ...extra });

  beforeEach(() => {
    jest.useFakeTimers();
    provider = new FedEndpointProvider();
    provider.live = [a, b];
    connection = new FakeConnection();
    logged.length = 0;
  });
  afterEach(() => jest.useRealTimers());

  it('moves to an added broker after the spread delay, once', () => {
    const stop = start();
    provider.add(c);
    jest.advanceTimersByTime(499);
    expect(connection.moves).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(connection.moves).toEqual([c]);
    connection.land(c);
    jest.advanceTimersByTime(10000);
    expect(connection.moves).toEqual([c]);
    expect(logged).toEqual([{ event: 'amqp.rebalance', role: 'hub', from: '127.0.0.1:5701', to: '127.0.0.1:5705', attempt: 1 }]);
    stop();
  });

  it('a broker added while the connection is down: moves once it is connected again', () => {
    const stop = start();
    connection.drop();
    provider.add(c);
    jest.advanceTimersByTime(5000);
    expect(connection.moves).toEqual([]);
    connection.land(b);
    jest.advanceTimersByTime(500);
    expect(connection.moves).toEqual([c]);
    stop();
  });

  it('a move that lands elsewhere is tried again after retryDelayMs, up to maxAttempts, then given up with a warning', () => {
    const stop = start({ maxAttempts: 2 });
    provider.add(c);
    jest.advanceTimersByTime(500);
    expect(connection.moves).toEqual([c]);
    connection.land(b); // c refused: the rotation went on to b
    jest.advanceTimersByTime(1999);
    expect(connection.moves).toEqual([c]);
    jest.advanceTimersByTime(1);
    expect(connection.moves).toEqual([c, c]);
    connection.land(a);
    jest.advanceTimersByTime(2000);
    expect(connection.moves).toEqual([c, c]);
    expect(logged.at(-1)).toEqual({ event: 'amqp.rebalance.abandoned', role: 'hub', to: '127.0.0.1:5705', attempts: 2 });
    // A later failover does not bring the abandoned target back.
    connection.drop();
    connection.land(b);
    jest.advanceTimersByTime(10000);
    expect(connection.moves).toEqual([c, c]);
    stop();
  });

  it('a target that left the live set is dropped; a later addition replaces the target', () => {
    const stop = start();
    connection.drop();
    provider.add(c);
    provider.remove(c);
    connection.land(b);
    jest.advanceTimersByTime(5000);
    expect(connection.moves).toEqual([]);
    const d = { host: '127.0.0.1', port: 5707 };
    provider.add(c);
    provider.add(d);
    jest.advanceTimersByTime(500);
    expect(connection.moves).toEqual([d]);
    stop();
  });

  it("moves only to a broker that answered its probe (ready): each unanswered probe is a try, without leaving", async () => {
    const asked: AmqpEndpoint[] = [];
    const answers = [false, false, true];
    const stop = start({ ready: async (e) => (asked.push(e), answers.shift()!) });
    provider.add(c);
    await jest.advanceTimersByTimeAsync(500);
    expect(asked).toEqual([c]);
    expect(connection.moves).toEqual([]);
    expect(logged).toEqual([{ event: 'amqp.rebalance.skipped', role: 'hub', to: '127.0.0.1:5705', attempt: 1 }]);
    await jest.advanceTimersByTimeAsync(2000);
    expect(asked).toEqual([c, c]);
    expect(connection.moves).toEqual([]);
    // The third answers: the move is the third and last try.
    await jest.advanceTimersByTimeAsync(2000);
    expect(connection.moves).toEqual([c]);
    expect(logged.at(-1)).toMatchObject({ event: 'amqp.rebalance', to: '127.0.0.1:5705', attempt: 3 });
    connection.land(b);
    await jest.advanceTimersByTimeAsync(2000);
    expect(connection.moves).toEqual([c]);
    expect(logged.at(-1)).toEqual({ event: 'amqp.rebalance.abandoned', role: 'hub', to: '127.0.0.1:5705', attempts: 3 });
    stop();
  });

  it('a broker that never answers is given up after maxAttempts probes, the connection untouched', async () => {
    let probes = 0;
    const stop = start({ ready: async () => (probes++, false) });
    provider.add(c);
    await jest.advanceTimersByTimeAsync(20000);
    expect(probes).toBe(3);
    expect(connection.moves).toEqual([]);
    expect(logged.at(-1)).toEqual({ event: 'amqp.rebalance.abandoned', role: 'hub', to: '127.0.0.1:5705', attempts: 3 });
    stop();
  });

  it('an answer that comes after a later addition replaced the target, or after stop(), moves nowhere', async () => {
    const pending: Array<(ok: boolean) => void> = [];
    const stop = start({ ready: () => new Promise<boolean>((resolve) => pending.push(resolve)) });
    provider.add(c);
    await jest.advanceTimersByTimeAsync(500);
    const d = { host: '127.0.0.1', port: 5707 };
    provider.add(d);
    await jest.advanceTimersByTimeAsync(500);
    pending[0]!(true);
    await jest.advanceTimersByTimeAsync(0);
    expect(connection.moves).toEqual([]);
    stop();
    pending[1]!(true);
    await jest.advanceTimersByTimeAsync(5000);
    expect(connection.moves).toEqual([]);
  });

  it('with probability 0 never moves; stop() cancels a pending move and forgets the connection', () => {
    const never = rebalanceOnAdded(connection as never, provider, { probability: () => 0, random: () => 0.5 });
    provider.add(c);
    jest.advanceTimersByTime(5000);
    expect(connection.moves).toEqual([]);
    never();
    const stop = start();
    provider.remove(c);
    provider.add(c);
    stop();
    jest.advanceTimersByTime(5000);
    expect(connection.moves).toEqual([]);
    expect(connection.listenerCount('connected')).toBe(0);
  });
});
