import { OrderedByKey } from '../../src/application/ordered-by-key';

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

describe('OrderedByKey', () => {
  it('runs work of one key in arrival order, even when the earlier one is ready to enter later (a slow decode)', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const first = order.arrive();
    const second = order.arrive();
    // The second is decoded first and enters at once; the first enters only after a while.
    const b = second.enter(['expert/a:x'], async () => void log.push('second'), never);
    await ticks();
    expect(log).toEqual([]); // it waits for the first to say which keys it has
    const a = first.enter(['expert/a:x'], async () => void log.push('first'), never);
    await Promise.all([a, b]);
    expect(log).toEqual(['first', 'second']);
    expect(order.size).toEqual({ lanes: 0, holds: 0 });
  });

  it('runs different keys at once, and one key one at a time', async () => {
    const order = new OrderedByKey();
    const slow = gate();
    const log: string[] = [];
    const x1 = order.arrive().enter(['x'], async () => (await slow.opened, void log.push('x1')), never);
    const y1 = order.arrive().enter(['y'], async () => void log.push('y1'), never);
    const x2 = order.arrive().enter(['x'], async () => void log.push('x2'), never);
    await y1;
    await ticks();
    expect(log).toEqual(['y1']); // y did not wait for x; x2 waits for x1
    slow.open();
    await Promise.all([x1, x2]);
    expect(log).toEqual(['y1', 'x1', 'x2']);
  });

  it('a place with several keys (a batch) waits for each, and the later ones of each key wait for it', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const a = gate();
    const first = order.arrive().enter(['a'], async () => (await a.opened, void log.push('a')), never);
    const batch = order.arrive().enter(['a', 'b', 'c'], async () => void log.push('batch'), never);
    const c = order.arrive().enter(['c'], async () => void log.push('c'), never);
    const d = order.arrive().enter(['d'], async () => void log.push('d'), never);
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
    const next = order.arrive().enter(['x'], async () => 'done', never);
    await ticks();
    dropped.leave();
    await expect(next).resolves.toEqual({ ran: true, value: 'done' });
    expect(() => dropped.leave()).toThrow('once');
  });

  it('a failure holds back the places of its key that had arrived, not the ones arriving after it', async () => {
    const order = new OrderedByKey();
    const log: string[] = [];
    const fail = gate();
    const failed = (v: string) => v === 'retry';
    const m1 = order.arrive().enter(['x'], async () => (await fail.opened, log.push('m1'), 'retry'), failed);
    const m2 = order.arrive().enter(['x'], async () => (log.push('m2'), 'ok'), failed);
    const m3 = order.arrive().enter(['x', 'y'], async () => (log.push('m3'), 'ok'), failed);
    const y = order.arrive().enter(['y'], async () => (log.push('y'), 'ok'), failed);
    const other = order.arrive().enter(['z'], async () => (log.push('z'), 'ok'), failed);
    await other;
    fail.open();
    // m1 fails; m2 and m3 had arrived (and so had y, behind m3 on key y): all handed back, none run.
    expect(await m1).toEqual({ ran: true, value: 'retry' });
    expect(await m2).toEqual({ ran: false });
    expect(await m3).toEqual({ ran: false });
    expect(await y).toEqual({ ran: false });
    // m1 comes again (a new arrival): it runs, and so do m2 and m3 after it.
    const again = await order.arrive().enter(['x'], async () => (log.push('m1 again'), 'ok'), failed);
    const m2again = await order.arrive().enter(['x'], async () => (log.push('m2 again'), 'ok'), failed);
    expect([again, m2again]).toEqual([
      { ran: true, value: 'ok' },
      { ran: true, value: 'ok' },
    ]);
    expect(log).toEqual(['z', 'm1', 'm1 again', 'm2 again']);
  });

  it('a place that arrived before a failure but was still decoding is held back too', async () => {
    const order = new OrderedByKey();
    const failed = (v: string) => v === 'retry';
    const m1 = order.arrive();
    const m2 = order.arrive(); // still decoding while m1 runs and fails
    const r1 = await m1.enter(['x'], async () => 'retry', failed);
    expect(r1).toEqual({ ran: true, value: 'retry' });
    expect(await m2.enter(['x'], async () => 'ok', failed)).toEqual({ ran: false });
    // Spent holds are forgotten at the next failure.
    await order.arrive().enter(['q'], async () => 'retry', failed);
    expect(order.size).toEqual({ lanes: 0, holds: 1 });
  });

  it('a hold is kept while a place it holds still waits in the lane on another key', async () => {
    const order = new OrderedByKey();
    const failed = (v: string) => v === 'retry';
    const slowW = gate();
    const w = order.arrive().enter(['w'], async () => (await slowW.opened, 'ok'), failed);
    const m1 = order.arrive().enter(['x'], async () => 'retry', failed);
    const m2 = order.arrive().enter(['x', 'w'], async () => 'ok', failed); // waits for w, then for m1's hold
    expect(await m1).toEqual({ ran: true, value: 'retry' });
    await order.arrive().enter(['q'], async () => 'retry', failed); // another failure: forgets only spent holds
    slowW.open();
    expect(await w).toEqual({ ran: true, value: 'ok' });
    expect(await m2).toEqual({ ran: false });
  });

  it('a task that throws holds back its followers as a failure does, and the error reaches its caller', async () => {
    const order = new OrderedByKey();
    const boom = order.arrive().enter(['x'], async () => Promise.reject(new Error('boom')), never);
    const next = order.arrive().enter(['x'], async () => 'ok', never);
    await expect(boom).rejects.toThrow('boom');
    await expect(next).resolves.toEqual({ ran: false });
  });
});
