import { DateTime } from 'luxon';
import { DownlinkPublisher } from '../../src/application/directory/downlink-publisher';
import { UplinkHandler } from '../../src/application/directory/uplink-handler';
import type { DownlinkEnvelope, UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { InMemoryOutbox } from '../../src/adapters/messaging/memory/in-memory-downlink';
import type { ExpertProfile } from '../../src/domain/directory/expert';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../src/domain/shared/errors';
import { inMemoryDirectoryCore, testExpert, testUplink } from '../support/directory-fixtures';

const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
let counter = 0;
const ids = { uuid: () => uuidV5(`id/${counter++}`) };

const profile = (i: number, city = 'Chengdu'): ExpertProfile => testExpert(i, { city, specialties: [i % 2 === 0 ? 'Cardiology' : 'Neurology'] });

/** An uplink envelope, round-tripped through the contract's parser (as the hub's consumer does). */
const uplink = testUplink;

const setup = () => {
  const { store, directory, projector, service, handler, checkpoints } = inMemoryDirectoryCore(clock, ids);
  const outbox = new InMemoryOutbox();
  const publisher = () => new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
  return { store, directory, projector, service, handler, checkpoints, outbox, publisher };
};

/** Join a system with the given experts in batches of `size`, sent in the given order of batch indexes. */
const batches = (systemId: string, experts: number, size: number, city: string) => {
  const count = Math.ceil(experts / size);
  return Array.from({ length: count }, (_, b) =>
    uplink(
      systemId,
      'experts.batch',
      {
        batchIndex: b,
        batchCount: count,
        experts: Array.from({ length: Math.min(size, experts - b * size) }, (_, j) => ({ localExpertId: `e-${b * size + j}`, ...profile(b * size + j, city) })),
      },
      `batch/${b}`,
    ),
  );
};

const join = async (h: UplinkHandler, systemId: string, experts: number, size: number, city: string) => {
  const list = batches(systemId, experts, size, city);
  await h.handleUplink(uplink(systemId, 'system.join.requested', { expectedBatches: list.length, expectedExperts: experts }, 'join'));
  for (const b of list) await h.handleUplink(b);
};

const expertIdsOf = (messages: readonly DownlinkEnvelope[]): string[] =>
  messages.flatMap((m) => (m.type === 'directory.expert.upserted' ? [m.payload.expertId] : m.type === 'directory.snapshot' ? m.payload.experts.map((x) => x.expertId) : []));

describe('directory uplink and downlink (in memory)', () => {
  it('a city joins with 5,000 experts in 10 batches, repeated and out of order; the others get them all once in effect; the joiner gets the directory; a publisher restart loses nothing', async () => {
    const t = setup();
    for (const [id, name] of [['beijing', 'Beijing'], ['shanghai', 'Shanghai'], ['chengdu', 'Chengdu']] as const) {
      await t.service.registerSystem({ systemId: id, name: `${name} City`, area: name });
    }
    await join(t.handler, 'beijing', 30, 20, 'Beijing');
    await join(t.handler, 'shanghai', 12, 5, 'Shanghai');

    const list = batches('chengdu', 5000, 500, 'Chengdu');
    expect(list).toHaveLength(10);
    expect(await t.handler.handleUplink(uplink('chengdu', 'system.join.requested', { name: 'Chengdu City', expectedBatches: 10, expectedExperts: 5000 }, 'join'))).toEqual({ outcome: 'applied' });
    const order = [7, 2, 2, 9, 0, 4, 7, 1, 3, 8, 5, 6];
    const outcomes: string[] = [];
    for (const i of order) outcomes.push((await t.handler.handleUplink(list[i]!)).outcome);
    expect(outcomes).toEqual(['applied', 'applied', 'duplicate', 'applied', 'applied', 'applied', 'duplicate', 'applied', 'applied', 'applied', 'applied', 'applied']);
    // The same batch again under a new envelope id (a system that re-sends its upload) and every one again: no change.
    const resent = { ...list[4]!, id: uuidV5('resent/4') } as UplinkEnvelope;
    expect(await t.handler.handleUplink(resent)).toEqual({ outcome: 'duplicate' });
    for (const b of list) expect(await t.handler.handleUplink(b)).toEqual({ outcome: 'duplicate' });

    const all = await t.store.readAll({ after: 0n, maxCount: 100_000 });
    expect(all.filter((e) => e.type === 'SystemJoined' && e.data.systemId === 'chengdu')).toHaveLength(1);
    expect(all.filter((e) => e.type === 'ExpertRegistered' && e.data.homeSystemId === 'chengdu')).toHaveLength(5000);
    const chengdu = await t.service.getSystem('chengdu');
    expect(chengdu).toMatchObject({ status: 'joined', activeExperts: 5000, join: { expectedBatches: 10, batchesImported: 10, expertsImported: 5000 } });
    expect((await t.directory.findExperts({ homeSystemId: 'chengdu', limit: 10_000 })).items).toHaveLength(5000);

    // The publisher fails after 4,000 sends (broker down); a new instance resumes from the stored checkpoint.
    t.outbox.failAfter(4000);
    await expect(t.publisher().catchUp()).rejects.toThrow('simulated');
    t.outbox.failAfter(null);
    await t.publisher().catchUp();
    await t.publisher().catchUp(); // a third run at the head sends nothing new
    const sentBefore = t.outbox.sends;
    await t.publisher().catchUp();
    expect(t.outbox.sends).toBe(sentBefore);

    for (const other of ['beijing', 'shanghai']) {
      const received = t.outbox.received(`rts.downlink.${other}`);
      const fromChengdu = expertIdsOf(received).filter((id) => id.startsWith('chengdu:'));
      expect(fromChengdu).toHaveLength(5000);
      expect(new Set(fromChengdu).size).toBe(5000);
      expect(received.filter((m) => m.type === 'system.joined' && m.payload.systemId === 'chengdu')).toHaveLength(1);
      expect(received.every((m) => m.systemId === other)).toBe(true);
    }
    // Beijing joined before Shanghai: it got Shanghai's 12 experts as news, Shanghai got Beijing's 30 in its snapshot.
    expect(expertIdsOf(t.outbox.received('rts.downlink.beijing')).filter((id) => id.startsWith('shanghai:'))).toHaveLength(12);
    expect(expertIdsOf(t.outbox.received('rts.downlink.shanghai')).filter((id) => id.startsWith('beijing:'))).toHaveLength(30);

    const joiner = t.outbox.received('rts.downlink.chengdu');
    const snapshot = joiner.filter((m) => m.type === 'directory.snapshot');
    expect(new Set(expertIdsOf(snapshot))).toEqual(new Set([...Array.from({ length: 30 }, (_, i) => `beijing:e-${i}`), ...Array.from({ length: 12 }, (_, i) => `shanghai:e-${i}`)]));
    expect(expertIdsOf(joiner).some((id) => id.startsWith('chengdu:'))).toBe(false);
    expect(joiner.filter((m) => m.type === 'system.joined')).toHaveLength(1);
    expect(t.outbox.sends).toBeGreaterThan(t.outbox.received('rts.downlink.beijing').length + t.outbox.received('rts.downlink.shanghai').length + joiner.length); // resends happened
  });

  it('the directory projector and the publisher read only their events: over other contexts they move to the head and wait', async () => {
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 3, 3, 'Beijing');
    await join(t.handler, 'chengdu', 2, 2, 'Chengdu');
    // Uploads and the like: events of other contexts after the directory's.
    for (let i = 0; i < 50; i++) await t.store.appendToStream(`document-${i}`, [{ id: uuidV5(`other/${i}`), type: 'DocumentSubmitted', data: { i } }]);
    const head = await t.store.headPosition();
    const readAll = jest.spyOn(t.store, 'readAll');
    const publisher = new DownlinkPublisher({ store: t.store, directory: t.directory, projector: t.projector, outbox: t.outbox, checkpoints: t.checkpoints, batchSize: 2 });
    await publisher.catchUp();
    expect(readAll.mock.calls.length).toBeGreaterThan(0);
    for (const [options] of readAll.mock.calls) {
      expect(options.types).toBeDefined();
      expect(options.types!.has('DocumentSubmitted')).toBe(false);
      expect(options.types!.has('ExpertRegistered')).toBe(true);
    }
    expect(await t.directory.checkpoint()).toBe(head);
    expect(await t.checkpoints.get('downlink')).toBe(head);
    expect(expertIdsOf(t.outbox.received('rts.downlink.chengdu'))).toEqual(expect.arrayContaining(['beijing:e-0', 'beijing:e-1', 'beijing:e-2']));
    expect(expertIdsOf(t.outbox.received('rts.downlink.beijing')).sort()).toEqual(['chengdu:e-0', 'chengdu:e-1']);
    // At the head nothing is read again for lack of a wanted event: a second run reads one page and sends nothing.
    const sends = t.outbox.sends;
    readAll.mockClear();
    await publisher.catchUp();
    expect(readAll.mock.calls.length).toBeLessThanOrEqual(1);
    expect(t.outbox.sends).toBe(sends);
  });

  it('after the join, changes and retirements go to the other joined systems; repeats change nothing', async () => {
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 2, 2, 'Beijing');
    await join(t.handler, 'chengdu', 3, 2, 'Chengdu');
    await t.publisher().catchUp();
    const change = uplink('chengdu', 'expert.changed', { localExpertId: 'e-1', profile: profile(1, 'Chongqing') }, 'change-1');
    expect(await t.handler.handleUplink(change)).toEqual({ outcome: 'applied' });
    expect(await t.handler.handleUplink(change)).toEqual({ outcome: 'duplicate' });
    const registered = uplink('chengdu', 'expert.registered', { localExpertId: 'new-1', profile: profile(9) }, 'reg-new');
    expect(await t.handler.handleUplink(registered)).toEqual({ outcome: 'applied' });
    expect(await t.handler.handleUplink(uplink('chengdu', 'expert.retired', { localExpertId: 'e-0' }, 'retire-0'))).toEqual({ outcome: 'applied' });
    // The change delivered again after the retirement: still nothing, and not an error.
    expect(await t.handler.handleUplink(change)).toEqual({ outcome: 'duplicate' });
    await t.publisher().catchUp();

    const beijing = t.outbox.received('rts.downlink.beijing');
    const about = (id: string) => beijing.filter((m) => (m.payload as { expertId?: string }).expertId === id).map((m) => [m.type, (m.payload as { revision: number }).revision]);
    expect(about('chengdu:e-1')).toEqual([['directory.expert.upserted', 1], ['directory.expert.upserted', 2]]);
    expect(about('chengdu:e-0')).toEqual([['directory.expert.upserted', 1], ['directory.expert.retired', 2]]);
    expect(about('chengdu:new-1')).toEqual([['directory.expert.upserted', 1]]);
    expect(t.outbox.received('rts.downlink.chengdu').filter((m) => m.type === 'directory.expert.upserted')).toEqual([]);
    expect((await t.service.getExpert('chengdu:e-1')).profile.location.city).toBe('Chongqing');
    expect((await t.service.getExpert('chengdu:e-0')).status).toBe('retired');
  });

  it('a repeat of a message that changed nothing, delivered after a later change, does not move the expert back (nor the other systems\' copies)', async () => {
    // Found over a real broker: expert.changed m2 with the profile the expert had, then a change to P1, then m2
    // redelivered: the hub moved the expert back to the old profile and sent every other system an upsert of it.
    let at = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
    const ticking = { now: () => (at = at.plus({ minutes: 1 })) };
    const { store, directory, projector, service, handler, checkpoints } = inMemoryDirectoryCore(ticking, ids);
    const outbox = new InMemoryOutbox();
    const publish = () => new DownlinkPublisher({ store, directory, projector, outbox, checkpoints }).catchUp();
    for (const id of ['beijing', 'chengdu']) await service.registerSystem({ systemId: id, name: id, area: id });
    await join(handler, 'beijing', 1, 1, 'Beijing');
    await join(handler, 'chengdu', 2, 2, 'Chengdu');
    await publish();

    const p0 = profile(1);
    const p1 = profile(1, 'Chongqing');
    const same = uplink('chengdu', 'expert.changed', { localExpertId: 'e-1', profile: p0 }, 'same-m2');
    expect(await handler.handleUplink(same)).toEqual({ outcome: 'duplicate' }); // nothing to change
    expect(await handler.handleUplink(uplink('chengdu', 'expert.changed', { localExpertId: 'e-1', profile: p1 }, 'change-m3'))).toEqual({ outcome: 'applied' });
    await projector.catchUp();
    const changed = await service.getExpert('chengdu:e-1');
    expect(await handler.handleUplink(same)).toEqual({ outcome: 'duplicate' }); // the redelivery
    await publish();

    const now = await service.getExpert('chengdu:e-1');
    expect(now.profile).toEqual(p1);
    expect(now).toEqual(changed);
    const upserts = outbox
      .received('rts.downlink.beijing')
      .flatMap((m) => (m.type === 'directory.expert.upserted' && m.payload.expertId === 'chengdu:e-1' ? [[m.payload.profile.location.city, m.payload.revision] as const] : []));
    expect(upserts.map(([city]) => city)).toEqual(['Chengdu', 'Chongqing']); // the join's, then P1; no upsert of P0 after it
    // A copy keeping the highest revision per expert holds P1.
    expect(upserts.reduce((a, b) => (b[1] > a[1] ? b : a))[0]).toBe('Chongqing');

    // The same profile again under a new id: nothing to send, and the expert's updatedAt stays the change's.
    expect(await handler.handleUplink(uplink('chengdu', 'expert.changed', { localExpertId: 'e-1', profile: p1 }, 'same-again'))).toEqual({ outcome: 'duplicate' });
    await publish();
    const after = await service.getExpert('chengdu:e-1');
    expect(after).toMatchObject({ profile: p1, updatedAt: changed.updatedAt });
    expect(outbox.received('rts.downlink.beijing').filter((m) => m.type === 'directory.expert.upserted' && m.payload.expertId === 'chengdu:e-1')).toHaveLength(2);
  });

  it('a join batch of unchanged experts retried after a later change of one of them does not move it back', async () => {
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 1, 1, 'Beijing');
    await join(t.handler, 'chengdu', 2, 2, 'Chengdu');
    await t.publisher().catchUp();
    // A join again with the same experts; its batch is handled but not recorded (a crash before its ExpertBatchImported).
    const again = { correlationId: 'corr-chengdu-again' };
    await t.handler.handleUplink({ ...uplink('chengdu', 'system.join.requested', { expectedBatches: 1, expectedExperts: 2 }, 'join-again'), ...again });
    const batch = { ...batches('chengdu', 2, 2, 'Chengdu')[0]!, id: uuidV5('again/batch-0'), ...again } as UplinkEnvelope;
    const append = t.store.appendToStream.bind(t.store);
    const crash = jest.spyOn(t.store, 'appendToStream').mockImplementation((stream, events, options) => {
      if (stream === 'system-chengdu') return Promise.reject(new Error('simulated crash before the batch record'));
      return append(stream, events, options);
    });
    await expect(t.handler.handleUplink(batch)).rejects.toThrow('simulated');
    crash.mockRestore();
    expect(await t.handler.handleUplink(uplink('chengdu', 'expert.changed', { localExpertId: 'e-1', profile: profile(1, 'Chongqing') }, 'change-1'))).toEqual({ outcome: 'applied' });
    // The batch redelivered: it completes the join, and leaves e-1 as changed.
    expect(await t.handler.handleUplink(batch)).toEqual({ outcome: 'applied' });
    expect((await t.service.getSystem('chengdu')).status).toBe('joined');
    await t.publisher().catchUp();
    expect((await t.service.getExpert('chengdu:e-1')).profile.location.city).toBe('Chongqing');
    expect((await t.service.getExpert('chengdu:e-0')).profile.location.city).toBe('Chengdu');
    const cities = t.outbox
      .received('rts.downlink.beijing')
      .flatMap((m) => (m.type === 'directory.expert.upserted' && m.payload.expertId === 'chengdu:e-1' ? [m.payload.profile.location.city] : []));
    expect(cities).toEqual(['Chengdu', 'Chongqing']);
  });

  it('a system that joins again for a full sync (a copy restored from an old backup) is told of the experts retired meanwhile', async () => {
    // Its copy still holds an expert the hub retired since; the new snapshot only lists the active ones, and the
    // documented rule (keep the highest revision per expert) kept the retired one in its copy for good.
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 1, 1, 'Beijing');
    await join(t.handler, 'chengdu', 3, 3, 'Chengdu');
    expect(await t.handler.handleUplink(uplink('chengdu', 'expert.retired', { localExpertId: 'e-0' }, 'retire-0'))).toEqual({ outcome: 'applied' });
    await t.publisher().catchUp();

    // beijing's copy restored from a backup taken before the retirement: chengdu:e-0 active at revision 1.
    const copy = new Map<string, { revision: number; retired: boolean }>([['chengdu:e-0', { revision: 1, retired: false }]]);
    const before = t.outbox.received('rts.downlink.beijing').length;
    // A join again: its own envelope ids and correlation id.
    const again = { correlationId: 'corr-beijing-again' };
    expect(await t.handler.handleUplink({ ...uplink('beijing', 'system.join.requested', { expectedBatches: 1, expectedExperts: 1 }, 'join-again'), ...again })).toEqual({ outcome: 'applied' });
    for (const b of batches('beijing', 1, 1, 'Beijing')) await t.handler.handleUplink({ ...b, id: uuidV5('again/batch'), ...again });
    expect((await t.service.getSystem('beijing')).status).toBe('joined');
    await t.publisher().catchUp();
    const after = t.outbox.received('rts.downlink.beijing').slice(before);
    expect(after.filter((m) => m.type === 'directory.snapshot').length).toBeGreaterThan(0);
    for (const m of after) {
      const apply = (id: string, revision: number, retired: boolean) => {
        const had = copy.get(id);
        if (!had || had.revision < revision) copy.set(id, { revision, retired });
      };
      if (m.type === 'directory.expert.upserted') apply(m.payload.expertId, m.payload.revision, false);
      if (m.type === 'directory.expert.retired') apply(m.payload.expertId, m.payload.revision, true);
      if (m.type === 'directory.snapshot') for (const x of m.payload.experts) apply(x.expertId, x.revision, false);
    }
    expect(copy.get('chengdu:e-0')).toEqual({ revision: 2, retired: true });
    expect([...copy].filter(([, v]) => !v.retired).map(([id]) => id).sort()).toEqual(['chengdu:e-1', 'chengdu:e-2']);
    const ids = after.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a join batch naming a retired expert is refused whole: none of its other experts is written or sent', async () => {
    // A system restored from an old backup joins again with an expert it retired after that backup. The batch was
    // dead-lettered (expert_retired), yet the experts written before the retired one was reached stayed, and went
    // out to every other system: from a message the hub refused, and that the system will send again changed.
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 1, 1, 'Beijing');
    await join(t.handler, 'chengdu', 3, 3, 'Chengdu');
    expect(await t.handler.handleUplink(uplink('chengdu', 'expert.retired', { localExpertId: 'e-2' }, 'retire-2'))).toEqual({ outcome: 'applied' });
    await t.publisher().catchUp();
    const before = t.outbox.received('rts.downlink.beijing').length;
    const again = { correlationId: 'corr-chengdu-again' };
    await t.handler.handleUplink({ ...uplink('chengdu', 'system.join.requested', { expectedBatches: 1, expectedExperts: 4 }, 'join-again'), ...again });
    const experts = [
      { localExpertId: 'e-0', ...profile(0, 'Chongqing') },
      { localExpertId: 'new-1', ...profile(7) },
      { localExpertId: 'e-2', ...profile(2) },
      { localExpertId: 'new-2', ...profile(8) },
    ];
    const batch = { ...uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 1, experts }, 'again/batch-0'), ...again } as UplinkEnvelope;
    await expect(t.handler.handleUplink(batch)).rejects.toMatchObject({ code: 'expert_retired' });
    await t.publisher().catchUp();
    expect((await t.service.getExpert('chengdu:e-0')).profile.location.city).toBe('Chengdu');
    await expect(t.service.getExpert('chengdu:new-1')).rejects.toMatchObject({ code: 'expert_not_found' });
    await expect(t.service.getExpert('chengdu:new-2')).rejects.toMatchObject({ code: 'expert_not_found' });
    expect(t.outbox.received('rts.downlink.beijing').slice(before)).toEqual([]);
    // Sent again without the retired expert, it is taken.
    const fixed = { ...uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: experts.filter((e) => e.localExpertId !== 'e-2') }, 'again/batch-0b'), ...again } as UplinkEnvelope;
    expect(await t.handler.handleUplink(fixed)).toEqual({ outcome: 'applied' });
    expect((await t.service.getSystem('chengdu')).status).toBe('joined');
    expect((await t.service.getExpert('chengdu:new-2')).status).toBe('active');
  });

  it('a join batch whose expert changes between the check of the batch and its write is decided again on the change', async () => {
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 1, 1, 'Beijing');
    await join(t.handler, 'chengdu', 1, 1, 'Chengdu');
    const again = { correlationId: 'corr-chengdu-again' };
    await t.handler.handleUplink({ ...uplink('chengdu', 'system.join.requested', { expectedBatches: 1, expectedExperts: 1 }, 'join-again'), ...again });
    const aggregate = t.store.aggregateStream.bind(t.store);
    let changedBetween = false;
    const spy = jest.spyOn(t.store, 'aggregateStream').mockImplementation(async (stream, options) => {
      const result = await aggregate(stream, options);
      if (stream === 'expert-chengdu.e-0' && !changedBetween) {
        changedBetween = true; // the batch's check read it: another hub process applies a change now
        await t.handler.handleUplink(uplink('chengdu', 'expert.changed', { localExpertId: 'e-0', profile: profile(0, 'Chongqing') }, 'change-between'));
      }
      return result as never;
    });
    const batch = { ...uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'e-0', ...profile(0, 'Wuhan') }] }, 'again/batch-0'), ...again } as UplinkEnvelope;
    expect(await t.handler.handleUplink(batch)).toEqual({ outcome: 'applied' });
    spy.mockRestore();
    expect(changedBetween).toBe(true);
    const stream = await t.store.readStream('expert-chengdu.e-0');
    expect(stream.events.map((e) => [e.type, (e.data as { profile: ExpertProfile }).profile.location.city])).toEqual([
      ['ExpertRegistered', 'Chengdu'],
      ['ExpertProfileChanged', 'Chongqing'],
      ['ExpertProfileChanged', 'Wuhan'],
    ]);
    expect((await t.service.getSystem('chengdu')).status).toBe('joined');
  });

  it('a join again reads the retired experts in one pass over the directory, not a pass per 1,000 experts', async () => {
    // The publisher paged through every expert with findExperts (1,000 a page); the in-memory directory (the read
    // model on PostgreSQL and EventStoreDB) sorts the whole directory for each page, so planning one join again cost
    // (experts / 1,000) sorts of the directory: 6 s at 80,000 experts, growing with the square, while no system got
    // downlink. Counted here as the expert rows the directory went through, not as time.
    const t = setup();
    for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 1, 1, 'Beijing');
    await join(t.handler, 'chengdu', 3000, 500, 'Chengdu');
    for (const i of [0, 1499, 2999]) await t.handler.handleUplink(uplink('chengdu', 'expert.retired', { localExpertId: `e-${i}` }, `retire-${i}`));
    await t.publisher().catchUp();
    const again = { correlationId: 'corr-beijing-again' };
    await t.handler.handleUplink({ ...uplink('beijing', 'system.join.requested', { expectedBatches: 1, expectedExperts: 1 }, 'join-again'), ...again });
    for (const b of batches('beijing', 1, 1, 'Beijing')) await t.handler.handleUplink({ ...b, id: uuidV5('again/batch'), ...again });
    await t.projector.catchUp();

    const directory = t.directory as unknown as { sorted(): unknown[] };
    const sorted = directory.sorted.bind(t.directory);
    let rows = 0;
    directory.sorted = () => {
      const all = sorted();
      rows += all.length;
      return all;
    };
    const before = t.outbox.received('rts.downlink.beijing').length;
    await t.publisher().catchUp();
    const retired = t.outbox.received('rts.downlink.beijing').slice(before).filter((m) => m.type === 'directory.expert.retired');
    expect(retired.map((m) => (m.type === 'directory.expert.retired' ? m.payload.expertId : '')).sort()).toEqual(['chengdu:e-0', 'chengdu:e-1499', 'chengdu:e-2999']);
    // The snapshot's pass and the retirements' pass: 2 x 3,001 rows (it was 4 more for the pages).
    expect(rows).toBeLessThanOrEqual(2 * 3001);
  });

  describe('a system that crashed mid-join and joins again from scratch (new ids, another cut of its experts)', () => {
    const expert = (local: string, n: number) => ({ localExpertId: local, ...profile(n) });
    const as = (envelope: UplinkEnvelope, correlationId: string): UplinkEnvelope => ({ ...envelope, correlationId });
    /** The tester's report: 2 batches / 4 experts, batch 0 = [a, b], crash; again: batch 0 = [c, d], batch 1 = [a, b]. */
    const scenario = async (correlation: (attempt: number, key: string) => string) => {
      const t = setup();
      for (const id of ['beijing', 'chengdu']) await t.service.registerSystem({ systemId: id, name: id, area: id });
      await join(t.handler, 'beijing', 2, 2, 'Beijing');
      const send = (attempt: number, key: string, envelope: UplinkEnvelope) => t.handler.handleUplink(as(envelope, correlation(attempt, key)));
      const results: string[] = [];
      results.push((await send(1, 'join', uplink('chengdu', 'system.join.requested', { expectedBatches: 2, expectedExperts: 4 }, 'join-1'))).outcome);
      const oldBatch0 = uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 2, experts: [expert('a', 1), expert('b', 2)] }, 'attempt-1/batch-0');
      results.push((await send(1, 'batch-0', oldBatch0)).outcome);
      results.push((await send(2, 'join', uplink('chengdu', 'system.join.requested', { expectedBatches: 2, expectedExperts: 4 }, 'join-2'))).outcome);
      results.push((await send(2, 'batch-0', uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 2, experts: [expert('c', 3), expert('d', 4)] }, 'attempt-2/batch-0'))).outcome);
      results.push((await send(2, 'batch-1', uplink('chengdu', 'experts.batch', { batchIndex: 1, batchCount: 2, experts: [expert('a', 1), expert('b', 2)] }, 'attempt-2/batch-1'))).outcome);
      // The first attempt's batch 0 delivered again (same id): harmless.
      results.push((await send(1, 'batch-0', oldBatch0)).outcome);
      await t.publisher().catchUp();
      return { t, results };
    };

    const expectAllFour = async (t: ReturnType<typeof setup>) => {
      expect(await t.service.getSystem('chengdu')).toMatchObject({ status: 'joined', activeExperts: 4, join: { expectedBatches: 2, batchesImported: 2, expectedExperts: 4, expertsImported: 4 } });
      for (const l of ['a', 'b', 'c', 'd']) expect((await t.service.getExpert(`chengdu:${l}`)).status).toBe('active');
      expect(expertIdsOf(t.outbox.received('rts.downlink.beijing')).filter((id) => id.startsWith('chengdu:')).sort()).toEqual(['chengdu:a', 'chengdu:b', 'chengdu:c', 'chengdu:d']);
      const all = await t.store.readAll({ after: 0n, maxCount: 10_000 });
      expect(all.filter((e) => e.type === 'SystemJoined' && e.data.systemId === 'chengdu')).toHaveLength(1);
      expect(all.filter((e) => e.type === 'ExpertRegistered' && e.data.homeSystemId === 'chengdu')).toHaveLength(4);
      // a and b twice: the same experts (their second batch only records its message id)
      expect(all.filter((e) => e.type === 'ExpertProfileChanged' && e.data.homeSystemId === 'chengdu' && e.data.unchanged !== true)).toHaveLength(0);
    };

    it('with one correlation id per attempt (the SDK): the second request restarts the join, every expert is there', async () => {
      const { t, results } = await scenario((attempt) => `join-attempt-${attempt}`);
      expect(results).toEqual(['applied', 'applied', 'applied', 'applied', 'applied', 'duplicate']);
      await expectAllFour(t);
      // A late batch of the first attempt it never sent before the crash, with another profile for a: ignored.
      const late = as(uplink('chengdu', 'experts.batch', { batchIndex: 1, batchCount: 2, experts: [{ localExpertId: 'a', ...profile(1, 'Stale City') }] }, 'attempt-1/batch-1'), 'join-attempt-1');
      expect(await t.handler.handleUplink(late)).toEqual({ outcome: 'duplicate' });
      expect((await t.service.getExpert('chengdu:a')).profile.location.city).toBe(profile(1).location.city);
    });

    it('with a correlation id of its own on every message (clients that do not share one): still every expert', async () => {
      const { t, results } = await scenario((attempt, key) => `own-${attempt}-${key}`);
      expect(results).toEqual(['applied', 'applied', 'applied', 'applied', 'applied', 'duplicate']);
      await expectAllFour(t);
    });
  });

  it('an expert sent in two batches of one join counts once: the short join is shown and logged, not taken for complete', async () => {
    const t = setup();
    const warn = jest.fn();
    const handler = new UplinkHandler({ store: t.store, clock, logger: { warn } });
    await t.service.registerSystem({ systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' });
    const expert = (local: string, n: number) => ({ localExpertId: local, ...profile(n) });
    await handler.handleUplink(uplink('chengdu', 'system.join.requested', { expectedBatches: 2, expectedExperts: 4 }, 'join'));
    await handler.handleUplink(uplink('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 2, experts: [expert('a', 1), expert('b', 2), expert('c', 3)] }, 'batch-0'));
    // c again (a sender that cut its experts with an overlap): 3 experts of the 4 announced, not 4.
    await handler.handleUplink(uplink('chengdu', 'experts.batch', { batchIndex: 1, batchCount: 2, experts: [expert('c', 3)] }, 'batch-1'));
    expect(await t.service.getSystem('chengdu')).toMatchObject({ status: 'joined', activeExperts: 3, join: { batchesImported: 2, expectedExperts: 4, expertsImported: 3 } });
    expect(warn.mock.calls).toEqual([[expect.objectContaining({ systemId: 'chengdu', expectedExperts: 4, expertsImported: 3 }), 'join complete with fewer experts than its request announced']]);
    // Nor does it count toward too_many_experts twice: 2 announced, b in both batches.
    await t.service.registerSystem({ systemId: 'mianyang', name: 'Mianyang City', area: 'Mianyang' });
    await handler.handleUplink(uplink('mianyang', 'system.join.requested', { expectedBatches: 2, expectedExperts: 2 }, 'join'));
    await handler.handleUplink(uplink('mianyang', 'experts.batch', { batchIndex: 0, batchCount: 2, experts: [expert('a', 1), expert('b', 2)] }, 'batch-0'));
    await handler.handleUplink(uplink('mianyang', 'experts.batch', { batchIndex: 1, batchCount: 2, experts: [expert('b', 2)] }, 'batch-1'));
    expect(await t.service.getSystem('mianyang')).toMatchObject({ status: 'joined', join: { expectedExperts: 2, expertsImported: 2 } });
  });

  it('a join request naming the system in another Unicode spelling (NFD) is no name mismatch', async () => {
    const t = setup();
    await t.service.registerSystem({ systemId: 'aarhus', name: 'Århus Sønderå', area: 'Østjylland' });
    const nfd = 'Århus Sønderå'.normalize('NFD');
    expect(nfd).not.toBe('Århus Sønderå');
    await t.handler.handleUplink(uplink('aarhus', 'system.join.requested', { name: nfd, expectedBatches: 0, expectedExperts: 0 }, 'nfd-join'));
    await expect(t.handler.handleUplink(uplink('aarhus', 'system.join.requested', { name: 'Aarhus', expectedBatches: 0, expectedExperts: 0 }, 'other'))).rejects.toMatchObject({ code: 'system_name_mismatch' });
  });

  it('refuses, with typed permanent errors, what can never succeed', async () => {
    const t = setup();
    for (const id of ['beijing', 'chengdu', 'wuhan']) await t.service.registerSystem({ systemId: id, name: id, area: id });
    await join(t.handler, 'beijing', 2, 2, 'Beijing');
    await join(t.handler, 'chengdu', 2, 2, 'Chengdu');
    const fails = (m: UplinkEnvelope) => t.handler.handleUplink(m);

    await expect(fails(uplink('nowhere', 'expert.registered', { localExpertId: 'x', profile: profile(1) }, 'a'))).rejects.toMatchObject({ code: 'unknown_system' });
    await expect(fails(uplink('nowhere', 'system.join.requested', { expectedBatches: 1, expectedExperts: 1 }, 'b'))).rejects.toBeInstanceOf(NotFoundError);
    const steal = uplink('beijing', 'expert.changed', { localExpertId: 'e-0', homeSystemId: 'chengdu', profile: profile(5) }, 'c');
    await expect(fails(steal)).rejects.toBeInstanceOf(ForbiddenError);
    await expect(fails(steal)).rejects.toMatchObject({ code: 'expert_owned_by_other_system' });
    await expect(fails(batches('wuhan', 2, 2, 'Wuhan')[0]!)).rejects.toMatchObject({ code: 'system_not_joining' });
    await expect(fails(uplink('wuhan', 'expert.registered', { localExpertId: 'x', profile: profile(1) }, 'd'))).rejects.toBeInstanceOf(ConflictError);
    await expect(fails(uplink('wuhan', 'system.join.requested', { name: 'Not Wuhan', expectedBatches: 1, expectedExperts: 1 }, 'e'))).rejects.toMatchObject({ code: 'system_name_mismatch' });
    await t.handler.handleUplink(uplink('wuhan', 'system.join.requested', { expectedBatches: 2, expectedExperts: 3 }, 'f'));
    const wrongCount = uplink('wuhan', 'experts.batch', { batchIndex: 0, batchCount: 3, experts: [{ localExpertId: 'w', ...profile(1) }] }, 'g');
    await expect(fails(wrongCount)).rejects.toBeInstanceOf(ValidationError);
    // Nothing of a refused batch was written.
    expect((await t.directory.findExperts({ homeSystemId: 'wuhan', limit: 10 })).items).toEqual([]);
    await expect(fails(uplink('chengdu', 'expert.changed', { localExpertId: 'ghost', profile: profile(1) }, 'h'))).rejects.toMatchObject({ code: 'expert_not_found' });
  });
});
