// A system that is offline catches up in order when it comes back, and a downlink message leaves its queue only
// once the system accepted it; a hub SIGKILLed in the middle of a 5,000-expert join loses nothing.
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { batchesOf, DownlinkCollector, getJson, profile, registerSystem, sendUplink, startChildHub, tempDir, until, uplink, useBroker, type ChildHub } from './hub-support';

jest.setTimeout(150_000);

const amq = useBroker();

it('an offline system gets every change in order per expert when it connects; a message it fails on comes back', async () => {
  const data = tempDir('rts-hub-offline-');
  const hub = await startChildHub(amq.broker, data.dir);
  try {
    for (const id of ['off-a', 'off-b']) {
      await registerSystem(hub.url, id);
      await sendUplink(amq.sender, uplink.join(id, 0, 0));
    }
    await until('both joined', async () => (await getJson(hub.url, '/systems')).body.items.every((s: { status: string }) => s.status === 'joined'));

    // B has no consumer: A registers, changes and retires experts.
    const experts = Array.from({ length: 20 }, (_, i) => `x${i}`);
    for (const x of experts) await sendUplink(amq.sender, uplink.registered('off-a', x, profile(1)));
    for (const x of experts) await sendUplink(amq.sender, uplink.changed('off-a', x, profile(1, { availability: 'limited' })));
    for (const x of experts) await sendUplink(amq.sender, uplink.changed('off-a', x, profile(1, { availability: 'unavailable' })));
    for (const x of experts.slice(0, 5)) await sendUplink(amq.sender, uplink.retired('off-a', x));
    await until('A\'s changes applied', async () => (await getJson(hub.url, '/experts/off-a:x0')).body.status === 'retired' && (await getJson(hub.url, '/experts/off-a:x19')).body.revision === 3);

    // B comes online; its handler fails the first delivery of one message: that one must come back.
    let failedOnce: string | undefined;
    const b = new DownlinkCollector(
      amq.connection,
      'off-b',
      (m, envelope) => {
        if (failedOnce === undefined && envelope.type === 'directory.expert.upserted') {
          failedOnce = envelope.id;
          return { retry: 'the system could not store it' };
        }
        return 'accept';
      },
      1,
    );
    await b.start();
    await until(
      'B caught up: 20 x 3 upserts and 5 retirements',
      () => b.distinct('directory.expert.upserted').length === 60 && b.distinct('directory.expert.retired').length === 5,
      60_000,
      50,
      () => `${b.describe()}; refused once: ${failedOnce}\nhub output (last 4,000 characters):\n${hub.output().slice(-4000)}`,
    );
    await b.stop();

    // Removed only when accepted: the failed message was delivered again (delivery-count raised) and accepted.
    const again = b.deliveries.filter((d) => d.envelope.id === failedOnce);
    expect(again.map((d) => d.deliveryCount)).toEqual([0, 1]);
    // In order per expert: revisions only go up.
    const lastRevision = new Map<string, number>();
    for (const d of b.deliveries) {
      const e = d.envelope;
      if (e.type !== 'directory.expert.upserted' && e.type !== 'directory.expert.retired') continue;
      if (e.id === failedOnce && d.deliveryCount === 0) continue; // refused, not processed
      const seen = lastRevision.get(e.payload.expertId) ?? 0;
      expect(e.payload.revision).toBeGreaterThanOrEqual(seen);
      lastRevision.set(e.payload.expertId, e.payload.revision);
    }
    expect(lastRevision.get('off-a:x0')).toBe(4);
    expect(lastRevision.get('off-a:x19')).toBe(3);
    // Nothing left behind on B's queue.
    const empty = new DownlinkCollector(amq.connection, 'off-b');
    await empty.start();
    await new Promise((r) => setTimeout(r, 500));
    await empty.stop();
    expect(empty.deliveries).toHaveLength(0);
  } finally {
    await hub.stop();
    data.remove();
  }
});

it('a hub SIGKILLed in the middle of a 5,000-expert join: after a restart all land, SystemJoined once, no duplicate in effect', async () => {
  const data = tempDir('rts-hub-restart-');
  let hub: ChildHub = await startChildHub(amq.broker, data.dir);
  const port = Number(new URL(hub.url).port);
  try {
    const a = new DownlinkCollector(amq.connection, 'rs-a');
    const b = new DownlinkCollector(amq.connection, 'rs-b');
    await a.start();
    await b.start();
    for (const id of ['rs-a', 'rs-b', 'rs-c']) await registerSystem(hub.url, id);
    await sendUplink(amq.sender, uplink.join('rs-a', 0, 0));
    await sendUplink(amq.sender, uplink.join('rs-b', 0, 0));
    await until('A and B joined', async () => (await getJson(hub.url, '/systems/rs-b')).body.status === 'joined');

    const batches = batchesOf('rs-c', 5000, 500, 'c');
    await sendUplink(amq.sender, uplink.join('rs-c', 10, 5000));
    for (const batch of batches.slice(0, 6)) await sendUplink(amq.sender, batch);
    await until('some batches in', async () => (await getJson(hub.url, '/systems/rs-c')).body.join?.batchesImported >= 3, 60_000, 20);
    await hub.kill(); // mid-batch: batches in flight are unsettled and come back
    for (const batch of batches.slice(6)) await sendUplink(amq.sender, batch);
    // The last batch once more, as a system retrying after a lost acknowledgement would.
    await sendUplink(amq.sender, batches[9]!);

    hub = await startChildHub(amq.broker, data.dir, port);
    await until('C joined', async () => (await getJson(hub.url, '/systems/rs-c')).body.status === 'joined', 90_000, 200);
    const cOf = (c: DownlinkCollector) => [...c.upsertedExperts()].filter((x) => x.startsWith('rs-c:')).length;
    await until('A and B have C\'s 5,000', () => cOf(a) === 5000 && cOf(b) === 5000, 90_000, 100);
    expect((await getJson(hub.url, '/systems/rs-c')).body).toMatchObject({ activeExperts: 5000, join: { batchesImported: 10, expertsImported: 5000 } });
    for (const c of [a, b]) {
      const upserts = c.distinct('directory.expert.upserted');
      expect(upserts).toHaveLength(5000); // one id per expert: resends share it
      expect(c.distinct('system.joined').filter((e) => e.type === 'system.joined' && e.payload.systemId === 'rs-c')).toHaveLength(1);
    }
    await a.stop();
    await b.stop();
    await hub.stop();

    const store = SqliteEventStore.open({ file: join(data.dir, 'telemed.sqlite') });
    try {
      const { events } = await store.readStream('system-rs-c');
      expect(events.filter((e) => e.type === 'SystemJoined')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'ExpertBatchImported')).toHaveLength(10);
    } finally {
      await store.close();
    }
  } finally {
    await hub.kill();
    data.remove();
  }
});
