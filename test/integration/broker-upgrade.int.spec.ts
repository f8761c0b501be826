// Upgrading the broker in place: ActiveMQ 5.18.3 (provision.sh's default until 2026-12-05) stopped, 6.3.1 (the
// default since) started on the same data directory; and rolling back the same way. A hospital's broker
// holds what the hub and the city systems have not consumed yet (uplink messages, downlinks of a system that is
// offline, dead letters): they must all be there, in order and with their properties, under the other version. Both
// brokers are real, from provision.sh.
import { randomUUID } from 'node:crypto';
import { AmqpConnection, DurableSender } from '../../src/adapters/amqp';
import { provisionActiveMq, startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';

jest.setTimeout(240_000);

const queueName = (label: string) => `rts.test.upgrade.${label}.${randomUUID().slice(0, 8)}`;

const connect = (broker: TestBroker) => AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });

const homes = () => Promise.all([provisionActiveMq('5.18.3'), provisionActiveMq('6.3.1')]).then(([v5, v6]) => ({ '5.18.3': v5, '6.3.1': v6 }));

// Upgrade, and the way back: KahaDB is at version 7 in both, and each reads what the other wrote.
it.each([
  ['5.18.3', '6.3.1'],
  ['6.3.1', '5.18.3'],
] as const)('keeps what %s persisted when %s starts on its data directory: every message, in order, with its properties', async (from, to) => {
  const home = await homes();
  expect(home['6.3.1']).toMatch(/activemq-6\.3\.1$/);

  const old = await startBroker({ home: home[from] });
  let next: TestBroker | undefined;
  try {
    expect(old.log()).toContain(`Apache ActiveMQ ${from}`);
    const uplink = queueName('uplink');
    const downlink = queueName('downlink');
    const sent = Array.from({ length: 40 }, (_, i) => ({ body: JSON.stringify({ n: i, note: 'x'.repeat(i * 50) }), id: `m-${i}` }));
    const before = connect(old);
    const sender = new DurableSender(before);
    try {
      await before.waitConnected();
      for (const [i, m] of sent.entries()) {
        await sender.send(i % 4 === 0 ? downlink : uplink, { body: m.body, applicationProperties: { messageId: m.id, attempt: i } });
      }
    } finally {
      await sender.close();
      await before.close();
    }
    await old.stop();

    next = await old.startAgain({ home: home[to] });
    expect(next.log()).toContain(`Apache ActiveMQ ${to}`);
    expect(next.log()).toContain('KahaDB is version 7');
    // A bare rhea reader (test/support/sdk-queues.ts): what the broker hands out, nothing of the hub's adapters.
    for (const queue of [uplink, downlink]) {
      const expected = sent.map((m, i) => ({ ...m, attempt: i })).filter((_, i) => (i % 4 === 0) === (queue === downlink));
      const got = await readQueue(next, queue, { count: expected.length, idleMs: 3_000 });
      expect(got.map((m) => m.application_properties?.['messageId'])).toEqual(expected.map((m) => m.id));
      expect(got.map((m) => String(m.body))).toEqual(expected.map((m) => m.body));
      expect(got.map((m) => m.application_properties?.['attempt'])).toEqual(expected.map((m) => m.attempt));
      expect(got.every((m) => m.durable === true)).toBe(true);
    }
    // Nothing more than was sent: a second look finds the queue empty.
    expect(await readQueue(next, uplink, { count: 1, idleMs: 1_500 })).toEqual([]);
  } finally {
    if (next) await next.destroy();
    else await old.destroy();
  }
});
