// Consume one queue with explicit settlement, bounded retries and our own dead-lettering.
//
// - `autoaccept: false` and manual credit: at most `prefetch` messages are unsettled at a time; one credit is
//   given back per settled message, so handlers run concurrently up to `prefetch` and a slow or poison message
//   holds one slot, never the queue.
// - Outcomes of the handler:
//     'accept'               -> accepted (only after the handler resolved, i.e. after the effect is committed)
//     { retry: reason }      -> modified{delivery_failed: true, undeliverable_here: false}: ActiveMQ raises the
//                               redelivery counter (the AMQP header delivery-count) and redelivers
//     { deadLetter: reason } -> copy to the dead letter queue, then accept the original (a `fill` of a dead letter or
//                               retry: properties the copy gains where the message has none of that name; its
//                               `own`: the consumer's own properties, see deadLetterOwn, over the sender's)
//     { later: reason }      -> modified{delivery_failed: false}, uncounted, after a pause growing with the streak
//   A handler that throws (or exceeds handlerTimeoutMs) counts as { retry }.
// - A message whose handler only waits for its turn (`waiting(true)`: others about the same thing go first), or that
//   pauses before it is handed back for a retry (retryDelayMs), holds no credit slot, up to `maxWaiting` such
//   messages together: the consumer gives the broker one more credit for it. It stays unsettled (so a lost
//   connection or a crash brings it back), in memory: at most prefetch + maxWaiting messages are held. Handing
//   it back would not free the slot: ActiveMQ (its AMQP sender, 5.18) sends a released or modified message to the
//   same link again and does not count it as settled for the queue (we saw it: 30 changes of one expert handed
//   back over and over, and a message behind them came only as they were dead-lettered, one per dead letter).
// - Counting is ours (ActiveMQ's redeliveryPolicy does not apply to AMQP consumers): attempt = delivery-count + 1.
//   A retry on attempt >= maxAttempts dead-letters instead; a message arriving with delivery-count >= maxAttempts
//   (e.g. after consumers crashed holding it) is dead-lettered without calling the handler
//   (beforeExhaustedDeadLetter, when given, is asked first: the uplink audits such a consultation message).
// - A connection (or session, or link) lost while messages were held unsettled is not their fault, but ActiveMQ
//   raises their delivery-count all the same, those only prefetched and never handed to a handler included
//   (checked on 5.18.3 and 6.3.1: one more per loss). In a burst of broker failovers a message could so use up its
//   attempts without one failed handling, and be dead-lettered as `max attempts exceeded`. The consumer
//   remembers, per message (a hash of its message-id, user-id, body and properties), how many losses this
//   process saw while it held it, and takes them off the delivery-count, at most MAX_EXCUSED_LOSSES per message: a
//   message whose handling itself ends the connection (a handler that blocks the event loop past the idle timeout)
//   is still dead-lettered in the end. A process that dies holding a message cannot excuse it: a crash counts.
// - The dead letter copy keeps the body unchanged and the properties, and adds application-properties
//   x-dlq-reason, x-dlq-source-queue, x-dlq-attempts, x-dlq-at. The original is accepted only after the broker
//   accepted the copy; if the copy fails the original is handed back (modified, delivery_failed) to try again. A
//   copy the broker took whose accept was lost (a timeout, the connection gone) is so sent twice: what tells the two
//   copies for one are the properties deadLetterOwn chooses from the original (the uplink's rts_dlq_id).
// - Deliveries of a previous connection cannot be settled after a reconnect (rhea drops them; the broker
//   redelivers them): their late handler results are ignored. So are those of a session the broker ended.
// - A broker that ends the receiver's session ends the link, though rhea tells only the session: that is a detach
//   like any other (onDetached), not a consumer that waits for ever.
import { createHash } from 'node:crypto';
import { filter, message as amqpMessage, type Delivery, type EventContext, type Message, type Receiver, type Session } from 'rhea';
import { endLink, type AmqpConnection } from './connection';
import { DurableSender, type ApplicationPropertyValue } from './durable-sender';
import { typedApplicationProperties, withAmqpInts } from './typed-properties';

export interface ReceivedMessage {
  /** The AMQP value string (JSON by our convention). */
  body: string;
  applicationProperties: Readonly<Record<string, unknown>>;
  messageId: string | undefined;
  correlationId: string | undefined;
  subject: string | undefined;
  /** Failed deliveries before this one (AMQP header delivery-count, raised by the broker on each retry). */
  deliveryCount: number;
  /** This attempt's number, 1-based: deliveryCount + 1. */
  attempt: number;
  queue: string;
  /** The rhea message as received, for anything not mapped above. */
  raw: Message;
  /**
   * The handler tells that this message now waits for its turn (true), or no longer does (false): while it waits it
   * holds no credit slot (see `maxWaiting`). Set by QueueConsumer; absent elsewhere.
   */
  waiting?: (yes: boolean) => void;
}

/**
 * What became of a message: accepted; handed back for another attempt (`retry`, counted against maxAttempts);
 * dead-lettered; or `later`: the consumer cannot handle anything now (its store is down), which is no fault of the
 * message, so it is handed back WITHOUT counting an attempt, after a pause that grows while such failures go on
 * (a database outage of a minute dead-lettered every message in flight after 5 quick attempts).
 */
