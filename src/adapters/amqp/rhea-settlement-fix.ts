import { createRequire } from 'node:module';

/**
 * A fix for rhea 3.0.x: settlements of one tick with different outcomes.
 *
 * rhea sends the settlements (dispositions) a session collected since it last wrote as ranges of consecutive
 * deliveries (`write_dispositions` in rhea/lib/session.js). Its check for a change of outcome is skipped while a
 * range holds one delivery (`first !== last && ...`), so the second delivery of every range is settled with the
 * first one's outcome: a message handed back for a retry (modified) just after an accepted one was accepted, and so
 * lost; an accepted one just after a retry was handed back, and so handled twice. The uplink consumer settles many
 * messages in one tick (a group commit resolves their appends together), with mixed outcomes whenever one is retried
 * or deferred. Seen on ActiveMQ 5.18.3 and 6.3.1 (activemq.int.spec.ts, "settles each message as its own handler
 * said"); present in 3.0.5, the newest rhea on 2026-12-05.
 *
 * The fix leaves rhea's code as it is and hands it only lists it gets right: the session's pending settlements are
 * cut into runs of the same outcome (and settled flag), and rhea writes each run by itself, in order. Within a run
 * the second delivery's outcome is the first's anyway. A tick whose settlements all have one outcome (the usual
 * case: all accepted) goes through untouched. The patch is on rhea's session prototype for incoming deliveries, so
 * it covers every rhea receiver in the process, the SDK's included.
 */

type Pending = { settled?: boolean; state?: { descriptor?: { value?: unknown }; value?: unknown } };
type IncomingPrototype = { process: (this: { updated: Pending[] }, session: unknown) => void; [PATCHED]?: true };

const PATCHED = Symbol.for('telemed-rts.rhea-settlement-fix');

let outcome: 'patched' | 'unrecognised' | undefined;

/** One run's key: the settled flag and the outcome (its descriptor and fields); unreadable outcomes get a run of their own. */
const keyOf = (delivery: Pending): unknown => {
  try {
    return `${delivery.settled === true}|${String(delivery.state?.descriptor?.value)}|${JSON.stringify(delivery.state?.value)}`;
  } catch {
    return {};
  }
};

/** The pending settlements as runs of one outcome each, in their order. */
export const runsOfOneOutcome = <T extends Pending>(pending: readonly T[]): T[][] => {
  const runs: T[][] = [];
  let key: unknown;
  for (const delivery of pending) {
    const next = keyOf(delivery);
    if (runs.length === 0 || next !== key) runs.push([delivery]);
    else runs.at(-1)!.push(delivery);
    key = next;
  }
  return runs;
};

/**
 * Installs the fix once per process (idempotent) and says whether it is in place. 'unrecognised': rhea's session no
 * longer looks as this fix expects (a `process` method and an `updated` list on its incoming side), and nothing was
 * changed; the test of the installed rhea fails then, so an upgrade of rhea gets this looked at again.
 */
export const ensureRheaSettlementFix = (): 'patched' | 'unrecognised' => {
  if (outcome) return outcome;
  const fromRhea = createRequire(require.resolve('rhea'));
  const Session = fromRhea('./session.js') as new (connection: unknown, channel: number) => { incoming?: { updated?: unknown } };
  const incoming = new Session({}, 0).incoming;
  const proto = incoming ? (Object.getPrototypeOf(incoming) as IncomingPrototype) : undefined;
  if (!proto || typeof proto.process !== 'function' || !Array.isArray(incoming?.updated)) return (outcome = 'unrecognised');
  if (!proto[PATCHED]) {
    const original = proto.process;
    proto.process = function process(this: { updated: Pending[] }, session: unknown): void {
      const pending = this.updated;
      if (pending.length < 2) return original.call(this, session);
      const runs = runsOfOneOutcome(pending);
      if (runs.length === 1) return original.call(this, session);
      for (const run of runs) {
        this.updated = run;
        original.call(this, session);
      }
      this.updated = [];
    };
    proto[PATCHED] = true;
  }
  return (outcome = 'patched');
};
