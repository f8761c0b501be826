// The dead letter queue adapter on a real ActiveMQ: browsing answers at once whether the queue holds fewer or more
// messages than asked for (ActiveMQ leaves a drain unanswered once deliveries used up the credit), taking one
// message back finds it among many, removing one (a discard) takes only that one and only once its record is
// stored, a replay and a discard of the same message get it once between them, and no broker is an
// UnavailableError (503 over HTTP), not an internal error.
import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import type { Message } from 'rhea';
import { DurableSender } from '../../src/adapters/amqp';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { DeadLetterService, type DeadLetter } from '../../src/application/directory/dead-letter-operations';
import { UnavailableError } from '../../src/domain/shared/errors';
import type { TestBroker } from '../support/activemq';
import { connect, failureOf, useBroker } from './hub-support';

jest.setTimeout(60_000);

const amq = useBroker();

const fill = (queue: string, from: number, count: number) =>
  Promise.all(Array.from({ length: count }, (_, i) => amq.sender.sendRaw(queue, { body: `{"n":${from + i}}`, durable: true, application_properties: { rts_dlq_id: `d-${from + i}`, messageId: `m-${from + i}` } })));

it('browses a queue holding fewer, as many and more messages than asked for, each in well under the timeout', async () => {
  const queue = 'test.dlq.browse';
  // A short timeout: a browse that waits for a drain answer that never comes fails the test.
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 3000 });
  expect(await dlq.browse(10)).toEqual([]);
  await fill(queue, 0, 5);
  expect((await dlq.browse(10)).map((d) => d.id)).toEqual(['d-0', 'd-1', 'd-2', 'd-3', 'd-4'].map(String));
  await fill(queue, 5, 145);
  const some = await dlq.browse(100);
  expect(some).toHaveLength(100);
  expect(some[0]!.id).toBe('d-0');
  expect(await dlq.browse(150)).toHaveLength(150);
  expect(await dlq.browse(1000)).toHaveLength(150); // browsing consumed nothing
});

it('takes one message back from among many, and only that one', async () => {
  const queue = 'test.dlq.move';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 3000 });
  await fill(queue, 0, 120);
  const moved = await dlq.moveBack({ property: 'rts_dlq_id', value: 'd-77' }, 'test.dlq.source', 1);
  expect(moved.map((d) => d.id)).toEqual(['d-77']);
  expect(await dlq.browse(1000)).toHaveLength(119);
  const back = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: 'test.dlq.source', timeoutMs: 3000 });
  expect((await back.browse(10)).map((d) => d.envelopeId)).toEqual(['m-77']);
});

it('sends the copies of one dead letter (the same rts_dlq_id and body: one sent again after a lost accept) back once, and takes them all off', async () => {
  const queue = 'test.dlq.copies';
  const source = 'test.dlq.copies.source';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 3000 });
  const copy = (body: string, reason: string): Message => ({ body, durable: true, message_id: 'm-1', application_properties: { rts_dlq_id: 'dup-1', 'x-dlq-reason': reason, 'x-dlq-source-queue': source } });
  await amq.sender.sendRaw(queue, copy('{"n":1}', 'bad_json'));
  await amq.sender.sendRaw(queue, copy('{"n":1}', 'max attempts exceeded'));
  // Under the same id another body: another message (anyone may write to the dead letter queue), sent back too.
  await amq.sender.sendRaw(queue, copy('{"n":2}', 'bad_json'));
  expect((await new DeadLetterService({ queue: dlq, store: new InMemoryEventStore(), clock: { now: () => DateTime.utc() }, ids: { uuid: randomUUID }, replayTargets: { resolve: async () => ({ kind: 'uplink' }) } }).list()).map((d) => d.body)).toEqual(['{"n":1}', '{"n":2}']);

  const moved = await dlq.moveBack({ property: 'rts_dlq_id', value: 'dup-1' }, source, 100);
  expect(moved.map((d) => [d.body, d.reason])).toEqual([['{"n":1}', 'bad_json'], ['{"n":2}', 'bad_json']]);
  expect(await dlq.browse(10)).toEqual([]);
  const back = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: source, timeoutMs: 3000 });
  expect((await back.browse(10)).map((d) => d.body)).toEqual(['{"n":1}', '{"n":2}']);
});

