// A system registered under an earlier RTS_DOWNLINK_QUEUE_PREFIX keeps the queue it was registered with, and the hub
// still sends its downlink there; its depth was left out, because the one statistics request covered only the
// prefix in force. Against real ActiveMQ with its statistics plugin: messages wait on a queue under the prefix and on
// queues under two earlier ones, and one reading gives every system its figure.
import { randomUUID } from 'node:crypto';
import { AmqpDownlinkDepthReader } from '../../src/adapters/messaging/downlink-queue-depth';
import { useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();

test('systems under earlier prefixes are read too, each by its own queue', async () => {
  const run = randomUUID().slice(0, 8);
  const systems = [
    { systemId: 'city-now', downlinkQueue: `rts.downlink.city-now-${run}` },
    { systemId: 'city-2019', downlinkQueue: `legacy${run}.down.city-2019` },
    { systemId: 'city-2019b', downlinkQueue: `legacy${run}.down.city-2019b` },
    { systemId: 'city-flat', downlinkQueue: `flat${run}` },
  ];
  const waiting = new Map([
    ['city-now', 2],
    ['city-2019', 3],
    ['city-2019b', 0],
    ['city-flat', 1],
  ]);
  for (const system of systems) {
    for (let i = 0; i < waiting.get(system.systemId)!; i++) await amq.sender.send(system.downlinkQueue, { body: JSON.stringify({ i }) });
  }
  const reader = new AmqpDownlinkDepthReader(amq.connection, { prefix: 'rts.downlink.', systems: async () => systems });

  const depths = await reader.read();

  expect([...depths.keys()]).toEqual(systems.map((s) => s.systemId));
  expect(Object.fromEntries([...depths].map(([id, d]) => [id, d.messages]))).toEqual(Object.fromEntries(waiting));
  // The age comes by the broker's clock for each request's answer alike.
  expect(depths.get('city-2019')!.oldestMessageAgeSeconds).toEqual(expect.any(Number));
  expect(depths.get('city-2019b')!.oldestMessageAgeSeconds).toBe(0);
  expect(depths.get('city-2019')!.consumers).toBe(0);
});
