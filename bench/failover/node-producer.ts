// bench/failover.js's producer on our client: multicast discovery (MulticastDiscovery), AmqpConnection failover,
// RetryingSender (durable sends resent with the same id after a failover), a fixed rate. Run inside the cluster's
// namespace. stdout, JSON lines: {ev:'where', t, uri} on every connection, {ev:'gap', from, to, ms} for a time
// between two accepted sends >= 100 ms, {ev:'report', sent, accepted, failed} after "stop" on stdin.
// Args: JSON { group, rate, queue, window }.
import { createInterface } from 'node:readline';
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { MulticastDiscovery } from '../../src/adapters/amqp/discovery';
import { endpointKey } from '../../src/adapters/amqp/endpoint-set';
import { RetryingSender } from '../../src/adapters/amqp/failover';
import { warmUpOnAdded } from '../../src/adapters/amqp/warm-up';

const cfg = { group: 'default', rate: 100, queue: 'rts.bench.failover', window: 20, warmUp: true, ...(JSON.parse(process.argv[2] ?? '{}') as object) } as {
  group: string;
  rate: number;
  queue: string;
  window: number;
  warmUp: boolean;
};
const out = (ev: string, fields: object = {}) => process.stdout.write(`${JSON.stringify({ ev, t: Date.now(), ...fields })}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const discovery = new MulticastDiscovery({ group: cfg.group, interfaceAddress: '127.0.0.1' });
  await discovery.start();
  // As the hub and the SDK do: touch each broker discovery adds (warm-up.ts).
  const stopWarmUp = cfg.warmUp ? warmUpOnAdded(discovery, { onProbe: (e) => out('probe', e) }).stop : () => undefined;
  await discovery.waitFor((e) => e.length >= 2, 60000);
  const connection = AmqpConnection.open({ endpointProvider: discovery, initialReconnectDelayMs: 10, maxReconnectDelayMs: 1000, idleTimeoutMs: 8000 });
  connection.on('connected', (e) => out('where', { uri: `amqp://${endpointKey(e.endpoint)}` }));
  connection.on('disconnected', () => out('interrupted'));
  await connection.waitConnected(30000);
  const sender = new RetryingSender(connection, { retryForMs: 120000 });
  out('ready');
  let running = true;
  void (async () => {
    for await (const line of createInterface({ input: process.stdin })) if (line.trim() === 'stop') break;
    running = false;
  })();
  let sent = 0;
  let accepted = 0;
  let failed = 0;
  let inFlight = 0;
  let last = Date.now();
  let next = Date.now();
  while (running) {
    if (inFlight >= cfg.window) {
      await sleep(2);
      continue;
    }
    const id = `fb-${process.pid}-${++sent}`;
    inFlight += 1;
    sender
      .send(cfg.queue, { body: JSON.stringify({ seq: sent }), messageId: id, applicationProperties: { messageId: id } })
      .then(() => {
        accepted += 1;
        const now = Date.now();
        if (now - last >= 100) out('gap', { from: last, to: now, ms: now - last });
        last = Math.max(last, now);
      })
      .catch(() => (failed += 1))
      .finally(() => (inFlight -= 1));
    next += 1000 / cfg.rate;
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -1000) next = Date.now();
  }
  for (let i = 0; i < 600 && inFlight > 0; i++) await sleep(50);
  out('report', { sent, accepted, failed });
  stopWarmUp();
  await sender.close();
  await connection.close(2000);
  await discovery.stop();
  process.exit(0);
}

main().catch((error: unknown) => {
  out('error', { message: error instanceof Error ? error.message : String(error) });
  process.exit(2);
});
