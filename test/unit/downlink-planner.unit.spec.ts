import { MAX_BATCH_JSON_BYTES, downlinkMessageId, partitionExperts } from '../../src/application/directory/directory-messages';
import { planDownlink, type DownlinkContext } from '../../src/application/directory/downlink-planner';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { ExpertView } from '../../src/application/projections/directory-projection';
import type { ExpertProfile } from '../../src/domain/directory/expert';

const profile: ExpertProfile = { name: 'N', title: 'T', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' };
const recorded = (type: string, data: Record<string, unknown>, streamVersion = 0n, id = '11111111-1111-4111-8111-111111111111'): RecordedEvent => ({
  id,
  type,
  data,
  metadata: { correlationId: 'corr-7' },
  streamName: 's',
  streamVersion,
  globalPosition: 42n,
  recordedAt: '2024-05-01T10:00:00.000Z',
});
const sys = (systemId: string) => ({ systemId, downlinkQueue: `rts.downlink.${systemId}` });
const view = (home: string, local: string): ExpertView => ({
  expertId: `${home}:${local}`,
  homeSystemId: home,
  localExpertId: local,
  profile,
  status: 'active',
  revision: 1,
  registeredAt: 'x',
  updatedAt: 'x',
  retiredAt: null,
  registeredPosition: 1n,
  retiredPosition: null,
});

const expertData = { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', localExpertId: 'e-1', profile, messageId: 'm' };
const context: DownlinkContext = { joinedSystems: [sys('chengdu'), sys('beijing'), sys('shanghai')] };

describe('downlink planner', () => {
  it('sends an expert change to every other joined system, with revision, deterministic ids and the event time', () => {
    const plan = planDownlink(recorded('ExpertProfileChanged', { ...expertData, changedAt: 'x' }, 2n), context);
    expect(plan.map((m) => m.queue)).toEqual(['rts.downlink.beijing', 'rts.downlink.shanghai']);
    expect(plan[0]!.envelope).toMatchObject({
      type: 'directory.expert.upserted',
      systemId: 'beijing',
      version: 1,
      correlationId: 'corr-7',
      time: '2024-05-01T10:00:00.000Z',
      payload: { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', profile, revision: 3 },
    });
    expect(planDownlink(recorded('ExpertProfileChanged', { ...expertData, changedAt: 'x' }, 2n), context)).toEqual(plan);
    expect(new Set(plan.map((m) => m.envelope.id)).size).toBe(2);
  });

  it('sends nothing for a profile change that changed nothing (it only records the message id; the others hold the profile)', () => {
    expect(planDownlink(recorded('ExpertProfileChanged', { ...expertData, changedAt: 'x', unchanged: true }, 2n), context)).toEqual([]);
    // Events of builds before the flag, and real changes, still go out.
    expect(planDownlink(recorded('ExpertProfileChanged', { ...expertData, changedAt: 'x' }, 2n), context)).toHaveLength(2);
  });

  it('sends retirements, and nothing for experts of a system that has not joined', () => {
    const plan = planDownlink(recorded('ExpertRetired', { ...expertData, retiredAt: 'x' }, 1n), context);
    expect(plan.map((m) => [m.envelope.type, m.envelope.systemId])).toEqual([
      ['directory.expert.retired', 'beijing'],
      ['directory.expert.retired', 'shanghai'],
    ]);
    expect(planDownlink(recorded('ExpertRegistered', { ...expertData, registeredAt: 'x' }), { joinedSystems: [sys('beijing')] })).toEqual([]);
    expect(planDownlink(recorded('DocumentSubmitted', {}), context)).toEqual([]);
  });

  it('on a join: confirmation and a batched snapshot of the others to the joiner, news and its experts to the others', () => {
    const directory = [
      ...Array.from({ length: 5 }, (_, i) => view('beijing', `b${i}`)),
      view('chengdu', 'c0'),
      view('chengdu', 'c1'),
      view('notjoined', 'x0'),
    ];
    const event = recorded('SystemJoined', { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', batches: 1, experts: 2, joinedAt: 'x' });
    const plan = planDownlink(event, { joinedSystems: [sys('beijing'), sys('chengdu')], directory }, { snapshotBatchSize: 2 });
    const toJoiner = plan.filter((m) => m.queue === 'rts.downlink.chengdu').map((m) => m.envelope);
    expect(toJoiner.map((e) => e.type)).toEqual(['system.joined', 'directory.snapshot', 'directory.snapshot', 'directory.snapshot']);
    const snapshots = toJoiner.filter((e) => e.type === 'directory.snapshot').map((e) => e.payload as { batchIndex: number; batchCount: number; snapshotId: string; experts: readonly { expertId: string }[] });
    expect(snapshots.map((s) => [s.batchIndex, s.batchCount, s.snapshotId])).toEqual([[0, 3, event.id], [1, 3, event.id], [2, 3, event.id]]);
    expect(snapshots.flatMap((s) => s.experts.map((x) => x.expertId))).toEqual(['beijing:b0', 'beijing:b1', 'beijing:b2', 'beijing:b3', 'beijing:b4']);
    const toBeijing = plan.filter((m) => m.queue === 'rts.downlink.beijing').map((m) => m.envelope);
    expect(toBeijing.map((e) => [e.type, (e.payload as { expertId?: string }).expertId])).toEqual([
      ['system.joined', undefined],
      ['directory.expert.upserted', 'chengdu:c0'],
      ['directory.expert.upserted', 'chengdu:c1'],
    ]);
    expect(new Set(plan.map((m) => m.envelope.id)).size).toBe(plan.length);
  });

  it('on a join again: the others get the news only, each expert the join registered or changed once, by its own event', () => {
    // Before, every SystemJoined sent all of the joiner's experts to the others: a re-join of 1,403 experts with
    // one changed re-sent 1,402 unchanged ones, and a new expert went out twice (its event, then the join).
    const joinedSystems = [sys('beijing'), sys('chengdu')];
    const directory = [view('beijing', 'b0'), view('chengdu', 'c0'), view('chengdu', 'c1'), view('chengdu', 'new')];
    const joinAgain = recorded('SystemJoined', { systemId: 'chengdu', name: 'C', area: 'A', downlinkQueue: 'rts.downlink.chengdu', batches: 1, experts: 3, joinedAt: 'y' });
    // The events of the re-join in order: the new expert registered by a batch (chengdu stays joined meanwhile), then the join.
    const registered = recorded('ExpertRegistered', { ...expertData, expertId: 'chengdu:new', localExpertId: 'new', registeredAt: 'y' }, 0n, '22222222-2222-4222-8222-222222222222');
    const plans = [planDownlink(registered, { joinedSystems }), planDownlink(joinAgain, { joinedSystems, directory, rejoin: true })];
    const toBeijing = plans.flat().filter((m) => m.queue === 'rts.downlink.beijing').map((m) => [m.envelope.type, (m.envelope.payload as { expertId?: string }).expertId]);
    expect(toBeijing).toEqual([
      ['directory.expert.upserted', 'chengdu:new'],
      ['system.joined', undefined],
    ]);
    // The joiner still gets its confirmation and a full snapshot of the others.
    const toJoiner = plans[1]!.filter((m) => m.queue === 'rts.downlink.chengdu').map((m) => m.envelope);
    expect(toJoiner.map((e) => e.type)).toEqual(['system.joined', 'directory.snapshot']);
    expect(toJoiner[1]!.payload).toMatchObject({ experts: [{ expertId: 'beijing:b0' }] });
  });

  it('shares an expert retired after the join with the revision of its last profile', () => {
    const retiredLater: ExpertView = { ...view('beijing', 'b0'), status: 'retired', revision: 4, retiredPosition: 50n };
    const event = recorded('SystemJoined', { systemId: 'chengdu', name: 'C', area: 'A', downlinkQueue: 'rts.downlink.chengdu', batches: 0, experts: 0, joinedAt: 'x' });
    const plan = planDownlink(event, { joinedSystems: [sys('beijing'), sys('chengdu')], directory: [retiredLater] });
    expect(plan[1]!.envelope.payload).toMatchObject({ experts: [{ expertId: 'beijing:b0', revision: 3 }] });
  });

  it('cuts the snapshot by size as well as by count, with part ids of their own only where size cut it', () => {
    const joined = recorded('SystemJoined', { systemId: 'chengdu', name: 'C', area: 'A', downlinkQueue: 'rts.downlink.chengdu', batches: 0, experts: 0, joinedAt: 'x' });
    const directory = Array.from({ length: 6 }, (_, i) => view('beijing', `b${i}`));
    const snapshots = (options: { snapshotBatchSize?: number; snapshotPartBytes?: number }) =>
      planDownlink(joined, { joinedSystems: [sys('beijing'), sys('chengdu')], directory }, options).filter((m) => m.envelope.type === 'directory.snapshot');
    // By count (the size limit far away): the ids of before, snapshot/<i>.
    const byCount = snapshots({ snapshotBatchSize: 4 });
    expect(byCount.map((m) => m.envelope.id)).toEqual([0, 1].map((i) => downlinkMessageId(joined.id, 'chengdu', `snapshot/${i}`)));
    // By size: room for two experts' JSON a part gives parts of 2, 2, 2, with ids that name the count and each part's
    // first and last expert.
    const oneExpert = Buffer.byteLength(JSON.stringify((byCount[0]!.envelope.payload as { experts: readonly unknown[] }).experts[0]));
    const bySize = snapshots({ snapshotBatchSize: 4, snapshotPartBytes: 2 * oneExpert + 10 });
    expect(bySize.map((m) => (m.envelope.payload as { experts: readonly unknown[] }).experts.length)).toEqual([2, 2, 2]);
    expect(bySize.map((m) => m.envelope.payload)).toEqual([0, 1, 2].map((i) => expect.objectContaining({ batchIndex: i, batchCount: 3 })));
    expect(bySize.map((m) => m.envelope.id)).toEqual([0, 1, 2].map((i) => downlinkMessageId(joined.id, 'chengdu', `snapshot/${i}/3/beijing:b${2 * i}/beijing:b${2 * i + 1}`)));
    expect(snapshots({ snapshotBatchSize: 4, snapshotPartBytes: 2 * oneExpert + 10 })).toEqual(bySize); // deterministic
  });

  it('a join planned again after a profile changed size: a receiver that dedupes by envelope id still gets every expert', () => {
    // The snapshot holds each expert's current profile, so a re-plan (after a failed send or a restart mid-snapshot)
    // may cut it by size elsewhere, into as many parts as before. Parts under the ids of the first plan's parts then
    // held other experts: a receiver that had taken part 0 dropped the new part 0 as a repeat, and an expert moved
    // from part 1 into part 0 never reached it.
    const joined = recorded('SystemJoined', { systemId: 'chengdu', name: 'C', area: 'A', downlinkQueue: 'rts.downlink.chengdu', batches: 0, experts: 0, joinedAt: 'x' });
    const withName = (x: ExpertView, name: string): ExpertView => ({ ...x, profile: { ...x.profile, name } });
    const before = [view('beijing', 'b0'), withName(view('beijing', 'b1'), `N${'n'.repeat(20)}`), view('beijing', 'b2'), view('beijing', 'b3')];
    const after = [before[0]!, withName(before[1]!, 'N'), ...before.slice(2)]; // b1's name shortened after the join
    const oneExpert = Buffer.byteLength(JSON.stringify({ expertId: 'beijing:b1', homeSystemId: 'beijing', profile, revision: 1 })) + 1;
    const snapshots = (directory: readonly ExpertView[]) =>
      planDownlink(joined, { joinedSystems: [sys('beijing'), sys('chengdu')], directory }, { snapshotBatchSize: 4, snapshotPartBytes: 3 * oneExpert + 10 })
        .filter((m) => m.envelope.type === 'directory.snapshot')
        .map((m) => m.envelope as { id: string; payload: { experts: readonly { expertId: string }[] } });
    const first = snapshots(before);
    const again = snapshots(after);
    expect(first.map((e) => e.payload.experts.length)).toEqual([2, 2]);
    expect(again.map((e) => e.payload.experts.length)).toEqual([3, 1]);
    const seen = new Set<string>();
    const held = new Set<string>();
    const receive = (e: { id: string; payload: { experts: readonly { expertId: string }[] } }): void => {
      if (seen.has(e.id)) return;
      seen.add(e.id);
      for (const x of e.payload.experts) held.add(x.expertId);
    };
    receive(first[0]!); // the first plan's first part was accepted, then the send of the next failed
    again.forEach(receive);
    expect([...held].sort()).toEqual(['beijing:b0', 'beijing:b1', 'beijing:b2', 'beijing:b3']);
  });

  it('partitionExperts: at most maxCount and maxBytes of UTF-8 JSON a part, in order; an oversized expert alone', () => {
    const han = (length: number) => '\u4e2d'.repeat(length); // three bytes a character in UTF-8
    const experts = [{ n: han(100) }, { n: 'a' }, { n: han(100) }, { n: han(400) }, { n: 'b' }];
    const parts = partitionExperts(experts, 2, 700);
    expect(parts).toEqual([[experts[0], experts[1]], [experts[2]], [experts[3]], [experts[4]]]);
    for (const part of parts.filter((p) => p.length > 1)) expect(part.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)) + 1, 0)).toBeLessThanOrEqual(700);
    expect(partitionExperts([], 500)).toEqual([]);
    expect(partitionExperts(Array.from({ length: 1001 }, (_, i) => ({ i }))).map((p) => p.length)).toEqual([500, 500, 1]);
    // 500 experts at the profile's limits in Chinese: more than one part, each within the bytes.
    const full = Array.from({ length: 500 }, () => ({ name: han(200), title: han(100), specialties: Array.from({ length: 20 }, () => han(100)) }));
    const cut = partitionExperts(full);
    expect(cut.length).toBeGreaterThan(1);
    for (const part of cut) expect(Buffer.byteLength(JSON.stringify(part))).toBeLessThanOrEqual(MAX_BATCH_JSON_BYTES);
  });

  it('announces an empty directory to the first system with one empty snapshot batch', () => {
    const event = recorded('SystemJoined', { systemId: 'chengdu', name: 'C', area: 'A', downlinkQueue: 'rts.downlink.chengdu', batches: 0, experts: 0, joinedAt: 'x' });
    const plan = planDownlink(event, { joinedSystems: [sys('chengdu')], directory: [] });
    expect(plan.map((m) => m.envelope.type)).toEqual(['system.joined', 'directory.snapshot']);
    expect(plan[1]!.envelope.payload).toMatchObject({ batchIndex: 0, batchCount: 1, experts: [] });
  });
});