/** A promise and the function that settles it: to hold one side of a race where the test wants it. */
const gate = () => {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

describe('removing a dead letter (a discard)', () => {
  it('takes that one message off the queue once its record is stored, and only that one', async () => {
    const queue = 'test.dlq.remove';
    const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 3000 });
    await fill(queue, 0, 120);
    const recorded: string[][] = [];
    const removed = await dlq.remove({ property: 'rts_dlq_id', value: 'd-42' }, 100, async (found) => void recorded.push(found.map((d) => d.id)));
    expect(recorded).toEqual([['d-42']]);
    expect(removed.map((d) => d.id)).toEqual(['d-42']);
    const left = (await dlq.browse(1000)).map((d) => d.id);
    expect(left).toHaveLength(119);
    expect(left).not.toContain('d-42');
    expect(left).toContain('d-41');
    expect(left).toContain('d-43');
    // Gone for good: a second take finds nothing and records nothing.
    expect(await dlq.remove({ property: 'rts_dlq_id', value: 'd-42' }, 100, async () => void recorded.push(['again']))).toEqual([]);
    expect(recorded).toHaveLength(1);
  });

  it('leaves the message on the queue when its record cannot be stored', async () => {
    const queue = 'test.dlq.remove-fails';
    const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 3000 });
    await fill(queue, 0, 3);
    const error = await failureOf(dlq.remove({ property: 'messageId', value: 'm-1' }, 100, async () => Promise.reject(new UnavailableError('storage_unavailable', 'disk full'))));
    expect(error).toMatchObject({ code: 'storage_unavailable' });
    expect((await dlq.browse(10)).map((d) => d.id)).toEqual(['d-0', 'd-1', 'd-2']);
  });

  it('a replay and a discard of the same message at once: whichever takes it first gets it, the other finds nothing', async () => {
    const queue = 'test.dlq.race';
    const source = 'test.dlq.race-source';
    const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
    const back = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: source, timeoutMs: 5000 });
    await fill(queue, 0, 3);

    // The discard holds d-0 while it stores its record: the replay meanwhile gets nothing.
    const storing = gate();
    const held = gate();
    const discard = dlq.remove({ property: 'rts_dlq_id', value: 'd-0' }, 100, async () => {
      held.open();
      await storing.opened;
    });
    await held.opened;
    expect(await dlq.moveBack({ property: 'rts_dlq_id', value: 'd-0' }, source, 100)).toEqual([]);
    storing.open();
    expect((await discard).map((d) => d.id)).toEqual(['d-0']);
    expect(await back.browse(10)).toEqual([]);

    // The replay holds d-1 while its copy is sent: the discard meanwhile gets nothing and records nothing.
    const sending = gate();
    const sent = gate();
    const slowSender = new (class extends DurableSender {
      override async sendRaw(to: string, message: Message): Promise<void> {
        sent.open();
        await sending.opened;
        return super.sendRaw(to, message);
      }
    })(amq.connection);
    try {
      const replaying = new AmqpDeadLetterQueue(amq.connection, slowSender, { queue, timeoutMs: 5000 });
      const replay = replaying.moveBack({ property: 'rts_dlq_id', value: 'd-1' }, source, 100);
      await sent.opened;
      const recorded: DeadLetter[] = [];
      expect(await dlq.remove({ property: 'rts_dlq_id', value: 'd-1' }, 100, async (found) => void recorded.push(...found))).toEqual([]);
      expect(recorded).toEqual([]);
      sending.open();
      expect((await replay).map((d) => d.id)).toEqual(['d-1']);
    } finally {
      await slowSender.close();
    }
    expect((await back.browse(10)).map((d) => d.envelopeId)).toEqual(['m-1']);
    expect((await dlq.browse(10)).map((d) => d.id)).toEqual(['d-2']);
  });

  it('through the use case: the discard records while it holds the message, and the replay racing it answers dead_letter_taken', async () => {
    const queue = 'test.dlq.race-service';
    const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
    await Promise.all(
      ['0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e10', '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e11'].map((id, i) =>
        amq.sender.sendRaw(queue, { body: '{"n":1}', durable: true, application_properties: { rts_dlq_id: id, messageId: `6f1d2c3b-0000-4000-8000-00000000000${i}`, 'x-dlq-source-queue': 'test.dlq.race-service-source', 'x-dlq-reason': 'unknown_system: x' } }),
      ),
    );
    const store = new InMemoryEventStore();
    const appending = gate();
    const appendHeld = gate();
    const slowStore = Object.create(store) as InMemoryEventStore;
    slowStore.appendToStream = async (...args: Parameters<InMemoryEventStore['appendToStream']>) => {
      appendHeld.open();
      await appending.opened;
      return store.appendToStream(...args);
    };
    const service = new DeadLetterService({
      queue: dlq,
      store: slowStore,
      clock: { now: () => DateTime.utc() },
      ids: { uuid: () => randomUUID() },
      replayTargets: { resolve: async () => ({ kind: 'uplink' }) },
    });
    const id = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e10';
    const discard = service.discard(id, { by: 'ops-7', reason: 'a duplicate' });
    await appendHeld.opened;
    await expect(service.replay(id, { by: 'ops-8' })).rejects.toMatchObject({ code: 'dead_letter_taken', kind: 'conflict' });
    appending.open();
    expect(await discard).toMatchObject({ removed: 1, event: { by: 'ops-7', deadLetterIds: [id] } });
    await expect(service.replay(id, { by: 'ops-8' })).rejects.toMatchObject({ code: 'dead_letter_discarded' });
    const events = await store.readAll({ after: 0n, maxCount: 100 });
    expect(events.map((e) => e.type).sort()).toEqual(['DeadLetterDiscardLinked', 'DeadLetterDiscarded']);
    expect((await dlq.browse(10)).map((d) => d.deadLetterId)).toEqual(['0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e11']);
  });

  it('a replay records no CPR number from the sender\'s x-dlq-reason, and earlier replay records are shown without one', async () => {
    const queue = 'test.dlq.replay-reason';
    const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
    const id = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e20';
    const envelopeId = '6f1d2c3b-0000-4000-8000-000000000020';
    await amq.sender.sendRaw(queue, { body: '{"n":1}', durable: true, application_properties: { rts_dlq_id: id, messageId: envelopeId, 'x-dlq-source-queue': 'test.dlq.replay-reason-source', 'x-dlq-reason': 'bad_schema: patient 251248-1234 unknown' } });
    const store = new InMemoryEventStore();
    const service = new DeadLetterService({ queue: dlq, store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => randomUUID() }, replayTargets: { resolve: async () => ({ kind: 'uplink' }) } });
    const replayed = await service.replay(id, { by: 'ops-7' });
    expect(replayed.event).toMatchObject({ deadLetterReason: null, moved: 1 });
    const stored = await store.readAll({ after: 0n, maxCount: 100 });
    expect(JSON.stringify(stored.map((e) => e.data))).not.toMatch(/251248/);
    // A replay recorded by an older build, with the reason as the sender wrote it.
    await store.appendToStream(`dead-letter-${envelopeId}`, [{ id: randomUUID(), type: 'DeadLetterReplayed', data: { ...replayed.event, deadLetterReason: 'bad_schema: patient 251248-1234 unknown' } }], { expectedVersion: 'any' });
    const history = await service.history(envelopeId);
    expect(history.replays).toHaveLength(2);
    expect(history.replays.map((r) => r.deadLetterReason)).toEqual([null, null]);
  });
});

