import { randomUUID } from 'node:crypto';
import type { EventContext, Message, Sender } from 'rhea';
import { endLink, type AmqpConnection } from '../amqp/connection';

/**
 * How many messages are on the dead letter queue, as the broker the hub is connected to counts them: ActiveMQ's
 * statistics plugin (<statisticsBrokerPlugin/>, rendered by scripts/activemq/broker.sh and scripts/cluster/cluster.sh).
 *
 * One reading: a dynamic receiver (ActiveMQ makes it a temporary queue) for the replies, and one non-durable request
 * with a 10 s TTL to `ActiveMQ.Statistics.Destination.<queue>` whose reply-to is that temporary queue. The plugin
 * answers with one map per destination of that name (its `size` is the queue's own message count: no browse, the
 * same cost at 10 or 100,000 dead letters), then, as asked by the `...List.End.With.Null` property, an empty map. A
 * dead letter queue the broker does not have yet is the empty map alone: 0.
 *
 * A broker without the plugin takes the request as a message for an ordinary queue of that name and never answers:
 * the reading ends after `timeoutMs` as `no_answer` (the request expires there by its TTL, non-persistent, so the
 * broker drops it rather than dead-lettering it). A hub account the broker refuses the request to is `refused`.
 */
export const STATISTICS_DESTINATION_PREFIX = 'ActiveMQ.Statistics.Destination.';
export const STATISTICS_END_WITH_NULL = 'ActiveMQ.Statistics.Destination.List.End.With.Null';

/** Why no depth could be read: a fixed word each (logged, and the reason `rts_dead_letters` is absent). */
export type DepthUnknownReason = 'not_connected' | 'no_answer' | 'refused' | 'unexpected_reply' | 'connection_lost';

export class DepthUnknownError extends Error {
  constructor(
    readonly reason: DepthUnknownReason,
    detail: string,
  ) {
    super(detail);
    this.name = 'DepthUnknownError';
  }
}

/** One statistics reply, parsed: the depth of `queue`, the end of the list, or something else. */
export type StatisticsReply = { kind: 'size'; size: number } | { kind: 'end' } | { kind: 'other' };

/** Pure: what a reply of the statistics plugin says about `queue` (its body an AMQP map, as ActiveMQ sends a JMS MapMessage). */
export function parseStatisticsReply(message: Pick<Message, 'body'>, queue: string): StatisticsReply {
  const body = message.body as unknown;
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) return { kind: 'other' };
  const map = body as Record<string, unknown>;
  if (Object.keys(map).length === 0) return { kind: 'end' };
  if (map.destinationName !== `queue://${queue}`) return { kind: 'other' };
  const size = typeof map.size === 'bigint' ? Number(map.size) : map.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return { kind: 'other' };
  return { kind: 'size', size };
}

export type DeadLetterDepthReaderOptions = Readonly<{ queue: string; timeoutMs?: number }>;

/** Reads the depth once per call (see above); rejects with a DepthUnknownError. */
export class AmqpDeadLetterDepthReader {
  private readonly timeoutMs: number;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: DeadLetterDepthReaderOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  read(): Promise<number> {
    if (!this.connection.isConnected()) return Promise.reject(new DepthUnknownError('not_connected', 'the hub is not connected to the message broker'));
    const queue = this.options.queue;
    const correlationId = randomUUID();
    return new Promise<number>((resolve, reject) => {
      let sender: Sender | undefined;
      let size = 0;
      let sized = false;
      let done = false;
      const end = (outcome: { size: number } | { error: DepthUnknownError }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.connection.off('disconnected', onLost);
        const connected = this.connection.isConnected();
        if (sender) endLink(sender, connected);
        endLink(receiver, connected, session);
        if ('error' in outcome) reject(outcome.error);
        else resolve(outcome.size);
      };
      const onLost = () => end({ error: new DepthUnknownError('connection_lost', 'the connection to the message broker was lost during the reading') });
      // A broker that sent the queue's figure but no end of the list (an older plugin without the end-of-list property).
      const timer = setTimeout(
        () =>
          end(sized ? { size } : { error: new DepthUnknownError('no_answer', `the broker did not answer the statistics request within ${this.timeoutMs} ms (is its statisticsBrokerPlugin enabled?)`) }),
        this.timeoutMs,
      );
      this.connection.once('disconnected', onLost);
      const refused = (what: string) => (context: EventContext) => {
        const e = (context.receiver ?? context.sender)?.error as { condition?: string; description?: string } | undefined;
        end({ error: new DepthUnknownError('refused', `the broker refused the statistics ${what}: ${[e?.condition, e?.description].filter(Boolean).join(': ') || 'no reason given'}`) });
      };
      // On a session of its own, ended with the reading (as the dead letter browse does): nothing of a reading stays
      // on the session the uplink consumer and the senders share, whatever the broker does to its links.
      const session = this.connection.raw.create_session();
      session.begin();
      const receiver = session.open_receiver({ source: { dynamic: true } as never, autoaccept: true, credit_window: 10 });
      receiver.on('receiver_error', refused('reply queue'));
      receiver.on('message', (context: EventContext) => {
        const message = context.message;
        if (!message || (message.correlation_id !== undefined && message.correlation_id !== correlationId)) return;
        const reply = parseStatisticsReply(message, queue);
        if (reply.kind === 'size') {
          size = reply.size;
          sized = true;
        } else if (reply.kind === 'end') end({ size });
        else end({ error: new DepthUnknownError('unexpected_reply', 'the statistics reply was not a map with the dead letter queue and its size') });
      });
      receiver.once('receiver_open', (context: EventContext) => {
        const replyTo = context.receiver?.source?.address;
        if (typeof replyTo !== 'string' || replyTo.length === 0) {
          end({ error: new DepthUnknownError('refused', 'the broker gave the reply queue no address') });
          return;
        }
        sender = session.open_sender({ target: { address: `${STATISTICS_DESTINATION_PREFIX}${queue}` }, autosettle: true });
        sender.on('sender_error', refused('request'));
        sender.on('rejected', () => end({ error: new DepthUnknownError('refused', 'the broker rejected the statistics request') }));
        sender.once('sendable', () => {
          if (done) return;
          sender!.send({
            body: '',
            durable: false,
            ttl: Math.max(this.timeoutMs, 10_000),
            reply_to: replyTo,
            correlation_id: correlationId,
            application_properties: { [STATISTICS_END_WITH_NULL]: true },
          });
        });
      });
    });
  }
}

