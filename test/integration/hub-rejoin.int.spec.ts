// A city system crashes halfway through its join and joins again from scratch (new envelope ids, its experts cut
// into other batches): the exploratory tester's report. Before the fix the hub counted the new batch 0 as a repeat
// of the old one by its index, so the system ended `joined` with experts missing and nothing dead-lettered.
import type { UplinkEnvelope } from '../../src/adapters/messaging/messages';
import type { UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient } from '../../src/sdk';
import { DownlinkCollector, getJson, joinSystem, profile, registerSystem, startInProcessHub, tempDir, until, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();
const data = tempDir('rts-hub-rejoin-');

/** What the hub's uplink handler made of each envelope id: its outcome, or the error it threw (a dead letter). */
const handled = new Map<string, { outcome?: string; error?: string }>();
/** Every error the handler threw, by envelope id (a retried message's later success leaves its failure here). */
const failures: Array<{ id: string; error: string }> = [];
const wrapUplink = (real: UplinkLike): UplinkLike => ({
  handleUplink: async (envelope: UplinkEnvelope) => {
    try {
      const result = (await real.handleUplink(envelope)) as { outcome?: string };
      handled.set(envelope.id, { outcome: result?.outcome ?? 'ok' });
      return result;
    } catch (error) {
      handled.set(envelope.id, { error: (error as { code?: string }).code ?? String(error) });
      failures.push({ id: envelope.id, error: (error as { code?: string }).code ?? String(error) });
      throw error;
    }
  },
});

afterAll(() => data.remove());

const expert = (local: string, n: number) => ({ localExpertId: local, ...profile(n) });

it('a system that crashed mid-join and joins again from scratch ends with every expert, and the others get each one', async () => {
  // The hub and the collector stop inside the test: useBroker's afterAll removes the broker.
  const hub: RunningHub = await startInProcessHub(amq.broker, data.dir, { wrapUplink });
  const a = new DownlinkCollector(amq.connection, 'city-a');
  await a.start();
  try {
    await rejoin(hub, a);
  } finally {
    await a.stop();
    await hub.stop();
  }
});

const rejoin = async (hub: RunningHub, a: DownlinkCollector): Promise<void> => {
  await joinSystem(hub.url, amq.sender, 'city-a');
  await registerSystem(hub.url, 'city-r');
  const system = async () => (await getJson(hub.url, '/systems/city-r')).body;

  // First attempt (the SDK's way: one correlation id for the whole join): the request for 2 batches and 4
  // experts, batch 0 with a and b; then the process dies.
  const first = await RtsClient.connect({ systemId: 'city-r', url: amq.broker.url });
  const k1 = 'join-attempt-1';
  await first.requestJoin({ expectedBatches: 2, expectedExperts: 4 }, { correlationId: k1 });
  const oldBatch0 = await first.sendBatch({ batchIndex: 0, batchCount: 2, experts: [expert('a', 1), expert('b', 2)] }, { correlationId: k1 });
  await until('the first attempt has batch 0', async () => (await system()).join?.batchesImported === 1);
  await first.close();

  // After the restart: a new join from scratch, new ids, another cut: batch 0 = [c, d], batch 1 = [a, b].
  const second = await RtsClient.connect({ systemId: 'city-r', url: amq.broker.url });
  try {
    const join = await second.joinWithExperts([expert('c', 3), expert('d', 4), expert('a', 1), expert('b', 2)], { batchSize: 2 });
    expect(join.batches).toBe(2);
    await until('city-r joined', async () => (await system()).status === 'joined', 60_000, 100);
    // The second request was not swallowed as a repeat of the first: it restarted the join.
    expect(handled.get(join.requestId)).toEqual({ outcome: 'applied' });
    expect(await system()).toMatchObject({ status: 'joined', activeExperts: 4, join: { expectedBatches: 2, batchesImported: 2, expectedExperts: 4, expertsImported: 4 } });
    for (const local of ['a', 'b', 'c', 'd']) {
      const res = await getJson(hub.url, `/experts/city-r:${local}`);
      expect({ local, status: res.status, expertStatus: res.body.status }).toEqual({ local, status: 200, expertStatus: 'active' });
    }
    await until("city-a got each of city-r's experts", () => ['a', 'b', 'c', 'd'].every((l) => a.upsertedExperts().has(`city-r:${l}`)), 30_000, 50, () => a.describe());

    // Late messages of the first attempt are harmless: its batch 0 again (a redelivery, same id) and a batch 1 it
    // never got to send before the crash, with another profile for a. Neither is refused nor changes anything.
    const lateBatch1 = await second.sendBatch({ batchIndex: 1, batchCount: 2, experts: [{ localExpertId: 'a', ...profile(1, { title: 'Stale title' }) }] }, { correlationId: k1 });
    await second.sendBatch({ batchIndex: 0, batchCount: 2, experts: [expert('a', 1), expert('b', 2)] }, { messageId: oldBatch0, correlationId: k1 });
    await until('the late batches were handled', () => handled.get(lateBatch1) !== undefined && handled.get(oldBatch0)?.outcome === 'duplicate', 30_000);
    expect(handled.get(lateBatch1)).toEqual({ outcome: 'duplicate' });
    expect((await getJson(hub.url, '/experts/city-r:a')).body.profile.title).toBe(profile(1).title);
    expect(await system()).toMatchObject({ status: 'joined', activeExperts: 4, join: { batchesImported: 2, expertsImported: 4 } });
  } finally {
    await second.close();
  }

  // Nothing of city-r was dead-lettered, and city-a got no bad messages.
  expect([...handled.values()].filter((h) => h.error !== undefined)).toEqual([]);
  expect(a.bad).toEqual([]);
};

// A joined system that lost its directory (restored from an old backup, say) joins again with all of its experts.
// Before, the hub took the new request for the finished join: with the same numbers its batches were skipped as
// repeats (a new expert in them was lost, nothing dead-lettered), with other numbers it was refused.
it('a joined system that joins again gets a full sync, and the experts of its new join are registered', async () => {
  const hub: RunningHub = await startInProcessHub(amq.broker, data.dir, { wrapUplink });
  const a = new DownlinkCollector(amq.connection, 'city-a');
  const s = new DownlinkCollector(amq.connection, 'city-s');
  await a.start();
  await s.start();
  const client = await RtsClient.connect({ systemId: 'city-s', url: amq.broker.url });
  try {
    await joinSystem(hub.url, amq.sender, 'city-a');
    await registerSystem(hub.url, 'city-s');
    const system = async () => (await getJson(hub.url, '/systems/city-s')).body;
    await client.joinWithExperts([expert('x', 11), expert('y', 12)]);
    await until('city-s joined', async () => (await system()).status === 'joined', 60_000, 100);
    const { joinedAt } = await system();
    await until('city-s got its snapshot', () => s.distinct('directory.snapshot').length === 1, 30_000, 50, () => s.describe());

    // The same number of experts as before (2): x with a new title, z new, y left out (a join does not retire).
    const again = await client.joinWithExperts([expert('x', 11), expert('z', 13)].map((e) => (e.localExpertId === 'x' ? { ...e, title: 'Head of cardiology' } : e)));
    await until('city-s joined again', async () => handled.get(again.batchIds[0]!)?.outcome === 'applied' && (await system()).status === 'joined', 60_000, 100, () => JSON.stringify({ request: handled.get(again.requestId), batch: handled.get(again.batchIds[0]!) }));
    expect(handled.get(again.requestId)).toEqual({ outcome: 'applied' });
    expect(await system()).toMatchObject({ status: 'joined', joinedAt, activeExperts: 3, join: { expectedBatches: 1, batchesImported: 1, expectedExperts: 2, expertsImported: 2 } });
    expect((await getJson(hub.url, '/experts/city-s:z')).body.status).toBe('active');
    expect((await getJson(hub.url, '/experts/city-s:x')).body.profile.title).toBe('Head of cardiology');

    // city-s gets a second snapshot (city-a's directory: empty here, announced all the same) and its confirmation.
    await until('city-s got a second snapshot', () => new Set(s.distinct('directory.snapshot').map((e) => (e.payload as { snapshotId: string }).snapshotId)).size === 2, 30_000, 50, () => s.describe());
    expect(s.distinct('system.joined').length).toBe(2);
    // city-a gets the new expert and the changed one.
    await until('city-a got z and the new title of x', () =>
      a.upsertedExperts().has('city-s:z') &&
      a.distinct('directory.expert.upserted').some((e) => (e.payload as { expertId: string; profile: { title: string } }).expertId === 'city-s:x' && (e.payload as { profile: { title: string } }).profile.title === 'Head of cardiology'),
      30_000, 50, () => a.describe());
    // ... and nothing else of the join again: x once more (changed), z once (new), y not again (unchanged). Before,
    // the join re-sent all of city-s's experts: y twice, x and z once more under other envelope ids. A later
    // expert's upsert marks the end (downlink goes out in event order).
    await client.registerExpert('marker', profile(14));
    await until('city-a got the marker', () => a.upsertedExperts().has('city-s:marker'), 30_000, 50, () => a.describe());
    const upserts = new Map<string, number>();
    for (const e of a.distinct('directory.expert.upserted')) upserts.set((e.payload as { expertId: string }).expertId, (upserts.get((e.payload as { expertId: string }).expertId) ?? 0) + 1);
    expect(Object.fromEntries(upserts)).toEqual({ 'city-s:x': 2, 'city-s:y': 1, 'city-s:z': 1, 'city-s:marker': 1 });
    expect([...handled.values()].filter((h) => h.error !== undefined)).toEqual([]);
    expect(a.bad).toEqual([]);
    expect(s.bad).toEqual([]);
  } finally {
    await client.close();
    await s.stop();
    await a.stop();
    await hub.stop();
  }
});

// The RTS conformance tester's join of 3,000 experts in batches of 25: the 120 batches ran at once in the hub, met
// on the system's stream, and 53 used up their attempts on version conflicts (dead-lettered); the join stopped at
// 55 % for good. One system's batches are now applied one at a time.
it('a join cut into many small batches completes, with no batch dead-lettered', async () => {
  const hub: RunningHub = await startInProcessHub(amq.broker, data.dir, { wrapUplink });
  const client = await RtsClient.connect({ systemId: 'city-m', url: amq.broker.url });
  try {
    await registerSystem(hub.url, 'city-m');
    const experts = Array.from({ length: 1_200 }, (_, i) => expert(`m${i}`, i));
    const join = await client.joinWithExperts(experts, { batchSize: 10 });
    expect(join.batches).toBe(120);
    const system = async () => (await getJson(hub.url, '/systems/city-m')).body;
    await until('city-m joined', async () => (await system()).status === 'joined', 90_000, 200, () => JSON.stringify({ join: handled.size }));
    expect(await system()).toMatchObject({ status: 'joined', activeExperts: 1_200, join: { expectedBatches: 120, batchesImported: 120, expertsImported: 1_200 } });
    // Not one attempt failed: nothing met another batch on the system's stream, so nothing came near the limit.
    const ids = new Set(join.batchIds);
    expect(failures.filter((f) => ids.has(f.id))).toEqual([]);
  } finally {
    await client.close();
    await hub.stop();
  }
});
