import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { randomUUID } from 'node:crypto';
import { AUDIT_EVENT_TYPE, AUDIT_PARTITIONS, auditPartition, auditStreamOf, chain, genesisHash, type AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail, verifyDaysOf, type AuditSearch } from '../../src/application/audit/audit-trail';
import type { AuditEventsByField } from '../../src/application/ports/audit-events-by-field';
import type { EventStore, RecordedEvent } from '../../src/application/ports/event-store';
import { committedThenLost, countingReads, expectSearchThroughIndex } from '../support/audit-reads';

/**
 * The audit trail as several hub processes write it: each process keeps its own idea of each chain's head, and
 * they meet on the same streams (PostgreSQL, or SQLite files shared by processes). A conflict means another
 * process linked first; the entry must then be linked after it, not dropped.
 */
const entry = (i: number, patientKey: string, at: string): AuditEntry => ({
  at,
  subject: `s-${i}`,
  role: 'patient',
  systemId: null,
  action: 'observations.write',
  patientKey,
  resource: null,
  ip: '127.0.0.1',
  requestId: `r-${i}`,
  outcome: 'allowed',
  status: 201,
  reason: null,
});


/** A trail on a new in-memory store, whose error lines the test reads, that wrote five entries of p1 in one chain. */
const fiveWritten = async () => {
  const store = new InMemoryEventStore();
  const errors: string[] = [];
  const trail = new AuditTrail({ store, logger: { error: (_: Record<string, unknown>, message: string) => void errors.push(message), warn: () => undefined } });
  const at = '2026-11-30T08:00:00.000Z';
  for (let i = 0; i < 5; i++) await trail.record(entry(i, 'p1', at));
  return { store, errors, trail, at, stream: auditStreamOf(entry(0, 'p1', at)) };
};
describe('AuditTrail shared by processes', () => {
  it('links every entry of two processes writing the same chains at the same time, and drops none', async () => {
    const shared = new InMemoryEventStore();
    // Each process reaches the store with its own latency (a commit takes time), so one can read a head that the
    // other is about to move.
    const latency = () => new Promise((r) => setTimeout(r, Math.random() * 3));
    const viaProcess = (): EventStore =>
      new Proxy(shared, {
        get: (target, name) => {
          const value = Reflect.get(target, name, target) as unknown;
          if (name !== 'appendToStream' && name !== 'readStream') return typeof value === 'function' ? value.bind(target) : value;
          return async (...args: unknown[]) => {
            await latency();
            return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        },
      });
    let dropped = 0;
    const trails = [0, 1].map(() => new AuditTrail({ store: viaProcess(), onDropped: (n) => (dropped += n) }));
    const store = shared;
    // Patients of one partition, so both processes write the same chain all the time.
    const keys = Array.from({ length: 200 }, (_, i) => `p${i}`).filter((k) => auditPartition({ patientKey: k, subject: '' }) === 3);
    const at = '2026-11-30T08:00:00.000Z';
    const recorded: Promise<void>[] = [];
    for (let tick = 0; tick < 30; tick++) {
      for (const [t, trail] of trails.entries()) for (let j = 0; j < 5; j++) recorded.push(trail.record(entry(tick * 100 + t * 10 + j, keys[(tick + j) % keys.length]!, at)));
      await new Promise((r) => setTimeout(r, 1));
    }
    const outcomes = await Promise.allSettled(recorded);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(dropped).toBe(0);
    const verified = await trails[0]!.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: true, events: 300, breaks: [] });
    expect(verified.chains).toBe(1);
    expect(AUDIT_PARTITIONS).toBe(8);
  });

  it('drops a batch the store keeps refusing, after its attempts, and says how many entries were lost', async () => {
    const store = new InMemoryEventStore();
    let calls = 0;
    const failing = new Proxy(store, {
      get: (target, name) => {
        if (name === 'appendToStream') return async () => { calls++; throw new Error('disk full'); };
        const value = Reflect.get(target, name, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    let dropped = 0;
    const trail = new AuditTrail({ store: failing, attempts: 3, onDropped: (n) => (dropped += n) });
    const at = '2026-11-30T08:00:00.000Z';
    const both = await Promise.allSettled([trail.record(entry(1, 'p1', at)), trail.record(entry(2, 'p1', at))]);
    expect(both.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(calls).toBe(3);
    expect(dropped).toBe(2);
  });

  it('logs a storage outage once per 10 s with the counts not logged, and once when it works again, not once per batch', async () => {
    const store = new InMemoryEventStore();
    let down = true;
    const flaky = new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name === 'appendToStream') return async (...args: unknown[]) => {
          if (down) throw Object.assign(new Error('database is down'), { code: 'ECONNREFUSED' });
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
    const logger = { error: (fields: object, msg: string) => lines.push({ level: 'error', fields: fields as Record<string, unknown>, msg }), warn: (fields: object, msg: string) => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, msg }) };
    let now = 1_000_000;
    const trail = new AuditTrail({ store: flaky, attempts: 1, logger, now: () => now });
    const at = '2026-11-30T08:00:00.000Z';
    // 40 batches within 10 s, each failing.
    for (let i = 0; i < 40; i++) {
      await trail.record(entry(i, `p${i % 5}`, at)).catch(() => undefined);
      now += 250;
    }
    expect(lines.filter((l) => l.msg === 'audit events could not be stored')).toHaveLength(1);
    now += 10_000;
    await trail.record(entry(99, 'p1', at)).catch(() => undefined);
    const failed = lines.filter((l) => l.msg === 'audit events could not be stored');
    expect(failed).toHaveLength(2);
    expect(failed[1]!.fields).toMatchObject({ notLoggedSince: 39, droppedNotLogged: 39, errCode: 'ECONNREFUSED' });
    down = false;
    await trail.record(entry(100, 'p1', at));
    await trail.record(entry(101, 'p1', at));
    expect(lines.filter((l) => l.msg === 'audit events are stored again')).toEqual([{ level: 'warn', fields: expect.objectContaining({ droppedInAll: 41 }), msg: 'audit events are stored again' }]);
    expect(lines).toHaveLength(3);
  });

  // An append whose answer is lost after it committed (committedThenLost): the store holds the batch, the process
  // does not know it. Its events' ids follow from their chain hashes, so the batch linked again after another head is
  // other events to the store: stored again, an access recorded twice in a chain that still verifies.
  const requestIdsOf = async (store: EventStore, stream: string): Promise<string[]> =>
    (await store.readStream(stream)).events.map((e) => String(e.data['requestId']));

  it('stores a batch once when its answer was lost after the commit and another process appended before the re-read', async () => {
    const shared = new InMemoryEventStore();
    const at = '2026-11-30T08:00:00.000Z';
    const other = new AuditTrail({ store: shared });
    await other.record(entry(0, 'p1', at));
    let dropped = 0;
    const trail = new AuditTrail({ store: committedThenLost(shared, { afterCommit: () => other.record(entry(9, 'p1', at)) }), onDropped: (n) => (dropped += n) });
    await Promise.all([1, 2, 3].map((i) => trail.record(entry(i, 'p1', at))));
    await trail.record(entry(4, 'p1', at));
    const stream = auditStreamOf(entry(1, 'p1', at));
    // Before: r-1..r-3 a second time after r-9 (linked again after the other process's event), the chain still whole.
    expect(await requestIdsOf(shared, stream)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-9', 'r-4']);
    expect(dropped).toBe(0);
    expect(trail.unwritable).toBe(false);
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 6 });
  });

  it.each([
    // Before: the head read on the retry was the batch's own last event, and the batch was linked after itself.
    1,
    // Before: the head read that begins an attempt was not retried: the batch was dropped at once (rejected, counted
    // as lost), though it was stored, and a batch never stored got one attempt, not `attempts`.
    2,
  ])('stores a batch once when its answer was lost after the commit and the store could not be read at once either (%i read(s) failing)', async (failReads) => {
    const shared = new InMemoryEventStore();
    const at = '2026-11-30T08:00:00.000Z';
    let dropped = 0;
    const trail = new AuditTrail({ store: committedThenLost(shared, { failReads }), onDropped: (n) => (dropped += n) });
    await Promise.all([1, 2].map((i) => trail.record(entry(i, 'p1', at))));
    await trail.record(entry(3, 'p1', at));
    expect(await requestIdsOf(shared, auditStreamOf(entry(1, 'p1', at)))).toEqual(['r-1', 'r-2', 'r-3']);
    expect(dropped).toBe(0);
    expect(trail.unwritable).toBe(false);
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 3 });
  });
  it('does not drop a batch whose last attempt committed with its answer lost, when the chain read after it shows it', async () => {
    const shared = new InMemoryEventStore();
    const at = '2026-11-30T08:00:00.000Z';
    const other = new AuditTrail({ store: shared });
    await other.record(entry(0, 'p1', at));
    // Four attempts refused (nothing stored), the fifth and last committed, its answer lost, and another process
    // appended after it before the head was read again.
    let appends = 0;
    const store = new Proxy(shared, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name !== 'appendToStream') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          if (++appends < 5) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (appends > 5) return result;
          await other.record(entry(9, 'p1', at));
          throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
        };
      },
    });
    let dropped = 0;
    const trail = new AuditTrail({ store, onDropped: (n) => (dropped += n) });
    // Before: rejected and counted as dropped (a write answered 503 audit_unavailable, the log saying it could not be
    // stored), though the chain read right after the attempt held it.
    await trail.record(entry(1, 'p1', at));
    expect(dropped).toBe(0);
    expect(trail.unwritable).toBe(false);
    await trail.record(entry(2, 'p1', at));
    expect(await requestIdsOf(shared, auditStreamOf(entry(1, 'p1', at)))).toEqual(['r-0', 'r-1', 'r-9', 'r-2']);
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 4 });
  });

  it('does not drop a batch whose answer was lost when a read after it showed it, though the reads after that failed', async () => {
    const shared = new InMemoryEventStore();
    const at = '2026-11-30T08:00:00.000Z';
    const other = new AuditTrail({ store: shared });
    await other.record(entry(0, 'p1', at));
    // The append commits, its answer is lost, another process appends after it; the chain read right after shows the
    // batch, and every read after that fails until the attempts have run out.
    const reads: boolean[] = [];
    const store = committedThenLost(shared, {
      afterCommit: async () => {
        await other.record(entry(9, 'p1', at));
        reads.push(true, false, false, false, false);
      },
    });
    const failing = new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name !== 'readStream') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          if (reads.shift() === false) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    let dropped = 0;
    const trail = new AuditTrail({ store: failing, onDropped: (n) => (dropped += n) });
    // Before: rejected and counted as dropped, though stored and read back.
    await trail.record(entry(1, 'p1', at));
    expect(dropped).toBe(0);
    reads.length = 0; // the store in reach again
    await trail.record(entry(2, 'p1', at));
    expect(await requestIdsOf(shared, auditStreamOf(entry(1, 'p1', at)))).toEqual(['r-0', 'r-1', 'r-9', 'r-2']);
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 4 });
  });
});

