// A flood of refused-for-now messages in ONE lane (changes of one expert the hub does not know), larger than what the
// uplink consumer holds (RTS_UPLINK_PREFETCH + maxWaitingFor(prefetch): here 4 + 40), must not stall the other systems.
//
// An outside review (ActiveMQ 6.3.1, credit 10, pauses from 40 ms): after 100 such changes another system's
// registration was applied 0.5 s after the hub started; after 115, not within 240 s; after 200, not within 500 s, and
// /health said ok. The lane's waiters held every credit slot, so its first message, handed back for its retry, could
// not come again (ActiveMQ re-dispatches it behind what it already buffered for the link), and every 30 s wait for
// it stopped the whole uplink. Now a consumer whose credit the messages waiting for their turn have used up stops
// waiting for the failed place with the most waiting behind it: that lane goes on, its messages are retried and
// dead-lettered in turn, and the credit comes free.
//
// Order, not time: the other system's registration is applied before the flood is all dead-lettered; nothing is lost
// (each change of the flood dead-lettered once, with the retry limit as its reason; the registration applied once).
// The stall itself depends on timing (the reviewer's runs of the code before, N=130 at credit 10: in one nothing was
// applied or dead-lettered within 50 s, in another lf-b's registration after 13 s), and the code before passed this
// test in the runs tried here (credit 4, N=60; credit 10, N=130): it pins what must hold, not the stall. The
// mechanism is pinned by the unit tests (queue-consumer-credit: onSaturated only when the messages waiting for their
// turn fill the slots; ordered-by-key: giveUpAwaited gives up the failed place with the most waiting behind it).
// Measured here (ActiveMQ 6.3.1): N=60 at credit 4 all dead-lettered in ~35 s, N=130 at credit 10 in ~80 s, one at a
// time once the consumer holds the whole flood.
import type { UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import type { RunningHub } from '../../src/bootstrap/main';
import { floodRecorder, getJson, joinSystem, profile, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(150_000);

const amq = useBroker();

const PREFETCH = 4;
/** prefetch + maxWaitingFor(prefetch) = 44 held at most; 16 more. */
const N = 60;
const MAX_ATTEMPTS = 5;

it(`a flood of ${N} failing changes of one expert, more than the consumer holds: another system's registration is applied before the flood is all dead-lettered, and nothing is lost`, async () => {
  const data = tempDir('rts-hub-lane-flood-');
  const { log, failures, wrapUplink } = floodRecorder('lf-a', 'lf-b', MAX_ATTEMPTS);
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
    // On the old code the uplink stood still: 30 s per message of the flood past 44, and lf-b's behind them all.
    await until("lf-b's registration applied", () => log.includes('b applied'), 60_000, 100, state);
    expect((await getJson(hub.url, '/experts/lf-b:b1')).status).toBe(200);
    // The rest of the flood is worked off at the lane's pace (one at a time once the consumer holds all of it).
    await until('every change of the flood dead-lettered', async () => (await letters()).length >= N, 80_000, 250, state);
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
}, 145_000);

// The other side of onSaturated: it must not be told when no lane is stuck. A flood of changes of MANY experts the hub
// does not know (one lane each) fills the slots with messages that pause before their retry's hand-back; those pauses
// end by themselves. Counted as saturation, the uplink gave up every lane's awaited places: another system's change,
// waiting behind its own failed first change, ran before it, and the older profile (the first change, applied last)
// won for good. Order, not time: the expert ends with the last profile sent, handled first-failed, first, second.
it('a flood of failing changes of many experts fills the slots with retry pauses: another system\'s two changes of one expert are still applied in order', async () => {
  const data = tempDir('rts-hub-lane-pauses-');
  const calls: string[] = [];
  let first = '';
  const wrapUplink = (real: UplinkLike): UplinkLike => ({
    handleUplink: async (envelope) => {
      if (envelope.systemId !== 'lp-b') return real.handleUplink(envelope);
      const name = envelope.id === first ? 'first' : 'second';
      if (envelope.id === first && !calls.includes('first failed')) {
        calls.push('first failed');
        throw new Error('the store did not answer'); // transient: retried, and its lane waits for it
      }
      const result = await real.handleUplink(envelope);
      calls.push(`${name} applied`);
      return result;
    },
  });
  let hub: RunningHub = await startInProcessHub(amq.broker, data.dir);
  // prefetch 2 + maxWaitingFor(2) = 22 slots; 30 changes of unknown experts, each pausing 1 s before its hand-back.
  const env = { RTS_UPLINK_PREFETCH: '2', RTS_UPLINK_RETRY_DELAY_MS: '1000', RTS_UPLINK_MAX_ATTEMPTS: '2' };
  try {
    await joinSystem(hub.url, amq.sender, 'lp-a');
    await joinSystem(hub.url, amq.sender, 'lp-b');
    await sendUplink(amq.sender, uplink.registered('lp-b', 'b1', profile(1)));
    await until('lp-b:b1 registered', async () => (await getJson(hub.url, '/experts/lp-b:b1')).status === 200, 20_000);
    await hub.stop();
    const one = uplink.changed('lp-b', 'b1', profile(1, { title: 'first' }));
    first = one.id;
    await sendUplink(amq.sender, one);
    await sendUplink(amq.sender, uplink.changed('lp-b', 'b1', profile(1, { title: 'second' })));
    const flood = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const change = uplink.changed('lp-a', `ghost-${i}`, profile(i));
      flood.add(change.id);
      await sendUplink(amq.sender, change);
    }

    hub = await startInProcessHub(amq.broker, data.dir, { wrapUplink, env });
    const letters = async () => ((await getJson(hub.url, '/dead-letters?limit=1000')).body.items as { reason: string; envelopeId: string }[]).filter((l) => flood.has(l.envelopeId));
    await until('both changes applied and the flood dead-lettered', async () => calls.length >= 3 && (await letters()).length >= 30, 50_000, 250, () => JSON.stringify(calls));
    expect(calls).toEqual(['first failed', 'first applied', 'second applied']);
    expect((await getJson(hub.url, '/experts/lp-b:b1')).body.profile.title).toBe('second');
    const dead = await letters();
    expect(new Set(dead.map((l) => l.envelopeId)).size).toBe(30);
    expect(new Set(dead.map((l) => l.reason))).toEqual(new Set(['retry limit (2) reached: expert_not_found']));
  } finally {
    await hub.stop();
    data.remove();
  }
}, 110_000);
