// QueueConsumer's credit against a fake link: a message whose handler only waits for its turn holds no credit slot
// (up to maxWaiting), so the broker sends the messages of other keys. ActiveMQ sends a message handed back to the
// same link again, so handing it back frees nothing: the credit is what lets the others in.
// Also: a message that arrives with its attempts used up is dead-lettered unhandled, after beforeExhaustedDeadLetter;
// and the losses of the connection a message was held through are not counted against it (up to a limit).
import { EventEmitter } from 'node:events';
import type { AmqpConnection } from '../../src/adapters/amqp/connection';
import type { DurableSender } from '../../src/adapters/amqp/durable-sender';
import { OrderedByKey } from '../../src/application/ordered-by-key';
import { FakeReceiver as BaseReceiver } from '../support/fake-receiver';
import { MAX_EXCUSED_LOSSES, QueueConsumer, type HandlerOutcome, type QueueConsumerOptions, type ReceivedMessage } from '../../src/adapters/amqp/queue-consumer';

/** Messages by body (and message id): one credit each, as the support's receiver. */
class FakeReceiver extends BaseReceiver {
  deliverBody(body: string, deliveryCount = 0, messageId?: string): { settled: string[] } {
    return { settled: this.deliver({ body, message_id: messageId }, deliveryCount) };
  }
}

const consumerOn = (handler: (m: ReceivedMessage) => Promise<HandlerOutcome>, options: Partial<QueueConsumerOptions> & { prefetch: number }, deadLettered: string[] = []) => {
  const receiver = new FakeReceiver();
  const connection = Object.assign(new EventEmitter(), { openReceiver: () => receiver, isConnected: () => true }) as unknown as AmqpConnection;
  const deadLetterSender = { sendRaw: async (_q: string, m: { application_properties?: Record<string, unknown> }) => void deadLettered.push(String(m.application_properties?.['x-dlq-reason'])), close: async () => undefined } as unknown as DurableSender;
  // No handler time limit: these handlers hang on purpose, and a limit's timer (a minute) kept the worker alive after the file.
  const consumer = new QueueConsumer(connection, { queue: 'q', deadLetterQueue: 'dlq', handler, deadLetterSender, handlerTimeoutMs: null, ...options });
  const started = consumer.start(1000);
  receiver.emit('receiver_open');
  return { receiver, consumer, started, connection };
};

const settle = () => new Promise((r) => setImmediate(r));

describe('QueueConsumer: credit for messages that wait for their turn', () => {
  it('gives one more credit for each message that waits, up to maxWaiting, and takes it back when it runs', async () => {
    const release = new Map<string, () => void>();
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      if (m.body.startsWith('wait')) m.waiting?.(true);
      await new Promise<void>((r) => release.set(m.body, r));
      m.waiting?.(false);
      return 'accept';
    };
    const { receiver, started } = consumerOn(handler, { prefetch: 2, maxWaiting: 2 });
    await started;
    expect(receiver.credit).toBe(2);
    receiver.deliverBody('runs');
    receiver.deliverBody('wait-1');
    await settle();
    expect(receiver.credit).toBe(1); // wait-1 holds no slot: another message may come
    receiver.deliverBody('wait-2');
    await settle();
    expect(receiver.credit).toBe(1);
    receiver.deliverBody('wait-3');
    await settle();
    expect(receiver.credit).toBe(0); // maxWaiting 2: the third waiting message holds its slot
    // wait-1 runs and is accepted: it held no slot, so no new credit beyond prefetch + the 2 still waiting.
    release.get('wait-1')!();
    await settle();
    expect(receiver.credit).toBe(1); // held: runs, wait-2, wait-3 (3) = prefetch 2 + min(2 waiting, 2) - 3
  });

  it('without maxWaiting a waiting message holds its slot, as before', async () => {
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      m.waiting?.(true);
      await new Promise(() => undefined);
      return 'accept';
    };
    const { receiver, started } = consumerOn(handler, { prefetch: 2 });
    await started;
    receiver.deliverBody('a');
    receiver.deliverBody('b');
    await settle();
    expect(receiver.credit).toBe(0);
  });
});