export type HandlerOutcome = 'accept' | ({ retry: string } & DeadLetterFill) | ({ deadLetter: string } & DeadLetterFill) | { later: string };

/**
 * What a handler read of a message that its properties do not show (the uplink: the envelope's id, type and
 * systemId inside a JOSE body sent without their copies): the dead letter copy gains each one the message has no
 * application-property of that name for, so operators find the dead letter by them. Never overrides the sender's.
 */
export type DeadLetterFill = {
  fill?: Readonly<Record<string, string>>;
  /**
   * What the handler read that is the consumer's own to say (the uplink: rts_envelope_id, the id of the envelope it
   * read): set on the dead letter copy over whatever the sender gave, for the names of `deadLetterOwn` only.
   */
  own?: Readonly<Record<string, string>>;
};

export type MessageHandler = (message: ReceivedMessage) => Promise<HandlerOutcome>;

export interface QueueConsumerOptions {
  queue: string;
  deadLetterQueue: string;
  /**
   * A JMS selector on the source (filter `jms-selector`, apache.org:selector-filter:string): the broker hands this
   * consumer only the messages it matches and leaves the others on the queue, untouched (default: none, all).
   */
  selector?: string;
  /** What a dead letter copy names as its x-dlq-source-queue, where a replay sends it (default: `queue`). */
  deadLetterSourceQueue?: string;
  /**
   * Every message is dead-lettered with this reason as it comes, whatever its body or delivery-count (no "max attempts
   * exceeded", no "body is not an AMQP value string"): the handler is not called, and x-dlq-attempts is the broker's
   * delivery-count. A mover: the hub's consumer of what the broker dead-lettered from the uplink queue (all but the
   * cursor duplicates), which only brings those messages where the operators see them (default: none).
   */
  deadLetterAll?: string;
  handler: MessageHandler;
  /** Handler attempts per message before it is dead-lettered (default 5). */
  maxAttempts?: number;
  /** Unsettled messages held at once = concurrent handlers (default 10). */
  prefetch?: number;
  /**
   * Messages that wait for their turn (`ReceivedMessage.waiting`) or pause before a retry's hand-back (retryDelayMs)
   * held beyond `prefetch`, at most (default 0: a waiting message holds its slot). Each is kept in memory, unsettled,
   * until it runs or is handed back.
   */
  maxWaiting?: number;
  /**
   * A handler still running after this many ms counts as a retry; its late result is ignored (default 60000). null:
   * none here, for a handler that times its own work (the uplink's: its messages may wait their turn first).
   */
  handlerTimeoutMs?: number | null;
  /**
   * How long to hold a message that is to be retried before handing it back, by the attempt that failed (default:
   * none). Handed back at once, a message comes again within milliseconds, before whatever it waits for (an
   * expert's registration handled by another hub process, a disk that fills) can change. Cut short by stop().
   */
  retryDelayMs?: (attempt: number) => number;
  /**
   * A message that arrives with its attempts used up (delivery-count >= maxAttempts: the processes that took it died
   * or lost their connection that often before settling it) is dead-lettered without a handler run. This is asked
   * first, with the message as a handler would get it (a string body only): 'dead-letter' goes on; `later` hands it
   * back uncounted, as a handler's `later` is (what had to come first, e.g. storing an audit entry, failed), so it
   * comes again. A rejection counts as `later`.
   */
  beforeExhaustedDeadLetter?: (message: ReceivedMessage, reason: string) => Promise<'dead-letter' | { later: string }>;
  /**
   * Every slot this consumer may hold (prefetch + maxWaiting) is taken by messages that wait for their turn (not by
   * ones that pause before a retry's hand-back: their pauses end by themselves and free their slots): none can run,
   * and no credit is left for anything to come. Called (often, while it
   * lasts) where the credit is computed; the handler's ordering should then stop waiting for messages handed back
   * (the uplink: OrderedByKey.giveUpAwaited), which cannot come again through a credit their waiters hold. Must not throw.
   */
  onSaturated?: () => void;
  /** The pause before a message answered `later` is handed back, by the length of the streak (default: LATER_PAUSE_MS). */
  laterPauseMs?: (streak: number) => number;
  /**
   * The pause before a message whose dead letter copy the broker refused is handed back, by the number of refusals in
   * a row (default: LATER_PAUSE_MS, 1 s doubling to 30 s). ActiveMQ with a full store refuses the copy at once
   * (sendFailIfNoSpace) and sends the original back to the same link at once: without a pause the mover of the
   * broker's dead letters sent ten thousand copies in 3 s. Cut short by stop().
   */
  deadLetterRetryPauseMs?: (streak: number) => number;
  /**
   * The dead letter copy's own properties (the uplink: rts_dlq_id, rts_envelope_id). `names` are the consumer's alone:
   * a sender's property of such a name is not kept on the copy. `of` chooses values from the original delivery as
   * received, so each time the same message comes (after a dead letter copy whose accept was lost, after a restart,
   * on another process) they are the same; a handler's `own` adds what it read. Kept on a copy cut to size.
   */
  deadLetterOwn?: Readonly<{ names: readonly string[]; of: (original: Message) => Readonly<Record<string, string>> }>;
  /** Sender for the dead letter copies (default: one of our own on the same connection). */
  deadLetterSender?: DurableSender;
  /** Clock for x-dlq-at (default: system time). */
  now?: () => Date;
  /** Told about every settlement decision; for logs and metrics. Must not throw. */
  onOutcome?: (event: ConsumerOutcomeEvent) => void;
  /**
   * The broker ended the link after start() had resolved (a re-attach after a reconnect refused, the queue deleted,
   * an administrator's close, the link's session ended): this consumer takes nothing more. Not called for stop().
   * Must not throw.
   */
  onDetached?: (error: Error) => void;
  /** The link was attached (at the start, and again by rhea after each reconnect). Must not throw. */
  onAttached?: () => void;
}

