// Which builds may open a store: the store records the format of the newest build that opened it and the oldest
// format that may open it; a build below that is refused before it writes anything.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { checkStoreFormat, STORE_FORMAT_RECORDED, STORE_FORMAT_STREAM, StoreFormatTooNewError, THIS_BUILD_STORE_FORMAT } from '../../src/application/store-format';

const AT = '2026-12-02T01:00:00.000Z';
const marked = async (format: number, readableFrom: number): Promise<InMemoryEventStore> => {
  const store = new InMemoryEventStore();
  await store.appendToStream(STORE_FORMAT_STREAM, [{ id: `e4f1c0de-0000-4000-8000-${String(format).padStart(12, '0')}`, type: STORE_FORMAT_RECORDED, data: { format, readableFrom, recordedAt: AT } }]);
  return store;
};
const streamOf = async (store: InMemoryEventStore) => (await store.readStream(STORE_FORMAT_STREAM)).events.map((e) => e.data);

describe('the store format marker', () => {
  it('an unmarked store (new, or written by a build before the marker) gets this build\'s format; again it matches', async () => {
    const store = new InMemoryEventStore();
    await store.appendToStream('patient-x', [{ id: 'f0000000-0000-4000-8000-000000000001', type: 'DocumentSubmitted', data: {} }]); // an older build's event
    expect(await checkStoreFormat(store, AT)).toEqual({ outcome: 'recorded', recorded: null });
    expect(await checkStoreFormat(store, AT)).toEqual({ outcome: 'matches', recorded: THIS_BUILD_STORE_FORMAT });
    expect(await streamOf(store)).toEqual([{ ...THIS_BUILD_STORE_FORMAT, recordedAt: AT }]);
  });

  it('refuses a store whose oldest readable format is newer than this build, and writes nothing', async () => {
    const store = await marked(THIS_BUILD_STORE_FORMAT.format + 1, THIS_BUILD_STORE_FORMAT.format + 1);
    const refused = checkStoreFormat(store, AT);
    await expect(refused).rejects.toBeInstanceOf(StoreFormatTooNewError);
    await expect(refused).rejects.toThrow(`store format ${THIS_BUILD_STORE_FORMAT.format + 1}, opened only by builds of format ${THIS_BUILD_STORE_FORMAT.format + 1} or later); this build knows format ${THIS_BUILD_STORE_FORMAT.format}`);
    expect(await streamOf(store)).toHaveLength(1);
  });

  it('opens a newer store that still allows this build, and leaves its marker as it is', async () => {
    const store = await marked(THIS_BUILD_STORE_FORMAT.format + 1, THIS_BUILD_STORE_FORMAT.format);
    expect((await checkStoreFormat(store, AT)).outcome).toBe('newer');
    expect(await streamOf(store)).toEqual([{ format: THIS_BUILD_STORE_FORMAT.format + 1, readableFrom: THIS_BUILD_STORE_FORMAT.format, recordedAt: AT }]);
  });

  it('upgrades an older marker, and never lowers a readableFrom the store holds', async () => {
    const store = await marked(1, 1);
    expect(await checkStoreFormat(store, AT, { format: 3, readableFrom: 2 })).toEqual({ outcome: 'upgraded', recorded: { format: 1, readableFrom: 1 } });
    await expect(checkStoreFormat(store, AT, { format: 1, readableFrom: 1 })).rejects.toBeInstanceOf(StoreFormatTooNewError);
    expect((await checkStoreFormat(store, AT, { format: 2, readableFrom: 1 })).outcome).toBe('newer');
    expect((await checkStoreFormat(store, AT, { format: 3, readableFrom: 1 })).outcome).toBe('matches'); // keeps 2
    expect((await streamOf(store)).at(-1)).toEqual({ format: 3, readableFrom: 2, recordedAt: AT });
  });

  it('processes of one build starting together record the format once', async () => {
    const store = new InMemoryEventStore();
    const outcomes = await Promise.all([1, 2, 3].map(() => checkStoreFormat(store, AT)));
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['matches', 'matches', 'recorded']);
    expect(await streamOf(store)).toHaveLength(1);
  });
});