describe('QueueConsumer: onSaturated', () => {
  it('is told once the messages that wait hold every slot (prefetch + maxWaiting), not before', async () => {
    const release: Array<() => void> = [];
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      if (m.body.startsWith('wait')) m.waiting?.(true);
      await new Promise<void>((r) => release.push(r));
      m.waiting?.(false);
      return 'accept';
    };
    let told = 0;
    const { receiver, started } = consumerOn(handler, { prefetch: 2, maxWaiting: 2, onSaturated: () => void (told += 1) });
    await started;
    for (const body of ['runs', 'wait-1', 'wait-2', 'wait-3']) {
      receiver.deliverBody(body);
      await settle();
    }
    expect(receiver.credit).toBe(0);
    expect(told).toBe(0); // one runs: no credit now, but it ends
    release[0]!(); // 'runs' is accepted: a credit, and the next one waits too
    await settle();
    expect(told).toBe(0);
    receiver.deliverBody('wait-4');
    await settle();
    expect(receiver.credit).toBe(0);
    expect(told).toBeGreaterThan(0); // 4 waiting = prefetch 2 + maxWaiting 2: nothing can run, nothing can come
  });
});

describe('QueueConsumer: a message that arrives with its attempts used up', () => {
  // By the clock, not by turns of the loop: the hand-back pauses on a timer, which a busy machine fires late (100
  // setImmediate turns were over before it, in a full run).
  const until = async (done: () => boolean) => {
    const deadline = Date.now() + 5_000;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  };

  it('asks beforeExhaustedDeadLetter first: dead-lettered on its word, handed back uncounted on `later`, never handled', async () => {
    const handled: string[] = [];
    const asked: string[] = [];
    const deadLettered: string[] = [];
    let answer: 'dead-letter' | { later: string } = { later: 'audit_unavailable' };
    const { receiver, started } = consumerOn(
      async (m) => {
        handled.push(m.body);
        return 'accept';
      },
      {
        prefetch: 4,
        maxAttempts: 5,
        laterPauseMs: () => 0,
        beforeExhaustedDeadLetter: async (m, reason) => {
          asked.push(`${m.body} ${m.deliveryCount} ${reason}`);
          return answer;
        },
      },
      deadLettered,
    );
    await started;
    const first = receiver.deliverBody('poison', 5);
    await until(() => first.settled.length > 0);
    expect(first.settled).toEqual(['modified (uncounted)']);
    expect(deadLettered).toEqual([]);

    answer = 'dead-letter';
    const again = receiver.deliverBody('poison', 5);
    await until(() => again.settled.length > 0);
    expect(again.settled).toEqual(['accepted']); // the original, once its dead letter copy was taken
    expect(deadLettered).toEqual(['max attempts exceeded (5 failed deliveries)']);
    expect(asked).toEqual(['poison 5 max attempts exceeded (5 failed deliveries)', 'poison 5 max attempts exceeded (5 failed deliveries)']);

    // Below the limit it is not asked: the handler runs.
    const fresh = receiver.deliverBody('fine', 4);
    await until(() => fresh.settled.length > 0);
    expect(fresh.settled).toEqual(['accepted']);
    expect(handled).toEqual(['fine']);
    expect(asked).toHaveLength(2);
  });
});

