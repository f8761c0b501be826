import { OrderClosedError, OrderedByKey } from '../../src/application/ordered-by-key';

/** A promise with its resolve, to finish a task (or a decode) when the test says so. */
const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};
const ticks = async (n = 10) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};
const never = () => false;
const isRetry = (v: string) => v === 'retry';
let ids = 0;
const id = () => `m${++ids}`;

describe('OrderedByKey', () => {
  it('runs work of one key in arrival order, even when the earlier one is ready to enter later (a slow decode)', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const first = order.arrive();
    const second = order.arrive();
    // The second is decoded first and enters at once; the first enters only after a while.
    const b = second.enter(['expert/a:x'], id(), async () => void log.push('second'), never);
    await ticks();
    expect(log).toEqual([]); // it waits for the first to say which keys it has
    const a = first.enter(['expert/a:x'], id(), async () => void log.push('first'), never);
    await Promise.all([a, b]);
    expect(log).toEqual(['first', 'second']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('runs different keys at once, and one key one at a time', async () => {
    const order = new OrderedByKey();
    const slow = gate();
    const log: string[] = [];
    const x1 = order.arrive().enter(['x'], id(), async () => (await slow.opened, void log.push('x1')), never);
    const y1 = order.arrive().enter(['y'], id(), async () => void log.push('y1'), never);
    const x2 = order.arrive().enter(['x'], id(), async () => void log.push('x2'), never);
    await y1;
    await ticks();
    expect(log).toEqual(['y1']); // y did not wait for x; x2 waits for x1
    slow.open();
    await Promise.all([x1, x2]);
    expect(log).toEqual(['y1', 'x1', 'x2']);
  });

  it('a place that arrives while the second of a key runs waits for it, though the first has finished', async () => {
    const order = new OrderedByKey();
    const slow = gate();
    const log: string[] = [];
    const x1 = order.arrive().enter(['x'], id(), async () => void log.push('x1'), never);
    const x2 = order.arrive().enter(['x'], id(), async () => (log.push('x2 starts'), await slow.opened, void log.push('x2 ends')), never);
    await x1;
    await ticks(20);
    expect(log).toEqual(['x1', 'x2 starts']);
    const x3 = order.arrive().enter(['x'], id(), async () => void log.push('x3'), never);
    await ticks(20);
    expect(log).toEqual(['x1', 'x2 starts']);
    slow.open();
    await Promise.all([x2, x3]);
    expect(log).toEqual(['x1', 'x2 starts', 'x2 ends', 'x3']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('a place with several keys (a batch) waits for each, and the later ones of each key wait for it', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const a = gate();
    const first = order.arrive().enter(['a'], id(), async () => (await a.opened, void log.push('a')), never);
    const batch = order.arrive().enter(['a', 'b', 'c'], id(), async () => void log.push('batch'), never);
    const c = order.arrive().enter(['c'], id(), async () => void log.push('c'), never);
    const d = order.arrive().enter(['d'], id(), async () => void log.push('d'), never);
    await d;
    await ticks();
    expect(log).toEqual(['d']);
    a.open();
    await Promise.all([first, batch, c]);
    expect(log).toEqual(['d', 'a', 'batch', 'c']);
  });

  it('leave() lets the places after it go on', async () => {
    const order = new OrderedByKey();
    const dropped = order.arrive();
    const next = order.arrive().enter(['x'], id(), async () => 'done', never);
    await ticks();
    dropped.leave();
    await expect(next).resolves.toBe('done');
    expect(() => dropped.leave()).toThrow('once');
  });

  it('a failed place keeps its lane until it comes again: those behind it, and those arriving meanwhile, run after it', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    let failures = 0;
    const m1 = id();
    const registration = async () => (log.push(`register ${failures < 1 ? 'fails' : 'ok'}`), failures++ < 1 ? 'retry' : 'ok');
    const first = order.arrive().enter(['x'], m1, registration, isRetry);
    const behind = order.arrive().enter(['x'], id(), async () => (log.push('change 1'), 'ok'), isRetry);
    const other = order.arrive().enter(['y'], id(), async () => (log.push('other expert'), 'ok'), isRetry);
    expect(await first).toBe('retry'); // handed back to the broker
    await other;
    const meanwhile = order.arrive().enter(['x'], id(), async () => (log.push('change 2'), 'ok'), isRetry); // before the redelivery
    await ticks(20);
    expect(log).toEqual(['register fails', 'other expert']);
    expect(order.size.awaited).toBe(1);
    // The redelivery (same id) goes ahead of both.
    expect(await order.arrive().enter(['x'], m1, registration, isRetry)).toBe('ok');
    await Promise.all([behind, meanwhile]);
    expect(log).toEqual(['register fails', 'other expert', 'register ok', 'change 1', 'change 2']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('a place that fails again keeps waiting; one that fails for good (comesBack false) lets the others go', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const m1 = id();
    expect(await order.arrive().enter(['x'], m1, async () => 'retry', isRetry)).toBe('retry');
    const behind = order.arrive().enter(['x'], id(), async () => (log.push('behind'), 'ok'), isRetry);
    expect(await order.arrive().enter(['x'], m1, async () => 'retry', isRetry)).toBe('retry'); // second attempt
    await ticks(20);
    expect(log).toEqual([]);
    // The last attempt: its retry becomes a dead letter, it will not come again.
    expect(await order.arrive().enter(['x'], m1, async () => 'retry', () => false)).toBe('retry');
    await behind;
    expect(log).toEqual(['behind']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('waits for a failed place to come again at most redeliveryWaitMs', async () => {
    jest.useFakeTimers();
    try {
      const order = new OrderedByKey({ redeliveryWaitMs: 5000 });
      const log: string[] = [];
      await order.arrive().enter(['x'], id(), async () => 'retry', isRetry);
      const behind = order.arrive().enter(['x'], id(), async () => (log.push('behind'), 'ok'), isRetry);
      await jest.advanceTimersByTimeAsync(4999);
      expect(log).toEqual([]);
      await jest.advanceTimersByTimeAsync(1);
      await behind;
      expect(log).toEqual(['behind']);
      expect(order.size).toEqual({ lanes: 0, awaited: 0 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('a task that throws keeps its place as a failure does, and the error reaches its caller', async () => {
    const order = new OrderedByKey();
    const m1 = id();
    const log: string[] = [];
    await expect(order.arrive().enter(['x'], m1, async () => Promise.reject(new Error('boom')), never)).rejects.toThrow('boom');
    const behind = order.arrive().enter(['x'], id(), async () => (log.push('behind'), 'ok'), never);
    await ticks(20);
    expect(log).toEqual([]);
    expect(await order.arrive().enter(['x'], m1, async () => 'ok', never)).toBe('ok');
    await behind;
    expect(log).toEqual(['behind']);
  });

  it('a failed batch keeps each of its experts: a change of one of them waits for the batch to come again', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const batch = id();
    let tries = 0;
    const importBatch = async () => (log.push(`batch ${tries ? 'ok' : 'fails'}`), tries++ ? 'ok' : 'retry');
    await order.arrive().enter(['a', 'b', 'c'], batch, importBatch, isRetry);
    const changeB = order.arrive().enter(['b'], id(), async () => (log.push('change b'), 'ok'), isRetry);
    const changeZ = order.arrive().enter(['z'], id(), async () => (log.push('change z'), 'ok'), isRetry);
    await changeZ;
    await ticks(20);
    expect(log).toEqual(['batch fails', 'change z']);
    await order.arrive().enter(['a', 'b', 'c'], batch, importBatch, isRetry);
    await changeB;
    expect(log).toEqual(['batch fails', 'change z', 'batch ok', 'change b']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('close(): what waits for a failed place is not run (OrderClosedError), what runs finishes, nothing waits any more', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const running = gate();
    await order.arrive().enter(['x'], id(), async () => 'retry', isRetry);
    const waiting = order.arrive().enter(['x'], id(), async () => (log.push('waiting ran'), 'ok'), isRetry);
    const busy = order.arrive().enter(['y'], id(), async () => (await running.opened, log.push('busy ran'), 'ok'), isRetry);
    await ticks(20);
    order.close();
    await expect(waiting).rejects.toBeInstanceOf(OrderClosedError);
    await expect(waiting).rejects.toMatchObject({ name: 'OrderClosedError', message: 'closed: the work was not started' });
    running.open();
    await expect(busy).resolves.toBe('ok');
    expect(log).toEqual(['busy ran']);
    await expect(order.arrive().enter(['z'], id(), async () => 'ok', never)).rejects.toBeInstanceOf(OrderClosedError);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
  });

  it('giveUpAwaited(): the failed place with the most waiting behind it is given up (its lane goes on, it comes again as a newcomer); the other lanes keep their order', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const failedId = id();
    const failedY = id();
    await order.arrive().enter(['x'], failedId, async () => (log.push('x1 fails'), 'retry'), isRetry);
    const x2 = order.arrive().enter(['x'], id(), async () => (log.push('x2'), 'ok'), isRetry);
    const x3 = order.arrive().enter(['x'], id(), async () => (log.push('x3'), 'ok'), isRetry);
    await order.arrive().enter(['y'], failedY, async () => (log.push('y1 fails'), 'retry'), isRetry); // another lane's failed place
    const y2 = order.arrive().enter(['y'], id(), async () => (log.push('y2'), 'ok'), isRetry);
    await ticks(20);
    expect(log).toEqual(['x1 fails', 'y1 fails']); // x2, x3 wait for x1 to come again; y2 for y1
    expect(order.size).toEqual({ lanes: 2, awaited: 2 });
    expect(order.giveUpAwaited()).toBe(1); // x1: two wait behind it, one behind y1
    await Promise.all([x2, x3]);
    expect(order.size).toEqual({ lanes: 1, awaited: 1 });
    // x1 comes again after x2 and x3 ran: no longer waited for, it runs as a newcomer.
    await order.arrive().enter(['x'], failedId, async () => (log.push('x1 again'), 'ok'), never);
    // y1 still keeps its place: y2 runs only after y1 came again.
    await ticks(20);
    expect(log).toEqual(['x1 fails', 'y1 fails', 'x2', 'x3', 'x1 again']);
    await order.arrive().enter(['y'], failedY, async () => (log.push('y1 again'), 'ok'), never);
    await y2;
    expect(log).toEqual(['x1 fails', 'y1 fails', 'x2', 'x3', 'x1 again', 'y1 again', 'y2']);
    expect(order.size).toEqual({ lanes: 0, awaited: 0 });
    expect(order.giveUpAwaited()).toBe(0);
  });

  it('giveUpAwaited(): a place sharing several of a failed batch\'s keys counts once behind it, not once per key', async () => {
    const order = new OrderedByKey({ redeliveryWaitMs: 3_600_000 });
    const log: string[] = [];
    const batchKeys = ['system/s', 'expert/s:1', 'expert/s:2', 'expert/s:3'];
    await order.arrive().enter(batchKeys, id(), async () => (log.push('batch fails'), 'retry'), isRetry);
    const again = order.arrive().enter(batchKeys, id(), async () => (log.push('batch 2'), 'ok'), isRetry); // one place behind it
    await order.arrive().enter(['x'], id(), async () => (log.push('x1 fails'), 'retry'), isRetry);
    const flood = [2, 3, 4].map((n) => order.arrive().enter(['x'], id(), async () => (log.push(`x${n}`), 'ok'), isRetry)); // three behind x1
    await ticks(20);
    expect(order.giveUpAwaited()).toBe(1);
    await ticks(20);
    expect(log).toEqual(['batch fails', 'x1 fails', 'x2', 'x3', 'x4']); // the flood's lane goes on; the batches keep their order
    await Promise.all(flood);
    order.close();
    await again.catch(() => undefined);
  });

  it('giveUpAwaited(): when the lane it gives up goes on to a place another failed place still holds, that one is given up too (nothing else asks again)', async () => {
    const order = new OrderedByKey({ redeliveryWaitMs: 3_600_000 });
    const log: string[] = [];
    await order.arrive().enter(['x'], id(), async () => (log.push('x1 fails'), 'retry'), isRetry);
    await order.arrive().enter(['y'], id(), async () => (log.push('y1 fails'), 'retry'), isRetry);
    const both = order.arrive().enter(['x', 'y'], id(), async () => (log.push('xy'), 'ok'), isRetry);
    const ys = [2, 3].map((n) => order.arrive().enter(['y'], id(), async () => (log.push(`y${n}`), 'ok'), isRetry));
    await ticks(20);
    expect(log).toEqual(['x1 fails', 'y1 fails']);
    // Saturated: y1 has the most behind it, but what comes next in its lane waits for x1 too; so nothing would run,
    // no message would be settled or come, and the consumer would not ask again until x1's 30 s were over.
    expect(order.giveUpAwaited()).toBeGreaterThanOrEqual(1);
    await ticks(20);
    expect(log).toEqual(['x1 fails', 'y1 fails', 'xy', 'y2', 'y3']);
    await Promise.all([both, ...ys]);
    order.close();
  });

  it('giveUpAwaited(): what runs ahead of a failed place (the join request it waits for) is not counted as waiting behind it', async () => {
    const order = new OrderedByKey({ redeliveryWaitMs: 3_600_000 });
    const log: string[] = [];
    const joining = gate();
    const batchId = id();
    const batchOptions = { tag: 'batch', waitsFor: (v: string | undefined) => (v === 'too early' ? 'join' : undefined) };
    await order.arrive().enter(['s'], batchId, async () => (log.push('batch too early'), 'too early'), (v) => v === 'too early', batchOptions);
    const join = order.arrive().enter(['s'], id(), async () => (await joining.opened, log.push('join'), 'ok'), never, { tag: 'join' }); // goes ahead of it, runs
    await order.arrive().enter(['x'], id(), async () => (log.push('x1 fails'), 'retry'), isRetry);
    const x2 = order.arrive().enter(['x'], id(), async () => (log.push('x2'), 'ok'), isRetry);
    await ticks(20);
    expect(order.giveUpAwaited()).toBe(1); // x1: one waits behind it; nothing waits behind the batch
    await x2;
    joining.open();
    await join;
    await ticks(20);
    expect(log).toEqual(['batch too early', 'x1 fails', 'x2', 'join']);
    expect(order.size.awaited).toBe(1); // the batch keeps its place until it comes again
    order.close();
  });

  it('giveUpAwaited() gives up no failed place with nothing waiting behind it', async () => {
    const order = new OrderedByKey();
    await order.arrive().enter(['x'], id(), async () => 'retry', isRetry);
    expect(order.size).toEqual({ lanes: 1, awaited: 1 });
    expect(order.giveUpAwaited()).toBe(0);
    expect(order.size).toEqual({ lanes: 1, awaited: 1 });
  });

  describe('what a failed place waits for goes ahead of it (a batch before its join request)', () => {
    const join = { tag: 'join' };
    const batchOptions = { tag: 'batch', waitsFor: (v: string | undefined) => (v === 'too early' ? 'join' : undefined) };
    const tooEarly = (v: string) => v === 'too early';

    it('one already waiting behind it runs at once; the failed place runs after it when it comes again, the rest after that', async () => {
      const order = new OrderedByKey();
      const log: string[] = [];
      let joined = false;
      const batchId = id();
      const importBatch = async () => (log.push(`batch ${joined ? 'ok' : 'too early'}`), joined ? 'ok' : 'too early');
      const slow = gate();
      // Something runs on the system first, so that batch, second batch and join all wait.
      const first = order.arrive().enter(['s'], id(), async () => (await slow.opened, log.push('first'), 'ok'), tooEarly);
      const batch = order.arrive().enter(['s', 'e1'], batchId, importBatch, tooEarly, batchOptions);
      const second = order.arrive().enter(['s', 'e2'], id(), async () => (log.push(`second ${joined ? 'ok' : 'too early'}`), 'ok'), tooEarly, { tag: 'batch' });
      const request = order.arrive().enter(['s'], id(), async () => ((joined = true), log.push('join'), 'ok'), tooEarly, join);
      slow.open();
      expect(await batch).toBe('too early');
      await request;
      expect(log).toEqual(['first', 'batch too early', 'join']);
      await ticks(20);
      expect(log).toHaveLength(3); // the second batch still waits for the first to come again
      expect(await order.arrive().enter(['s', 'e1'], batchId, importBatch, tooEarly, batchOptions)).toBe('ok');
      await Promise.all([first, second]);
      expect(log).toEqual(['first', 'batch too early', 'join', 'batch ok', 'second ok']);
      expect(order.size).toEqual({ lanes: 0, awaited: 0 });
    });

    it('one arriving after the refusal goes ahead of it too; something else does not', async () => {
      const order = new OrderedByKey();
      const log: string[] = [];
      const batchId = id();
      expect(await order.arrive().enter(['s', 'e1'], batchId, async () => 'too early', tooEarly, batchOptions)).toBe('too early');
      const other = order.arrive().enter(['s'], id(), async () => (log.push('other'), 'ok'), tooEarly, { tag: 'something else' });
      const request = order.arrive().enter(['s'], id(), async () => (log.push('join'), 'ok'), tooEarly, join);
      await request;
      await ticks(20);
      expect(log).toEqual(['join']);
      await order.arrive().enter(['s', 'e1'], batchId, async () => (log.push('batch'), 'ok'), tooEarly, batchOptions);
      await other;
      expect(log).toEqual(['join', 'batch', 'other']);
    });

    it('a place with a key the failed one does not have waits in line', async () => {
      const order = new OrderedByKey();
      const log: string[] = [];
      const batchId = id();
      await order.arrive().enter(['s', 'e1'], batchId, async () => 'too early', tooEarly, batchOptions);
      const wide = order.arrive().enter(['s', 't'], id(), async () => (log.push('wide join'), 'ok'), tooEarly, join);
      await ticks(20);
      expect(log).toEqual([]);
      await order.arrive().enter(['s', 'e1'], batchId, async () => 'ok', tooEarly, batchOptions);
      await wide;
      expect(log).toEqual(['wide join']);
    });
  });

  it('onWait: told when a place has to wait for its turn and when it then runs; not told for one that runs at once', async () => {
    const order = new OrderedByKey();
    const told: string[] = [];
    const slow = gate();
    const first = order.arrive().enter(['x'], id(), async () => (await slow.opened, 'ok'), never, { onWait: (w) => void told.push(`first ${w}`) });
    const second = order.arrive().enter(['x'], id(), async () => (told.push('second runs'), 'ok'), never, { onWait: (w) => void told.push(`second ${w}`) });
    await ticks(20);
    expect(told).toEqual(['second true']);
    slow.open();
    await Promise.all([first, second]);
    expect(told).toEqual(['second true', 'second false', 'second runs']);
  });
});
