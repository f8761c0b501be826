// A flood of refused-for-now messages in ONE lane (changes of one expert the hub does not know), larger than what the
// uplink consumer holds (RTS_UPLINK_PREFETCH + maxWaitingFor(prefetch): 10 + 100), must not stall the other systems.
//
// An outside review (ActiveMQ 6.3.1, credit 10, pauses from 40 ms): after 100 such changes another system's
// registration was applied 0.5 s after the hub started; after 115, not within 240 s; after 200, not within 500 s, and
// /health said ok. The lane's waiters held every credit slot, so its first message, handed back for its retry, could
// not come again (ActiveMQ re-dispatches it behind what it already buffered for the link), and every 30 s wait for
// it stopped the whole uplink. Now a consumer whose credit the waiters have used up stops waiting for the failed
// places: the lane goes on, its messages are retried and dead-lettered in turn, and the credit comes free.
//
// Order, not time: the other system's registration is applied before the flood is all dead-lettered; nothing is lost
// (each change of the flood dead-lettered once, with the retry limit as its reason; the registration applied once).
// ActiveMQ re-dispatches a handed-back message on the same link, so the credit it frees goes to the flood again: the
// others' messages come in as the flood's are dead-lettered (one credit each), in queue order, so lf-b's follows the
// flood's first ~20 dead letters; what changed is that those come at the lane's pace, not one per 30 s. Measured
// (ActiveMQ 6.3.1): before, in one run lf-b's registration not applied and nothing dead-lettered within 50 s, in another
// applied after 13 s (20 dead letters), the flood not all dead-lettered within 50 s; now lf-b's after 1.5 s, the flood
// all dead-lettered in ~14 s.
import type { UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import type { RunningHub } from '../../src/bootstrap/main';
import { getJson, joinSystem, profile, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();

const PREFETCH = 10;
/** prefetch + maxWaitingFor(prefetch) = 110 held at most; 20 more. */
const N = 130;
const MAX_ATTEMPTS = 5;

it(`a flood of ${N} failing changes of one expert, more than the consumer holds: another system's registration is applied before the flood is all dead-lettered, and nothing is lost`, async () => {
  const data = tempDir('rts-hub-lane-flood-');
  const log: string[] = [];
  const failures = new Map<string, number>();
  const wrapUplink = (real: UplinkLike): UplinkLike => ({
    handleUplink: async (envelope) => {
      try {
        const result = await real.handleUplink(envelope);
        if (envelope.systemId === 'lf-b') log.push('b applied');
        return result;
      } catch (error) {
        if (envelope.systemId === 'lf-a') {
          const n = (failures.get(envelope.id) ?? 0) + 1;
          failures.set(envelope.id, n);
          if (n === MAX_ATTEMPTS) log.push('a dead-lettered');
        }
        throw error;
      }
    },
  });
  let hub: RunningHub = await startInProcessHub(amq.broker, data.dir);
  const env = { RTS_UPLINK_PREFETCH: String(PREFETCH), RTS_UPLINK_RETRY_DELAY_MS: '40', RTS_UPLINK_MAX_ATTEMPTS: String(MAX_ATTEMPTS) };
  try {
    await joinSystem(hub.url, amq.sender, 'lf-a');
    await joinSystem(hub.url, amq.sender, 'lf-b');
    await hub.stop();
    const flood = new Set<string>();
    for (let i = 0; i < N; i++) {
      const change = uplink.changed('lf-a', 'ghost', profile(1));
      flood.add(change.id);
      await sendUplink(amq.sender, change);
    }
    await sendUplink(amq.sender, uplink.registered('lf-b', 'b1', profile(2)));

    hub = await startInProcessHub(amq.broker, data.dir, { wrapUplink, env });
    const letters = async () => ((await getJson(hub.url, '/dead-letters?limit=1000')).body.items as { reason: string; envelopeId: string }[]).filter((l) => flood.has(l.envelopeId));
    const state = () => `b applied at ${log.indexOf('b applied')} of ${log.length}; dead-lettered ${log.filter((l) => l === 'a dead-lettered').length} of ${N}`;
    // On the old code the uplink stood still: 30 s per message of the flood past 110, and lf-b's behind them all.
    await until('every change of the flood dead-lettered', async () => (await letters()).length >= N, 50_000, 250, state);
    expect((await getJson(hub.url, '/experts/lf-b:b1')).status).toBe(200);
    // Order, not time: lf-b's registration before the flood was all dead-lettered.
    const applied = log.indexOf('b applied');
    expect(applied).toBeGreaterThanOrEqual(0);
    expect(log.slice(0, applied).filter((l) => l === 'a dead-lettered').length).toBeLessThan(N);
    expect(log.filter((l) => l === 'b applied')).toHaveLength(1);
    // Nothing lost: each change of the flood dead-lettered once, for its retry limit, after exactly its attempts.
    const dead = await letters();
    expect(dead).toHaveLength(N);
    expect(new Set(dead.map((l) => l.envelopeId)).size).toBe(N);
    expect(new Set(dead.map((l) => l.reason))).toEqual(new Set([`retry limit (${MAX_ATTEMPTS}) reached: expert_not_found`]));
    expect(failures.size).toBe(N);
    expect([...failures.values()].every((n) => n === MAX_ATTEMPTS)).toBe(true);
  } finally {
    await hub.stop();
    data.remove();
  }
}, 110_000);
