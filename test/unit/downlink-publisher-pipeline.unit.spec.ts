// The downlink publisher hands a page's messages to the outbox without waiting for each broker accept (soak
// finding 3: one accept and one checkpoint per event capped the downlink at ~3 messages a second on a busy
// machine), in store order, and moves its checkpoint only past events whose messages, and all before them, were
// accepted. Counts, not durations: an outbox whose accepts the test hands out itself.
import { DateTime } from 'luxon';
import { DownlinkPublisher } from '../../src/application/directory/downlink-publisher';
import { DOWNLINK_EVENT_TYPES } from '../../src/application/directory/downlink-planner';
import * as directoryMessages from '../../src/application/directory/directory-messages';
import type { DownlinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import type { DownlinkOutbox } from '../../src/application/ports/downlink-outbox';
import type { ExpertProfile } from '../../src/domain/directory/expert';
import { inMemoryDirectoryCore, testExpert, testUplink } from '../support/directory-fixtures';

const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
let counter = 0;
const ids = { uuid: () => uuidV5(`id/${counter++}`) };

const profile = (i: number, title?: string): ExpertProfile => testExpert(i, title !== undefined ? { title } : {});

const uplink = testUplink;

/** A broker the test drives: each send waits until the test accepts (or fails) it. */
class GatedOutbox implements DownlinkOutbox {
  readonly calls: { queue: string; envelope: DownlinkEnvelope; accept(): void; fail(error: Error): void }[] = [];
  readonly accepted: { queue: string; envelope: DownlinkEnvelope }[] = [];

  send(queue: string, envelope: DownlinkEnvelope): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.calls.push({
        queue,
        envelope,
        accept: () => {
          this.accepted.push({ queue, envelope });
          resolve();
        },
        fail: reject,
      });
    });
  }

  /**
   * Lets the publisher run until `n` sends have been handed over in all, or until it stops handing any over (it
   * waits for accepts): then the count says so at once, instead of a test timeout.
   */
  async handedOver(n: number): Promise<void> {
    for (let idle = 0; this.calls.length < n && idle < 200; idle++) {
      const before = this.calls.length;
      await new Promise((r) => setImmediate(r));
      if (this.calls.length > before) idle = 0;
    }
  }

  /** Gives the publisher a chance to hand over more (it would, if it does not wait for accepts). */
  static async settle(): Promise<void> {
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  }
}

const N = 40; // expert changes of chengdu, each one downlink message to beijing

const setup = async () => {
  const { store, directory, projector, service, handler, checkpoints } = inMemoryDirectoryCore(clock, ids);
  for (const id of ['beijing', 'chengdu']) await service.registerSystem({ systemId: id, name: id, area: id });
  for (const id of ['beijing', 'chengdu']) await handler.handleUplink(uplink(id, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, 'join'));
  // Joins are published first, through an outbox that accepts at once.
  const instant: DownlinkOutbox = { send: async () => undefined };
  await new DownlinkPublisher({ store, directory, projector, outbox: instant, checkpoints }).catchUp();
  for (let i = 0; i < N / 2; i++) {
    await handler.handleUplink(uplink('chengdu', 'expert.registered', { localExpertId: `e-${i}`, profile: profile(i) }, `reg-${i}`));
    await handler.handleUplink(uplink('chengdu', 'expert.changed', { localExpertId: `e-${i}`, profile: profile(i, 'Chief physician') }, `chg-${i}`));
  }
  return { store, directory, projector, checkpoints };
};

