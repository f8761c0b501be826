// Experts and uplink messages for the directory's unit tests, as a city system sends them.
import type { UplinkEnvelope, UplinkPayloads, UplinkType } from '../../src/application/directory/directory-messages';
import { DirectoryProjector } from '../../src/application/directory/directory-projector';
import { DirectoryService } from '../../src/application/directory/directory-service';
import { UplinkHandler } from '../../src/application/directory/uplink-handler';
import { uuidV5 } from '../../src/application/ids';
import type { Clock } from '../../src/application/ports/clock';
import type { IdGenerator } from '../../src/application/ports/id-generator';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryCheckpointStore } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { parseUplink } from '../../src/adapters/messaging/messages';
import { InMemoryDirectory } from '../../src/adapters/registry/in-memory-directory';
import type { ExpertProfile } from '../../src/domain/directory/expert';

/** Expert number `i`'s profile: an attending cardiologist in one of seven hospitals of Chengdu, unless told otherwise. */
export const testExpert = (i: number, changes: Partial<Pick<ExpertProfile, 'title' | 'specialties'>> & { city?: string } = {}): ExpertProfile => ({
  name: `Expert ${i}`,
  title: changes.title ?? 'Attending physician',
  specialties: changes.specialties ?? ['Cardiology'],
  location: { city: changes.city ?? 'Chengdu', hospital: `Hospital ${i % 7}` },
  languages: ['zh'],
  availability: 'available',
});

/** An uplink message through the contract's own parser; `key` makes its id (the same key, the same message). */
export const testUplink = <T extends UplinkType>(systemId: string, type: T, payload: UplinkPayloads[T], key: string): UplinkEnvelope => {
  const parsed = parseUplink(JSON.stringify({ id: uuidV5(`msg/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${systemId}`, time: '2024-05-01T18:00:00+08:00', payload }));
  if (!parsed.ok) throw new Error(`test message breaks the contract: ${parsed.detail}`);
  return parsed.message;
};

/** The directory's core over the in-memory store, as its unit tests wire it (the downlink checkpoints apart). */
export const inMemoryDirectoryCore = (clock: Clock, ids: IdGenerator) => {
  const store = new InMemoryEventStore();
  const directory = new InMemoryDirectory();
  const projector = new DirectoryProjector(store, directory);
  const service = new DirectoryService({ store, directory, projector, clock, ids });
  return { store, directory, projector, service, handler: new UplinkHandler({ store, clock }), checkpoints: new InMemoryCheckpointStore() };
};
