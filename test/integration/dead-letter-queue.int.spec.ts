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