describe('downlink publisher: pipelined sends', () => {
  it('hands over up to `concurrency` messages before the first accept, in store order, and checkpoints once all are accepted', async () => {
    const t = await setup();
    const outbox = new GatedOutbox();
    const publisher = new DownlinkPublisher({ ...t, outbox, concurrency: 16 });
    const before = await t.checkpoints.get('downlink');
    const caughtUp = publisher.catchUp();
    await outbox.handedOver(16);
    await GatedOutbox.settle();
    // Not one at a time (the old publisher had 1 in flight here), and not more than the window.
    expect(outbox.calls).toHaveLength(16);
    expect(outbox.accepted).toHaveLength(0);
    expect(await t.checkpoints.get('downlink')).toBe(before);
    for (let i = 0; i < N; i++) {
      await outbox.handedOver(i + 1);
      outbox.calls[i]!.accept();
      await GatedOutbox.settle();
    }
    await caughtUp;
    expect(outbox.calls).toHaveLength(N);
    // Handed over in store order: per expert, registration (revision 1) before the change (revision 2).
    const order = outbox.calls.map((c) => `${(c.envelope.payload as { expertId: string }).expertId}@${(c.envelope.payload as { revision: number }).revision}`);
    expect(order).toEqual(Array.from({ length: N / 2 }, (_, i) => [`chengdu:e-${i}@1`, `chengdu:e-${i}@2`]).flat());
    expect(outbox.calls.every((c) => c.queue === 'rts.downlink.beijing')).toBe(true);
    expect(await t.checkpoints.get('downlink')).toBe(await t.store.headPosition());
  });

  it('a long page: the checkpoint is stored past the events already accepted before the page ends (a standby sees only the stored checkpoint)', async () => {
    // A page of 200 events fanned out to 80 systems is 16,000 messages, minutes on 2 cores. Stored at the page's end
    // only, the checkpoint stood still that long, and every standby hub (it reads the stored checkpoint, not this
    // process's sends) said downlink "stalled" with a warning that no process gets the downlink out.
    const t = await setup();
    const outbox = new GatedOutbox();
    const publisher = new DownlinkPublisher({ ...t, outbox, concurrency: 4, checkpointEveryMs: 0 });
    const before = await t.checkpoints.get('downlink');
    const head = await t.store.headPosition();
    const caughtUp = publisher.catchUp();
    await outbox.handedOver(4);
    for (const i of [0, 1]) outbox.calls[i]!.accept();
    await outbox.handedOver(6);
    await GatedOutbox.settle();
    // The page (all 40 events) is not done; its first two events are, and the stored checkpoint says so.
    const mid = await t.checkpoints.get('downlink');
    expect(mid).toBeGreaterThan(before);
    expect(mid).toBeLessThan(head);
    const [, second] = await t.store.readAll({ after: before, maxCount: 2, types: DOWNLINK_EVENT_TYPES });
    expect(mid).toBe(second!.globalPosition);
    for (let i = 2; i < N; i++) {
      await outbox.handedOver(i + 1);
      outbox.calls[i]!.accept();
      await GatedOutbox.settle();
    }
    await caughtUp;
    expect(await t.checkpoints.get('downlink')).toBe(head);
  });

  it('a failed send: the checkpoint stays before its event, and the next drain sends from there again with the same ids', async () => {
    const t = await setup();
    const outbox = new GatedOutbox();
    const publisher = new DownlinkPublisher({ ...t, outbox, concurrency: 8 });
    const caughtUp = publisher.catchUp().then(
      () => null,
      (error: Error) => error,
    );
    await outbox.handedOver(8);
    // The first 5 accepted, the 6th fails, the 7th and 8th accepted: only the first 5 events are done.
    for (const i of [0, 1, 2, 3, 4]) outbox.calls[i]!.accept();
    outbox.calls[5]!.fail(new Error('released (simulated)'));
    outbox.calls[6]!.accept();
    outbox.calls[7]!.accept();
    await GatedOutbox.settle();
    // catchUp's drain failed; the next one (below) is a retry, as the background loop would run it.
    expect((await caughtUp)?.message).toBe('released (simulated)');
    expect(outbox.calls).toHaveLength(8); // nothing more handed over after the failure
    expect(await t.checkpoints.get('downlink')).toBeGreaterThan(0n);
    // The checkpoint is past the events of the first 5 messages only: the 6th and everything after it is sent again.
    const retry = new GatedOutbox();
    const again = new DownlinkPublisher({ ...t, outbox: retry, concurrency: 64 }).catchUp();
    await retry.handedOver(N - 5);
    for (const c of retry.calls) c.accept();
    await again;
    expect(retry.calls).toHaveLength(N - 5);
    expect(retry.calls.slice(0, 3).map((c) => c.envelope.id)).toEqual(outbox.calls.slice(5, 8).map((c) => c.envelope.id));
    // Together: every message accepted at least once, none lost; ids are the same on the resend.
    const all = new Set([...outbox.accepted, ...retry.accepted].map((m) => m.envelope.id));
    expect(all.size).toBe(N);
  });

  it('a join\'s messages are made as they are sent: no more than the window ahead of the broker\'s accepts', async () => {
    // The first join of a system of 10,000 experts with 80 joined systems is 790,000 messages: made all at once
    // before the first was sent, ~400 MB in the hub's memory and seconds of a blocked event loop (HTTP, heartbeats).
    const { store, directory, projector, service, handler, checkpoints } = inMemoryDirectoryCore(clock, ids);
    const others = ['beijing', 'shanghai', 'wuhan'];
    for (const id of [...others, 'chengdu']) await service.registerSystem({ systemId: id, name: id, area: id });
    for (const id of others) await handler.handleUplink(uplink(id, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, 'join'));
    const instant: DownlinkOutbox = { send: async () => undefined };
    await new DownlinkPublisher({ store, directory, projector, outbox: instant, checkpoints }).catchUp();
    const experts = 300;
    await handler.handleUplink(uplink('chengdu', 'system.join.requested', { expectedBatches: 1, expectedExperts: experts }, 'join'));
    const batch = Array.from({ length: experts }, (_, i) => ({ localExpertId: `e-${i}`, ...profile(i) }));
    await handler.handleUplink(uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: batch }, 'batch-0'));
    const total = 2 + others.length * (1 + experts); // to chengdu: system.joined and one snapshot part

    const made = jest.spyOn(directoryMessages, 'downlinkMessageId');
    try {
      const outbox = new GatedOutbox();
      const caughtUp = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints, concurrency: 8 }).catchUp();
      await outbox.handedOver(8);
      await GatedOutbox.settle();
      expect(outbox.calls).toHaveLength(8);
      expect(made.mock.calls.length).toBeLessThanOrEqual(9);
      for (let i = 0; i < total; i++) {
        await outbox.handedOver(i + 1);
        outbox.calls[i]!.accept();
        if (i % 50 === 0) expect(made.mock.calls.length).toBeLessThanOrEqual(i + 1 + 9);
      }
      await caughtUp;
      expect(outbox.calls).toHaveLength(total);
      expect(new Set(outbox.calls.map((c) => c.envelope.id)).size).toBe(total);
      expect(await checkpoints.get('downlink')).toBe(await store.headPosition());
    } finally {
      made.mockRestore();
    }
  });
});
