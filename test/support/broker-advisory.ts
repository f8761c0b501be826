// How many consumers or producers a queue has on the broker, from ActiveMQ's advisory topics: attaching to
// ActiveMQ.Advisory.Consumer.Queue.<queue> (or .Producer.) makes the broker replay one advisory per link it holds
// on that queue, each carrying the count (consumerCount / producerCount). None within `settleMs`: no such link.
import { create_container } from 'rhea';

export async function linksOnQueue(host: string, port: number, kind: 'Consumer' | 'Producer', queue: string, settleMs = 1500): Promise<number> {
  const container = create_container({ id: `advisory-${process.pid}-${Math.random().toString(16).slice(2)}` });
  const connection = container.connect({ host, port, reconnect: false });
  let count = 0;
  const property = kind === 'Consumer' ? 'consumerCount' : 'producerCount';
  const receiver = connection.open_receiver({ source: { address: `topic://ActiveMQ.Advisory.${kind}.Queue.${queue}` } });
  receiver.on('message', (context) => {
    const value = (context.message.application_properties as Record<string, unknown> | undefined)?.[property];
    if (typeof value === 'number') count = value;
  });
  await new Promise<void>((resolve, reject) => {
    connection.once('connection_open', () => resolve());
    connection.once('connection_error', () => reject(new Error('advisory connection refused')));
    connection.once('disconnected', () => reject(new Error('advisory connection lost')));
  });
  await new Promise((r) => setTimeout(r, settleMs));
  connection.close();
  return count;
}
