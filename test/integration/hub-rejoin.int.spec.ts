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
const wrapUplink = (real: UplinkLike): UplinkLike => ({
  handleUplink: async (envelope: UplinkEnvelope) => {
    try {
      const result = (await real.handleUplink(envelope)) as { outcome?: string };
      handled.set(envelope.id, { outcome: result?.outcome ?? 'ok' });
      return result;
    } catch (error) {
      handled.set(envelope.id, { error: (error as { code?: string }).code ?? String(error) });
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