describe('QueueConsumer: losses of the connection while it held a message', () => {
  /** The connection drops and comes back: rhea re-attaches the link with no credit. */
  const reconnect = (connection: EventEmitter, receiver: FakeReceiver) => {
    connection.emit('disconnected', { endpoint: undefined, error: undefined, reconnecting: true });
    receiver.credit = 0;
    receiver.emit('receiver_open');
  };

  it('takes the losses it held a message through off its delivery-count, and no others, until the message is accepted', async () => {
    const seen: Array<[string, number, number]> = [];
    let hang = true;
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      seen.push([m.body, m.deliveryCount, m.attempt]);
      if (hang) await new Promise(() => undefined); // held, unsettled, until the connection goes
      return 'accept';
    };
    const deadLettered: string[] = [];
    const { receiver, started, connection } = consumerOn(handler, { prefetch: 2, maxAttempts: 3 }, deadLettered);
    await started;
    // Held through four losses, more than maxAttempts: ActiveMQ raised its delivery-count at each.
    for (let losses = 0; losses < 4; losses++) {
      receiver.deliverBody('held', losses);
      await settle();
      reconnect(connection, receiver);
    }
    hang = false;
    const held = receiver.deliverBody('held', 4);
    await settle();
    expect(held.settled).toEqual(['accepted']);
    expect(seen.at(-1)).toEqual(['held', 0, 1]);
    expect(seen.map(([, count]) => count)).toEqual([0, 0, 0, 0, 0]);
    // One this process never held, arriving with the same count, has used its attempts up (a crash counts).
    const other = receiver.deliverBody('never held here', 4);
    await settle();
    await settle();
    expect(other.settled).toEqual(['accepted']); // its dead letter copy sent, the original taken off
    expect(deadLettered).toEqual(['max attempts exceeded (4 failed deliveries)']);
    // Once accepted, the held one's excuses are forgotten: the same message again counts in full.
    const again = receiver.deliverBody('held', 4);
    await settle();
    await settle();
    expect(again.settled).toEqual(['accepted']);
    expect(deadLettered).toHaveLength(2);
  });

  it('tells apart two messages that carry the same message-id (two systems may both send `reg-1`)', async () => {
    let hang = true;
    const handler = async (): Promise<HandlerOutcome> => {
      if (hang) await new Promise(() => undefined);
      return 'accept';
    };
    const deadLettered: string[] = [];
    const { receiver, started, connection } = consumerOn(handler, { prefetch: 1, maxAttempts: 3 }, deadLettered);
    await started;
    for (let losses = 0; losses < 4; losses++) {
      receiver.deliverBody('from city-a', losses, 'reg-1');
      await settle();
      reconnect(connection, receiver);
    }
    hang = false;
    // City-b's message with the same id was never held here: its 4 failed deliveries count in full.
    const other = receiver.deliverBody('from city-b', 4, 'reg-1');
    await settle();
    await settle();
    expect(other.settled).toEqual(['accepted']);
    expect(deadLettered).toEqual(['max attempts exceeded (4 failed deliveries)']);
    // City-a's, held through the four losses, is still excused.
    const held = receiver.deliverBody('from city-a', 4, 'reg-1');
    await settle();
    expect(held.settled).toEqual(['accepted']);
    expect(deadLettered).toHaveLength(1);
  });

  it(`excuses at most ${MAX_EXCUSED_LOSSES} losses per message: one whose handling keeps ending the connection is dead-lettered in the end`, async () => {
    const handler = async (): Promise<HandlerOutcome> => new Promise(() => undefined);
    const deadLettered: string[] = [];
    const { receiver, started, connection } = consumerOn(handler, { prefetch: 1, maxAttempts: 5 }, deadLettered);
    await started;
    const losses = MAX_EXCUSED_LOSSES + 4;
    for (let n = 0; n < losses; n++) {
      receiver.deliverBody('blocks the event loop', n);
      await settle();
      reconnect(connection, receiver);
    }
    expect(deadLettered).toEqual([]);
    receiver.deliverBody('blocks the event loop', losses); // 24 losses, 20 excused: 4 failed deliveries, attempt 5
    await settle();
    expect(deadLettered).toEqual([]);
    reconnect(connection, receiver);
    receiver.deliverBody('blocks the event loop', losses + 1); // 25 losses: 5 counted, maxAttempts reached
    await settle();
    await settle();
    expect(deadLettered).toEqual([`max attempts exceeded (5 failed deliveries)`]);
  });
});

