import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { DirectoryProjector } from '../../src/application/directory/directory-projector';
import { DownlinkPublisher } from '../../src/application/directory/downlink-publisher';
import { UplinkHandler } from '../../src/application/directory/uplink-handler';
import { DirectoryService } from '../../src/application/directory/directory-service';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { InMemoryOutbox } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { InMemoryDirectory } from '../../src/adapters/registry/in-memory-directory';
import { SqliteDirectory } from '../../src/adapters/registry/sqlite-directory';
import type { ExpertProfile } from '../../src/domain/directory/expert';

const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
let n = 0;
const ids = { uuid: () => uuidV5(`sqlite-dir/${n++}`) };
const profile = (i: number, city: string): ExpertProfile => ({
  name: `Expert ${i}`,
  title: 'Physician',
  specialties: [i % 3 === 0 ? 'Cardiology' : 'Dermatology', 'General Medicine'],
  location: { city, hospital: 'H' },
  languages: i % 2 === 0 ? ['zh', 'en'] : ['zh'],
  availability: 'limited',
});
const msg = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`m/${systemId}/${key}`), type, version: 1, systemId, correlationId: 'c', time: '2024-05-01T10:00:00Z', payload }) as UplinkEnvelope;

describe('SqliteDirectory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rts-directory-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = () => {
    const store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite') });
    const directory = new SqliteDirectory(store);
    const projector = new DirectoryProjector(store, directory);
    const service = new DirectoryService({ store, directory, projector, clock, ids });
    return { store, directory, projector, service, handler: new UplinkHandler({ store, clock }) };
  };

  const populate = async (t: ReturnType<typeof open>) => {
    await t.service.registerSystem({ systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' });
    await t.service.registerSystem({ systemId: 'beijing', name: 'Beijing City', area: 'Beijing' });
    await t.handler.handleUplink(msg('chengdu', 'system.join.requested', { expectedBatches: 3, expectedExperts: 250 }, 'join'));
    for (const b of [2, 0, 1, 0]) {
      const experts = Array.from({ length: b === 2 ? 50 : 100 }, (_, j) => ({ localExpertId: `e-${b * 100 + j}`, ...profile(b * 100 + j, b === 1 ? 'Mianyang' : 'Chengdu') }));
      await t.handler.handleUplink(msg('chengdu', 'experts.batch', { batchIndex: b, batchCount: 3, experts }, `b${b}`));
    }
    await t.handler.handleUplink(msg('beijing', 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, 'join'));
    await t.handler.handleUplink(msg('chengdu', 'expert.retired', { localExpertId: 'e-0' }, 'r0'));
    await t.handler.handleUplink(msg('chengdu', 'expert.changed', { localExpertId: 'e-3', profile: { ...profile(3, 'Chengdu'), languages: ['EN-gb'] } }, 'c3'));
  };

  it('answers queries like the in-memory model, with the checkpoint in the same transaction, and survives a reopen', async () => {
    const t = open();
    await populate(t);
    await t.projector.catchUp();
    const memory = new InMemoryDirectory();
    await new DirectoryProjector(t.store, memory).catchUp();
    expect(await t.directory.checkpoint()).toBe(await t.store.headPosition());
    expect(await memory.checkpoint()).toBe(await t.store.headPosition());

    const queries = [
      { limit: 1000 },
      { specialty: 'cardiology', limit: 1000 },
      { specialty: 'GENERAL MEDICINE', city: 'mianyang', limit: 1000 },
      { language: 'en', limit: 1000 },
      { language: 'en-GB', limit: 1000 },
      { city: 'Chengdu', includeRetired: true, limit: 1000 },
      { homeSystemId: 'beijing', limit: 1000 },
      { limit: 7, after: 'chengdu:e-150' },
    ];
    for (const q of queries) expect(await t.directory.findExperts(q)).toEqual(await memory.findExperts(q));
    expect((await t.directory.findExperts({ limit: 1000 })).items).toHaveLength(249);
    expect((await t.directory.findExperts({ language: 'en-gb', limit: 10 })).items.map((e) => e.expertId)).toEqual(['chengdu:e-3']);
    expect(await t.directory.expertsAsOf(await t.store.headPosition())).toEqual(await memory.expertsAsOf(await t.store.headPosition()));
    // The experts retired at or before a position (a join again sends each): e-0, retired after beijing joined.
    const retired = await t.directory.retiredAsOf(await t.store.headPosition());
    expect(retired.map((e) => e.expertId)).toEqual(['chengdu:e-0']);
    expect(retired).toEqual(await memory.retiredAsOf(await t.store.headPosition()));
    expect(await t.directory.retiredAsOf(retired[0]!.retiredPosition! - 1n)).toEqual([]);
    expect(await t.directory.listSystems()).toEqual(await memory.listSystems());
    const rows = await t.directory.listSystemRows();
    expect(rows).toEqual(await memory.listSystemRows());
    expect(rows).toEqual((await t.directory.listSystems()).map(({ activeExperts: _counted, ...row }) => row));
    expect(await t.directory.getSystem('chengdu')).toMatchObject({
      status: 'joined',
      activeExperts: 249,
      join: { expectedBatches: 3, batchesImported: 3, expectedExperts: 250, expertsImported: 250 },
    });
    expect(await t.directory.getExpert('chengdu:e-0')).toMatchObject({ status: 'retired', revision: 2 });
    const before = await t.directory.findExperts({ specialty: 'Cardiology', limit: 1000 });
    await t.store.close();

    const again = open();
    expect(await again.directory.checkpoint()).toBe(await again.store.headPosition());
    expect(await again.directory.findExperts({ specialty: 'Cardiology', limit: 1000 })).toEqual(before);
    await again.projector.rebuild();
    expect(await again.directory.findExperts({ specialty: 'Cardiology', limit: 1000 })).toEqual(before);
    await again.store.close();
  });

  it('keeps the profile, revision and updatedAt of an expert sent its own profile again, as the in-memory model does', async () => {
    const t = open();
    await populate(t);
    let at = DateTime.fromISO('2024-06-01T08:00:00Z', { zone: 'utc' });
    const handler = new UplinkHandler({ store: t.store, clock: { now: () => (at = at.plus({ hours: 1 })) } });
    const p1 = { ...profile(5, 'Mianyang'), languages: ['fr'] };
    const p0 = msg('chengdu', 'expert.changed', { localExpertId: 'e-5', profile: profile(5, 'Chengdu') }, 'e5-same');
    expect(await handler.handleUplink(p0)).toEqual({ outcome: 'duplicate' });
    expect(await handler.handleUplink(msg('chengdu', 'expert.changed', { localExpertId: 'e-5', profile: p1 }, 'e5-p1'))).toEqual({ outcome: 'applied' });
    expect(await handler.handleUplink(p0)).toEqual({ outcome: 'duplicate' });
    expect(await handler.handleUplink(msg('chengdu', 'expert.changed', { localExpertId: 'e-5', profile: p1 }, 'e5-p1-again'))).toEqual({ outcome: 'duplicate' });
    await t.projector.catchUp();
    const memory = new InMemoryDirectory();
    await new DirectoryProjector(t.store, memory).catchUp();
    const e5 = await t.directory.getExpert('chengdu:e-5');
    expect(e5).toEqual(await memory.getExpert('chengdu:e-5'));
    // e5-same took version 1 (revision 2, never sent), the change version 2: revision 3, as the downlink sent it.
    expect(e5).toMatchObject({ profile: p1, revision: 3, updatedAt: '2024-06-01T10:00:00.000Z' });
    expect((await t.directory.findExperts({ language: 'fr', limit: 10 })).items.map((e) => e.expertId)).toEqual(['chengdu:e-5']);
    expect(await t.directory.findExperts({ city: 'Mianyang', limit: 1000 })).toEqual(await memory.findExperts({ city: 'Mianyang', limit: 1000 }));
    await t.store.close();
  });

  it('pages through every expert with the service cursor', async () => {
    const t = open();
    await populate(t);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await t.service.findExperts({ limit: 40, cursor });
      seen.push(...page.items.map((e) => e.expertId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(249);
    expect(new Set(seen).size).toBe(249);
    expect([...seen].sort()).toEqual(seen);
    await t.store.close();
  });

  it('keeps the downlink checkpoint durably, apart from the projection', async () => {
    const t = open();
    await populate(t);
    const outbox = new InMemoryOutbox();
    await new DownlinkPublisher({ store: t.store, directory: t.directory, projector: t.projector, outbox, checkpoints: t.directory }).catchUp();
    const sent = outbox.sends;
    expect(outbox.received('rts.downlink.beijing').length).toBeGreaterThan(0);
    const position = await t.directory.get('downlink');
    expect(position).toBe(await t.store.headPosition());
    await t.projector.rebuild();
    expect(await t.directory.get('downlink')).toBe(position);
    await t.store.close();

    const again = open();
    await new DownlinkPublisher({ store: again.store, directory: again.directory, projector: again.projector, outbox, checkpoints: again.directory }).catchUp();
    expect(outbox.sends).toBe(sent);
    await again.store.close();
  });
});
