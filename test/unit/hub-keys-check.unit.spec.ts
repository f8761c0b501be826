// One set of hub message keys per store: the first process records its key ids; a later one whose keys share
// none with the last recorded is refused; rotation steps (a key kept in common) are recorded as they come.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { checkHubKeys, HUB_KEYS_IN_USE, HUB_KEYS_STREAM, HubKeysMismatchError, recordedHubKeys, type HubKeyIds } from '../../src/application/security/hub-keys-check';

const AT = '2026-12-01T12:00:00.000Z';
const V1: HubKeyIds = { signingKid: 'S1', encryptionKids: ['D1'] };
const V2: HubKeyIds = { signingKid: 'S1', encryptionKids: ['D1', 'D2'] }; // a new decryption key beside the old
const V3: HubKeyIds = { signingKid: 'S2', encryptionKids: ['D2'] }; // a new signing key, the old decryption key gone
const OTHER: HubKeyIds = { signingKid: 'X', encryptionKids: ['Y'] }; // a process that generated its own

const recorded = async (store: InMemoryEventStore) => (await store.readStream(HUB_KEYS_STREAM)).events.map((e) => e.data);

describe('the hub keys check', () => {
  it('records the first set, accepts it again, and refuses one that shares no key with it', async () => {
    const store = new InMemoryEventStore();
    expect((await recordedHubKeys(store)).keys).toBeNull();
    expect(await checkHubKeys(store, V1, AT)).toBe('recorded');
    expect(await checkHubKeys(store, { signingKid: 'S1', encryptionKids: ['D1'] }, AT)).toBe('matches');
    const refused = checkHubKeys(store, OTHER, AT);
    await expect(refused).rejects.toBeInstanceOf(HubKeysMismatchError);
    await expect(refused).rejects.toMatchObject({ recorded: V1 });
    expect(await recorded(store)).toEqual([{ signingKid: 'S1', encryptionKids: ['D1'], recordedAt: AT }]);
    const { events } = await store.readStream(HUB_KEYS_STREAM);
    expect(events.map((e) => e.type)).toEqual([HUB_KEYS_IN_USE]);
  });

  it('follows a rotation step by step, and a rolling restart that brings the old set back', async () => {
    const store = new InMemoryEventStore();
    await checkHubKeys(store, V1, AT);
    expect(await checkHubKeys(store, V2, AT)).toBe('rotated');
    // A process not yet restarted with the new file starts again (a crash): it shares D1, so it goes on.
    expect(await checkHubKeys(store, V1, AT)).toBe('rotated');
    expect(await checkHubKeys(store, V2, AT)).toBe('rotated');
    expect(await checkHubKeys(store, V3, AT)).toBe('rotated');
    expect((await recordedHubKeys(store)).keys).toEqual(V3);
    // Skipping the step in between shares nothing: V1 against V3 is refused.
    await expect(checkHubKeys(store, V1, AT)).rejects.toBeInstanceOf(HubKeysMismatchError);
    expect(await recorded(store)).toHaveLength(5);
  });

  it('accepts keys that share nothing only when told to, and records them', async () => {
    const store = new InMemoryEventStore();
    await checkHubKeys(store, V1, AT);
    expect(await checkHubKeys(store, OTHER, AT, { acceptNew: true })).toBe('replaced');
    expect((await recordedHubKeys(store)).keys).toEqual(OTHER);
    // From then on the old set is the stranger.
    await expect(checkHubKeys(store, V1, AT)).rejects.toBeInstanceOf(HubKeysMismatchError);
    expect(await checkHubKeys(store, OTHER, AT)).toBe('matches');
  });

  it('processes starting at once: with the same keys one event is recorded, with unrelated keys exactly one goes on', async () => {
    const same = new InMemoryEventStore();
    const both = await Promise.all([checkHubKeys(same, V1, AT), checkHubKeys(same, { signingKid: 'S1', encryptionKids: ['D1'] }, AT)]);
    expect(both.sort()).toEqual(['matches', 'recorded']);
    expect(await recorded(same)).toHaveLength(1);

    const different = new InMemoryEventStore();
    const outcomes = await Promise.allSettled([checkHubKeys(different, V1, AT), checkHubKeys(different, OTHER, AT)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.reason).toBeInstanceOf(HubKeysMismatchError);
    expect(await recorded(different)).toHaveLength(1);
  });

  it('ignores an event it cannot read rather than trusting it', async () => {
    const store = new InMemoryEventStore();
    await checkHubKeys(store, V1, AT);
    await store.appendToStream(HUB_KEYS_STREAM, [{ id: '00000000-0000-4000-8000-000000000001', type: HUB_KEYS_IN_USE, data: { signingKid: 7 } }]);
    expect((await recordedHubKeys(store)).keys).toEqual(V1);
    expect(await checkHubKeys(store, V1, AT)).toBe('matches');
  });
});