describe('AuditTrail heads: what an anchor and a restart read of a long chain', () => {

  it('verifies and searches a long chain in reads of at most 1,000 events, giving other work turns in between', async () => {
    const store = new InMemoryEventStore();
    const writer = new AuditTrail({ store });
    const at = '2026-11-30T08:00:00.000Z';
    // One patient: one chain of 5,000 events.
    await Promise.all(Array.from({ length: 5_000 }, (_, i) => writer.record(entry(i, 'p1', at))));
    const { counted, read, largest } = countingReads(store);
    const trail = new AuditTrail({ store: counted });
    let turns = 0;
    let ticking = true;
    const tick = () => ticking && (turns++, setImmediate(tick));
    setImmediate(tick);
    const verified = await trail.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: true, chains: 1, events: 5_000 });
    expect(turns).toBeGreaterThanOrEqual(4);
    const turnsBefore = turns;
    const found = await trail.byPatient('p1', { from: new Date('2026-11-30T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z'), now: new Date('2026-12-01T00:00:00Z'), limit: 10 });
    ticking = false;
    expect(found.items).toHaveLength(10);
    expect(turns - turnsBefore).toBeGreaterThanOrEqual(4);
    expect(largest()).toBeLessThanOrEqual(1_000);
    expect(read()).toBeGreaterThanOrEqual(10_000);
  });

  it('reads the last event of each chain, not the chain from its genesis (a busy day: seconds with the loop blocked)', async () => {
    const store = new InMemoryEventStore();
    const writer = new AuditTrail({ store });
    const at = '2026-11-30T08:00:00.000Z';
    await Promise.all(Array.from({ length: 2_000 }, (_, i) => writer.record(entry(i, `p${i % 97}`, at))));
    const heads = await writer.headsOf('2026-11-30');
    expect(Object.keys(heads)).toHaveLength(AUDIT_PARTITIONS);

    // A process started later: its anchor and its first append per chain read the tails only.
    const { counted, read } = countingReads(store);
    const restarted = new AuditTrail({ store: counted });
    expect(await restarted.headsOf('2026-11-30')).toEqual(heads);
    expect(read()).toBeLessThanOrEqual(2 * AUDIT_PARTITIONS);
    const before = read();
    await Promise.all(Array.from({ length: AUDIT_PARTITIONS * 4 }, (_, i) => restarted.record(entry(5_000 + i, `p${i}`, at))));
    expect(read() - before).toBeLessThanOrEqual(2 * AUDIT_PARTITIONS);
    // Its next anchor reads only what another process appended since its own appends, and its own head of each chain
    // (checked: still the hash it wrote).
    await writer.record(entry(9_999, 'p1', at));
    const after = read();
    const moved = await restarted.headsOf('2026-11-30');
    expect(read() - after).toBeLessThanOrEqual(1 + AUDIT_PARTITIONS);
    expect(moved).not.toEqual(heads);
    // And the chains stay whole, linked by both processes.
    expect(await restarted.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 2_000 + AUDIT_PARTITIONS * 4 + 1 });
  });
});

describe('AuditTrail anchors across midnight', () => {
  it("holds the day before's heads, so a cut at the end of that day is found (before: today's chains only)", async () => {
    const store = new InMemoryEventStore();
    const trail = new AuditTrail({ store });
    // Anchored at 23:59:45; then audited requests until midnight; the next anchor comes at 00:00:05.
    await Promise.all(Array.from({ length: 40 }, (_, i) => trail.record(entry(i, `p${i % 13}`, '2026-12-02T23:59:40.000Z'))));
    const late = Array.from({ length: 16 }, (_, i) => entry(100 + i, `p${i % 13}`, `2026-12-02T23:59:5${Math.floor(i / 2) % 10}.000Z`));
    await Promise.all(late.map((e) => trail.record(e)));
    await trail.record(entry(200, 'p1', '2026-12-03T00:00:01.000Z'));
    const anchors = await trail.anchorHeads(new Date('2026-12-03T00:00:05.000Z'));
    const yesterday = await trail.headsOf('2026-12-02');
    expect(Object.keys(anchors)).toEqual(expect.arrayContaining(Object.keys(yesterday)));
    for (const [stream, hash] of Object.entries(yesterday)) expect(anchors[stream]).toBe(hash);
    expect(Object.keys(anchors).some((s) => s.startsWith('audit-2026-12-03-'))).toBe(true);

    // Someone with access to the store deletes the last event of one of the day's chains.
    const victim = Object.keys(yesterday)[0]!;
    const streams = (store as unknown as { streams: Map<string, unknown[]> }).streams;
    streams.get(victim)!.pop();
    const checked = await new AuditTrail({ store }).verify(['2026-12-02'], Object.fromEntries(Object.entries(anchors).filter(([s]) => s.startsWith('audit-2026-12-02-'))));
    expect(checked.ok).toBe(false);
    expect(checked.breaks).toContainEqual(expect.objectContaining({ streamName: victim, reason: 'anchor_missing' }));
  });
});

