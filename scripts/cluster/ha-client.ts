// A producer and a consumer that find the brokers by multicast discovery and fail over across them; run INSIDE
// the cluster's network namespace (multicast only exists there):
//
//   ip netns exec rts-ha node -r ./test/support/ts-register.js scripts/cluster/ha-client.ts '{"group":"default"}'
//
// stdout: one JSON object per line ({ev: ready|discovery|failover|rebalance|status|report|error, t, ...}).
// stdin: one command per line: `status`, `rebalance on|off` (move the producer to brokers that join),
// `stop` (stop producing, wait until every accepted message was received, print the report, exit).
// The consumer dedupes on our message id (application property `messageId`): a message received again counts
// as a duplicate delivery (a duplicate in effect without the dedupe), never as a second effect.
import { createInterface } from 'node:readline';
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { MulticastDiscovery } from '../../src/adapters/amqp/discovery';
import { endpointKey } from '../../src/adapters/amqp/endpoint-set';
import { RetryingSender, instrumentConnection, rebalanceOnAdded } from '../../src/adapters/amqp/failover';
import { QueueConsumer } from '../../src/adapters/amqp/queue-consumer';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';

interface Config {
  group: string;
  address: string;
  port: number;
  queue: string;
  /** Messages per second (default 100). */
  rate: number;
  /** Unaccepted sends at once (default 20). */
  window: number;
  /** Brokers to see before starting (default 2). */
  minBrokers: number;
  /** Give up draining after this many ms (default 60000). */
  drainTimeoutMs: number;
  /** Hard stop of the whole run, ms (default 15 min). */
  maxRunMs: number;
}

const config: Config = {
  group: 'default',
  address: '239.255.2.3',
  port: 6155,
  queue: 'rts.ha.test',
  rate: 100,
  window: 20,
  minBrokers: 2,
  drainTimeoutMs: 60000,
  maxRunMs: 15 * 60 * 1000,
  ...(JSON.parse(process.argv[2] ?? '{}') as Partial<Config>),
};

const out = (ev: string, fields: object = {}) => process.stdout.write(`${JSON.stringify({ ev, t: Date.now(), ...fields })}\n`);
const logger = {
  info: (fields: object) => out('log', fields),
  warn: (fields: object) => out('log', fields),
  error: (fields: object) => out('log', fields),
};