// An outside review: one system sent 2,000 `expert.changed` of experts the hub does not know. Each was refused for now
// (expert_not_found), retried 4 times with pauses of 0.25 to 2 s, and held its credit slot through every pause: the
// flood kept all 200 slots, and another system's change of its own expert was applied after 25-32 s (0.3 s without
// it). A pause before a retry's hand-back is a wait: it holds no slot, up to maxWaiting, as a wait for its turn does.
describe('QueueConsumer: a message that pauses before its retry is handed back', () => {
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => jest.useRealTimers());

  const floodHandler = (handled: string[]) => async (m: ReceivedMessage): Promise<HandlerOutcome> => {
    handled.push(m.body);
    return m.body.startsWith('flood') ? { retry: 'expert_not_found' } : 'accept';
  };

  it("holds no credit slot while it pauses: another system's message comes and is accepted before any of the flood is handed back", async () => {
    const handled: string[] = [];
    const { receiver, started } = consumerOn(floodHandler(handled), { prefetch: 2, maxWaiting: 8, maxAttempts: 5, retryDelayMs: () => 1_000 });
    await started;
    const flood: Array<{ settled: string[] }> = [];
    for (let i = 0; i < 6; i++) {
      // The broker sends only while the consumer gives credit: with the pauses holding slots, it stopped at 2.
      expect({ sent: i, credit: receiver.credit > 0 }).toEqual({ sent: i, credit: true });
      flood.push(receiver.deliverBody(`flood-${i}`));
      await settle();
    }
    expect(receiver.credit).toBeGreaterThan(0);
    const other = receiver.deliverBody('city-b: its own expert changed');
    await settle();
    expect(other.settled).toEqual(['accepted']);
    expect(handled.at(-1)).toBe('city-b: its own expert changed');
    expect(flood.map((f) => f.settled)).toEqual(flood.map(() => [])); // all 6 still in their pause, unsettled

    // The pauses end: each is handed back as a failed delivery (counted: the broker raises its delivery-count), and
    // its credit goes back to prefetch.
    await jest.advanceTimersByTimeAsync(1_000);
    await settle();
    expect(flood.map((f) => f.settled)).toEqual(flood.map(() => ['modified (failed)']));
    expect(receiver.credit).toBe(2); // prefetch again: nothing held, nothing waits
  });

  it('holds at most prefetch + maxWaiting messages: past that a pausing message holds its slot again', async () => {
    const handled: string[] = [];
    const { receiver, started } = consumerOn(floodHandler(handled), { prefetch: 2, maxWaiting: 3, maxAttempts: 5, retryDelayMs: () => 1_000 });
    await started;
    let sent = 0;
    while (receiver.credit > 0 && sent < 100) {
      receiver.deliverBody(`flood-${sent++}`);
      await settle();
    }
    expect(sent).toBe(2 + 3);
    expect(receiver.credit).toBe(0);
  });

  it('a connection lost during the pause: the message is not settled (the broker brings it back) and its wait is forgotten', async () => {
    const handled: string[] = [];
    const { receiver, started, connection } = consumerOn(floodHandler(handled), { prefetch: 2, maxWaiting: 4, maxAttempts: 5, retryDelayMs: () => 1_000 });
    await started;
    const paused = receiver.deliverBody('flood-0');
    await settle();
    expect(receiver.credit).toBe(2); // 2 + 1 waiting - 1 held
    connection.emit('disconnected', { endpoint: undefined, error: undefined, reconnecting: true });
    receiver.credit = 0;
    receiver.emit('receiver_open');
    expect(receiver.credit).toBe(2); // prefetch only: the wait went with the connection
    await jest.advanceTimersByTimeAsync(1_000);
    await settle();
    expect(paused.settled).toEqual([]); // a delivery of the lost connection cannot be settled: it comes again
    expect(receiver.credit).toBe(2);
  });

  // onSaturated means "nothing can run and nothing can come" (the uplink then gives up every lane's awaited places,
  // and a change waiting behind a failed one runs before it). Messages that only pause before their retry's hand-back
  // end the pause by themselves and free their slots: counted as saturation, a flood of changes of many experts the
  // hub does not know (one lane each, prefetch + maxWaiting of them pausing at once) broke the order of every other
  // system's lanes.
  it('fills the slots while it pauses, but that is no saturation: onSaturated is not told (the pauses end by themselves)', async () => {
    let told = 0;
    const { receiver, started } = consumerOn(floodHandler([]), { prefetch: 2, maxWaiting: 3, maxAttempts: 5, retryDelayMs: () => 1_000, onSaturated: () => void (told += 1) });
    await started;
    const flood: Array<{ settled: string[] }> = [];
    while (receiver.credit > 0 && flood.length < 100) {
      flood.push(receiver.deliverBody(`flood-${flood.length}`));
      await settle();
    }
    expect(flood).toHaveLength(2 + 3); // every slot held, by pauses only
    expect(told).toBe(0);
    await jest.advanceTimersByTimeAsync(1_000);
    await settle();
    expect(flood.map((f) => f.settled)).toEqual(flood.map(() => ['modified (failed)'])); // the pauses ended: no stall
    expect(told).toBe(0);
  });

  it('with the slots held by messages waiting for their turn and one pausing, onSaturated is told only once nothing pauses', async () => {
    let told = 0;
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      if (m.body.startsWith('flood')) return { retry: 'expert_not_found' };
      m.waiting?.(true);
      await new Promise(() => undefined); // waits for its turn for good (its lane's head was handed back)
      return 'accept';
    };
    const { receiver, started } = consumerOn(handler, { prefetch: 2, maxWaiting: 3, maxAttempts: 5, retryDelayMs: () => 1_000, onSaturated: () => void (told += 1) });
    await started;
    receiver.deliverBody('flood-0'); // pauses
    await settle();
    let n = 0;
    while (receiver.credit > 0 && n < 100) {
      receiver.deliverBody(`wait-${n++}`);
      await settle();
    }
    expect(n).toBe(4); // 1 pausing + 4 waiting = prefetch + maxWaiting
    expect(told).toBe(0); // the pause ends and frees its slot
    await jest.advanceTimersByTimeAsync(1_000);
    await settle();
    expect(receiver.credit).toBe(1);
    receiver.deliverBody(`wait-${n++}`);
    await settle();
    expect(told).toBeGreaterThan(0); // 5 waiting for their turn: nothing runs, nothing can come
  });

  it('on the last attempt it does not pause: it is dead-lettered with its reason', async () => {
    const deadLettered: string[] = [];
    const { receiver, started } = consumerOn(floodHandler([]), { prefetch: 2, maxWaiting: 4, maxAttempts: 5, retryDelayMs: () => 1_000 }, deadLettered);
    await started;
    const last = receiver.deliverBody('flood-last', 4);
    await settle();
    await settle();
    expect(last.settled).toEqual(['accepted']);
    expect(deadLettered).toEqual(['retry limit (5) reached: expert_not_found']);
  });
});