describe('AuditTrail heads: a chain changed behind this process', () => {
  it('anchors the head this process wrote, and says so, when someone with the store rewrote the chain and added to it', async () => {
    const store = new InMemoryEventStore();
    const errors: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { error: (fields: Record<string, unknown>, message: string) => void errors.push({ fields, message }), warn: () => undefined };
    const trail = new AuditTrail({ store, logger });
    const at = '2026-11-30T08:00:00.000Z';
    for (let i = 0; i < 5; i++) await trail.record(entry(i, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    const written = (await trail.headsOf('2026-11-30'))[stream]!;

    // Someone with access to the store changes who made the third request, links the rest again, and adds an entry of
    // their own: the chain is whole in itself, and longer than this process wrote it.
    const events = (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!;
    const forged = chain(
      genesisHash(stream),
      events.map((e, i) => (i === 2 ? { ...(e.data as unknown as AuditEntry), subject: 'someone-else' } : (e.data as unknown as AuditEntry))),
    );
    events.forEach((e, i) => (events[i] = { ...e, data: forged[i]! }));
    const [added] = chain(forged[forged.length - 1]!.hash, [entry(99, 'p1', at)]);
    await store.appendToStream(stream, [{ id: randomUUID(), type: AUDIT_EVENT_TYPE, data: added! }], { expectedVersion: 4n });
    expect(await new AuditTrail({ store }).verify(['2026-11-30'])).toMatchObject({ ok: true, events: 6 });

    // The anchor holds what this process wrote (before: the forged head, which then vouched for the forgery), and the
    // log says the chain changed.
    const anchors = await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    expect(anchors[stream]).toBe(written);
    expect(errors).toContainEqual({ fields: expect.objectContaining({ stream, version: '4' }), message: expect.stringContaining('possible tampering') });
    const checked = await new AuditTrail({ store }).verify(['2026-11-30'], { [stream]: anchors[stream]! });
    expect(checked.breaks).toContainEqual(expect.objectContaining({ streamName: stream, reason: 'anchor_missing' }));
  });

  it('anchors the head this process wrote when the chain was cut back under it, so a later anchor does not vouch for the cut', async () => {
    const { store, errors, trail, at, stream } = await fiveWritten();
    const written = (await trail.headsOf('2026-11-30'))[stream]!;

    // Someone with access to the store deletes the last two entries: the chain is whole in itself, and shorter.
    (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!.splice(3);
    expect(await new AuditTrail({ store }).verify(['2026-11-30'])).toMatchObject({ ok: true, events: 3 });

    // Said (as before), and the anchors taken after it hold what this process wrote (before: the cut chain's head).
    const anchors = await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    expect(errors).toContainEqual(expect.stringContaining('shorter than this hub wrote it'));
    expect(anchors[stream]).toBe(written);
    const checked = await new AuditTrail({ store }).verify(['2026-11-30'], { [stream]: anchors[stream]! });
    expect(checked.breaks).toContainEqual(expect.objectContaining({ streamName: stream, reason: 'anchor_missing' }));
    // Its own appends go on after the cut chain's head, and its anchors still hold what it wrote.
    await trail.record(entry(5, 'p1', at));
    expect((await trail.anchorHeads(new Date('2026-11-30T10:00:00.000Z')))[stream]).toBe(written);
  });

  it('says so when the event this process wrote last is gone and the chain goes on past it (a gap where it stood)', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    const errors: { fields: Record<string, unknown>; message: string }[] = [];
    const trail = new AuditTrail({ store, logger: { error: (fields: Record<string, unknown>, message: string) => void errors.push({ fields, message }), warn: () => undefined } });
    const at = '2026-11-30T08:00:00.000Z';
    for (let i = 0; i < 5; i++) await trail.record(entry(i, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    const written = (await trail.headsOf('2026-11-30'))[stream]!;

    // Someone with access to the store deletes the entry this process wrote last (version 4) and puts one of their own
    // after where it stood (version 5), linked to the entry before it: the chain is whole in itself.
    const { events } = await store.readStream(stream);
    store.database.prepare('DELETE FROM events WHERE stream_name = ? AND stream_version = 4').run(stream);
    const [forged] = chain(String(events[3]!.data['hash']), [entry(99, 'p1', at)]);
    await store.appendToStream(stream, [{ id: randomUUID(), type: AUDIT_EVENT_TYPE, data: forged! }], { expectedVersion: 3n });
    store.database.prepare('UPDATE events SET stream_version = 5 WHERE stream_name = ? AND stream_version = 4').run(stream);
    expect(await new AuditTrail({ store }).verify(['2026-11-30'])).toMatchObject({ ok: true, events: 5 });

    const anchors = await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    expect(errors).toContainEqual({ fields: expect.objectContaining({ stream, version: '4' }), message: expect.stringContaining('possible tampering') });
    expect(anchors[stream]).toBe(written);
    const checked = await new AuditTrail({ store }).verify(['2026-11-30'], { [stream]: anchors[stream]! });
    expect(checked.breaks).toContainEqual(expect.objectContaining({ streamName: stream, reason: 'anchor_missing' }));
    await store.close();
  });

  /**
   * The chain of `stream` rewritten as ca053d4's test does (the third entry's subject changed, the rest relinked, the
   * ids kept), and one entry of the forger's added after it: whole in itself, one longer than the process wrote it.
   */
  const forge = async (store: InMemoryEventStore, stream: string, at: string, subject = 'someone-else'): Promise<void> => {
    const events = (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!;
    const forged = chain(
      genesisHash(stream),
      events.map((e, i) => (i === 2 ? { ...(e.data as unknown as AuditEntry), subject } : (e.data as unknown as AuditEntry))),
    );
    events.forEach((e, i) => (events[i] = { ...e, data: forged[i]! }));
    const [added] = chain(forged[forged.length - 1]!.hash, [entry(99, 'p1', at)]);
    await store.appendToStream(stream, [{ id: randomUUID(), type: AUDIT_EVENT_TYPE, data: added! }], { expectedVersion: BigInt(events.length - 1) });
  };

  it.each([
    // An append that fails and a read of the chain right after it failing too (a dropped connection, a database
    // restart; or someone who can cut the hub's connection for a moment): the process forgot its head and read the
    // chain's tail again, unchecked.
    'an append and the read after it failing',
    // The same entry recorded once (onceId) again: a message redelivered (the uplink records its entries so), found
    // stored: the process forgot its head, and its next append read the tail unchecked.
    'an entry recorded once found stored',
  ])('still checks the head it wrote after %s: a rewrite behind it is said, and not anchored', async (how) => {
    const shared = new InMemoryEventStore();
    const fail = { appends: 0, reads: 0 };
    const store = new Proxy(shared, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        const failing = name === 'appendToStream' ? 'appends' : name === 'readStream' ? 'reads' : null;
        if (failing === null) return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          if (fail[failing] > 0) {
            fail[failing]--;
            throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
          }
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const errors: string[] = [];
    const trail = new AuditTrail({ store, logger: { error: (_: Record<string, unknown>, message: string) => void errors.push(message), warn: () => undefined } });
    const at = '2026-11-30T08:00:00.000Z';
    const once = '0b7c1a4e-7f43-5d2a-9a51-2f0e3c6d8b11';
    await trail.record(entry(0, 'p1', at), { onceId: once });
    for (let i = 1; i < 5; i++) await trail.record(entry(i, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    const written = (await trail.headsOf('2026-11-30'))[stream]!;

    await forge(shared, stream, at);
    if (how === 'an entry recorded once found stored') {
      await trail.record(entry(0, 'p1', at), { onceId: once });
    } else {
      fail.appends = 1;
      fail.reads = 1;
    }
    await trail.record(entry(5, 'p1', at));

    // Before: not a word, and the anchor held the head linked after the forgery, which vouched for it.
    const anchors = await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    expect(errors).toContainEqual(expect.stringContaining('possible tampering'));
    expect(anchors[stream]).toBe(written);
    const checked = await new AuditTrail({ store: shared }).verify(['2026-11-30'], { [stream]: anchors[stream]! });
    expect(checked.breaks).toContainEqual(expect.objectContaining({ streamName: stream, reason: 'anchor_missing' }));
  });

  /** The chain's events as the store holds them now: [version, hash]. */
  const hashesIn = (store: InMemoryEventStore, stream: string): [bigint, string][] =>
    (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!.map((e) => [e.streamVersion, String(e.data['hash'])]);

  it('says a rewrite once: not again at the next anchors nor at the next append\'s conflict; a new rewrite is said again', async () => {
    const store = new InMemoryEventStore();
    const errors: { fields: Record<string, unknown>; message: string }[] = [];
    const trail = new AuditTrail({ store, logger: { error: (fields: Record<string, unknown>, message: string) => void errors.push({ fields, message }), warn: () => undefined } });
    const at = '2026-11-30T08:00:00.000Z';
    for (let i = 0; i < 5; i++) await trail.record(entry(i, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    const said = () => errors.filter((e) => e.message.includes('possible tampering'));

    await forge(store, stream, at);
    await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    expect(said()).toEqual([{ fields: { stream, version: '4' }, message: expect.stringContaining('changed behind this hub') }]);
    // The same rewrite found again: at the next anchor, and at the next append (its expected version is behind the
    // forger's added event: a conflict, which reads on from the head this process wrote). Before: said each time.
    await trail.anchorHeads(new Date('2026-11-30T10:00:00.000Z'));
    await trail.record(entry(5, 'p1', at));
    await trail.anchorHeads(new Date('2026-11-30T11:00:00.000Z'));
    expect(said()).toHaveLength(1);

    // Another rewrite, behind the head this process wrote since (version 6): said, once.
    await forge(store, stream, at, 'a-third-one');
    await trail.anchorHeads(new Date('2026-11-30T12:00:00.000Z'));
    await trail.record(entry(7, 'p1', at));
    await trail.anchorHeads(new Date('2026-11-30T13:00:00.000Z'));
    expect(said()).toEqual([
      { fields: { stream, version: '4' }, message: expect.stringContaining('changed behind this hub') },
      { fields: { stream, version: '6' }, message: expect.stringContaining('changed behind this hub') },
    ]);
    expect(JSON.stringify(errors)).not.toContain('p1');
  });

  it('says a cut once: not again at the next anchors nor at the next append\'s conflict', async () => {
    const { store, errors, trail, at, stream } = await fiveWritten();
    (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!.splice(3);
    await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    await trail.anchorHeads(new Date('2026-11-30T10:00:00.000Z'));
    await trail.record(entry(5, 'p1', at));
    await trail.anchorHeads(new Date('2026-11-30T11:00:00.000Z'));
    expect(errors.filter((m) => m.includes('possible tampering'))).toEqual([expect.stringContaining('shorter than this hub wrote it')]);
  });

  it('says a cut once while other hub processes append to the cut chain (their appends are no new change); a deeper cut, or a rewrite of what they appended, is said again', async () => {
    const store = new InMemoryEventStore();
    const errors: string[] = [];
    const trail = new AuditTrail({ store, logger: { error: (_: Record<string, unknown>, message: string) => void errors.push(message), warn: () => undefined } });
    const other = new AuditTrail({ store });
    const at = '2026-11-30T08:00:00.000Z';
    for (let i = 0; i < 5; i++) await trail.record(entry(i, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    const events = (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!;
    const said = () => errors.filter((m) => m.includes('possible tampering'));
    events.splice(3);
    await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    // The other process links to the cut chain as it is, one entry between this one's anchors and verifications:
    // up to the version this process wrote last and past it. Before: said again at each (shorter at 3, then another
    // hash at 4), three lines for one cut.
    for (let i = 0; i < 3; i++) {
      await other.record(entry(10 + i, 'p1', at));
      await trail.anchorHeads(new Date(`2026-11-30T1${i}:00:00.000Z`));
      expect((await trail.verify(['2026-11-30'])).changedBehindHub).toEqual([expect.objectContaining({ streamName: stream, version: 4 })]);
    }
    expect(said()).toEqual([expect.stringContaining('shorter than this hub wrote it')]);
    // What the other process appended where this one's head stood, rewritten: another change, said.
    const forged = chain(String(events[3]!.data['hash']), [entry(99, 'p1', at)])[0]!;
    events[4] = { ...events[4]!, data: forged as unknown as Record<string, unknown> };
    await trail.anchorHeads(new Date('2026-11-30T13:00:00.000Z'));
    expect(said()).toHaveLength(2);
    expect(said()[1]).toContain('changed behind this hub');
  });

  it('says a deeper cut after a cut again', async () => {
    const { store, errors, trail, at, stream } = await fiveWritten();
    const events = (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!;
    events.splice(3);
    await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    events.splice(1);
    await trail.anchorHeads(new Date('2026-11-30T10:00:00.000Z'));
    expect(errors.filter((m) => m.includes('possible tampering'))).toEqual([expect.stringContaining('shorter than this hub wrote it'), expect.stringContaining('shorter than this hub wrote it')]);
  });

  it('reports a chain it found rewritten in its verification: a break, what it wrote against what the store holds, and the head it wrote', async () => {
    const { store, trail, at, stream } = await fiveWritten();
    const written = (await trail.headsOf('2026-11-30'))[stream]!;
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, breaks: [], changedBehindHub: [] });

    await forge(store, stream, at);
    const forged = hashesIn(store, stream);
    await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z'));
    // Before: ok, and the forged head in `heads`, which an operator then kept as the anchor that vouched for it.
    const verified = await trail.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: false, breaks: [{ streamName: stream, index: 4, reason: 'changed_behind_hub' }] });
    expect(verified.changedBehindHub).toEqual([{ streamName: stream, version: 4, wrote: written, stored: forged[4]![1], head: forged[5]![1] }]);
    expect(verified.heads[stream]).toBe(written);
    // Its appends after the forged head go on; the report stays, with the store's head as it is now.
    await trail.record(entry(5, 'p1', at));
    const later = await trail.verify(['2026-11-30'], { [stream]: written });
    expect(later.changedBehindHub).toEqual([{ streamName: stream, version: 4, wrote: written, stored: forged[4]![1], head: hashesIn(store, stream)[6]![1] }]);
    expect(later.breaks).toEqual(expect.arrayContaining([
      { streamName: stream, index: 4, reason: 'changed_behind_hub' },
      { streamName: stream, index: 7, reason: 'anchor_missing' },
    ]));
    // Another process, which saw nothing, verifies the chain whole: only the anchors kept elsewhere show it there.
    expect(await new AuditTrail({ store }).verify(['2026-11-30'])).toMatchObject({ ok: true, changedBehindHub: [] });
  });

  it('checks the heads it wrote when it verifies, so its answer does not vouch for a rewrite made since its last anchor', async () => {
    const { store, errors, trail, at, stream } = await fiveWritten();
    const written = (await trail.headsOf('2026-11-30'))[stream]!;
    await forge(store, stream, at);
    const verified = await trail.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: false, changedBehindHub: [{ streamName: stream, version: 4, wrote: written }] });
    expect(verified.heads[stream]).toBe(written);
    expect(errors).toEqual([expect.stringContaining('possible tampering')]);
    // The next anchor holds what it wrote, and does not say it again.
    expect((await trail.anchorHeads(new Date('2026-11-30T09:00:00.000Z')))[stream]).toBe(written);
    expect(errors).toHaveLength(1);
  });

  it('reports a chain cut back under it: nothing stored where its head stood', async () => {
    const { store, trail, at, stream } = await fiveWritten();
    const written = (await trail.headsOf('2026-11-30'))[stream]!;
    (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!.splice(0);
    const verified = await trail.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: false, chains: 1, breaks: [{ streamName: stream, index: 4, reason: 'changed_behind_hub' }] });
    expect(verified.changedBehindHub).toEqual([{ streamName: stream, version: 4, wrote: written, stored: null, head: null }]);
    expect(verified.heads).toEqual({ [stream]: written });
  });

  it('takes what other processes appended after its own head as it is, and anchors their head', async () => {
    const store = new InMemoryEventStore();
    const errors: string[] = [];
    const trail = new AuditTrail({ store, logger: { error: (_: Record<string, unknown>, message: string) => void errors.push(message), warn: () => undefined } });
    const other = new AuditTrail({ store });
    const at = '2026-11-30T08:00:00.000Z';
    await trail.record(entry(1, 'p1', at));
    await other.record(entry(2, 'p1', at));
    await trail.record(entry(3, 'p1', at)); // a conflict: read the other's tail, link after it
    await other.record(entry(4, 'p1', at));
    const stream = auditStreamOf(entry(0, 'p1', at));
    expect((await trail.headsOf('2026-11-30'))[stream]).toBe((await other.headsOf('2026-11-30'))[stream]);
    expect(await trail.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 4, changedBehindHub: [] });
    expect(errors).toEqual([]);
  });
});

describe('AuditTrail unwritable: the flag reads of patient data are refused by', () => {
  /** A store whose appends fail (SQLITE_FULL) while `down`. */
  const switchable = (state: { down: boolean }) => {
    const store = new InMemoryEventStore();
    return new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name === 'appendToStream') return async (...args: unknown[]) => {
          if (state.down) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  const at = '2026-11-30T08:00:00.000Z';

  it('is set by a failed append, already before its retries are used up, and cleared by the next append that commits', async () => {
    const state = { down: false };
    const changes: boolean[] = [];
    let dropped = 0;
    let flagSet!: () => void;
    const set = new Promise<void>((resolve) => (flagSet = resolve));
    const trail = new AuditTrail({ store: switchable(state), attempts: 3, onDropped: (n) => (dropped += n), onUnwritable: (u) => { changes.push(u); if (u) flagSet(); } });
    await trail.record(entry(1, 'p1', at));
    expect(trail.unwritable).toBe(false);
    state.down = true;
    const failing = trail.record(entry(2, 'p1', at));
    let settled = false;
    failing.then(() => (settled = true), () => (settled = true));
    // The first attempt fails at once, and sets the flag; the retries follow after pauses of 20 and 40 ms. No clock
    // here: on a loaded machine a sleep(5) came back before the first attempt had failed, and the flag was not set yet.
    await set;
    expect(trail.unwritable).toBe(true);
    expect(settled).toBe(false); // before its retries are used up
    await expect(failing).rejects.toThrow('full');
    expect(dropped).toBe(1);
    expect(trail.unwritable).toBe(true);
    // Still failing: stays set.
    await trail.record(entry(3, 'p2', at)).catch(() => undefined);
    expect(trail.unwritable).toBe(true);
    state.down = false;
    await trail.record(entry(4, 'p1', at));
    expect(trail.unwritable).toBe(false);
    expect(changes).toEqual([true, false]);
  });

  it('is set by an entry dropped for a full queue', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore(), maxQueued: 1 });
    const first = trail.record(entry(1, 'p1', at));
    await expect(trail.record(entry(2, 'p1', at))).rejects.toThrow('queue is full');
    expect(trail.unwritable).toBe(true);
    await first;
    expect(trail.unwritable).toBe(false);
  });

  it('is not set by a version conflict (another process linked first)', async () => {
    const shared = new InMemoryEventStore();
    const a = new AuditTrail({ store: shared });
    const b = new AuditTrail({ store: shared });
    await a.record(entry(1, 'p1', at));
    const changes: boolean[] = [];
    const c = new AuditTrail({ store: shared, onUnwritable: (u) => changes.push(u) });
    await c.record(entry(2, 'p1', at)); // c reads the head first
    await b.record(entry(3, 'p1', at)); // b's head is stale: conflict, links again
    await c.record(entry(4, 'p1', at)); // c's head is stale too
    expect(changes).toEqual([]);
    expect(c.unwritable).toBe(false);
  });
});

describe('AuditTrail queries, page by page', () => {
  const T0 = Date.parse('2026-11-29T23:59:50.000Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  /** Events of one subject about many patients (so in every chain), across midnight; `tag` names each. */
  const fill = async (trail: AuditTrail, count: number, startSecond: number, subject = 'reader'): Promise<void> => {
    await Promise.all(
      Array.from({ length: count }, (_, i) => trail.record({ ...entry(startSecond + i, `p${(startSecond + i) % 23}`, iso(T0 + (startSecond + i) * 1000)), subject })),
    );
  };
  const search = (over: Partial<Parameters<AuditTrail['bySubject']>[1]> = {}) => ({ from: new Date(T0 - 60_000), to: null, now: new Date(T0 + 86_400_000), ...over });
  const all = async (query: (after?: Parameters<AuditTrail['bySubject']>[1]['after']) => ReturnType<AuditTrail['bySubject']>, between?: () => Promise<void>) => {
    const pages: Awaited<ReturnType<AuditTrail['bySubject']>>[] = [];
    for (let page = await query(); ; page = await query(page.next!)) {
      pages.push(page);
      if (!page.truncated) break;
      expect(page.next).not.toBeNull();
      await between?.();
    }
    return pages;
  };

  it('pages through every event of a user across chains and days, in the order of one whole answer', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    await fill(trail, 40, 0); // 10 s before midnight and 30 s after: two days
    const whole = await trail.bySubject('reader', search());
    expect(whole).toMatchObject({ truncated: false, next: null, days: ['2026-11-29', '2026-11-30'] });
    expect(whole.items.map((e) => e.requestId)).toEqual(Array.from({ length: 40 }, (_, i) => `r-${i}`)); // oldest first
    expect(new Set(whole.items.map((e) => auditPartition(e))).size).toBe(AUDIT_PARTITIONS);
    const pages = await all((after) => trail.bySubject('reader', search({ limit: 7, after })));
    expect(pages.map((p) => p.items.length)).toEqual([7, 7, 7, 7, 7, 5]);
    expect(pages.flatMap((p) => p.items)).toEqual(whole.items);
  });

  it('says truncated only when something is left: a last page exactly at the limit has no next', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    await fill(trail, 10, 0);
    expect(await trail.bySubject('reader', search({ limit: 10 }))).toMatchObject({ truncated: false, next: null });
    const first = await trail.bySubject('reader', search({ limit: 5 }));
    expect(first.truncated).toBe(true);
    expect(await trail.bySubject('reader', search({ limit: 5, after: first.next! }))).toMatchObject({ truncated: false, next: null });
  });

  it('skips and repeats nothing while new events are recorded between pages (by user and by patient)', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    await fill(trail, 30, 0);
    let next = 30;
    const more = () => fill(trail, 3, (next += 3) - 3);
    const pages = await all((after) => trail.bySubject('reader', search({ limit: 4, after })), more);
    const seen = pages.flatMap((p) => p.items.map((e) => e.requestId));
    expect(seen).toEqual(Array.from({ length: next }, (_, i) => `r-${i}`));

    const patient = 'p5';
    const ofPatient = async () => (await trail.bySubject('reader', search())).items.filter((e) => e.patientKey === patient).map((e) => e.requestId);
    const before = await ofPatient();
    let added = 0;
    const patientPages = await all(
      (after) => trail.byPatient(patient, search({ limit: 1, after })),
      async () => void (added++ < 3 && (await trail.record({ ...entry(1000 + added, patient, iso(T0 + 100_000 + added * 1000)), subject: 'reader' }))),
    );
    const seenOfPatient = patientPages.flatMap((p) => p.items.map((e) => e.requestId));
    expect(seenOfPatient.slice(0, before.length)).toEqual(before);
    expect(seenOfPatient).toEqual(await ofPatient());
    expect(seenOfPatient.length).toBeGreaterThan(before.length);
  });

  it('bounds by instant, half-open: an event at from is in, one at to is out, also within one day', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    await fill(trail, 40, 0);
    const page = await trail.bySubject('reader', search({ from: new Date(T0 + 12_000), to: new Date(T0 + 15_000) }));
    expect(page.items.map((e) => e.requestId)).toEqual(['r-12', 'r-13', 'r-14']);
    expect(page.days).toEqual(['2026-11-30']);
    const byPatient = await trail.byPatient('p12', search({ from: new Date(T0 + 12_000), to: new Date(T0 + 12_001) }));
    expect(byPatient.items.map((e) => e.requestId)).toEqual(['r-12']);
    expect((await trail.byPatient('p12', search({ from: new Date(T0 + 12_001) }))).items.map((e) => e.requestId)).toEqual(['r-35']);
  });

  it('finds who read or acted on one resource, in every chain and across midnight, oldest first, page by page', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    const consultation = '6f1c0d7e-3b1a-4c59-9a0e-2d4b8f6a1c35';
    // 60 events of 23 patients and 3 callers over both days; every fifth is about the consultation, the others about
    // another consultation, a document or nothing.
    const resourceOf = (i: number): string | null => (i % 5 === 0 ? consultation : i % 5 === 1 ? '1.2.208.176.7.1.1' : i % 5 === 2 ? '00000000-0000-4000-8000-000000000001' : null);
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => trail.record({ ...entry(i, `p${i % 23}`, iso(T0 + i * 1000)), subject: `caller-${i % 3}`, resource: resourceOf(i), ...(i % 10 === 5 ? { patientKey: null } : {}) })),
    );
    const ours = Array.from({ length: 12 }, (_, j) => `r-${j * 5}`);
    const whole = await trail.byResource(consultation, search());
    expect(whole).toMatchObject({ truncated: false, next: null, days: ['2026-11-29', '2026-11-30'] });
    expect(whole.items.map((e) => e.requestId)).toEqual(ours); // oldest first, across chains and days
    expect(new Set(whole.items.map((e) => auditPartition(e))).size).toBeGreaterThan(1);
    expect(whole.items.every((e) => e.resource === consultation)).toBe(true);
    const pages = await all((after) => trail.byResource(consultation, search({ limit: 5, after })));
    expect(pages.map((p) => p.items.length)).toEqual([5, 5, 2]);
    expect(pages.flatMap((p) => p.items)).toEqual(whole.items);
    // A document's events, bounded by instant; and a resource nothing names.
    expect((await trail.byResource('1.2.208.176.7.1.1', search({ from: new Date(T0 + 11_000), to: new Date(T0 + 31_000) }))).items.map((e) => e.requestId)).toEqual(['r-11', 'r-16', 'r-21', 'r-26']);
    expect((await trail.byResource('1.2.208.176.7.1.2', search())).items).toEqual([]);
  });

  it('finds what one request did: its events, also several of one request, and nothing of the others', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    await fill(trail, 40, 0);
    // One request that was audited twice (e.g. a refusal and a later event under the same X-Request-Id), in two chains.
    await trail.record({ ...entry(100, 'p3', iso(T0 + 50_000)), requestId: 'desk-1003' });
    await trail.record({ ...entry(101, 'p4', iso(T0 + 51_000)), requestId: 'desk-1003' });
    const page = await trail.byRequestId('desk-1003', search());
    expect(page.items.map((e) => [e.requestId, e.patientKey])).toEqual([['desk-1003', 'p3'], ['desk-1003', 'p4']]);
    expect(auditPartition(page.items[0]!)).not.toBe(auditPartition(page.items[1]!));
    expect((await trail.byRequestId('r-7', search())).items.map((e) => e.at)).toEqual([iso(T0 + 7_000)]);
    expect((await trail.byRequestId('r-7', search({ from: new Date(T0 + 7_001) }))).items).toEqual([]);
    const first = await trail.byRequestId('desk-1003', search({ limit: 1 }));
    expect(first.truncated).toBe(true);
    expect((await trail.byRequestId('desk-1003', search({ limit: 1, after: first.next! }))).items.map((e) => e.patientKey)).toEqual(['p4']);
  });

  it('refuses an empty or reversed interval, one over 31 days, and a position outside the days asked for', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    const code = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);
    const from = new Date(T0);
    expect(await code(trail.bySubject('reader', search({ from, to: from })))).toBe('invalid_interval');
    expect(await code(trail.bySubject('reader', search({ from, to: new Date(T0 - 1) })))).toBe('invalid_interval');
    expect(await code(trail.bySubject('reader', search({ from, to: new Date(T0 + 31 * 86_400_000 + 1) })))).toBe('interval_too_wide');
    expect(await code(trail.bySubject('reader', search({ from, to: new Date(T0 + 31 * 86_400_000) })))).toBeNull();
    expect(await code(trail.bySubject('reader', search({ from: new Date(T0 - 32 * 86_400_000), to: null, now: from })))).toBe('interval_too_wide');
    expect(await code(trail.bySubject('reader', search({ from: new Date(T0 + 86_400_000), to: new Date(T0 + 2 * 86_400_000), now: from })))).toBe('invalid_interval');
    const after = { day: '2026-12-24', after: Array.from({ length: AUDIT_PARTITIONS }, () => -1n) };
    expect(await code(trail.byPatient('p1', search({ after })))).toBe('invalid_cursor');
  });
});