it("takes a dead letter with neither of the hub's ids by the message id its sender set: a string, one in ActiveMQ's own form, digits", async () => {
  // A system that dead-letters a message itself, or any client writing to the queue, may set neither rts_dlq_id nor
  // an envelope id; such a message was refused (409 dead_letter_not_selectable) and stayed on the queue.
  const queue = 'test.dlq.by-message-id';
  const source = 'test.dlq.by-message-id-source';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
  const from = { 'x-dlq-source-queue': source };
  const sent: Array<[string, Message['message_id'] | undefined]> = [
    ['a string', 'sender-7'],
    ["ActiveMQ's form", 'ID:custom-8'],
    ['an unsigned long', 42],
    ['a string of digits', '4711'],
    ['no id at all', undefined],
    ['a string again', 'sender-7'],
    ['the one a string resembles', 'ID:sender-9x'],
  ];
  for (const [body, messageId] of sent) {
    await amq.sender.sendRaw(queue, { body, durable: true, ...(messageId === undefined ? {} : { message_id: messageId }), application_properties: from });
  }
  const store = new InMemoryEventStore();
  const service = new DeadLetterService({ queue: dlq, store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => randomUUID() }, replayTargets: { resolve: async () => ({ kind: 'uplink' }) } });
  const bodies = async (q: AmqpDeadLetterQueue) => (await q.browse(100)).map((d) => d.body);
  expect((await dlq.browse(100)).map((d) => [d.id, d.deadLetterId, d.envelopeId])).toEqual([
    ['sender-7', null, null],
    ['ID:custom-8', null, null],
    ['42', null, null],
    ['4711', null, null],
    [expect.stringMatching(/^c-[a-p]{24}$/), null, null],
    ['sender-7', null, null],
    ['ID:sender-9x', null, null],
  ]);

  // Every copy with that id, as by envelope id; the rest stay.
  expect(await service.replay('sender-7', { by: 'ops-7' })).toMatchObject({ moved: 2, sourceQueue: source });
  const back = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: source, timeoutMs: 5000 });
  expect(await bodies(back)).toEqual(['a string', 'a string again']);
  expect(await service.discard('ID:custom-8', { by: 'ops-7', reason: 'garbage' })).toMatchObject({ removed: 1 });
  expect(await service.discard('42', { by: 'ops-7', reason: 'garbage' })).toMatchObject({ removed: 1 });
  expect(await service.discard('4711', { by: 'ops-7', reason: 'garbage' })).toMatchObject({ removed: 1 });
  expect(await bodies(dlq)).toEqual(['no id at all', 'the one a string resembles']);
  await expect(service.get('42')).rejects.toMatchObject({ code: 'dead_letter_discarded' });
  // Recorded under the ids it was taken by, none of them in a stream name.
  const events = await store.readAll({ after: 0n, maxCount: 100 });
  expect(events.map((e) => e.type)).toEqual(['DeadLetterReplayed', 'DeadLetterDiscarded', 'DeadLetterDiscarded', 'DeadLetterDiscarded']);
  expect(events.every((e) => /^dead-letter-h[0-9a-f]{32}$/.test(e.streamName))).toBe(true);
  // A message with no id at all is addressed by its content id (below).
  expect((await dlq.browse(10)).map((d) => d.id)[0]).toMatch(/^c-[a-p]{24}$/);
});

