// OrderedByKey under random traffic (fast-check): messages with one or two keys, decoded and handled in random
// numbers of turns, some failing a few times and coming back (redelivered) at random later points, as the uplink
// consumer sees them. Whatever the interleaving: two tasks sharing a key never run at once; every message is
// handled in the end; and per key the messages succeed in the order they first arrived (a failed one keeps its
// place until it comes again). The example tests in ordered-by-key.unit.spec.ts pin each rule alone.
import fc from 'fast-check';
import { OrderedByKey } from '../../src/application/ordered-by-key';

const KEYS = ['a', 'b', 'c'] as const;

type Message = { keys: readonly string[]; failures: number; decodeTurns: number; runTurns: number; gapTurns: number; comesBackAfter: number };

const messageArb: fc.Arbitrary<Message> = fc.record({
  keys: fc.uniqueArray(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 2 }),
  failures: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) }),
  decodeTurns: fc.nat({ max: 4 }),
  runTurns: fc.nat({ max: 4 }),
  gapTurns: fc.nat({ max: 2 }),
  comesBackAfter: fc.nat({ max: 3 }),
});

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

describe('OrderedByKey under random arrivals, decodes, failures and redeliveries', () => {
  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? 200);
  it(`never runs two tasks of a key at once, handles every message, and keeps each key's arrival order (${runs} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(messageArb, { minLength: 1, maxLength: 14 }), async (messages) => {
        const order = new OrderedByKey({ redeliveryWaitMs: 60_000 });
        const running = new Set<string>();
        const attempts = new Map<number, number>();
        const succeeded: number[] = [];
        const firstArrival: number[] = [];
        const pending: number[] = messages.map((_, i) => i); // deliveries not made yet, in the order they come
        let unsettled = 0;

        const deliver = (index: number): void => {
          const message = messages[index]!;
          if (!firstArrival.includes(index)) firstArrival.push(index);
          const place = order.arrive(); // on receipt, synchronously
          unsettled++;
          void (async () => {
            await turns(message.decodeTurns);
            const outcome = await place.enter(
              message.keys,
              `m${index}`,
              async () => {
                for (const key of message.keys) {
                  expect({ key, alreadyRunning: running.has(key) }).toEqual({ key, alreadyRunning: false });
                  running.add(key);
                }
                await turns(message.runTurns);
                for (const key of message.keys) running.delete(key);
                const attempt = (attempts.get(index) ?? 0) + 1;
                attempts.set(index, attempt);
                if (attempt <= message.failures) return 'failed' as const;
                succeeded.push(index);
                return 'done' as const;
              },
              (value) => value === 'failed',
            );
            // Handed back to the broker: it comes again, some deliveries later.
            if (outcome === 'failed') pending.splice(Math.min(message.comesBackAfter, pending.length), 0, index);
            unsettled--;
          })();
        };

        for (let guard = 0; pending.length > 0 || unsettled > 0; guard++) {
          if (guard > 20_000) throw new Error(`stalled: ${unsettled} in flight, succeeded ${succeeded.join(',')}`);
          const next = pending.shift();
          if (next === undefined) {
            await turns(1);
            continue;
          }
          deliver(next);
          await turns(messages[next]!.gapTurns);
        }

        expect(succeeded.slice().sort((x, y) => x - y)).toEqual(messages.map((_, i) => i));
        for (const key of KEYS) {
          const mine = (list: readonly number[]) => list.filter((i) => messages[i]!.keys.includes(key));
          expect({ key, succeeded: mine(succeeded) }).toEqual({ key, succeeded: mine(firstArrival) });
        }
        expect(order.size).toEqual({ lanes: 0, awaited: 0 });
        order.close();
      }),
      { numRuns: runs },
    );
  });
});