/** What onDetached gets when the broker ended the link's session rather than the link itself. */
export class SessionEndedError extends Error {
  override readonly name = 'SessionEndedError';
}

export type ConsumerOutcomeEvent =
  | { kind: 'accepted'; queue: string; attempt: number; /** The message accepted (for the log line's ids). */ message?: Message }
  | { kind: 'retried'; queue: string; attempt: number; reason: string; /** The message handed back (for the log line's ids). */ message?: Message }
  | { kind: 'deferred'; queue: string; attempt: number; reason: string; pauseMs: number }
  | { kind: 'dead-lettered'; queue: string; attempt: number; reason: string; deadLetterQueue: string; /** The copy as sent (with what the dead letter sender added). */ copy: Message }
  | { kind: 'dead-letter-failed'; queue: string; attempt: number; error: Error }
  | { kind: 'stale'; queue: string; attempt: number };

/** Losses of the connection (or link) excused per message; past them a loss counts as a failed delivery again. */
export const MAX_EXCUSED_LOSSES = 20;
/** Messages whose excused losses are remembered at once (the oldest forgotten first): far more than a prefetch. */
const MAX_EXCUSED_MESSAGES = 10_000;

export const DLQ_REASON = 'x-dlq-reason';
export const DLQ_SOURCE_QUEUE = 'x-dlq-source-queue';
export const DLQ_ATTEMPTS = 'x-dlq-attempts';
export const DLQ_AT = 'x-dlq-at';
/** The properties the consumer adds to a dead letter copy. */
const DLQ_PROPERTIES: ReadonlySet<string> = new Set([DLQ_REASON, DLQ_SOURCE_QUEUE, DLQ_ATTEMPTS, DLQ_AT]);

/** A retry delay for QueueConsumer: `baseMs` after the first failed attempt, doubling, at most `maxMs`. */
export const retryBackoff =
  (baseMs: number, maxMs = 5000) =>
  (attempt: number): number =>
    Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));

/** The pause before a message answered `later` is handed back: 1 s, doubling while the failures go on, at most 30 s. */
export const LATER_PAUSE_MS = { first: 1_000, max: 30_000 } as const;