it('takes a dead letter whose envelope id is only in its body, addressed by that envelope id', async () => {
  // A sender that set no messageId property: the views show the envelope id read from the body, and the README tells
  // operators to look a message up by it; a take by it selected on the property, found nothing and answered
  // dead_letter_taken, as if another request had taken it.
  const queue = 'test.dlq.envelope-in-body';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
  const envelope = (n: number) => JSON.stringify({ id: `6f1d2c3b-0000-4000-8000-00000000010${n}`, type: 'expert.registered', systemId: 's' });
  for (const n of [1, 2, 3]) await amq.sender.sendRaw(queue, { body: envelope(n), durable: true, application_properties: { rts_dlq_id: `d-${n}`, 'x-dlq-source-queue': `${queue}-source` } });
  const service = new DeadLetterService({ queue: dlq, store: new InMemoryEventStore(), clock: { now: () => DateTime.utc() }, ids: { uuid: () => randomUUID() }, replayTargets: { resolve: async () => ({ kind: 'uplink' }) } });
  expect((await dlq.browse(10)).map((d) => [d.id, d.envelopeId])).toEqual([1, 2, 3].map((n) => [`d-${n}`, `6f1d2c3b-0000-4000-8000-00000000010${n}`]));
  expect(await service.discard('6f1d2c3b-0000-4000-8000-000000000101', { by: 'ops-7', reason: 'garbage' })).toMatchObject({ removed: 1 });
  expect(await service.replay('6f1d2c3b-0000-4000-8000-000000000102', { by: 'ops-7' })).toMatchObject({ moved: 1 });
  expect((await dlq.browse(10)).map((d) => d.id)).toEqual(['d-3']);
  await expect(service.get('6f1d2c3b-0000-4000-8000-000000000101')).rejects.toMatchObject({ code: 'dead_letter_discarded' });
});

