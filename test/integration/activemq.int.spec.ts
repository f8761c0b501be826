// The AMQP adapter layer against a real ActiveMQ Classic broker (test/support/activemq.ts).
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { create_container, types, type Delivery, type EventContext, type Message } from 'rhea';
import {
  AmqpConnection,
  DLQ_AT,
  DLQ_ATTEMPTS,
  DLQ_REASON,
  DLQ_SOURCE_QUEUE,
  DurableSender,
  QueueConsumer,
  type HandlerOutcome,
  type ReceivedMessage,
} from '../../src/adapters/amqp';
import { receivedPropertyType } from '../../src/adapters/amqp/typed-properties';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { startBroker, type TestBroker } from '../support/activemq';

jest.setTimeout(60000);

const queueName = (label: string) => `rts.test.${label}.${randomUUID().slice(0, 8)}`;

function connect(broker: TestBroker, extra: Partial<Parameters<typeof AmqpConnection.open>[0]> = {}): AmqpConnection {
  return AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }], ...extra });
}

/** Collects messages from a queue through a QueueConsumer that accepts everything. */
async function drain(connection: AmqpConnection, queue: string, count: number, timeoutMs = 10000): Promise<ReceivedMessage[]> {
  const got: ReceivedMessage[] = [];
  let done!: () => void;
  const enough = new Promise<void>((r) => (done = r));
  const consumer = new QueueConsumer(connection, {
    queue,
    deadLetterQueue: `${queue}.unused-dlq`,
    handler: async (m) => {
      got.push(m);
      if (got.length >= count) done();
      return 'accept';
    },
  });
  await consumer.start();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([enough, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  await consumer.stop();
  return got;
}

function until(predicate: () => boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('ActiveMQ over AMQP 1.0 (rhea adapter)', () => {
  let broker: TestBroker;
  let connection: AmqpConnection;
  let sender: DurableSender;

  beforeAll(async () => {
    const t0 = Date.now();
    broker = await startBroker();
    // eslint-disable-next-line no-console
    console.info(`ActiveMQ ready on ${broker.url} in ${Date.now() - t0} ms`);
    connection = connect(broker);
    await connection.waitConnected();
    sender = new DurableSender(connection);
  });

  afterAll(async () => {
    await sender?.close();
    await connection?.close();
    await broker?.destroy();
  });

  it('round-trips a durable JSON string body with application properties, failing over past a dead endpoint', async () => {
    // First endpoint refuses connections: the connection must rotate to the live one.
    const dead = { host: '127.0.0.1', port: 1 };
    const failover = AmqpConnection.open({ endpoints: [dead, { host: broker.host, port: broker.amqpPort }], initialReconnectDelayMs: 20 });
    const connected = new Promise<number>((r) => failover.once('connected', (e) => r(e.endpoint.port)));
    await failover.waitConnected(10000);
    expect(await connected).toBe(broker.amqpPort);

    const queue = queueName('roundtrip');
    const body = JSON.stringify({ kind: 'ExpertProfileChanged', expertId: 'e-1', specialties: ['cardiology'], note: 'æøå ✓' });
    const ownSender = new DurableSender(failover);
    await ownSender.send(queue, {
      body,
      messageId: 'm-1',
      correlationId: 'c-1',
      applicationProperties: { messageId: 'm-1', type: 'ExpertProfileChanged', version: 2, systemId: 'sys-a', correlationId: 'c-1' },
    });

    const [received] = await drain(failover, queue, 1);
    expect(received).toBeDefined();
    expect(typeof received!.body).toBe('string');
    expect(JSON.parse(received!.body)).toEqual(JSON.parse(body));
    expect(received!.applicationProperties).toMatchObject({
      messageId: 'm-1',
      type: 'ExpertProfileChanged',
      version: 2,
      systemId: 'sys-a',
      correlationId: 'c-1',
    });
    expect(received!.correlationId).toBe('c-1');
    expect(received!.raw.durable).toBe(true);
    expect(received!.deliveryCount).toBe(0);
    expect(received!.attempt).toBe(1);

    // Accepted means gone: nothing is left for the next consumer.
    expect(await drain(failover, queue, 1, 700)).toHaveLength(0);
    await ownSender.close();
    await failover.close();
  });

  it('redelivers a message that was never accepted to a new consumer after the first connection closes', async () => {
    const queue = queueName('manual-accept');
    await sender.send(queue, { body: '{"n":1}', applicationProperties: { messageId: 'only-one' } });

    // Consumer 1: takes the message and never settles it, then its connection goes away.
    const container = create_container({ id: `holder-${randomUUID()}` });
    const holder = container.connect({ host: broker.host, port: broker.amqpPort, reconnect: false });
    let held: Message | undefined;
    let heldDelivery: Delivery | undefined;
    holder.open_receiver({ source: { address: queue }, autoaccept: false, credit_window: 1 });
    holder.on('message', (context: EventContext) => {
      held = context.message;
      heldDelivery = context.delivery;
    });
    await until(() => held !== undefined);
    expect(heldDelivery?.settled).toBe(false);
    await new Promise<void>((r) => {
      holder.once('connection_close', () => r());
      holder.close();
    });

    const [again] = await drain(connection, queue, 1);
    expect(again?.body).toBe('{"n":1}');
    expect(again?.applicationProperties['messageId']).toBe('only-one');
    expect(await drain(connection, queue, 1, 500)).toHaveLength(0);
  });

  it('retries with delivery-count raised by the broker and dead-letters after maxAttempts with reason, source and attempts', async () => {
    const queue = queueName('retry');
    const dlq = queueName('dlq');
    const seenCounts: number[] = [];
    const consumer = new QueueConsumer(connection, {
      queue,
      deadLetterQueue: dlq,
      maxAttempts: 3,
      prefetch: 1,
      now: () => new Date('2030-01-02T03:04:05.000Z'),
      handler: async (m) => {
        seenCounts.push(m.deliveryCount);
        return { retry: 'event store unavailable' };
      },
    });
    await consumer.start();
    await sender.send(queue, { body: '{"try":"me"}', correlationId: 'corr-9', applicationProperties: { messageId: 'r-1', type: 'T' } });

    const [dead] = await drain(connection, dlq, 1);
    await consumer.stop();
    expect(seenCounts).toEqual([0, 1, 2]);
    expect(dead).toBeDefined();
    expect(dead!.body).toBe('{"try":"me"}');
    expect(dead!.correlationId).toBe('corr-9');
    expect(dead!.raw.durable).toBe(true);
    expect(dead!.applicationProperties).toMatchObject({
      messageId: 'r-1',
      type: 'T',
      [DLQ_SOURCE_QUEUE]: queue,
      [DLQ_ATTEMPTS]: 3,
      [DLQ_AT]: '2030-01-02T03:04:05.000Z',
    });
    expect(String(dead!.applicationProperties[DLQ_REASON])).toContain('event store unavailable');
    // The original is gone from the source queue.
    expect(await drain(connection, queue, 1, 500)).toHaveLength(0);
  });

  it('dead-letters a message just under the broker\'s frame whose copy would not fit: the body replaced by a note, the connection kept', async () => {
    // Before: the copy (the body and the x-dlq-* properties) was over the 1 MiB frame; the broker closed the
    // consumer's connection at each try, the message came back, and the consumer reconnected for ever.
    const queue = queueName('big');
    const dlq = queueName('bigdlq');
    const own = connect(broker);
    await own.waitConnected();
    let losses = 0;
    own.on('disconnected', () => void (losses += 1));
    const handled: number[] = [];
    const consumer = new QueueConsumer(own, {
      queue,
      deadLetterQueue: dlq,
      prefetch: 1,
      handler: async (m) => {
        handled.push(m.body.length);
        return { deadLetter: 'malformed_jose: the body is not a compact JWE' };
      },
    });
    await consumer.start();
    const body = 'x'.repeat(1_048_100);
    await sender.send(queue, { body, applicationProperties: { messageId: 'big-1', type: 'expert.changed' } });
    const small = 'y'.repeat(1_000);
    await sender.send(queue, { body: small, applicationProperties: { messageId: 'small-1' } });
    const dead = await drain(connection, dlq, 2, 20_000);
    await consumer.stop();
    await own.close();
    expect({ losses, handled }).toEqual({ losses: 0, handled: [1_048_100, 1_000] });
    const [big, kept] = dead;
    const digest = createHash('sha256').update(body).digest('hex');
    expect(JSON.parse(big!.body)).toEqual({ bodyNotKept: { bytes: 1_048_100, sha256: digest } });
    expect(big!.applicationProperties).toMatchObject({ messageId: 'big-1', type: 'expert.changed', [DLQ_SOURCE_QUEUE]: queue });
    expect(String(big!.applicationProperties[DLQ_REASON])).toMatch(/^body_not_kept: the body \(1048100 bytes, sha256 [0-9a-f]{64}\) .*; malformed_jose: the body is not a compact JWE$/);
    // A message that fits keeps its body as it was.
    expect({ body: kept!.body, reason: kept!.applicationProperties[DLQ_REASON] }).toEqual({ body: small, reason: 'malformed_jose: the body is not a compact JWE' });
    expect(await drain(connection, queue, 1, 500)).toHaveLength(0);
  });

  it('hands a message answered later back without counting an attempt, past maxAttempts, until it is accepted', async () => {
    // The hub's store down for longer than maxAttempts quick retries: the message is not the cause and must not be
    // dead-lettered (a database outage of a minute dead-lettered every uplink message in flight).
    const queue = queueName('later');
    const dlq = queueName('dlq-later');
    const seenCounts: number[] = [];
    const events: string[] = [];
    const consumer = new QueueConsumer(connection, {
      queue,
      deadLetterQueue: dlq,
      maxAttempts: 3,
      prefetch: 1,
      laterPauseMs: () => 50,
      onOutcome: (event) => events.push(event.kind),
      handler: async (m) => {
        seenCounts.push(m.deliveryCount);
        return seenCounts.length <= 6 ? { later: 'transient failure: storage_unavailable' } : 'accept';
      },
    });
    await consumer.start();
    await sender.send(queue, { body: '{"wait":"for me"}', applicationProperties: { messageId: 'l-1' } });
    const deadline = Date.now() + 20_000;
    while (!events.includes('accepted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await consumer.stop();
    expect(events).toEqual(['deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'accepted']);
    expect(seenCounts).toEqual([0, 0, 0, 0, 0, 0, 0]); // no attempt counted
    expect(await drain(connection, dlq, 1, 500)).toHaveLength(0);
  });

  it('does not count lost connections against the messages it held: held through more losses than maxAttempts, each is handled once', async () => {
    // A broker failover storm: ActiveMQ raises the delivery-count of every message the lost connection held (those
    // only prefetched too). Counted as failed attempts, they were dead-lettered without one failed handling.
    const queue = queueName('losses');
    const dlq = queueName('dlq-losses');
    const own = connect(broker, { initialReconnectDelayMs: 20, maxReconnectDelayMs: 100 });
    await own.waitConnected();
    const bodies = ['{"n":1}', '{"n":2}', '{"n":3}'];
    const seen: Array<{ body: string; counted: number; broker: number }> = [];
    let hold = true;
    const handled: string[] = [];
    const told = (when: string) => (error: Error) => {
      throw new Error(`${when}: ${error.message}; seen ${JSON.stringify(seen)}, handled ${handled.length}`);
    };
    const consumer = new QueueConsumer(own, {
      queue,
      deadLetterQueue: dlq,
      maxAttempts: 3,
      prefetch: 10,
      handlerTimeoutMs: null,
      handler: async (m) => {
        seen.push({ body: m.body, counted: m.deliveryCount, broker: Number(m.raw.delivery_count ?? 0) });
        while (hold) await sleep(20);
        handled.push(m.body);
        return 'accept';
      },
    });
    try {
      await consumer.start();
      // Two with the sender's message-id, one without (told apart by its body and properties).
      await sender.send(queue, { body: bodies[0]!, messageId: randomUUID() });
      await sender.send(queue, { body: bodies[1]!, messageId: randomUUID() });
      await sender.sendRaw(queue, { body: bodies[2]!, application_properties: { kind: 'no id' } });
      const losses = 4;
      for (let loss = 1; loss <= losses; loss++) {
        await until(() => seen.length === bodies.length * loss).catch(told(`before loss ${loss}`));
        // The event, not isConnected(): the reconnect may be back before a poll would see the connection down.
        const dropped = new Promise<void>((r) => own.once('disconnected', () => r()));
        // (with an error: rhea listens for the socket's error and end, not for a close alone)
        (own.raw as unknown as { socket?: { destroy(error: Error): void } }).socket?.destroy(new Error('test: the connection is lost'));
        await dropped;
        await own.waitConnected();
      }
      await until(() => seen.length === bodies.length * (losses + 1)).catch(told('after the losses'));
      hold = false;
      await until(() => handled.length >= (losses + 1) * bodies.length).catch(told('handled'));
      // The broker counted every loss; the consumer took them all off: no attempt used, nothing dead-lettered.
      expect(seen.slice(-bodies.length).map((s) => s.broker)).toEqual([losses, losses, losses]);
      expect(seen.map((s) => s.counted)).toEqual(Array(seen.length).fill(0));
      expect(await drain(connection, dlq, 1, 500)).toHaveLength(0);
      expect(await drain(connection, queue, 1, 500)).toHaveLength(0);
    } finally {
      await consumer.stop();
      await own.close();
    }
  });

  it('settles each message as its own handler said, when messages with different outcomes are settled at once', async () => {
    // rhea 3.0.5 sends the settlements of one tick as ranges of consecutive deliveries, and gave the second delivery
    // of a range the first one's outcome: a retry settled just after an accept was accepted, and the message lost.
    const queue = queueName('mixed-outcomes');
    const count = 40;
    const attempts = new Map<number, number>();
    let arrived = 0;
    let release!: () => void;
    const allThere = new Promise<void>((r) => (release = r));
    const consumer = new QueueConsumer(connection, {
      queue,
      deadLetterQueue: `${queue}.dlq`,
      maxAttempts: 5,
      prefetch: count,
      handler: async (m): Promise<HandlerOutcome> => {
        const { n } = JSON.parse(m.body) as { n: number };
        const first = !attempts.has(n);
        attempts.set(n, (attempts.get(n) ?? 0) + 1);
        if (!first) return 'accept';
        if (++arrived === count) release();
        // The first calls all resolve together (as a group commit resolves its appends), in arrival order.
        await allThere;
        // Every third message is retried once, every fifth handed back for later once: each lands between accepts.
        if (n % 3 === 1) return { retry: 'too early' };
        if (n % 5 === 2) return { later: 'store unavailable' };
        return 'accept';
      },
      laterPauseMs: () => 0,
    });
    await Promise.all(Array.from({ length: count }, (_, n) => sender.send(queue, { body: JSON.stringify({ n }) })));
    await consumer.start();
    const expected = new Map(Array.from({ length: count }, (_, n) => [n, n % 3 === 1 || n % 5 === 2 ? 2 : 1]));
    await until(() => [...expected].every(([n, times]) => (attempts.get(n) ?? 0) >= times), 15000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500)); // and nothing more comes
    await consumer.stop(500);
    expect(Object.fromEntries(attempts)).toEqual(Object.fromEntries(expected));
    expect(await drain(connection, queue, 1, 500)).toEqual([]);
  });

  it('does not let a poison message block the good ones behind it', async () => {
    const queue = queueName('poison');
    const dlq = queueName('poison-dlq');
    const accepted: string[] = [];
    let poisonCalls = 0;
    let hangingCalls = 0;
    const consumer = new QueueConsumer(connection, {
      queue,
      deadLetterQueue: dlq,
      maxAttempts: 3,
      prefetch: 2,
      handlerTimeoutMs: 1500,
      handler: async (m): Promise<HandlerOutcome> => {
        const { kind, n } = JSON.parse(m.body) as { kind: string; n: number };
        if (kind === 'throws') {
          poisonCalls += 1;
          throw Object.assign(new Error('cannot file report for patient 251248-1234'), { code: 'FILING_FAILED' });
        }
        if (kind === 'hangs') {
          hangingCalls += 1;
          return new Promise<never>(() => undefined);
        }
        if (kind === 'bad-schema') return { deadLetter: 'schema violation: missing systemId' };
        accepted.push(`good-${n}`);
        return 'accept';
      },
    });
    await sender.send(queue, { body: JSON.stringify({ kind: 'hangs', n: 0 }) });
    await sender.send(queue, { body: JSON.stringify({ kind: 'throws', n: 0 }) });
    await sender.send(queue, { body: JSON.stringify({ kind: 'bad-schema', n: 0 }) });
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => sender.send(queue, { body: JSON.stringify({ kind: 'good', n }) })));
    await consumer.start();

    await until(() => accepted.length === 6, 20000);
    const dead = await drain(connection, dlq, 3, 20000);
    await consumer.stop(500);

    expect(accepted.sort()).toEqual(['good-1', 'good-2', 'good-3', 'good-4', 'good-5', 'good-6']);
    const reasons = Object.fromEntries(dead.map((d) => [JSON.parse(d.body).kind as string, d.applicationProperties]));
    expect(Object.keys(reasons).sort()).toEqual(['bad-schema', 'hangs', 'throws']);
    expect(reasons['bad-schema']).toMatchObject({ [DLQ_ATTEMPTS]: 1, [DLQ_REASON]: 'schema violation: missing systemId' });
    // The handler's name and code, never its message: the reason is listed to operators, and may name a patient.
    expect(reasons['throws']![DLQ_REASON]).toBe('retry limit (3) reached: handler threw: Error (FILING_FAILED)');
    expect(reasons['throws']![DLQ_ATTEMPTS]).toBe(3);
    expect(String(reasons['hangs']![DLQ_REASON])).toContain('timed out');
    expect(poisonCalls).toBe(3);
    expect(hangingCalls).toBe(3);
  });

  it('keeps accepted durable messages across a graceful stop and a crash, and clients reconnect', async () => {
    const own = await startBroker();
    try {
      const queue = queueName('persist');
      const conn = connect(own, { initialReconnectDelayMs: 50, maxReconnectDelayMs: 250 });
      const disconnects: boolean[] = [];
      conn.on('disconnected', (e) => disconnects.push(e.reconnecting));
      await conn.waitConnected();
      const out = new DurableSender(conn);
      // A consumer attached before the restarts must get its credit back after rhea re-attaches it.
      const liveQueue = queueName('live');
      const liveSeen: string[] = [];
      const live = new QueueConsumer(conn, {
        queue: liveQueue,
        deadLetterQueue: `${liveQueue}.dlq`,
        prefetch: 2,
        handler: async (m) => {
          liveSeen.push(m.body);
          return 'accept';
        },
      });
      await live.start();
      await out.send(queue, { body: '{"n":1}', applicationProperties: { messageId: 'p-1' } });
      await out.send(queue, { body: '{"n":2}', applicationProperties: { messageId: 'p-2' } });

      await own.stop();
      await until(() => !conn.isConnected());
      const restarted = await own.startAgain();
      await until(() => conn.isConnected());
      await out.send(queue, { body: '{"n":3}', applicationProperties: { messageId: 'p-3' } });

      // A crash (SIGKILL): accepted messages were fsynced before the broker said `accepted`.
      await restarted.kill();
      await until(() => !conn.isConnected());
      // Sent while the broker is down: queued for lack of credit, sent after the reconnect.
      const late = out.send(queue, { body: '{"n":4}', applicationProperties: { messageId: 'p-4' } });
      const again = await restarted.startAgain();
      try {
        await late;
        const got = await drain(conn, queue, 4);
        expect(got.map((m) => m.applicationProperties['messageId'])).toEqual(['p-1', 'p-2', 'p-3', 'p-4']);
        expect(disconnects.every((reconnecting) => reconnecting)).toBe(true);
        expect(disconnects.length).toBeGreaterThanOrEqual(2);
        await out.send(liveQueue, { body: '"after two restarts"' });
        await until(() => liveSeen.length === 1);
        expect(liveSeen).toEqual(['"after two restarts"']);
      } finally {
        await live.stop();
        await out.close();
        await conn.close();
        await again.destroy();
      }
      // The last broker owns the data dir its first made (startAgain hands it on), so nothing is left in /tmp.
      expect(existsSync(own.dataDir)).toBe(false);
    } finally {
      await own.destroy();
    }
  });

  it('numeric properties arrive as AMQP int (Java JMS reads them), and dead letters and replays keep the sender\'s types', async () => {
    // rhea made every positive integer a uint: qpid-jms getIntProperty("version") threw on it, and a Java sender's
    // int came back from the dead letter queue as UnsignedInteger.
    const INT = /^(Small)?Int$/;
    const queue = queueName('types');
    await sender.send(queue, { body: '{}', applicationProperties: { messageId: 't-1', version: 1 } });
    const [plain] = await drain(connection, queue, 1);
    expect(receivedPropertyType(plain!.raw, 'version')).toMatch(INT);

    const source = queueName('types-src');
    const dlq = queueName('types-dlq');
    const target = queueName('types-replayed');
    const consumer = new QueueConsumer(connection, { queue: source, deadLetterQueue: dlq, handler: async () => ({ deadLetter: 'test' }) });
    await consumer.start();
    const fromJava = (id: string): Message => ({
      body: '{}',
      durable: true,
      application_properties: { messageId: id, version: types.wrap_int(1), flags: types.wrap_uint(5), seq: types.wrap_long(7) },
    });
    await sender.sendRaw(source, fromJava('t-2'));
    await sender.sendRaw(source, fromJava('t-3'));
    const deadLetters = new AmqpDeadLetterQueue(connection, sender, { queue: dlq });
    for (let i = 0; (await deadLetters.browse(10)).length < 2; i++) {
      if (i > 200) throw new Error('the two dead letters did not arrive');
      await sleep(50);
    }
    await consumer.stop();
    expect((await deadLetters.moveBack({ property: 'messageId', value: 't-3' }, target, 1)).map((d) => d.envelopeId)).toEqual(['t-3']);

    const [dead] = await drain(connection, dlq, 1);
    const [replayed] = await drain(connection, target, 1);
    const typesOf = (m: Message, keys: string[]) => Object.fromEntries(keys.map((k) => [k, receivedPropertyType(m, k)?.replace(/^Small|0$/g, '')]));
    expect(typesOf(dead!.raw, ['version', 'flags', 'seq', DLQ_ATTEMPTS])).toEqual({ version: 'Int', flags: 'Uint', seq: 'Long', [DLQ_ATTEMPTS]: 'Int' });
    expect(typesOf(replayed!.raw, ['version', 'flags', 'seq', 'x-replay-count'])).toEqual({ version: 'Int', flags: 'Uint', seq: 'Long', 'x-replay-count': 'Int' });
  });
});