export class QueueConsumer {
  /** Consecutive `later` outcomes (any accept ends the streak): the pause before the next hand-back grows with it. */
  private laterStreak = 0;
  /** Dead letter copies refused in a row (reset by one the broker takes): the pause before each hand-back grows. */
  private deadLetterFailStreak = 0;
  private readonly queue: string;
  private readonly deadLetterQueue: string;
  private readonly maxAttempts: number;
  private readonly prefetch: number;
  private readonly handlerTimeoutMs: number | null;
  private readonly dlqSender: DurableSender;
  private readonly ownsDlqSender: boolean;
  private readonly now: () => Date;
  private receiver: Receiver | undefined;
  /** Bumped on every (re)attach: deliveries of an older generation can no longer be settled. */
  private generation = 0;
  /** Messages of this generation that wait for their turn, or pause before a retry's hand-back (see maxWaiting). */
  private waiting = 0;
  /**
   * Of those, the ones that pause before a retry's hand-back: their pause ends by itself and frees the slot, so they
   * are no saturation (onSaturated). Counted as such, a flood of changes of many unknown experts (one lane each, all
   * pausing) had the uplink give up every lane's awaited places, and another system's change ran before the failed
   * one ahead of it: the older profile won.
   */
  private pausing = 0;
  private readonly maxWaiting: number;
  private readonly running = new Set<Promise<void>>();
  /**
   * The messages of this generation not settled yet: their count is what they hold of the credit, and they are
   * excused when the connection or link goes with them.
   */
  private readonly held = new Map<Delivery, Message>();
  /** Per message key: losses this process saw while it held the message (see the header). */
  private readonly excusedLosses = new Map<string, number>();
  private stopping = false;
  private openWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: QueueConsumerOptions,
  ) {
    this.queue = options.queue;
    this.deadLetterQueue = options.deadLetterQueue;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.prefetch = Math.max(1, options.prefetch ?? 10);
    this.maxWaiting = Math.max(0, options.maxWaiting ?? 0);
    this.handlerTimeoutMs = options.handlerTimeoutMs === undefined ? 60000 : options.handlerTimeoutMs;
    this.ownsDlqSender = options.deadLetterSender === undefined;
    this.dlqSender = options.deadLetterSender ?? new DurableSender(connection);
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Attaches the receiver; resolves when the broker confirmed the link. With `timeoutMs` null it waits as long as
   * the connection takes (the receiver attaches whenever the broker first answers); otherwise it rejects after
   * that long, and the receiver still attaches if the broker answers later.
   */
  start(timeoutMs: number | null = 30000): Promise<void> {
    if (this.receiver) throw new Error(`QueueConsumer(${this.queue}) already started`);
    const receiver = this.connection.openReceiver({
      source: { address: this.queue, ...(this.options.selector === undefined ? {} : { filter: filter.selector(this.options.selector) }) },
      autoaccept: false,
      credit_window: 0,
    });
    this.receiver = receiver;
    // A broker that refuses the link (no permission to read the queue) answers with an attach whose source is null
    // (rhea gives it as a typed null, not a Source with an address) and then detaches with the reason: that is not
    // attached, and the receiver_error that follows rejects start().
    receiver.on('receiver_open', () => {
      if (typeof (receiver.source as { address?: unknown } | undefined)?.address === 'string') this.onAttached();
    });
    receiver.on('message', (context: EventContext) => this.onMessage(context));
    let attachedOnce = false;
    let detached = false;
    const ended = (error: Error) => {
      const waiters = this.openWaiters.splice(0);
      for (const waiter of waiters) waiter.reject(error);
      if (waiters.length === 0 && attachedOnce && !this.stopping && !detached) {
        detached = true;
        this.options.onDetached?.(error);
      }
    };
    receiver.on('receiver_open', () => {
      if (typeof (receiver.source as { address?: unknown } | undefined)?.address === 'string') attachedOnce = true;
    });
    receiver.on('receiver_error', (context: EventContext) => ended(new Error(`receiver on ${this.queue} closed: ${describe(context.receiver?.error) ?? 'unknown error'}`)));
    // A close without an error that we did not ask for (stop() sets stopping first) ends the link all the same.
    receiver.on('receiver_close', () => ended(new Error(`receiver on ${this.queue} closed by the broker`)));
    // rhea removes a session the broker ended without a word to its links (the uplink went quiet, /health said ok).
    this.onSessionEnded = (session, error) => {
      if (session !== receiver.session) return;
      this.onDisconnected(); // its deliveries went with it: their handler results are stale
      ended(new SessionEndedError(`receiver on ${this.queue} closed: the broker ended its session${error ? ` (${error.message})` : ''}`));
    };
    this.connection.on('sessionEnded', this.onSessionEnded);
    this.connection.on('disconnected', this.onDisconnected);
    return new Promise<void>((resolve, reject) => {
      const timer = timeoutMs === null ? undefined : setTimeout(() => reject(new Error(`receiver on ${this.queue} not attached within ${timeoutMs} ms`)), timeoutMs);
      this.openWaiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /**
   * Stops taking messages, lets running handlers finish (up to `timeoutMs`), then detaches. Messages still
   * unsettled at detach are redelivered by the broker to another consumer.
   */
  async stop(timeoutMs = 10000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.connection.off('disconnected', this.onDisconnected);
    if (this.onSessionEnded) this.connection.off('sessionEnded', this.onSessionEnded);
    // A start() still waiting for the attach ends here: its caller may try again with a new consumer.
    for (const waiter of this.openWaiters.splice(0)) waiter.reject(new Error(`receiver on ${this.queue} stopped before the broker answered its attach`));
    const idle = Promise.allSettled([...this.running]).then(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    const receiver = this.receiver;
    // Not connected: taken out of its session, or rhea would attach it again at the reconnect (see endLink).
    if (receiver && !this.connection.isConnected()) endLink(receiver, false);
    else if (receiver && !receiver.is_open() && !receiver.is_closed()) this.endUnanswered(receiver);
    else if (receiver && receiver.is_open()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        receiver.once('receiver_close', () => {
          clearTimeout(timer);
          resolve();
        });
        receiver.close();
      });
    }
    if (this.ownsDlqSender) await this.dlqSender.close();
  }

  /**
   * Ends a link whose attach the broker has not answered (the hub's uplink check stops such a consumer and attaches a
   * new one). Left as it is, rhea attaches it again at the next reconnect, and with no credit from a stopped consumer
   * it stays on the queue for good, one more at each such episode. A detach now would cross the broker's late answer,
   * and rhea opens again a link whose attach arrives after its detach went out. So: closed when the answer comes
   * (onAttached), or taken out of its session if the connection drops first.
   */
  private endUnanswered(receiver: Receiver): void {
    const dropped = () => {
      receiver.off('receiver_open', answered);
      endLink(receiver, false);
    };
    const answered = () => {
      this.connection.off('disconnected', dropped);
      receiver.close();
    };
    receiver.once('receiver_open', answered);
    this.connection.once('disconnected', dropped);
  }

  /**
   * Whether the link is attached now (both ends open, on an open session and connection): what the hub checks its
   * consumer against, whatever events it did or did not get.
   */
  attached(): boolean {
    return !this.stopping && this.receiver !== undefined && this.receiver.is_open();
  }

  private onSessionEnded: ((session: Session, error: Error | undefined) => void) | undefined;

  private readonly onDisconnected = () => {
    // rhea re-attaches the link after reconnecting, with zero credit; deliveries held now are void.
    this.excuseHeld();
    this.generation += 1;
    this.waiting = 0;
    this.pausing = 0;
  };

  private onAttached(): void {
    for (const waiter of this.openWaiters.splice(0)) waiter.resolve();
    if (this.stopping) return;
    this.excuseHeld(); // a link re-attached without a lost connection: what it held comes again, counted one more
    this.generation += 1;
    this.waiting = 0;
    this.pausing = 0;
    const receiver = this.receiver!;
    const missing = this.prefetch - creditOf(receiver);
    if (missing > 0) receiver.add_credit(missing);
    try {
      this.options.onAttached?.();
    } catch {
      // observers must not break the attach
    }
  }

  private onMessage(context: EventContext): void {
    const delivery = context.delivery;
    const message = context.message;
    if (!delivery || !message) return;
    if (this.stopping) {
      // Credit granted before stop: hand it straight back, not counted as a failed attempt.
      delivery.release({ delivery_failed: false, undeliverable_here: false });
      return;
    }
    const generation = this.generation;
    this.held.set(delivery, message);
    const work = this.process(delivery, message, generation).catch(() => undefined);
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  /** The messages held unsettled now lose their delivery: each one's key gets one more excused loss. */
  private excuseHeld(): void {
    for (const message of this.held.values()) {
      const key = messageKey(message);
      const losses = (this.excusedLosses.get(key) ?? 0) + 1;
      this.excusedLosses.delete(key); // re-inserted last: the map forgets the least recently lost first
      this.excusedLosses.set(key, losses);
    }
    this.held.clear();
    for (const key of this.excusedLosses.keys()) {
      if (this.excusedLosses.size <= MAX_EXCUSED_MESSAGES) break;
      this.excusedLosses.delete(key);
    }
  }

  /** The broker's delivery-count less the losses excused for this message (see the header). */
  private failedDeliveries(message: Message): number {
    const deliveryCount = typeof message.delivery_count === 'number' ? message.delivery_count : 0;
    if (deliveryCount === 0 || this.excusedLosses.size === 0) return deliveryCount;
    const excused = Math.min(this.excusedLosses.get(messageKey(message)) ?? 0, MAX_EXCUSED_LOSSES);
    return Math.max(0, deliveryCount - excused);
  }

  private async process(delivery: Delivery, message: Message, generation: number): Promise<void> {
    const deliveryCount = this.failedDeliveries(message);
    const attempt = deliveryCount + 1;

    // While its handler waits for its turn, the message holds no credit slot (up to maxWaiting such messages).
    let waits = false;
    const waiting = (yes: boolean) => {
      if (yes === waits || generation !== this.generation) return;
      waits = yes;
      this.waiting += yes ? 1 : -1;
      if (yes) this.topUpCredit();
    };
    const received = (body: string): ReceivedMessage => ({
      waiting,
      body,
      applicationProperties: { ...(message.application_properties ?? {}) },
      messageId: idToString(message.message_id),
      correlationId: idToString(message.correlation_id),
      subject: message.subject,
      deliveryCount,
      attempt,
      queue: this.queue,
      raw: message,
    });

    if (this.options.deadLetterAll !== undefined) {
      await this.deadLetter(delivery, message, generation, this.options.deadLetterAll, typeof message.delivery_count === 'number' ? message.delivery_count : 0);
      return;
    }
    if (deliveryCount >= this.maxAttempts) {
      const reason = `max attempts exceeded (${deliveryCount} failed deliveries)`;
      const before = this.options.beforeExhaustedDeadLetter;
      if (before && typeof message.body === 'string') {
        const verdict = await before(received(message.body), reason).catch((error: unknown) => ({ later: `before the dead letter: ${error instanceof Error ? error.name : typeof error}` }));
        if (verdict !== 'dead-letter') return this.handBackLater(delivery, generation, deliveryCount, verdict.later);
      }
      await this.deadLetter(delivery, message, generation, reason, deliveryCount);
      return;
    }
    if (typeof message.body !== 'string') {
      await this.deadLetter(delivery, message, generation, 'body is not an AMQP value string', attempt);
      return;
    }

    const outcome = await this.runHandler(received(message.body));
    waiting(false);

    if (outcome === 'accept') {
      this.laterStreak = 0;
      this.settle(delivery, generation, () => delivery.accept(), { kind: 'accepted', queue: this.queue, attempt, message });
      return;
    }
    if ('later' in outcome) return this.handBackLater(delivery, generation, attempt, outcome.later);
    if ('deadLetter' in outcome) {
      await this.deadLetter(delivery, message, generation, outcome.deadLetter, attempt, outcome);
      return;
    }
    if (attempt >= this.maxAttempts) {
      await this.deadLetter(delivery, message, generation, `retry limit (${this.maxAttempts}) reached: ${outcome.retry}`, attempt, outcome);
      return;
    }
    const delay = this.options.retryDelayMs?.(attempt) ?? 0;
    if (delay > 0) {
      // Its pause before the hand-back is a wait too: it holds no credit slot (up to maxWaiting, as a wait for its
      // turn). Holding one, a system that sent 2,000 changes of experts the hub does not know (each retried 4 times,
      // 3.75 s of pauses) kept all 200 slots for half a minute, and every other system's messages queued behind.
      // Counted as a pause first: waiting(true) tops up the credit, which asks whether the consumer is saturated.
      const counted = generation === this.generation;
      if (counted) this.pausing += 1;
      waiting(true);
      await this.pause(delay);
      if (counted && generation === this.generation) this.pausing -= 1; // else the count was reset with the generation
      waiting(false);
    }
    this.settle(delivery, generation, () => delivery.modified({ delivery_failed: true, undeliverable_here: false }), {
      kind: 'retried',
      queue: this.queue,
      attempt,
      reason: outcome.retry,
      message,
    });
  }

  /**
   * Not the message's fault: handed back uncounted (modified without delivery-failed keeps ActiveMQ's delivery-count),
   * after a pause, so the broker does not spin it while the store is down.
   */
  private async handBackLater(delivery: Delivery, generation: number, attempt: number, reason: string): Promise<void> {
    const streak = this.laterStreak++;
    const pauseMs = this.options.laterPauseMs?.(streak) ?? Math.min(LATER_PAUSE_MS.max, LATER_PAUSE_MS.first * 2 ** Math.min(5, streak));
    await this.pause(pauseMs);
    this.settle(delivery, generation, () => delivery.modified({ delivery_failed: false, undeliverable_here: false }), {
      kind: 'deferred',
      queue: this.queue,
      attempt,
      reason,
      pauseMs,
    });
  }

  /** Wait `ms`, or until stop() begins. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const poll = setInterval(() => this.stopping && done(), 50);
      function done(): void {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      }
    });
  }

  private async runHandler(message: ReceivedMessage): Promise<HandlerOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const limit = this.handlerTimeoutMs;
    const timeout = new Promise<HandlerOutcome>((resolve) => {
      if (limit !== null) timer = setTimeout(() => resolve({ retry: `handler timed out after ${limit} ms` }), limit);
    });
    try {
      const outcome = await Promise.race([
        Promise.resolve()
          .then(() => this.options.handler(message))
          .then(validateOutcome),
        timeout,
      ]);
      return outcome;
    } catch (error) {
      // Its name and code only: the reason goes into the dead letter, which operators list, and a handler's own
      // message may name a patient ("cannot file report for patient 251248-1234").
      const e = error as { name?: unknown; code?: unknown } | null;
      const name = typeof e?.name === 'string' ? e.name.slice(0, 60) : typeof error;
      const code = typeof e?.code === 'string' || typeof e?.code === 'number' ? ` (${String(e.code).slice(0, 60)})` : '';
      return { retry: `handler threw: ${name}${code}` };
    } finally {
      clearTimeout(timer);
    }
  }

  private async deadLetter(delivery: Delivery, message: Message, generation: number, reason: string, attempts: number, read: DeadLetterFill = {}): Promise<void> {
    const senders = message.application_properties ?? {};
    const ownNames = new Set(this.options.deadLetterOwn?.names ?? []);
    const filled = Object.fromEntries(Object.entries(read.fill ?? {}).filter(([key]) => !DLQ_PROPERTIES.has(key) && !ownNames.has(key) && !(key in senders)));
    // Chosen from the original, not the copy: its x-dlq-* (the time, the reason, the attempts) differ each time.
    const own = { ...(this.options.deadLetterOwn?.of(message) ?? {}), ...Object.fromEntries(Object.entries(read.own ?? {}).filter(([key]) => ownNames.has(key))) };
    const copy = fittedDeadLetterCopy(message, {
      ...filled,
      ...own,
      [DLQ_REASON]: reason,
      [DLQ_SOURCE_QUEUE]: this.options.deadLetterSourceQueue ?? this.queue,
      [DLQ_ATTEMPTS]: attempts,
      [DLQ_AT]: this.now().toISOString(),
    });
    for (const name of ownNames) if (!(name in own)) delete copy.application_properties?.[name];
    reason = String(copy.application_properties?.[DLQ_REASON] ?? reason);
    try {
      await this.dlqSender.sendRaw(this.deadLetterQueue, copy);
    } catch (error) {
      // Not copied: give the original back (counted as a failed delivery) so it is dead-lettered on a later try,
      // after a pause (the broker sends it back at once, and refuses the copy again while its store is full).
      const streak = this.deadLetterFailStreak++;
      await this.pause(this.options.deadLetterRetryPauseMs?.(streak) ?? Math.min(LATER_PAUSE_MS.max, LATER_PAUSE_MS.first * 2 ** Math.min(5, streak)));
      this.settle(delivery, generation, () => delivery.modified({ delivery_failed: true, undeliverable_here: false }), {
        kind: 'dead-letter-failed',
        queue: this.queue,
        attempt: attempts,
        error: error instanceof Error ? error : new Error(String(error)),
      });
      return;
    }
    this.deadLetterFailStreak = 0;
    // If the connection was lost meanwhile the original comes back and gets a second DLQ copy (at-least-once).
    this.settle(delivery, generation, () => delivery.accept(), {
      kind: 'dead-lettered',
      queue: this.queue,
      attempt: attempts,
      reason,
      deadLetterQueue: this.deadLetterQueue,
      copy,
    });
  }

  private settle(delivery: Delivery, generation: number, action: () => void, event: ConsumerOutcomeEvent): void {
    if (generation !== this.generation) {
      this.report({ kind: 'stale', queue: this.queue, attempt: event.attempt });
      // Its handler's end may be what a saturation waited for (the uplink: its place is now awaited, and may be given
      // up): asked only here, the consumer did not ask, and all it held waited until the place's 30 s were over.
      this.topUpCredit();
      return;
    }
    const message = this.held.get(delivery);
    this.held.delete(delivery);
    // Off the queue for good: nothing to excuse any more. Handed back, it comes again with its losses still excused.
    // A first delivery (delivery-count 0) was never held through a loss: no key to forget, no hash to take.
    if (message && message.delivery_count && this.excusedLosses.size > 0 && (event.kind === 'accepted' || event.kind === 'dead-lettered')) {
      this.excusedLosses.delete(messageKey(message));
    }
    action();
    this.report(event);
    this.topUpCredit();
  }

  /** Credit up to prefetch + the messages that wait for their turn (at most maxWaiting), minus those held. */
  private topUpCredit(): void {
    const receiver = this.receiver;
    if (this.stopping || !receiver || !this.connection.isConnected()) return;
    // Saturated: every slot held by a message that waits for its turn. One that pauses before its retry's hand-back
    // frees its slot when the pause ends: no saturation (see `pausing`).
    if (this.waiting - this.pausing >= this.prefetch + this.maxWaiting && this.options.onSaturated) {
      try {
        this.options.onSaturated();
      } catch {
        // observers must not break settlement
      }
    }
    const missing = this.prefetch + Math.min(this.waiting, this.maxWaiting) - this.held.size - creditOf(receiver);
    if (missing > 0) receiver.add_credit(missing);
  }

  private report(event: ConsumerOutcomeEvent): void {
    try {
      this.options.onOutcome?.(event);
    } catch {
      // observers must not break settlement
    }
  }
}

/**
 * The dead letter copy: body and properties unchanged (in the AMQP types they arrived in), our x-dlq-* added (an
 * int x-dlq-attempts); no broker annotations or header counts.
 */
export function deadLetterCopy(message: Message, extra: Record<string, ApplicationPropertyValue>): Message {
  const copy: Message = {
    body: message.body,
    durable: true,
    application_properties: { ...typedApplicationProperties(message), ...withAmqpInts(extra) },
  };
  const fields = ['message_id', 'correlation_id', 'subject', 'content_type', 'content_encoding', 'reply_to', 'group_id', 'creation_time', 'priority'] as const;
  for (const field of fields) {
    if (message[field] !== undefined) (copy as unknown as Record<string, unknown>)[field] = message[field];
  }
  return copy;
}

/**
 * The largest dead letter copy sent, in AMQP bytes as rhea encodes it (`encodedSizeOf`): the brokers take frames of at
 * most 1 MiB (wireFormat.maxFrameSize), and close the sending connection for a larger message. A message just
 * under that limit, with the x-dlq-* properties added, was over it: every try to dead-letter it closed the hub's
 * connection, it came back, and the uplink reconnected for ever (300 times in 4 minutes), while the messages it
 * held through each loss were redelivered until they ran out of attempts.
 */
export const MAX_DEAD_LETTER_COPY_BYTES = 1024 * 1024 - 8 * 1024;

/**
 * The dead letter copy (deadLetterCopy), or, where it would be larger than MAX_DEAD_LETTER_COPY_BYTES, the same
 * copy with its body replaced by a note of what it was (size and sha256), the reason saying so first
 * (`body_not_kept: ...; <reason>`): the original cannot be kept on a broker that takes no frame of its size, and
 * the queue must go on. Only a message over the size every sender is told to keep under (992 KiB) gets here.
 */
export function fittedDeadLetterCopy(message: Message, extra: Record<string, ApplicationPropertyValue>, maxBytes = MAX_DEAD_LETTER_COPY_BYTES): Message {
  const copy = deadLetterCopy(message, extra);
  if (encodedSizeOf(copy) <= maxBytes) return copy;
  const bytes = bodyBytes(message.body);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const bodyNote = `body_not_kept: the body (${bytes.length} bytes, sha256 ${digest}) was too large to keep with the dead letter's properties (a message must stay under 1015808 bytes)`;
  const noteBody = JSON.stringify({ bodyNotKept: { bytes: bytes.length, sha256: digest } });
  const reason = String(extra[DLQ_REASON] ?? '');
  const withoutBody = deadLetterCopy({ ...message, body: noteBody }, { ...extra, [DLQ_REASON]: `${bodyNote}; ${reason}` });
  if (encodedSizeOf(withoutBody) <= maxBytes) return withoutBody;
  // Too large without its body: the sender's properties are (a 1 MB application-property, a 1 MB group-id). Only the
  // small ones are kept; the body too if it fits beside them. Kept whole, every try closed the hub's connection and
  // the message came back, for ever (an outside review: 118 reconnects in two minutes, never dead-lettered).
  const dropped = droppedLargeProperties(copy, new Set(Object.keys(extra)));
  const propertiesNote = `properties_not_kept: ${dropped.count} of the message's properties (${dropped.bytes} bytes) were too large to keep with the dead letter (a message must stay under 1015808 bytes)`;
  const withBody = { ...dropped.copy, application_properties: { ...dropped.copy.application_properties, [DLQ_REASON]: `${propertiesNote}; ${reason}` } };
  if (encodedSizeOf(withBody) <= maxBytes) return withBody;
  return { ...dropped.copy, body: noteBody, application_properties: { ...dropped.copy.application_properties, [DLQ_REASON]: `${propertiesNote}; ${bodyNote}; ${reason}` } };
}

/** The most a dead letter keeps of the sender's properties when they are what makes it too large (with its own x-dlq-*). */
const KEPT_PROPERTY_BYTES = 512;
const KEPT_PROPERTIES_BYTES = 16 * 1024;

/**
 * A dead letter copy without the sender's large properties: each application-property and AMQP property (group-id,
 * subject, ...) kept only if it encodes in at most KEPT_PROPERTY_BYTES, and those in at most KEPT_PROPERTIES_BYTES all
 * together (what the consumer adds, the x-dlq-* and its own ids, is kept whatever its size: bounded). So the envelope's copies (messageId,
 * type, systemId, ...), which operators search by, stay, and a sender's megabyte of junk does not.
 */
function droppedLargeProperties(copy: Message, added: ReadonlySet<string>): Readonly<{ copy: Message; count: number; bytes: number }> {
  let budget = KEPT_PROPERTIES_BYTES;
  let count = 0;
  let bytes = 0;
  const keep = (size: number): boolean => {
    if (size <= KEPT_PROPERTY_BYTES && size <= budget) {
      budget -= size;
      return true;
    }
    count += 1;
    bytes += size;
    return false;
  };
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(copy.application_properties ?? {})) {
    if (DLQ_PROPERTIES.has(key) || added.has(key) || keep(amqpMessage.encode({ application_properties: { [key]: value } }).length)) properties[key] = value;
  }
  const slim: Message = { body: copy.body, durable: true, application_properties: properties };
  const fields = ['message_id', 'correlation_id', 'subject', 'content_type', 'content_encoding', 'reply_to', 'group_id', 'creation_time', 'priority'] as const;
  for (const field of fields) {
    const value = copy[field];
    if (value !== undefined && keep(amqpMessage.encode({ [field]: value }).length)) (slim as unknown as Record<string, unknown>)[field] = value;
  }
  return { copy: slim, count, bytes };
}

/** The bytes of a body: an AMQP value string as UTF-8, a data section's bytes, anything else as AMQP encodes it. */
function bodyBytes(body: unknown): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (Buffer.isBuffer(body)) return body;
  const content = (body as { content?: unknown } | null)?.content;
  if (Buffer.isBuffer(content)) return content;
  return amqpMessage.encode({ body });
}

/**
 * A message's size as AMQP encodes it: rhea's own encoding of the copy, as it will be sent. An estimate from the
 * body's JSON was wrong by far for a body that is no string: rhea writes every list and map in its 32-bit form, so
 * 150,000 empty maps (450 KB as the sender wrote them, 2 bytes each as JSON) became a 1.35 MB copy, the broker
 * closed the connection at each try, and the loop was back (an outside review). The encoding is made only when a
 * message is dead-lettered.
 */
function encodedSizeOf(message: Message): number {
  return amqpMessage.encode(message).length;
}

/** Credit the receiver still has outstanding (rhea keeps it on the link; its typings do not expose it). */
function creditOf(receiver: Receiver): number {
  const credit = (receiver as unknown as { credit?: unknown }).credit;
  return typeof credit === 'number' ? credit : 0;
}

function validateOutcome(outcome: unknown): HandlerOutcome {
  if (outcome === 'accept') return outcome;
  if (outcome && typeof outcome === 'object') {
    const o = outcome as { retry?: unknown; deadLetter?: unknown; later?: unknown };
    const fill = fillOf((outcome as { fill?: unknown }).fill);
    const own = fillOf((outcome as { own?: unknown }).own);
    const read = { ...(fill ? { fill } : {}), ...(own ? { own } : {}) };
    if (typeof o.deadLetter === 'string') return { deadLetter: o.deadLetter, ...read };
    if (typeof o.retry === 'string') return { retry: o.retry, ...read };
    if (typeof o.later === 'string') return { later: o.later };
  }
  throw new Error(`handler returned an invalid outcome: ${JSON.stringify(outcome)}`);
}

/** A handler's DeadLetterFill, its string values only. */
function fillOf(fill: unknown): Readonly<Record<string, string>> | undefined {
  if (!fill || typeof fill !== 'object') return undefined;
  const strings = Object.entries(fill).filter(([, value]) => typeof value === 'string');
  return strings.length > 0 ? Object.fromEntries(strings) : undefined;
}

/**
 * What tells one message from another across its redeliveries: its AMQP message-id, which ActiveMQ keeps, else a
 * hash of its body and application properties (a sender may set no id; two messages alike in both share the key).
 */
function messageKey(message: Message): string {
  // The message-id alone is not enough: senders choose it, and two systems may both send `reg-1`. The content
  // (body, properties, the sender's claimed user) tells such messages apart; the broker redelivers it unchanged.
  const hash = createHash('sha256');
  const id = idToString(message.message_id);
  hash.update(id === undefined ? '-' : `i${id.length}:${id}`);
  hash.update('\n').update(idToString(message.user_id) ?? '');
  const body = message.body as unknown;
  hash.update('\n');
  if (typeof body === 'string') hash.update('s').update(body, 'utf8');
  else if (body instanceof Uint8Array) hash.update('b').update(body);
  else hash.update('j').update(String(JSON.stringify(body) ?? body));
  hash.update('\n').update(JSON.stringify(message.application_properties ?? {}) ?? '');
  return hash.digest('base64');
}

function idToString(id: unknown): string | undefined {
  if (id === undefined || id === null) return undefined;
  if (Buffer.isBuffer(id)) return id.toString('hex');
  return String(id);
}

function describe(error: unknown): string | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const { condition, description } = error as { condition?: string; description?: string };
  const text = [condition, description].filter(Boolean).join(': ');
  return text || undefined;
}