it('takes a dead letter without any id by its content id: every identical copy, and gives the others back in their place', async () => {
  const queue = 'test.dlq.by-content';
  const source = 'test.dlq.by-content-source';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 5000 });
  const from = { 'x-dlq-source-queue': source };
  const bodies = ['garbage 1', 'kept 1', 'garbage 1', 'kept 2', 'to replay', 'kept 3'];
  for (const body of bodies) await amq.sender.sendRaw(queue, { body, durable: true, application_properties: from });
  // One with ids in between: looked through by the content take too, and given back.
  await amq.sender.sendRaw(queue, { body: 'with ids', durable: true, application_properties: { ...from, rts_dlq_id: 'd-1', messageId: 'm-1' } });
  await amq.sender.sendRaw(queue, { body: 'garbage 1', durable: true, application_properties: { ...from, other: 1 } }); // other properties: other content
  const store = new InMemoryEventStore();
  const service = new DeadLetterService({ queue: dlq, store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => randomUUID() }, replayTargets: { resolve: async () => ({ kind: 'uplink' }) } });
  const listed = await dlq.browse(100);
  const idOf = (body: string) => listed.find((d) => d.body === body && !('other' in d.applicationProperties))!.id;
  expect(idOf('garbage 1')).toMatch(/^c-[a-p]{24}$/);
  expect(listed.filter((d) => d.id === idOf('garbage 1'))).toHaveLength(2);

  expect(await service.discard(idOf('garbage 1'), { by: 'ops-7', reason: 'garbage' })).toMatchObject({ removed: 2 });
  expect(await service.replay(idOf('to replay'), { by: 'ops-7' })).toMatchObject({ moved: 1, sourceQueue: source });
  const left = await dlq.browse(100);
  expect(left.map((d) => d.body)).toEqual(['kept 1', 'kept 2', 'kept 3', 'with ids', 'garbage 1']);
  expect(left.map((d) => d.id)).toEqual([idOf('kept 1'), idOf('kept 2'), idOf('kept 3'), 'd-1', expect.stringMatching(/^c-/)]);
  const back = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: source, timeoutMs: 5000 });
  expect((await back.browse(10)).map((d) => d.body)).toEqual(['to replay']);
  await expect(service.get(idOf('garbage 1'))).rejects.toMatchObject({ code: 'dead_letter_discarded' });
});

it('browsing again and again leaves the connection\'s other links flowing, and a browse of more than 2,048 messages ends', async () => {
  // Browsed deliveries used to stay unsettled in the connection's shared session: after ~2,048 of them (17 browses
  // of 115 dead letters in the tester's run) no link on that session got a message, the hub's uplink consumer
  // included, and the browse found the queue empty.
  const queue = 'test.dlq.window';
  const dlq = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue, timeoutMs: 10_000 });
  await fill(queue, 0, 150);
  for (let i = 0; i < 20; i++) expect({ i, n: (await dlq.browse(1000)).length }).toEqual({ i, n: 150 });
  // A link on the shared session still gets its message.
  await amq.sender.sendRaw('test.dlq.after', { body: 'still flowing', durable: true });
  const received = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message on the shared session within 5 s')), 5000);
    const receiver = amq.connection.openReceiver({ source: { address: 'test.dlq.after' }, autoaccept: true, credit_window: 1 });
    receiver.on('message', (context) => {
      clearTimeout(timer);
      receiver.close();
      resolve(String(context.message?.body));
    });
  });
  expect(received).toBe('still flowing');
  // One browse of more deliveries than a session's buffer holds.
  await fill(queue, 150, 2100);
  expect(await dlq.browse(10_000)).toHaveLength(2250);
  expect(await dlq.browse(10_000)).toHaveLength(2250); // and it consumed nothing
});

it('without a broker connection: UnavailableError service_unavailable', async () => {
  const lonely = connect({ ...amq.broker, host: '127.0.0.1', amqpPort: 1 } as TestBroker);
  try {
    const dlq = new AmqpDeadLetterQueue(lonely, amq.sender, { queue: 'x', timeoutMs: 1000 });
    const error = await dlq.browse(1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({ code: 'service_unavailable' });
  } finally {
    await lonely.close();
  }
});