describe('verifyDaysOf: the days a verification walks', () => {
  const at = (iso: string) => new Date(iso);
  const now = at('2026-12-03T10:00:00Z');
  const refusal = (range: { from: Date; to: Date }) => {
    try {
      return { days: verifyDaysOf({ ...range, now, source: 'query' }) };
    } catch (e) {
      return { code: (e as { code?: string }).code, paths: (e as { details?: { path: string }[] }).details?.map((x) => x.path) };
    }
  };

  it('walks the UTC days from and to fall on, both included, up to the 32 a 31-day interval touches', () => {
    expect(verifyDaysOf({ from: at('2026-12-01T23:00:00Z'), to: at('2026-12-03T00:00:00Z'), now })).toEqual(['2026-12-01', '2026-12-02', '2026-12-03']);
    const widest = verifyDaysOf({ from: at('2026-11-01T00:00:00Z'), to: at('2026-12-02T00:00:00Z'), now });
    // The day of `to` too: it used to be cut at 31 days, and the answer said ok for a day it never read.
    expect({ n: widest.length, first: widest[0], last: widest[widest.length - 1] }).toEqual({ n: 32, first: '2026-11-01', last: '2026-12-02' });
  });

  it('refuses what the search refuses instead of verifying part of it: too wide, reversed, empty', () => {
    expect(refusal({ from: at('2026-11-01T00:00:00Z'), to: at('2026-12-03T00:00:00Z') })).toEqual({ code: 'interval_too_wide', paths: ['query.from'] });
    expect(refusal({ from: at('2026-01-01T00:00:00Z'), to: now })).toMatchObject({ code: 'interval_too_wide' });
    expect(refusal({ from: at('2026-12-03T00:00:00Z'), to: at('2026-12-01T00:00:00Z') })).toEqual({ code: 'invalid_interval', paths: ['query.from'] });
    expect(refusal({ from: now, to: now })).toMatchObject({ code: 'invalid_interval' });
  });

  it('refuses bounds before 1970 by name (before: years 0-99 were read as 1900-1999 and days named -000001-12-26)', () => {
    expect(refusal({ from: at('0001-01-01T00:00:00Z'), to: now })).toEqual({ code: 'invalid_interval', paths: ['query.from'] });
    expect(refusal({ from: at('0050-01-01T00:00:00Z'), to: at('0050-01-05T00:00:00Z') })).toEqual({ code: 'invalid_interval', paths: ['query.to'] });
    expect(refusal({ from: at('1969-12-31T23:59:59.999Z'), to: at('1970-01-02T00:00:00Z') })).toEqual({ code: 'invalid_interval', paths: ['query.from'] });
    expect(verifyDaysOf({ from: at('1970-01-01T00:00:00Z'), to: at('1970-01-02T12:00:00Z'), now })).toEqual(['1970-01-01', '1970-01-02']);
  });

  it('refuses days to come (before: ok with 0 chains, as if they had been checked), with a caller clock 5 min ahead taken', () => {
    expect(refusal({ from: at('2026-12-05T00:00:00Z'), to: at('2026-12-06T00:00:00Z') })).toEqual({ code: 'invalid_interval', paths: ['query.from'] });
    expect(refusal({ from: at('2026-12-03T10:06:00Z'), to: at('2026-12-04T00:00:00Z') })).toMatchObject({ code: 'invalid_interval' });
    expect(verifyDaysOf({ from: at('2026-12-03T10:04:00Z'), to: at('2026-12-04T00:00:00Z'), now })).toEqual(['2026-12-03', '2026-12-04']);
  });
});

