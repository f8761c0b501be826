// The fix for rhea 3.0.x's settlements (src/adapters/amqp/rhea-settlement-fix.ts), on rhea's own session code: the
// disposition frames a session writes for the settlements of one tick. The broker's side of it is in
// activemq.int.spec.ts ("settles each message as its own handler said").
import { createRequire } from 'node:module';
import { ensureRheaSettlementFix, runsOfOneOutcome } from '../../src/adapters/amqp/rhea-settlement-fix';

const fromRhea = createRequire(require.resolve('rhea'));
const message = fromRhea('./message.js') as {
  accepted(): { described(): unknown };
  modified(p: object): { described(): unknown };
  released(): { described(): unknown };
};
const Session = fromRhea('./session.js') as new (connection: unknown, channel: number) => { incoming: { updated: unknown[]; process(session: unknown): void } };

const ACCEPTED = () => message.accepted().described();
const RETRY = () => message.modified({ delivery_failed: true, undeliverable_here: false }).described();
const LATER = () => message.modified({ delivery_failed: false, undeliverable_here: false }).described();

type Frame = { first: number; last: number; outcome: string };

/** The disposition frames one session writes for settlements made in one tick, in this order. */
const framesFor = (settlements: Array<[id: number, state: unknown]>): Frame[] => {
  const written: Frame[] = [];
  const session = new Session({}, 0);
  const link = {
    is_receiver: () => true,
    session: {
      output: (frame: { first?: number; last?: number; state?: { descriptor: { value: number }; value: unknown } }) => {
        const { first = 0, last, state } = frame;
        const code = state?.descriptor.value;
        const outcome = code === 0x24 ? 'accepted' : code === 0x27 ? `modified ${JSON.stringify(state!.value)}` : String(code);
        written.push({ first, last: last ?? first, outcome });
      },
    },
  };
  session.incoming.updated = settlements.map(([id, state]) => ({ id, link, settled: true, state }));
  session.incoming.process({ _write_flow: () => undefined });
  return written;
};

/** What each delivery was settled with, by id. */
const outcomes = (frames: Frame[]): Record<number, string> => {
  const by: Record<number, string> = {};
  for (const f of frames) for (let id = f.first; id <= f.last; id++) by[id] = f.outcome;
  return by;
};

describe("rhea's settlements of one tick", () => {
  it('are written with each delivery\'s own outcome, however accepts, retries and deferrals mix', () => {
    expect(ensureRheaSettlementFix()).toBe('patched');
    const cases: Array<Array<[number, unknown]>> = [
      [[0, ACCEPTED()], [1, RETRY()]], // the lost message: without the fix, 1 was accepted
      [[0, RETRY()], [1, ACCEPTED()], [2, ACCEPTED()]], // without the fix, 1 was handed back: a second handling
      [[5, ACCEPTED()], [6, LATER()], [7, RETRY()], [8, ACCEPTED()], [9, ACCEPTED()], [10, ACCEPTED()]],
      [[3, ACCEPTED()], [4, ACCEPTED()], [5, ACCEPTED()]],
      [[0, message.released().described()], [1, ACCEPTED()], [3, RETRY()], [4, RETRY()]],
    ];
    for (const settlements of cases) {
      const written = framesFor(settlements);
      const want = Object.fromEntries(settlements.map(([id, state]) => [id, outcomes(framesFor([[id, state]]))[id]]));
      expect(outcomes(written)).toEqual(want);
    }
    // All accepted: still one range, as rhea writes it.
    expect(framesFor([[3, ACCEPTED()], [4, ACCEPTED()], [5, ACCEPTED()]])).toEqual([{ first: 3, last: 5, outcome: 'accepted' }]);
  });

  it('is installed once, however often it is asked for', () => {
    const proto = Object.getPrototypeOf(new Session({}, 0).incoming) as { process: unknown };
    const installed = proto.process;
    expect(ensureRheaSettlementFix()).toBe('patched');
    expect(ensureRheaSettlementFix()).toBe('patched');
    expect(proto.process).toBe(installed);
  });

  it('cuts the pending settlements into runs of one outcome and settled flag, in order', () => {
    const a = { settled: true, state: ACCEPTED() } as never;
    const r = { settled: true, state: RETRY() } as never;
    const l = { settled: true, state: LATER() } as never;
    const unsettled = { settled: false, state: ACCEPTED() } as never;
    expect(runsOfOneOutcome([a, a, r, l, l, a, unsettled])).toEqual([[a, a], [r], [l, l], [a], [unsettled]]);
    expect(runsOfOneOutcome([])).toEqual([]);
  });
});
