// The dead letter queue adapter on a real ActiveMQ: browsing answers at once whether the queue holds fewer or more
// messages than asked for (ActiveMQ leaves a drain unanswered once deliveries used up the credit), taking one
// message back finds it among many, and no broker is an UnavailableError (503 over HTTP), not an internal error.
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { UnavailableError } from '../../src/domain/shared/errors';
import type { TestBroker } from '../support/activemq';
import { connect, useBroker } from './hub-support';

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
