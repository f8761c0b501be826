import { filter, type Delivery, type EventContext, type Message, type Receiver } from 'rhea';
import { createHash } from 'node:crypto';
import { DEAD_LETTER_ID_FORM, MAX_BROWSE, UnavailableError, oneEach, type DeadLetter, type DeadLetterQueue, type ReplaySelection } from '../../application/directory/dead-letter-operations';
import type { AmqpConnection } from '../amqp/connection';
import type { DurableSender } from '../amqp/durable-sender';
import { DLQ_AT, DLQ_ATTEMPTS, DLQ_REASON, DLQ_SOURCE_QUEUE } from '../amqp/queue-consumer';
import { amqpProperty, typedApplicationProperties } from '../amqp/typed-properties';
import { DLQ_ID, ENVELOPE_ID_PROPERTY, READ_ENVELOPE_ID, envelopeIdOf } from './amqp-uplink-consumer';
import { binaryShown } from '../validation/binary-text';

/**
 * The dead letter queue on ActiveMQ over AMQP.
 *
 * - browse: a receiver whose source has distribution-mode `copy` (ActiveMQ makes it a queue browser: nothing is
 *   consumed or locked), credit for `limit` messages, then drain: the broker answers `drained` once it has sent
 *   what there is, so an empty or short queue ends the browse without a timeout.
 * - moveBack: a consuming receiver with a JMS selector (source filter `jms-selector`,
 *   apache.org:selector-filter:string) on `rts_dlq_id` or the envelope id (`rts_envelope_id`, else `messageId`), or on `JMSMessageID` for a message that has
 *   neither (selectorFor), so only the chosen message is taken. A message without any id (selected by its content
 *   id) is found by a receiver without a selector that holds what it looks through and gives back what it did not
 *   take, at the end.
 *   Each match is sent to the source queue first (durable; resolves on `accepted`) and accepted on the dead
 *   letter queue only then; a failed send releases it back (it stays a dead letter). At-least-once: a crash
 *   between the two leaves a copy in both queues; the uplink consumer dedupes by envelope id.
 *   The replayed copy drops the x-dlq-*, rts_dlq_id and rts_envelope_id properties and carries x-replayed-from-dlq = true and
 *   x-replay-count (previous count + 1).
 * - remove: the same receiver (takeSelected); the matches are held unsettled while the caller records the discard,
 *   accepted (gone) only after, released when recording fails. A connection lost after the record was stored and
 *   before the accept reached the broker leaves the message on the queue with its discard recorded: discard it again.
 */
export const REPLAYED_FROM_DLQ = 'x-replayed-from-dlq';
export const REPLAY_COUNT = 'x-replay-count';

const str = (v: unknown): string | null => (typeof v === 'string' ? v : v === undefined || v === null ? null : v instanceof Uint8Array ? binaryShown(v) : String(v));
/**
 * A count (x-dlq-attempts, x-replay-count): a whole number, or a string of digits (a JMS sender's), that a number holds
 * exactly; else none. A string of 400 digits was Infinity, which the answers' JSON made null where they promise an
 * integer (and a fraction was shown as a count).
 */
const num = (v: unknown): number | null => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : null;
};

const LETTERS = 'abcdefghijklmnop';

/**
 * A message's content id: `c-` and 24 letters (96 bits of the SHA-256 of its body and its application properties,
 * the keys in order, a hex digit written as a letter: no digits, so never shown redacted as a possible CPR number).
 * Identical messages share it. It addresses a dead letter that carries no other id (DeadLetter.contentId).
 */
