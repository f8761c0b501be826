// Reads a queue with a bare rhea receiver (no SDK, no adapter), for tests that check what is on the broker.
import { create_container, type EventContext, type Message } from 'rhea';

/**
 * Takes up to `count` messages from `queue` (accepting them) and returns them; stops early after `idleMs`
 * without a message (default 5000) or at `timeoutMs` overall (default 20000).
 */
export function readQueue(broker: { host: string; amqpPort: number }, queue: string, options: { count: number; idleMs?: number; timeoutMs?: number; anonymous?: boolean }): Promise<Message[]> {
  const got: Message[] = [];
  return new Promise((resolve, reject) => {
    const container = create_container({ id: `rts-test-reader-${process.pid}-${Math.random().toString(36).slice(2, 8)}` });
    // `anonymous`: SASL ANONYMOUS (rhea: a user name without a password), for a broker that requires a SASL layer.
    const connection = container.connect({ host: broker.host, port: broker.amqpPort, reconnect: false, idle_time_out: 0, ...(options.anonymous ? { username: 'anonymous' } : {}) });
    let idle: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      clearTimeout(overall);
      connection.once('connection_close', () => resolve(got));
      connection.once('disconnected', () => resolve(got));
      connection.close();
    };
    const overall = setTimeout(finish, options.timeoutMs ?? 20000);
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, options.idleMs ?? 5000);
    };
    connection.on('connection_error', (context: EventContext) => reject(new Error(`reader: ${String(context.error ?? connection.error)}`)));
    connection.on('error', (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))));
    const receiver = connection.open_receiver({ source: { address: queue }, autoaccept: false, credit_window: 0 });
    receiver.on('receiver_open', () => {
      receiver.add_credit(options.count);
      arm();
    });
    receiver.on('message', (context: EventContext) => {
      if (finished) return;
      context.delivery?.accept();
      if (context.message) got.push(context.message);
      if (got.length >= options.count) finish();
      else arm();
    });
  });
}