describe('AuditTrail\'s searches through the store\'s indexes of audit events by field, and its scan by resource and request id', () => {
  const T0 = Date.parse('2026-11-29T23:59:50.000Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  /**
   * The port as the SQLite and PostgreSQL adapters answer it, over the in-memory store: the audit events of a chain
   * whose data's field has the value, from a version on, in version order. It counts what it hands back.
   */
  const indexOver = (store: EventStore) => {
    let read = 0;
    const index: AuditEventsByField = {
      read: async (stream, fromVersion, field, value, maxCount) => {
        const { events } = await store.readStream(stream, { fromVersion });
        const found = events.filter((e) => e.type === AUDIT_EVENT_TYPE && e.data[field] === value).slice(0, maxCount);
        read += found.length;
        return found;
      },
    };
    return { index, read: () => read };
  };
  /** `count` events across midnight, of patients p0..p22 (so of every chain) and users u0..u4, one second apart. */
  const fill = async (trail: AuditTrail, count: number, startSecond: number): Promise<void> => {
    await Promise.all(Array.from({ length: count }, (_, i) => trail.record({ ...entry(startSecond + i, `p${(startSecond + i) % 23}`, iso(T0 + (startSecond + i) * 1000)), subject: `u${(startSecond + i) % 5}` })));
  };
  const search = (over: Partial<AuditSearch> = {}): AuditSearch => ({ from: new Date(T0 - 60_000), to: null, now: new Date(T0 + 86_400_000), ...over });

  /** A patient's search and a user's: who is asked for, and a new event of theirs (a user's, every other one with no patient). */
  const queries = [
    { by: 'byPatient', who: 'p5', theirs: (k: number, at: string): AuditEntry => entry(k, 'p5', at) },
    { by: 'bySubject', who: 'u2', theirs: (k: number, at: string): AuditEntry => ({ ...entry(k, `p${k % 23}`, at), subject: 'u2', ...(k % 2 === 0 ? { patientKey: null } : {}) }) },
  ] as const;

  it.each(queries)('$by gives the same pages (items, order, truncation, positions) as reading the chains, also with events recorded between pages', async ({ by, who, theirs }) => {
    const store = new InMemoryEventStore();
    const chains = new AuditTrail({ store });
    const indexed = new AuditTrail({ store, eventsByField: indexOver(store).index });
    await fill(chains, 200, 0); // 10 s before midnight and 190 s after: two days
    // The chains hold others' events too: the index must leave them out, the chain walk filters them.
    for (const limit of [1, 3, 1000]) {
      let a = await chains[by](who, search({ limit }));
      let b = await indexed[by](who, search({ limit }));
      let added = 0;
      for (;;) {
        expect(b).toEqual(a);
        if (!a.truncated) break;
        // New events between pages: theirs (at the tail of today's chains) and others'.
        if (added < 4) {
          added++;
          await Promise.all([chains.record(theirs(10_000 + limit * 10 + added, iso(T0 + 500_000 + added * 1000))), fill(chains, 2, 300 + limit * 10 + added * 2)]);
        }
        a = await chains[by](who, search({ limit, after: a.next! }));
        b = await indexed[by](who, search({ limit, after: b.next! }));
      }
    }
    // Bounded by instant, on one day only, and someone with no events.
    const bounded = search({ from: new Date(T0 + 12_000), to: new Date(T0 + 120_000), limit: 2 });
    expect(await indexed[by](who, bounded)).toEqual(await chains[by](who, bounded));
    expect(await indexed[by]('nobody', search())).toEqual(await chains[by]('nobody', search()));
  });

  it('reads only the patient\'s own events, not the chain (one eighth of every patient\'s requests)', async () => {
    const store = new InMemoryEventStore();
    await fill(new AuditTrail({ store }), 2_300, 0); // 100 events of each of 23 patients
    const sharing = Array.from({ length: 23 }, (_, i) => `p${i}`).filter((k) => auditPartition({ patientKey: k, subject: '' }) === auditPartition({ patientKey: 'p5', subject: '' }));
    expect(sharing.length).toBeGreaterThan(1);
    // Without the index, the same answer read the patient's whole chain of each day: those of every patient sharing it.
    await expectSearchThroughIndex(store, indexOver(store).index, { by: 'byPatient', who: 'p5', own: 100, walked: 100 * sharing.length, search: search(), limit: 30 });
  });

  it('reads the patient\'s events in pages of at most 1,000, with turns of the event loop between', async () => {
    const store = new InMemoryEventStore();
    const writer = new AuditTrail({ store });
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => writer.record(entry(i, 'p1', '2026-11-30T08:00:00.000Z'))));
    const asked: number[] = [];
    const { index } = indexOver(store);
    const trail = new AuditTrail({ store, eventsByField: { read: async (...args) => (asked.push(args[4]), index.read(...args)) } });
    let turns = 0;
    let ticking = true;
    const tick = () => ticking && (turns++, setImmediate(tick));
    setImmediate(tick);
    const found = await trail.byPatient('p1', { from: new Date('2026-11-30T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z'), now: new Date('2026-12-01T00:00:00Z'), limit: 10 });
    ticking = false;
    expect(found.items).toHaveLength(10);
    expect(asked).toEqual([1000, 1000, 1000]);
    expect(turns).toBeGreaterThanOrEqual(2);
  });

  it('reads only the user\'s own events, not every chain of each day', async () => {
    const store = new InMemoryEventStore();
    await fill(new AuditTrail({ store }), 2_300, 0); // 460 events of each of 5 users, in every chain of both days
    // Without the index, the same answer read every chain of both days whole.
    await expectSearchThroughIndex(store, indexOver(store).index, { by: 'bySubject', who: 'u2', own: 460, walked: 2_300, search: search(), limit: 100 });
  });

  /** The store's scan as the SQLite and PostgreSQL adapters answer it: a window of a chain's versions, the matches only. */
  const scanOver = (store: EventStore) => {
    const windows: [string, bigint, bigint][] = [];
    let handedBack = 0;
    const index: AuditEventsByField = {
      read: async () => {
        throw new Error('a resource or request search has no index to read');
      },
      scan: async (stream, fromVersion, toVersion, field, value) => {
        windows.push([stream, fromVersion, toVersion]);
        const { events } = await store.readStream(stream, { fromVersion });
        const found = events.filter((e) => e.streamVersion < toVersion && e.type === AUDIT_EVENT_TYPE && e.data[field] === value);
        handedBack += found.length;
        return found;
      },
    };
    return { index, windows, handedBack: () => handedBack };
  };
  const resourceOf = (k: number): string | null => (k % 3 === 0 ? `1.2.208.${k % 4}` : null);

  it.each([
    { by: 'byResource', who: '1.2.208.1' },
    { by: 'byRequestId', who: 'r-42' },
  ] as const)('$by through the store\'s scan gives the same pages as reading the chains, and hands back only the matches', async ({ by, who }) => {
    const store = new InMemoryEventStore();
    const chains = new AuditTrail({ store });
    const fillWithResources = (count: number, startSecond: number) =>
      Promise.all(Array.from({ length: count }, (_, i) => chains.record({ ...entry(startSecond + i, `p${(startSecond + i) % 23}`, iso(T0 + (startSecond + i) * 1000)), resource: resourceOf(startSecond + i) })));
    await fillWithResources(200, 0); // both days, every chain
    const { index, windows, handedBack } = scanOver(store);
    const scanned = new AuditTrail({ store, eventsByField: index });
    const whole = await scanned[by](who, search());
    expect(whole.items.length).toBeGreaterThan(0);
    expect(whole).toEqual(await chains[by](who, search()));
    expect(handedBack()).toBe(whole.items.length); // the chains' other events stayed in the store
    expect(windows.length).toBeGreaterThan(0);
    for (const limit of [1, 4]) {
      let a = await chains[by](who, search({ limit }));
      let b = await scanned[by](who, search({ limit }));
      let added = 0;
      for (;;) {
        expect(b).toEqual(a);
        if (!a.truncated) break;
        if (added++ < 3) await fillWithResources(3, 400 + limit * 10 + added * 3); // new events between pages
        a = await chains[by](who, search({ limit, after: a.next! }));
        b = await scanned[by](who, search({ limit, after: b.next! }));
      }
    }
    const bounded = search({ from: new Date(T0 + 12_000), to: new Date(T0 + 120_000), limit: 2 });
    expect(await scanned[by](who, bounded)).toEqual(await chains[by](who, bounded));
    expect(await scanned[by]('1.2.208.99', search())).toEqual(await chains[by]('1.2.208.99', search()));
  });

  it('scans a long chain in windows of 1,000 versions from the position on, with turns of the event loop between', async () => {
    const store = new InMemoryEventStore();
    const writer = new AuditTrail({ store });
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => writer.record({ ...entry(i, 'p1', '2026-11-30T08:00:00.000Z'), resource: i % 100 === 0 ? '1.2.3' : null })));
    const { index, windows } = scanOver(store);
    const trail = new AuditTrail({ store, eventsByField: index });
    let turns = 0;
    let ticking = true;
    const tick = () => ticking && (turns++, setImmediate(tick));
    setImmediate(tick);
    const day = { from: new Date('2026-11-30T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z'), now: new Date('2026-12-01T00:00:00Z') };
    const first = await trail.byResource('1.2.3', { ...day, limit: 10 });
    ticking = false;
    expect(first.items).toHaveLength(10);
    expect(turns).toBeGreaterThanOrEqual(2);
    const chain = auditStreamOf(first.items[0]!);
    expect(windows.filter(([s]) => s === chain).map(([, a, b]) => [a, b])).toEqual([[0n, 1000n], [1000n, 2000n], [2000n, 3000n]]);
    expect(windows.filter(([s]) => s !== chain)).toEqual([]); // the day's other chains do not exist: nothing to scan
    // The next page goes on from the position: the windows start behind the last version taken.
    windows.length = 0;
    const rest = await trail.byResource('1.2.3', { ...day, after: first.next! });
    expect(rest.items).toHaveLength(15);
    const after = first.next!.after[auditPartition(first.items[0]!)]!; // the tenth match's version: 900
    expect(after).toBe(900n);
    expect(windows.map(([, a, b]) => [a, b])).toEqual([[901n, 1901n], [1901n, 2901n]]); // up to the chain's last version, 2,499
  });

  it('walks the chains for a resource when the store has indexes but no scan', async () => {
    const store = new InMemoryEventStore();
    await new AuditTrail({ store }).record({ ...entry(1, 'p1', '2026-11-30T08:00:00.000Z'), resource: '1.2.3' });
    const trail = new AuditTrail({ store, eventsByField: { read: async () => [] } });
    expect((await trail.byResource('1.2.3', { from: new Date('2026-11-30T00:00:00Z'), to: null, now: new Date('2026-11-30T09:00:00Z') })).items).toHaveLength(1);
  });

  it('leaves verify to the chains', async () => {
    const store = new InMemoryEventStore();
    await fill(new AuditTrail({ store }), 50, 0);
    let calls = 0;
    const trail = new AuditTrail({ store, eventsByField: { read: async () => (calls++, []) } });
    expect(await trail.verify(['2026-11-29', '2026-11-30'])).toMatchObject({ ok: true, events: 50 });
    expect(calls).toBe(0);
  });
});

