// At-least-once sending of durable messages to queues.
//
// A send resolves only when the broker settles the transfer as `accepted` (ActiveMQ does so after the message is
// in its persistent store). It rejects on `rejected`, `released` or `modified`, on a link or connection loss while
// the transfer is unsettled (rhea forgets such deliveries on reconnect: no outcome would ever arrive), and on
// timeout. A rejected send may or may not have reached the queue: the caller retries and receivers dedupe on our
// own message id (application-properties), never on the AMQP message-id, which ActiveMQ may replace.
//
// Credit is respected: while the link has no credit (not attached yet, reconnecting, broker flow control)
// sends wait in a FIFO queue and go out on the next `sendable`.
import type { Delivery, EventContext, Message, Sender, Session } from 'rhea';
import { endLink, type AmqpConnection } from './connection';
import { withAmqpInts } from './typed-properties';

export type ApplicationPropertyValue = string | number | boolean | null;

export interface OutgoingMessage {
  /** The AMQP value section: a string holding JSON. */
  body: string;
  applicationProperties?: Record<string, ApplicationPropertyValue>;
  messageId?: string;
  correlationId?: string;
  subject?: string;
  /**
   * AMQP group-id. ActiveMQ hands every message of one group to the same consumer while it lives (message groups,
   * JMSXGroupID): with competing consumers, the messages of a group are still handled by one, in queue order.
   */
  groupId?: string;
}

export interface DurableSenderOptions {
  /** Reject a send not settled within this many ms, counted from the call (default 30000). */
  sendTimeoutMs?: number;
}

/** Per send: a caller resending under its own deadline passes the time left of it. */
export interface SendOptions {
  /** Reject this send when not settled within this many ms of the call, instead of the sender's sendTimeoutMs. */
  timeoutMs?: number;
}

export type SendFailureReason = 'rejected' | 'released' | 'modified' | 'disconnected' | 'link-closed' | 'timeout' | 'closed';

export class SendError extends Error {
  override readonly name = 'SendError';
  constructor(
    readonly reason: SendFailureReason,
    readonly queue: string,
    detail?: string,
  ) {
    super(`send to ${queue} failed: ${reason}${detail ? ` (${detail})` : ''}`);
  }
  /** Whether sending the same message again may succeed (everything but a broker `rejected`). */
  get retryable(): boolean {
    return this.reason !== 'rejected' && this.reason !== 'closed';
  }
}

interface Pending {
  message: Message;
  resolve: () => void;
  reject: (error: SendError) => void;
  timer: NodeJS.Timeout;
  delivery?: Delivery;
}

class QueueLink {
  readonly waiting: Pending[] = [];
  readonly inFlight = new Map<Delivery, Pending>();
  readonly sender: Sender;

  constructor(
    private readonly connection: AmqpConnection,
    readonly queue: string,
    private readonly onClosed: (link: QueueLink) => void,
  ) {
    this.sender = connection.openSender({
      target: { address: queue },
      // Unsettled sends (snd_settle_mode 0 = mixed, we never pre-settle): the broker tells us the outcome.
      snd_settle_mode: 0,
      autosettle: true,
    });
    this.sender.on('sendable', () => this.flush());
    this.sender.on('sender_open', () => this.flush());
    this.sender.on('accepted', (context: EventContext) => this.settle(context, undefined));
    this.sender.on('rejected', (context: EventContext) => this.settle(context, 'rejected'));
    this.sender.on('released', (context: EventContext) => this.settle(context, 'released'));
    this.sender.on('modified', (context: EventContext) => this.settle(context, 'modified'));
    this.sender.on('sender_error', (context: EventContext) => {
      const detail = describe(context.sender?.error);
      this.failAll('link-closed', detail);
      this.onClosed(this);
    });
    this.sender.on('sender_close', () => {
      this.failAll('link-closed');
      this.onClosed(this);
    });
  }

  enqueue(pending: Pending): void {
    this.waiting.push(pending);
    this.flush();
  }

  flush(): void {
    while (this.waiting.length > 0 && this.connection.isConnected() && this.sender.sendable()) {
      const pending = this.waiting.shift()!;
      const delivery = this.sender.send(pending.message);
      pending.delivery = delivery;
      this.inFlight.set(delivery, pending);
    }
  }

  /** Sent but unsettled transfers are lost on reconnect: fail them so the caller can resend. */
  onDisconnected(): void {
    for (const [delivery, pending] of this.inFlight) {
      this.inFlight.delete(delivery);
      clearTimeout(pending.timer);
      pending.reject(new SendError('disconnected', this.queue));
    }
  }