export const contentIdOf = (body: string, properties: Readonly<Record<string, unknown>>): string => {
  const keys = Object.keys(properties).sort();
  const canonical = JSON.stringify([body, keys.map((k) => [k, properties[k]])], (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
  const hex = createHash('sha256').update(canonical).digest('hex').slice(0, 24);
  return `c-${hex.replace(/[0-9a-f]/g, (digit) => LETTERS[parseInt(digit, 16)]!)}`;
};

/** A browsed or received AMQP message as the operators see it. */
export const toDeadLetter = (message: Message): DeadLetter => {
  const props: Record<string, unknown> = { ...(message.application_properties ?? {}) };
  const body = typeof message.body === 'string' ? message.body : Buffer.isBuffer(message.body) ? message.body.toString('utf8') : JSON.stringify(message.body ?? null);
  const deadLetterId = str(props[DLQ_ID]);
  // The id of the envelope the hub read, where it read one; else the sender's messageId, else the body's id.
  const envelopeId = str(props[READ_ENVELOPE_ID]) ?? str(props[ENVELOPE_ID_PROPERTY]) ?? envelopeIdOf(body) ?? null;
  const brokerMessageId = str(message.message_id);
  let type = str(props.type);
  let systemId = str(props.systemId);
  if (type === null || systemId === null) {
    try {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (type === null && typeof parsed?.type === 'string' && parsed.type.length <= 100) type = parsed.type;
      if (systemId === null && typeof parsed?.systemId === 'string' && parsed.systemId.length <= 100) systemId = parsed.systemId;
    } catch {
      // not JSON: a bad_json dead letter
    }
  }
  const contentId = contentIdOf(body, props);
  return {
    id: [deadLetterId, envelopeId, brokerMessageId].find((id) => id !== null && DEAD_LETTER_ID_FORM.test(id)) ?? contentId,
    deadLetterId,
    envelopeId,
    brokerMessageId,
    contentId,
    type,
    systemId,
    correlationId: str(props.correlationId) ?? str(message.correlation_id),
    reason: str(props[DLQ_REASON]),
    sourceQueue: str(props[DLQ_SOURCE_QUEUE]),
    attempts: num(props[DLQ_ATTEMPTS]),
    deadLetteredAt: str(props[DLQ_AT]),
    replayCount: num(props[REPLAY_COUNT]) ?? 0,
    body,
    applicationProperties: props,
  };
};

/** The message sent back to the source queue on replay. */
export const replayCopy = (message: Message): Message => {
  const props = typedApplicationProperties(message);
  for (const key of [DLQ_REASON, DLQ_SOURCE_QUEUE, DLQ_ATTEMPTS, DLQ_AT, DLQ_ID, READ_ENVELOPE_ID]) delete props[key];
  props[REPLAYED_FROM_DLQ] = true;
  props[REPLAY_COUNT] = amqpProperty((num(message.application_properties?.[REPLAY_COUNT]) ?? 0) + 1);
  const copy: Message = { body: message.body, durable: true, application_properties: props };
  for (const field of ['message_id', 'correlation_id', 'subject', 'content_type', 'content_encoding', 'group_id', 'priority'] as const) {
    if (message[field] !== undefined) (copy as unknown as Record<string, unknown>)[field] = message[field];
  }
  return copy;
};

const quoted = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/**
 * A JMS selector for one selection (quotes doubled; the values are checked ids anyway). A sender's message id
 * (`brokerMessageId`) is matched as ActiveMQ holds it, as JMSMessageID: a string that starts with `ID:` as it is,
 * another string behind `ID:`, an unsigned long as `ID:AMQP_ULONG:<n>`. The browse shows a string of digits and a
 * number alike, so digits select either. Found on ActiveMQ 5.18.3 and 6.3.1 (dead-letter-queue.int.spec.ts pins it).
 */
export const selectorFor = (selection: ReplaySelection): string => {
  if (selection.property === 'contentId') throw new Error('a content id is not a property of the message: no selector finds it');
  // By envelope id: the one the hub read where the copy has it, else (a copy made before rts_envelope_id, or of a
  // message it could not read) the messageId property. A sender's messageId naming another message's envelope does
  // not select that message's dead letters.
  if (selection.property === 'messageId') return `${READ_ENVELOPE_ID} = ${quoted(selection.value)} OR (${READ_ENVELOPE_ID} IS NULL AND messageId = ${quoted(selection.value)})`;
  if (selection.property !== 'brokerMessageId') return `${selection.property} = ${quoted(selection.value)}`;
  const id = selection.value;
  if (id.startsWith('ID:')) return `JMSMessageID = ${quoted(id)}`;
  if (/^\d{1,20}$/.test(id)) return `JMSMessageID IN (${quoted(`ID:${id}`)}, ${quoted(`ID:AMQP_ULONG:${id}`)})`;
  return `JMSMessageID = ${quoted(`ID:${id}`)}`;
};

export type AmqpDeadLetterQueueOptions = Readonly<{ queue: string; timeoutMs?: number }>;

export class AmqpDeadLetterQueue implements DeadLetterQueue {
  private readonly timeoutMs: number;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly sender: DurableSender,
    private readonly options: AmqpDeadLetterQueueOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  browse(limit: number): Promise<readonly DeadLetter[]> {
    const got: DeadLetter[] = [];
    return this.withReceiver(
      { distribution_mode: 'copy' },
      limit,
      (context) => {
        if (context.message) got.push(toDeadLetter(context.message));
        // Settled at once, so a browse of more than rhea's 2,048-delivery session buffer is not stopped by its own
        // deliveries. Accepting a browsed copy consumes nothing (a test browses the queue whole again after).
        (context.delivery as Delivery | undefined)?.accept();
      },
      async () => got,
    );
  }

  async moveBack(selection: ReplaySelection, sourceQueue: string, max: number): Promise<readonly DeadLetter[]> {
    // Copies of one dead letter (oneEach: the same rts_dlq_id and body, a copy sent again after a lost accept) are one
    // message: the first is sent back, the others are taken off the queue once it is there (with it, if its send
    // fails, they stay), and not sent: replayed twice, it would be handled twice, or dead-lettered twice again.
    const sends = new Map<string, { body: string; sent: Promise<void> }[]>();
    const taken = await this.takeSelected(selection, max, {
      each: (message) => {
        const { deadLetterId, body } = toDeadLetter(message);
        const copies = deadLetterId === null ? undefined : (sends.get(deadLetterId) ?? sends.set(deadLetterId, []).get(deadLetterId)!);
        const first = copies?.find((c) => c.body === body);
        if (first) return first.sent;
        const sent = this.sender.sendRaw(sourceQueue, replayCopy(message));
        copies?.push({ body, sent });
        return sent;
      },
    });
    return oneEach(taken);
  }

  remove(selection: ReplaySelection, max: number, record: (found: readonly DeadLetter[]) => Promise<void>): Promise<readonly DeadLetter[]> {
    return this.takeSelected(selection, max, { each: async () => undefined, beforeAccept: record });
  }

  /**
   * The one way messages are taken off the dead letter queue (moveBack, remove): a consuming receiver with a JMS
   * selector, so only the chosen messages are taken; the broker hands each to one receiver only, so two calls for
   * the same message (a replay and a discard) cannot both get it. `each` runs per match (moveBack: the send to the
   * source queue); a match whose `each` fails is released (it stays a dead letter). Without `beforeAccept` a match
   * is accepted (removed) as soon as its `each` resolved. With it, the matches stay unsettled, held for this receiver,
   * until the drain ended and `beforeAccept` resolved with all of them (remove: the discard's event is stored), and
   * are all released when it throws.
   */
  private takeSelected(
    selection: ReplaySelection,
    max: number,
    steps: Readonly<{ each: (message: Message) => Promise<void>; beforeAccept?: (found: readonly DeadLetter[]) => Promise<void> }>,
  ): Promise<readonly DeadLetter[]> {
    const taken: DeadLetter[] = [];
    const held: Delivery[] = [];
    const work: Promise<void>[] = [];
    const failures: Error[] = [];
    // By content id no selector can pick the message: the receiver takes the queue from its head and gives back,
    // at the end, every message it looked through and did not take (ActiveMQ keeps their place in the queue).
    const byContent = selection.property === 'contentId';
    const passedOver: Delivery[] = [];
    // A delivery of a lost connection must never be settled (the sender resends across a failover): the original
    // stays a dead letter and comes back; the replayed copy is deduped by envelope id downstream.
    let lost = false;
    const onLost = () => (lost = true);
    const settle = (delivery: Delivery, accept: boolean) => {
      if (lost) return;
      try {
        if (accept) delivery.accept();
        else delivery.release({ delivery_failed: false, undeliverable_here: false });
      } catch {
        // The link closed meanwhile (timeout): the broker gives the message back, it stays a dead letter.
      }
    };
    this.connection.once('disconnected', onLost);
    return this.withReceiver(
      byContent ? {} : { filter: filter.selector(selectorFor(selection)) },
      byContent ? MAX_BROWSE : max,
      (context) => {
        const message = context.message;
        const delivery = context.delivery as Delivery | undefined;
        if (!message || !delivery) return;
        if (byContent && (work.length >= max || toDeadLetter(message).contentId !== selection.value)) {
          passedOver.push(delivery);
          return;
        }
        work.push(
          steps.each(message).then(
            () => {
              if (steps.beforeAccept) held.push(delivery);
              else settle(delivery, true);
              taken.push(toDeadLetter(message));
            },
            (error: unknown) => {
              settle(delivery, false);
              failures.push(error instanceof Error ? error : new Error(String(error)));
            },
          ),
        );
      },
      async () => {
        for (const delivery of passedOver.splice(0)) settle(delivery, false);
        try {
          await Promise.all(work);
          if (steps.beforeAccept && taken.length > 0) {
            if (lost) throw new UnavailableError('service_unavailable', 'the connection to the message broker was lost: the dead letter stays on the queue; try again');
            try {
              await steps.beforeAccept(taken);
            } catch (error) {
              for (const delivery of held) settle(delivery, false);
              throw error;
            }
            for (const delivery of held) settle(delivery, true);
          }
          if (failures.length > 0 && taken.length === 0) throw failures[0]!;
          return taken;
        } finally {
          this.connection.off('disconnected', onLost);
        }
      },
    );
  }

  /**
   * Attach, give `credit`, drain; `finish` runs once the broker said drained or all the credit was used (ActiveMQ
   * does not answer a drain whose credit its deliveries used up: a queue holding `credit` messages or more would
   * otherwise end in the timeout), before the link is closed. Not connected, or no answer in time: UnavailableError
   * 'service_unavailable' (503 over HTTP).
   */
  private withReceiver<T>(
    source: Record<string, unknown>,
    credit: number,
    onMessage: (context: EventContext) => void,
    finish: () => Promise<T>,
  ): Promise<T> {
    if (!this.connection.isConnected()) return Promise.reject(new UnavailableError('service_unavailable', 'the hub is not connected to the message broker now; try again'));
    const wanted = Math.max(1, credit);
    return new Promise<T>((resolve, reject) => {
      let receiver: Receiver | undefined;
      let closeSession = (): void => undefined;
      let done = false;
      let finishing = false;
      let received = 0;
      const end = (outcome: { value: T } | { error: Error }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        closeSession();
        if ('error' in outcome) reject(outcome.error);
        else resolve(outcome.value);
      };
      const complete = () => {
        if (finishing || done) return;
        finishing = true;
        finish().then(
          (value) => end({ value }),
          (error: unknown) => end({ error: error instanceof Error ? error : new Error(String(error)) }),
        );
      };
      const timer = setTimeout(
        () => end({ error: new UnavailableError('service_unavailable', `the message broker did not answer within ${this.timeoutMs} ms (dead letter queue ${this.options.queue}); try again`) }),
        this.timeoutMs,
      );
      // On a session of its own: a browse settles nothing, and a move leaves unsettled what came after its last
      // match. On the shared session those deliveries filled rhea's buffer: after ~17 browses of a 115-message dead
      // letter queue the uplink consumer got no message any more, and the browse found the queue empty.
      ({ receiver, close: closeSession } = this.connection.openReceiverOnOwnSession({
        source: { address: this.options.queue, ...source } as never,
        autoaccept: false,
        credit_window: 0,
      }, Math.max(2048, wanted + 64)));
      receiver.on('receiver_open', () => {
        receiver!.add_credit(wanted);
        receiver!.drain_credit();
      });
      receiver.on('message', (context: EventContext) => {
        if (done || finishing) return;
        onMessage(context);
        if (++received >= wanted) complete();
      });
      // ActiveMQ answers a drain once it has sent what it holds in memory now, and pages a browsed queue in by 400
      // (maxBrowsePageSize): a CI run's browse of 2,250 ended at 550. So a drain round that brought messages is
      // followed by another for the credit left, and only a round that brings none (or the credit used up) ends it.
      let receivedAtDrain = 0;
      receiver.on('receiver_drained', () => {
        if (done || finishing) return;
        if (received > receivedAtDrain && received < wanted) {
          receivedAtDrain = received;
          receiver!.add_credit(wanted - received);
          receiver!.drain_credit();
          return;
        }
        complete();
      });
      receiver.on('receiver_error', (context: EventContext) => {
        const e = context.receiver?.error as { condition?: string; description?: string } | undefined;
        end({ error: new Error(`dead letter receiver closed: ${[e?.condition, e?.description].filter(Boolean).join(': ') || 'unknown error'}`) });
      });
    });
  }
}