describe('AuditTrail: an entry recorded once (onceId)', () => {
  const search = (day: string): AuditSearch => ({ from: new Date(`${day}T00:00:00.000Z`), to: new Date(Date.parse(`${day}T00:00:00.000Z`) + 86_400_000), now: new Date('2026-12-05T00:00:00.000Z') });

  it('is not stored again under the same id, in its chain or in a later day\'s, and the chain goes on whole after the repeat', async () => {
    const trail = new AuditTrail({ store: new InMemoryEventStore() });
    const once = '0b7c1a4e-7f43-5d2a-9a51-2f0e3c6d8b11';
    await trail.record(entry(1, 'pk-1', '2026-12-03T10:00:00.000Z'), { onceId: once });
    // The same thing recorded again, later that day and after midnight: both resolve, neither is stored.
    await trail.record(entry(1, 'pk-1', '2026-12-03T10:00:05.000Z'), { onceId: once });
    await trail.record(entry(1, 'pk-1', '2026-12-04T00:00:01.000Z'), { onceId: once });
    // Another entry of the same chain, recorded in the same tick as a repeat, is stored (not failed with it).
    await Promise.all([trail.record(entry(1, 'pk-1', '2026-12-03T10:00:06.000Z'), { onceId: once }), trail.record(entry(2, 'pk-1', '2026-12-03T10:00:06.000Z'))]);
    await trail.record(entry(3, 'pk-1', '2026-12-03T10:00:07.000Z'));
    expect((await trail.byPatient('pk-1', search('2026-12-03'))).items.map((e) => [e.requestId, e.at])).toEqual([
      ['r-1', '2026-12-03T10:00:00.000Z'],
      ['r-2', '2026-12-03T10:00:06.000Z'],
      ['r-3', '2026-12-03T10:00:07.000Z'],
    ]);
    expect((await trail.byPatient('pk-1', search('2026-12-04'))).items).toEqual([]);
    expect(await trail.verify(['2026-12-03', '2026-12-04'])).toMatchObject({ ok: true, events: 3 });
    expect(trail.unwritable).toBe(false);
  });
});