  failAll(reason: SendFailureReason, detail?: string): void {
    this.onDisconnected();
    for (const pending of this.waiting.splice(0)) {
      clearTimeout(pending.timer);
      pending.reject(new SendError(reason, this.queue, detail));
    }
    for (const [delivery, pending] of this.inFlight) {
      this.inFlight.delete(delivery);
      clearTimeout(pending.timer);
      pending.reject(new SendError(reason, this.queue, detail));
    }
  }

  timeout(pending: Pending): void {
    const index = this.waiting.indexOf(pending);
    if (index >= 0) this.waiting.splice(index, 1);
    if (pending.delivery) this.inFlight.delete(pending.delivery);
    pending.reject(new SendError('timeout', this.queue));
  }

  private settle(context: EventContext, failure: SendFailureReason | undefined): void {
    const delivery = context.delivery;
    if (!delivery) return;
    const pending = this.inFlight.get(delivery);
    if (!pending) return;
    this.inFlight.delete(delivery);
    clearTimeout(pending.timer);
    if (failure === undefined) pending.resolve();
    else pending.reject(new SendError(failure, this.queue, describe((delivery.remote_state as { error?: unknown } | undefined)?.error)));
  }
}

export class DurableSender {
  private readonly links = new Map<string, QueueLink>();
  private readonly sendTimeoutMs: number;
  private closed = false;
  private readonly onDisconnected = () => {
    for (const link of this.links.values()) link.onDisconnected();
  };
  /** The broker ended a session (rhea tells its links nothing): its links' sends fail, the next send opens a new link. */
  private readonly onSessionEnded = (session: Session, error: Error | undefined) => {
    for (const link of [...this.links.values()]) {
      if (link.sender.session !== session) continue;
      this.links.delete(link.queue);
      link.failAll('link-closed', `the broker ended its session${error ? ` (${error.message})` : ''}`);
    }
  };

  constructor(
    private readonly connection: AmqpConnection,
    options: DurableSenderOptions = {},
  ) {
    this.sendTimeoutMs = options.sendTimeoutMs ?? 30000;
    connection.on('disconnected', this.onDisconnected);
    connection.on('sessionEnded', this.onSessionEnded);
  }

  /** Sends one durable message to `queue`; resolves when the broker accepted it. */
  send(queue: string, message: OutgoingMessage, options: SendOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new SendError('closed', queue));
    const amqp: Message = { body: message.body, durable: true };
    // Integers as AMQP int, not rhea's uint: Java JMS can read and copy those (typed-properties.ts).
    if (message.applicationProperties) amqp.application_properties = withAmqpInts(message.applicationProperties);
    if (message.messageId !== undefined) amqp.message_id = message.messageId;
    if (message.correlationId !== undefined) amqp.correlation_id = message.correlationId;
    if (message.subject !== undefined) amqp.subject = message.subject;
    if (message.groupId !== undefined) amqp.group_id = message.groupId;
    return this.sendRaw(queue, amqp, options);
  }

  /**
   * Sends an already built rhea message (forced durable); used to forward a received message unchanged, e.g.
   * to a dead letter queue.
   */
  sendRaw(queue: string, message: Message, options: SendOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new SendError('closed', queue));
    const link = this.linkFor(queue);
    const timeoutMs = options.timeoutMs ?? this.sendTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        message: { ...message, durable: true },
        resolve,
        reject,
        timer: setTimeout(() => link.timeout(pending), timeoutMs),
      };
      link.enqueue(pending);
    });
  }

  /** Fails pending sends with `closed` and detaches the links (the connection stays open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.connection.off('disconnected', this.onDisconnected);
    this.connection.off('sessionEnded', this.onSessionEnded);
    for (const link of this.links.values()) {
      link.failAll('closed');
      endLink(link.sender, this.connection.isConnected()); // not reattached at a reconnect when closed while down
    }
    this.links.clear();
  }

  private linkFor(queue: string): QueueLink {
    let link = this.links.get(queue);
    if (!link) {
      link = new QueueLink(this.connection, queue, (closed) => {
        if (this.links.get(closed.queue) === closed) this.links.delete(closed.queue);
      });
      this.links.set(queue, link);
    }
    return link;
  }
}

function describe(error: unknown): string | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const { condition, description } = error as { condition?: string; description?: string };
  const text = [condition, description].filter(Boolean).join(': ');
  return text || undefined;
}