/** What the monitor shows: a depth read from the broker now connected, or none (and why). */
export type DepthSample = Readonly<{ depth: number; at: number }> | Readonly<{ depth: null; reason: DepthUnknownReason }>;

export type DeadLetterDepthMonitorDependencies = Readonly<{
  read: () => Promise<number>;
  /** The hub's connection: a reading runs only while connected; a lost connection drops the depth at once. */
  connection: Readonly<{
    isConnected(): boolean;
    on(event: 'connected' | 'disconnected', listener: () => void): unknown;
    off(event: 'connected' | 'disconnected', listener: () => void): unknown;
  }>;
  everyMs: number;
  onSample: (sample: DepthSample) => void;
  logger?: Readonly<{ warn(obj: object, msg: string): void; info(obj: object, msg: string): void }>;
  queue: string;
  now?: () => number;
}>;

/**
 * Reads the dead letter queue's depth every `everyMs` while connected, and at once on every (re)connection, so that
 * after a failover the figure is the new broker's. A reading that fails, or a connection lost (a reading begun on it
 * included), makes the depth unknown (`onSample` with depth null): never the old broker's figure, never a stale one.
 * A broker that cannot answer (no statistics plugin, the request refused) is one warning, and one info line once
 * it answers again; a lost connection logs nothing here (the connection logs its own).
 */
export class DeadLetterDepthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private reading: Promise<DepthSample> | null = null;
  private readingGeneration = 0;
  /** Bumped on every lost connection: a reading begun before it is not shown. */
  private generation = 0;
  private warned: DepthUnknownReason | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: DeadLetterDepthMonitorDependencies) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.deps.connection.on('connected', this.onConnected);
    this.deps.connection.on('disconnected', this.onDisconnected);
    this.deps.onSample({ depth: null, reason: 'not_connected' });
    void this.tick();
  }

  /**
   * Stops reading. A reading under way is not waited for (one a broker does not answer takes its 5 s timeout; a hub
   * that stops closes the connection, which ends it at once) and shows nothing when it ends.
   */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.deps.connection.off('connected', this.onConnected);
    this.deps.connection.off('disconnected', this.onDisconnected);
  }

  /** One reading now (or the one under way on this connection: one begun on a lost one is followed by a new one). */
  readNow(): Promise<DepthSample> {
    if (this.reading && this.readingGeneration === this.generation) return this.reading;
    const previous = this.reading;
    this.readingGeneration = this.generation;
    const reading: Promise<DepthSample> = (previous ? previous.catch(() => undefined).then(() => this.readOnce()) : this.readOnce()).finally(() => {
      if (this.reading === reading) this.reading = null;
    });
    this.reading = reading;
    return reading;
  }

  private readonly onConnected = (): void => {
    clearTimeout(this.timer);
    void this.tick();
  };

  private readonly onDisconnected = (): void => {
    this.generation++;
    this.deps.onSample({ depth: null, reason: 'not_connected' });
  };

  private async tick(): Promise<void> {
    if (!this.running) return;
    if (this.deps.connection.isConnected()) await this.readNow();
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), this.deps.everyMs);
    this.timer.unref?.();
  }

  private async readOnce(): Promise<DepthSample> {
    const generation = this.generation;
    let sample: DepthSample;
    let detail = '';
    try {
      sample = { depth: await this.deps.read(), at: this.now() };
    } catch (error) {
      sample = { depth: null, reason: error instanceof DepthUnknownError ? error.reason : 'unexpected_reply' };
      detail = (error as Error).message;
    }
    if (!this.running) return sample;
    // Begun on a connection lost since: whatever it says is the old broker's.
    if (generation !== this.generation) sample = { depth: null, reason: 'connection_lost' };
    if (sample.depth !== null && this.warned !== null) {
      this.warned = null;
      this.deps.logger?.info({ queue: this.deps.queue }, 'the depth of the dead letter queue is read from the broker again');
    } else if (sample.depth === null && sample.reason !== 'not_connected' && sample.reason !== 'connection_lost' && this.warned !== sample.reason) {
      this.warned = sample.reason;
      this.deps.logger?.warn(
        { queue: this.deps.queue, reason: sample.reason, err: detail },
        'the depth of the dead letter queue cannot be read from the broker: rts_dead_letters is not reported (README: "The depth of the dead letter queue")',
      );
    }
    this.deps.onSample(sample);
    return sample;
  }
}