describe('QueueConsumer: saturation asked again when a handler of a lost connection ends', () => {
  // After a reconnect the handlers of the lost connection still run and keep their places in the uplink's
  // OrderedByKey; their messages come again (new deliveries, same id) and wait behind them. When such a handler
  // fails, its place is awaited, though what it waits for is already waiting behind it; its settlement is stale.
  // If that was the last thing to happen while the new deliveries hold every slot, nothing asked onSaturated again:
  // the whole uplink stood still until the place's redeliveryWaitMs (30 s) ran out.
  it('a stale handler that ends (its place now awaited) has the consumer ask onSaturated again', async () => {
    const order = new OrderedByKey({ redeliveryWaitMs: 3_600_000 });
    const ran: string[] = [];
    let failFirst!: () => void;
    const firstRuns = new Promise<void>((r) => (failFirst = r));
    const handler = async (m: ReceivedMessage): Promise<HandlerOutcome> => {
      const [key, id] = m.body.split('/') as [string, string];
      const isFirstRun = id === 'a' && ran.length === 0;
      return order.arrive().enter([key], id, async (): Promise<HandlerOutcome> => {
        ran.push(`${id}#${m.deliveryCount}`);
        if (isFirstRun) {
          await firstRuns;
          return { retry: 'expert_not_found' };
        }
        return 'accept';
      }, (o) => o !== 'accept', m.waiting ? { onWait: m.waiting } : {});
    };
    const { receiver, started, connection } = consumerOn(handler, { prefetch: 1, maxWaiting: 1, maxAttempts: 5, onSaturated: () => void order.giveUpAwaited() });
    await started;
    receiver.deliverBody('x/a');
    await settle();
    expect(ran).toEqual(['a#0']); // runs, then the connection goes
    connection.emit('disconnected', { endpoint: undefined, error: undefined, reconnecting: true });
    receiver.credit = 0;
    receiver.emit('receiver_open');
    receiver.deliverBody('x/a', 1); // the same message again: waits behind its own old place
    await settle();
    receiver.deliverBody('x/b'); // waits too: prefetch + maxWaiting waiting, no credit left
    await settle();
    expect(receiver.credit).toBe(0);
    failFirst(); // the old handler fails: its place is awaited, its settlement stale
    for (let i = 0; i < 20; i++) await settle();
    expect(ran).toEqual(['a#0', 'a#0', 'b#0']); // the message again (its loss excused), then b
    order.close();
  });
});