async function main(): Promise<void> {
  const hardStop = setTimeout(() => {
    out('error', { message: `maxRunMs ${config.maxRunMs} exceeded` });
    process.exit(3);
  }, config.maxRunMs);
  hardStop.unref();

  const metrics = new MetricsRegistry();
  const discovery = new MulticastDiscovery({
    address: config.address,
    port: config.port,
    group: config.group,
    interfaceAddress: '127.0.0.1',
  });
  discovery.on('added', (c) => out('discovery', { kind: 'added', endpoint: endpointKey(c.endpoint), reason: c.reason }));
  discovery.on('removed', (c) => out('discovery', { kind: 'removed', endpoint: endpointKey(c.endpoint), reason: c.reason }));
  await discovery.start();
  await discovery.waitFor((e) => e.length >= config.minBrokers, 60000);

  const open = (role: string) => {
    const connection = AmqpConnection.open({
      endpointProvider: discovery,
      containerId: `ha-${role}-${process.pid}`,
      initialReconnectDelayMs: 50,
      maxReconnectDelayMs: 1000,
      idleTimeoutMs: 4000,
    });
    const monitor = instrumentConnection(connection, { role, metrics, logger });
    connection.on('connected', (e) => out('connected', { role, endpoint: endpointKey(e.endpoint), count: e.connectionCount }));
    return { connection, monitor };
  };
  const producer = open('producer');
  const consumerConn = open('consumer');
  await Promise.all([producer.connection.waitConnected(30000), consumerConn.connection.waitConnected(30000)]);

  const received = new Set<string>();
  let duplicates = 0;
  let stale = 0;
  const consumer = new QueueConsumer(consumerConn.connection, {
    queue: config.queue,
    deadLetterQueue: `${config.queue}.dlq`,
    prefetch: 50,
    handler: async (message) => {
      const id = String(message.applicationProperties.messageId ?? message.messageId);
      if (received.has(id)) duplicates += 1;
      else received.add(id);
      return 'accept';
    },
    onOutcome: (e) => {
      if (e.kind === 'stale') stale += 1;
    },
  });
  await consumer.start(30000);

  const sender = new RetryingSender(producer.connection, { retryForMs: 120000 });
  const accepted = new Set<string>();
  /** The broker each message was accepted by (the producer's endpoint when its outcome came): where a lost one waits. */
  const acceptedOn = new Map<string, string>();
  let retries = 0;
  let failed = 0;
  let lastAcceptAt = Date.now();
  const gaps: Array<{ at: number; ms: number }> = [];
  let seq = 0;
  let producing = true;
  let inFlight = 0;
  let stopRebalance: (() => void) | undefined;

  const pump = async () => {
    const interval = 1000 / config.rate;
    let next = Date.now();
    while (producing) {
      if (inFlight >= config.window) {
        await sleep(5);
        continue;
      }
      const id = `ha-${process.pid}-${++seq}`;
      inFlight += 1;
      const started = Date.now();
      void sender
        .send(config.queue, { body: JSON.stringify({ seq, id }), messageId: id, applicationProperties: { messageId: id } })
        .then((attempts) => {
          accepted.add(id);
          const on = producer.connection.endpoint();
          acceptedOn.set(id, on ? endpointKey(on) : '?');
          if (attempts > 1) retries += attempts - 1;
          const now = Date.now();
          const gap = now - lastAcceptAt;
          if (gap >= 300) gaps.push({ at: now, ms: gap });
          if (now > lastAcceptAt) lastAcceptAt = now;
          void started;
        })
        .catch((error: unknown) => {
          failed += 1;
          out('error', { message: `send ${id} failed: ${error instanceof Error ? error.message : String(error)}` });
        })
        .finally(() => {
          inFlight -= 1;
        });
      next += interval;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else if (wait < -1000) next = Date.now();
    }
  };
  const pumping = pump();

  const status = () => ({
    producer: producer.connection.endpoint() ? endpointKey(producer.connection.endpoint()!) : undefined,
    producerConnected: producer.connection.isConnected(),
    consumer: consumerConn.connection.endpoint() ? endpointKey(consumerConn.connection.endpoint()!) : undefined,
    consumerConnected: consumerConn.connection.isConnected(),
    live: discovery.current().map(endpointKey),
    sent: seq,
    accepted: accepted.size,
    received: received.size,
    duplicates,
    inFlight,
  });
  out('ready', status());

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'status') out('status', status());
    else if (cmd === 'rebalance on') {
      stopRebalance ??= rebalanceOnAdded(producer.connection, discovery, {
        probability: () => 1,
        maxDelayMs: 200,
        role: 'producer',
        logger: { info: (f) => out('rebalance', f) },
      });
      out('status', status());
    } else if (cmd === 'rebalance off') {
      stopRebalance?.();
      stopRebalance = undefined;
    } else if (cmd === 'stop') break;
  }

  producing = false;
  await pumping;
  stopRebalance?.();
  const drainDeadline = Date.now() + config.drainTimeoutMs;
  while ((inFlight > 0 || [...accepted].some((id) => !received.has(id))) && Date.now() < drainDeadline) await sleep(100);
  const lost = [...accepted].filter((id) => !received.has(id));
  const unexpected = [...received].filter((id) => !accepted.has(id));
  out('report', {
    ...status(),
    lost: lost.length,
    lostSample: lost.slice(0, 10),
    // By the broker that accepted them: a message accepted by a node that then stopped waits in its store.
    lostOn: lost.reduce<Record<string, number>>((by, id) => {
      const on = acceptedOn.get(id) ?? '?';
      by[on] = (by[on] ?? 0) + 1;
      return by;
    }, {}),
    // Received but the producer never saw `accepted` (stored, then the outcome was lost with the connection,
    // and the resend also failed): not a loss.
    receivedUnconfirmed: unexpected.length,
    failedSends: failed,
    retries,
    staleSettlements: stale,
    gaps,
    failovers: { producer: producer.monitor.failovers, consumer: consumerConn.monitor.failovers },
    metrics: metrics.render(),
  });
  await consumer.stop(5000).catch(() => undefined);
  await sender.close();
  await Promise.all([producer.connection.close(3000), consumerConn.connection.close(3000)]);
  await discovery.stop();
  process.exit(0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

main().catch((error: unknown) => {
  out('error', { message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(2);
});
