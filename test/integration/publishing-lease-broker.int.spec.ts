import { randomBytes } from 'node:crypto';
import { PostgresPublishingLease } from '../../src/adapters/event-store/postgres/publishing-lease';
import { BrokerGatedLease } from '../../src/application/broker-gated-lease';

/**
 * The downlink publishing lease goes only to a hub process with a broker connection (BrokerGatedLease around the
 * real PostgresPublishingLease: a session advisory lock). A review started one hub whose discovery group matched no
 * broker: it took the lease, and the downlink of the whole deployment stalled while a connected hub stood by.
 * Real PostgreSQL; the lock is keyed by a fresh schema name, so no other test's lease competes.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_gated_${process.pid}_${randomBytes(4).toString('hex')}`;

jest.setTimeout(60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(25);
  }
};

/** A hub process's lease: its broker connection as a flag, and what its gate was told. */
const hub = (graceMs: number) => {
  let connected = false;
  const told: string[] = [];
  const lease = new BrokerGatedLease(new PostgresPublishingLease({ connection: { connectionString }, schema, retryMs: 100, heartbeatMs: 300 }), { connected: () => connected, graceMs });
  lease.start({ acquired: (how) => told.push(`acquired ${how}`), lost: (reason) => told.push(`lost: ${reason}`), standby: () => told.push('standby') });
  return {
    lease,
    told,
    broker(up: boolean) {
      connected = up;
      lease.brokerChanged();
    },
  };
};

let a: ReturnType<typeof hub> | undefined;
let b: ReturnType<typeof hub> | undefined;
afterEach(async () => {
  await a?.lease.stop();
  await b?.lease.stop();
});

it('a hub without a broker never takes the lease; a connected one does; a short loss keeps it, a long one gives it up', async () => {
  a = hub(400);
  b = hub(400);
  // a: no broker at all. b connects: b publishes, a does not even compete.
  b.broker(true);
  await until('b holds the lease', () => b!.lease.held());
  await sleep(500);
  expect({ a: a.told, aHeld: a.lease.held(), b: b.told }).toEqual({ a: [], aHeld: false, b: ['acquired first'] });

  // A failover's few seconds (here shorter than the grace): b keeps it, nothing said.
  b.broker(false);
  await sleep(150);
  b.broker(true);
  await sleep(600);
  expect({ held: b.lease.held(), told: b.told }).toEqual({ held: true, told: ['acquired first'] });

  // a connects: it competes, and stands by while b holds the lease.
  a.broker(true);
  await until('a stands by', () => a!.told.includes('standby'));
  expect(a.lease.held()).toBe(false);

  // b loses its broker for longer than the grace: it gives the lease up (its gate told, to stop its publishers),
  // and a, connected, takes over.
  b.broker(false);
  await until('b gave the lease up', () => b!.told.length === 2);
  expect(b.told[1]).toBe('lost: no broker connection for 0 s: another hub process that has one publishes');
  expect(b.lease.held()).toBe(false);
  await until('a took over', () => a!.lease.held());
  expect(a.told).toEqual(['standby', 'acquired takeover']);

  // b connected again competes again, and stands by.
  b.broker(true);
  await until('b stands by again', () => b!.told.length === 3);
  expect(b.told[2]).toBe('standby');
  expect({ a: a.lease.held(), b: b.lease.held() }).toEqual({ a: true, b: false });
});

it('gives the lease back by stop() whatever the broker, and the other connected hub takes it', async () => {
  a = hub(60_000);
  b = hub(60_000);
  a.broker(true);
  await until('a holds the lease', () => a!.lease.held());
  b.broker(true);
  await until('b stands by', () => b!.told.includes('standby'));
  a.broker(false); // within the grace: still a's
  await a.lease.stop();
  await until('b took over', () => b!.lease.held());
  expect(b.told).toEqual(['standby', 'acquired takeover']);
  // Nothing told a after stop(): the port's rule (stop() calls no `lost`).
  expect(a.told).toEqual(['acquired first']);
});
