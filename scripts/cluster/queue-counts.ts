// Counts the messages on some queues of the brokers at the given ports, by browsing them; run inside the cluster's
// network namespace. The HA hub test prints it when registrations went missing, to tell a message left on a broker
// (a store no live node serves, a bridge that did not forward) from one that is gone.
//
//   ip netns exec rts-ha node -r ./test/support/ts-register.js scripts/cluster/queue-counts.ts \
//     '{"ports":[5701,5702],"queues":["rts.uplink","rts.dlq"]}'
//
// stdout: one JSON line, [{ port, up, counts: { queue: n | "error: ..." } }]; a port nobody answers on (a slave, a
// node stopped) is `up: false`.
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { DurableSender } from '../../src/adapters/amqp/durable-sender';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';

const { ports, queues } = JSON.parse(process.argv[2] ?? '{}') as { ports: number[]; queues: string[] };

const countsOn = async (port: number) => {
  const connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port }], reconnect: false });
  try {
    await connection.waitConnected(3000);
  } catch {
    await connection.close().catch(() => undefined);
    return { port, up: false };
  }
  const sender = new DurableSender(connection);
  const counts: Record<string, number | string> = {};
  for (const queue of queues) {
    try {
      // A browse (a copy of each message): nothing is taken off the queue.
      counts[queue] = (await new AmqpDeadLetterQueue(connection, sender, { queue, timeoutMs: 10_000 }).browse(50_000)).length;
    } catch (error) {
      counts[queue] = `error: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  await sender.close();
  await connection.close();
  return { port, up: true, counts };
};

void (async () => {
  const out = [];
  for (const port of ports) out.push(await countsOn(port));
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
})().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