describe('QueueConsumer: deadLetterAll (the mover of the broker dead letters of the uplink)', () => {
  it('dead-letters every message with its reason, whatever its delivery-count or body, without the handler, and accepts it after the copy', async () => {
    const deadLettered: string[] = [];
    let handled = 0;
    const handler = async (): Promise<HandlerOutcome> => {
      handled += 1;
      return 'accept';
    };
    const { receiver, started } = consumerOn(handler, { prefetch: 5, maxAttempts: 5, deadLetterAll: 'broker_dead_lettered: moved' }, deadLettered);
    await started;
    const plain = receiver.deliverBody('{"id":"a"}');
    const exhausted = receiver.deliverBody('{"id":"b"}', 7); // the broker gave up redelivering it: 7 deliveries
    const binary = { settled: receiver.deliver({ body: Buffer.from('not a string') }) };
    for (let i = 0; i < 5; i++) await settle();
    expect(handled).toBe(0);
    expect(deadLettered).toEqual(['broker_dead_lettered: moved', 'broker_dead_lettered: moved', 'broker_dead_lettered: moved']);
    expect([plain.settled, exhausted.settled, binary.settled]).toEqual([['accepted'], ['accepted'], ['accepted']]);
  });
});

describe('QueueConsumer: a dead letter copy the broker refuses', () => {
  // ActiveMQ with a full store (broker.sh: sendFailIfNoSpace) rejects the copy at once, and sends the original handed
  // back to the same link at once: without a pause the mover of DLQ.rts.uplink sent 10,187 copies in 3 s (each
  // logged at error by the hub), against a broker that had no space.
  it('hands the original back (counted) only after a pause, cut short by stop(), and pauses longer while refusals go on', async () => {
    const receiver = new FakeReceiver();
    const connection = Object.assign(new EventEmitter(), { openReceiver: () => receiver, isConnected: () => true }) as unknown as AmqpConnection;
    let sends = 0;
    const deadLetterSender = {
      sendRaw: async () => {
        sends += 1;
        throw new Error('rejected (amqp:resource-limit-exceeded)');
      },
      close: async () => undefined,
    } as unknown as DurableSender;
    const pauses: number[] = [];
    const consumer = new QueueConsumer(connection, {
      queue: 'DLQ.rts.uplink',
      deadLetterQueue: 'rts.dlq',
      handler: async () => 'accept',
      deadLetterSender,
      handlerTimeoutMs: null,
      prefetch: 2,
      deadLetterAll: 'broker_dead_lettered: moved',
      deadLetterRetryPauseMs: (streak) => (pauses.push(streak), 600_000),
    });
    const started = consumer.start(1000);
    receiver.emit('receiver_open');
    await started;
    const first = receiver.deliverBody('{"id":"a"}').settled;
    const second = receiver.deliverBody('{"id":"b"}').settled;
    for (let i = 0; i < 10; i++) await settle();
    expect(sends).toBe(2);
    expect(first).toEqual([]); // held through the pause, not handed back at once
    expect(second).toEqual([]);
    expect(pauses).toEqual([0, 1]);
    await consumer.stop(1000);
    expect(first).toEqual(['modified (failed)']);
    expect(second).toEqual(['modified (failed)']);
  });
});
