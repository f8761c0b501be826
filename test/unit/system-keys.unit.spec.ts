// System message keys: the decider's rules, the service over the in-memory store with the edge's JWK check, and
// rotation without downtime as the hub's codec sees it (both keys valid during the overlap; the old one refused
// as 'unknown_key' from its retire date; another hub process rebuilt from the events knows the same keys).
import { DateTime } from 'luxon';
import { checkPublicJwk } from '../../src/adapters/crypto/hub-keys';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, generatePartyKeys, generateSigningKey, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { JoseHubCodec } from '../../src/adapters/messaging/hub-codec';
import { Projector } from '../../src/application/projector';
import { KeyBookProjection, SystemKeysService } from '../../src/application/security/system-keys-service';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { foldEvents } from '../../src/domain/shared/decider';
import { systemKeysDecider, type SystemKeyCommand, type SystemKeyEvent, type SystemKeysState } from '../../src/domain/security/system-keys';

let now = DateTime.fromISO('2026-01-01T00:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}` };
const logger = { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as never;

const cancel = (systemId: string) => ({
  id: `6f1c1d7e-1c2b-4c1a-9d7e-${String(++n).padStart(12, '0')}`,
  type: 'consultation.cancel',
  version: 1,
  systemId,
  correlationId: 'c',
  time: '2026-01-01T00:00:00Z',
  payload: { consultationId: '11111111-2222-4333-8444-555555555555' },
});

const setup = async () => {
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  await directory.service.registerSystem({ systemId: 'city-a', name: 'A', area: 'X' });
  const hubKeys = await generatePartyKeys('hub');
  const registry = new KeyRegistry();
  await registry.register('hub', publicJwks(hubKeys).signing);
  await registry.register('hub', publicJwks(hubKeys).encryption);
  const projector = new Projector(store, new KeyBookProjection(registry), undefined, 1000, 'keys', 0);
  const keys = new SystemKeysService({ store, clock, ids, directory: directory.readModel, directoryProjector: directory.projector, check: checkPublicJwk, owners: registry, projector });
  const hubRegistryForSystems = new KeyRegistry(); // what a system knows: the hub's public keys
  await hubRegistryForSystems.register('hub', publicJwks(hubKeys).signing);
  await hubRegistryForSystems.register('hub', publicJwks(hubKeys).encryption);
  const hubCodec = new JoseHubCodec(hubKeys, registry, () => projector.catchUp(), () => new Date(now.toMillis()));
  const send = (keys: PartyKeys) => new JoseCodec({ keys, registry: hubRegistryForSystems, now: () => new Date(now.toMillis()) }).encode(cancel('city-a'), { to: 'hub' });
  return { store, keys, registry, hubCodec, send, hubKeys, projector };
};

describe('system keys decider', () => {
  const state: SystemKeysState = { keys: [{ kid: 'k1', use: 'sig', alg: 'ES256', retiresAt: null }] };
  const base = { systemId: 's', now: '2026-01-01T00:00:00Z' };
  it('registers a new kid once; a repeat is nothing; a retired kid never comes back', () => {
    expect(systemKeysDecider.decide({ ...base, type: 'RegisterSystemKey', kid: 'k2', use: 'sig', alg: 'ES256', jwk: {} }, state)).toHaveLength(1);
    expect(systemKeysDecider.decide({ ...base, type: 'RegisterSystemKey', kid: 'k1', use: 'sig', alg: 'ES256', jwk: {} }, state)).toEqual([]);
    const retired = { keys: [{ ...state.keys[0]!, retiresAt: '2025-12-31T00:00:00Z' }] };
    expect(() => systemKeysDecider.decide({ ...base, type: 'RegisterSystemKey', kid: 'k1', use: 'sig', alg: 'ES256', jwk: {} }, retired)).toThrow(expect.objectContaining({ code: 'key_retired' }));
  });
  it('refuses to retire the last valid key of a use, or an unknown kid', () => {
    expect(() => systemKeysDecider.decide({ ...base, type: 'RetireSystemKey', kid: 'k1', at: base.now }, state)).toThrow(expect.objectContaining({ code: 'last_key' }));
    expect(() => systemKeysDecider.decide({ ...base, type: 'RetireSystemKey', kid: 'nope', at: base.now }, state)).toThrow(expect.objectContaining({ code: 'key_not_found' }));
    const two = { keys: [...state.keys, { kid: 'k2', use: 'sig' as const, alg: 'ES256', retiresAt: null }] };
    expect(systemKeysDecider.decide({ ...base, type: 'RetireSystemKey', kid: 'k1', at: '2026-02-01T00:00:00Z' }, two)).toEqual([
      { type: 'SystemKeyRetired', data: { systemId: 's', kid: 'k1', retiresAt: '2026-02-01T00:00:00Z', retiredAt: base.now } },
    ]);
    // Each retired at its own time, k1 at +10 s and then k2 at +5 s: k1 was still valid at k2's moment, and after
    // +10 s the system had no key. A successor must have no retirement of its own.
    const k1Retiring = { keys: [{ ...state.keys[0]!, retiresAt: '2026-01-01T00:00:10Z' }, two.keys[1]!] };
    expect(() => systemKeysDecider.decide({ ...base, type: 'RetireSystemKey', kid: 'k2', at: '2026-01-01T00:00:05Z' }, k1Retiring)).toThrow(expect.objectContaining({ code: 'last_key' }));
  });
});

describe('system keys decider: validity windows, retirement times, uses', () => {
  const now = '2026-01-01T00:00:00Z';
  const register = (kid: string, use: 'sig' | 'enc' = 'sig', extra: { validFrom?: string; retiresAt?: string } = {}): SystemKeyCommand => ({
    type: 'RegisterSystemKey', systemId: 's', kid, use, alg: use === 'sig' ? 'ES256' : 'ECDH-ES+A256KW', jwk: { kty: 'EC' }, ...extra, now,
  });
  const retire = (kid: string, at: string): SystemKeyCommand => ({ type: 'RetireSystemKey', systemId: 's', kid, at, now });
  const entry = (kid: string, retiresAt: string | null, use: 'sig' | 'enc' = 'sig') => ({ kid, use, alg: use === 'sig' ? 'ES256' : 'ECDH-ES+A256KW', retiresAt });
  const code = (f: () => unknown): unknown => {
    try {
      f();
    } catch (e) {
      return (e as { code?: unknown }).code;
    }
    return 'no error';
  };

  it('records validFrom and retiresAt as given, null when not given', () => {
    expect(systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-01-02T00:00:00Z', retiresAt: '2026-02-01T00:00:00Z' }), systemKeysDecider.initialState())).toEqual([
      {
        type: 'SystemKeyRegistered',
        data: { systemId: 's', kid: 'k1', use: 'sig', alg: 'ES256', jwk: { kty: 'EC' }, validFrom: '2026-01-02T00:00:00Z', retiresAt: '2026-02-01T00:00:00Z', registeredAt: now },
      },
    ]);
    expect(systemKeysDecider.decide(register('k1'), systemKeysDecider.initialState())).toMatchObject([{ data: { validFrom: null, retiresAt: null } }]);
  });

  it('refuses a key that retires at or before it becomes valid (invalid_key_dates); one bound alone is fine', () => {
    const empty = systemKeysDecider.initialState();
    expect(code(() => systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-02-01T00:00:00Z', retiresAt: '2026-01-15T00:00:00Z' }), empty))).toBe('invalid_key_dates');
    expect(code(() => systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-02-01T00:00:00Z', retiresAt: '2026-02-01T00:00:00Z' }), empty))).toBe('invalid_key_dates');
    expect(() => systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-02-01T00:00:00Z', retiresAt: '2026-01-15T00:00:00Z' }), empty)).toThrow(
      expect.objectContaining({ details: [{ path: 'retiresAt', message: 'must be after validFrom' }] }),
    );
    expect(systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-02-01T00:00:00Z', retiresAt: '2026-02-01T00:00:01Z' }), empty)).toHaveLength(1);
    expect(systemKeysDecider.decide(register('k1', 'sig', { validFrom: '2026-02-01T00:00:00Z' }), empty)).toHaveLength(1);
    expect(systemKeysDecider.decide(register('k1', 'sig', { retiresAt: '2025-02-01T00:00:00Z' }), empty)).toHaveLength(1);
  });

  it('a kid registered again: with another use is refused; while it retires in the future a repeat; from its retirement time on refused', () => {
    expect(code(() => systemKeysDecider.decide(register('k1', 'enc'), { keys: [entry('k1', null)] }))).toBe('key_use_changed');
    expect(systemKeysDecider.decide(register('k1'), { keys: [entry('k1', '2026-01-01T00:00:01Z')] })).toEqual([]);
    expect(code(() => systemKeysDecider.decide(register('k1'), { keys: [entry('k1', now)] }))).toBe('key_retired');
    expect(code(() => systemKeysDecider.decide(register('k1'), { keys: [entry('k1', '2025-12-31T23:59:59Z')] }))).toBe('key_retired');
  });

  it('retiring: a key already retired (or retiring) is nothing; a key of the other use is no successor', () => {
    expect(systemKeysDecider.decide(retire('k1', '2026-03-01T00:00:00Z'), { keys: [entry('k1', '2026-02-01T00:00:00Z'), entry('k2', null)] })).toEqual([]);
    const sigAndEnc = { keys: [entry('k1', null, 'sig'), entry('k2', null, 'enc')] };
    expect(() => systemKeysDecider.decide(retire('k1', now), sigAndEnc)).toThrow(expect.objectContaining({ code: 'last_key', message: expect.stringContaining('signing key') }));
    expect(() => systemKeysDecider.decide(retire('k2', now), sigAndEnc)).toThrow(expect.objectContaining({ code: 'last_key', message: expect.stringContaining('encryption key') }));
  });

  it('evolve: keys in registration order; a retirement sets the retirement time of that kid only', () => {
    const events: SystemKeyEvent[] = [
      ...systemKeysDecider.decide(register('k1'), systemKeysDecider.initialState()),
      ...systemKeysDecider.decide(register('k2'), { keys: [entry('k1', null)] }),
      ...systemKeysDecider.decide(register('k3', 'enc'), { keys: [entry('k1', null), entry('k2', null)] }),
      { type: 'SystemKeyRetired', data: { systemId: 's', kid: 'k1', retiresAt: '2026-02-01T00:00:00Z', retiredAt: now } },
    ];
    expect(systemKeysDecider.initialState()).toEqual({ keys: [] });
    expect(foldEvents(systemKeysDecider, events)).toEqual({ keys: [entry('k1', '2026-02-01T00:00:00Z'), entry('k2', null), entry('k3', null, 'enc')] });
    expect(foldEvents(systemKeysDecider, [...events, { type: 'SomethingElse', data: {} } as unknown as SystemKeyEvent])).toEqual(foldEvents(systemKeysDecider, events));
  });
});

describe('SystemKeysService and the hub codec', () => {
  beforeEach(() => {
    now = DateTime.fromISO('2026-01-01T00:00:00Z', { zone: 'utc' });
  });

  it('checks JWKs at the edge: public only, allowed algorithms, kid = thumbprint; unknown systems refused', async () => {
    const { keys } = await setup();
    const mine = await generatePartyKeys('city-a');
    const pub = publicJwks(mine);
    await expect(keys.register('city-a', [{ ...pub.signing, kid: 'not-the-thumbprint' }])).rejects.toMatchObject({ code: 'invalid_key' });
    await expect(keys.register('city-a', [{ ...pub.signing, alg: 'RS256' }])).rejects.toMatchObject({ code: 'invalid_key' });
    const priv = (await import('../../src/adapters/crypto/jose-keys')).exportPartyKeys;
    const stored = await priv(mine);
    await expect(keys.register('city-a', [{ ...stored.signing.privateJwk, alg: 'ES256', use: 'sig' }])).rejects.toMatchObject({ code: 'invalid_key' });
    await expect(keys.register('ghost', [pub.signing])).rejects.toMatchObject({ code: 'system_not_found' });
    expect(await keys.register('city-a', [pub.signing, pub.encryption])).toEqual({ registered: [mine.signing.kid, mine.decryption[0]!.kid], repeated: [] });
    expect(await keys.register('city-a', [pub.signing])).toEqual({ registered: [], repeated: [mine.signing.kid] });
  });

  it('rotates without downtime: old and new keys both accepted, the old one refused from its retire date', async () => {
    const { keys, hubCodec, send, store } = await setup();
    const old = await generatePartyKeys('city-a');
    await keys.register('city-a', [publicJwks(old).signing, publicJwks(old).encryption]);
    expect((await hubCodec.decodeUplink((await send(old)).body)).ok).toBe(true);

    const next: PartyKeys = { ...old, signing: await generateSigningKey() };
    await keys.register('city-a', [next.signing.publicJwk]);
    await keys.retire('city-a', old.signing.kid, { at: '2026-01-02T00:00:00Z' });
    const early = await send(old);
    expect((await hubCodec.decodeUplink(early.body)).ok).toBe(true); // overlap: both valid
    expect((await hubCodec.decodeUplink((await send(next)).body)).ok).toBe(true);

    now = now.plus({ days: 1 });
    expect(await hubCodec.decodeUplink((await send(old)).body)).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect((await hubCodec.decodeUplink((await send(next)).body)).ok).toBe(true);
    expect((await keys.list('city-a')).map((k) => [k.kid, k.retiresAt])).toEqual([
      [old.signing.kid, '2026-01-02T00:00:00Z'],
      [old.decryption[0]!.kid, null],
      [next.signing.kid, null],
    ]);

    // Another hub process, rebuilt from the events, knows the same keys.
    const other = new KeyRegistry();
    await new Projector(store, new KeyBookProjection(other), undefined, 1000, 'keys', 0).catchUp();
    expect(other.keysOf('city-a').map((k) => [k.kid, k.retiresAt])).toEqual([
      [old.signing.kid, '2026-01-02T00:00:00Z'],
      [old.decryption[0]!.kid, null],
      [next.signing.kid, null],
    ]);
  });

  it('a key registered on another hub process is found on the first unknown_key (the registry catches up)', async () => {
    const { store, keys, hubKeys } = await setup();
    const lagging = new KeyRegistry();
    await lagging.register('hub', publicJwks(hubKeys).signing);
    await lagging.register('hub', publicJwks(hubKeys).encryption);
    const projector = new Projector(store, new KeyBookProjection(lagging), undefined, 1000, 'keys', 0);
    const codec = new JoseHubCodec(hubKeys, lagging, () => projector.catchUp(), () => new Date(now.toMillis()));
    const mine = await generatePartyKeys('city-a');
    await keys.register('city-a', [publicJwks(mine).signing, publicJwks(mine).encryption]);
    const systems = new KeyRegistry();
    await systems.register('hub', publicJwks(hubKeys).encryption);
    const { body } = await new JoseCodec({ keys: mine, registry: systems, now: () => new Date(now.toMillis()) }).encode(cancel('city-a'), { to: 'hub' });
    expect((await codec.decodeUplink(body)).ok).toBe(true);
  });
});

// A system reads another's public keys (GET /systems/<id>/keys is readable by any token). Registering one of them
// as its own, then retiring it, once retired the other system's key in every hub's registry: its uplink was
// dead-lettered as unknown_key and its downlink skipped for want of an encryption key.
describe('a key belongs to one system only', () => {
  beforeEach(() => {
    now = DateTime.fromISO('2026-01-01T00:00:00Z', { zone: 'utc' });
  });

  const twoSystems = async () => {
    const s = await setup();
    const directory = createDirectoryModule({ store: s.store, clock, ids, logger });
    await directory.service.registerSystem({ systemId: 'city-b', name: 'B', area: 'Y' });
    const victim = await generatePartyKeys('city-a');
    await s.keys.register('city-a', [publicJwks(victim).signing, publicJwks(victim).encryption]);
    const own = await generatePartyKeys('city-b');
    await s.keys.register('city-b', [publicJwks(own).signing, publicJwks(own).encryption]);
    return { ...s, victim, own };
  };
  const victimStillServed = async (s: Awaited<ReturnType<typeof twoSystems>>) => {
    await s.projector.catchUp();
    expect((await s.hubCodec.decodeUplink((await s.send(s.victim)).body)).ok).toBe(true);
    expect((await s.registry.encryptionKeyFor('city-a', new Date(now.toMillis())))?.record.kid).toBe(s.victim.decryption[0]!.kid);
    expect((await s.keys.list('city-a')).map((k) => [k.kid, k.retiresAt])).toEqual([
      [s.victim.signing.kid, null],
      [s.victim.decryption[0]!.kid, null],
    ]);
  };

  it("refuses to register another system's key (or the hub's), whatever use it is given", async () => {
    const s = await twoSystems();
    const theirs = publicJwks(s.victim);
    await expect(s.keys.register('city-b', [theirs.signing])).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
    await expect(s.keys.register('city-b', [theirs.encryption])).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
    // The same P-256 material offered for signing: the kid (RFC 7638) names the material, not its use.
    const { alg: _a, use: _u, ...material } = theirs.encryption;
    await expect(s.keys.register('city-b', [{ ...material, alg: 'ES256', use: 'sig' }])).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
    await expect(s.keys.register('city-b', [publicJwks(s.hubKeys).signing])).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
    // Nothing of a refused request is recorded, not even its keys of its own.
    const fresh = await generateSigningKey();
    await expect(s.keys.register('city-b', [fresh.publicJwk, theirs.signing])).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
    expect((await s.keys.list('city-b')).map((k) => k.kid)).toEqual([s.own.signing.kid, s.own.decryption[0]!.kid]);
    // The owner registering its own key again is still a harmless repeat.
    expect(await s.keys.register('city-a', [theirs.signing])).toEqual({ registered: [], repeated: [s.victim.signing.kid] });
    await victimStillServed(s);
  });

  it("answers key_not_found for another system's kid, as for an unknown one", async () => {
    const s = await twoSystems();
    for (const kid of [s.victim.signing.kid, s.victim.decryption[0]!.kid]) {
      await expect(s.keys.retire('city-b', kid)).rejects.toMatchObject({ code: 'key_not_found' });
    }
    await victimStillServed(s);
  });

  it('keeps a kid with its first owner when events recorded before the check claim it for another system too', async () => {
    const s = await twoSystems();
    const theirs = publicJwks(s.victim);
    const at = now.toISO()!;
    // What the hub recorded before: city-b registered city-a's keys as its own, then retired them.
    for (const [i, jwk] of [theirs.signing, theirs.encryption].entries()) {
      const { kid, use, alg } = await checkPublicJwk(jwk);
      await s.store.appendToStream(
        'system-keys-city-b',
        [
          { id: `00000000-0000-4000-9000-00000000000${i}`, type: 'SystemKeyRegistered', data: { systemId: 'city-b', kid, use, alg, jwk, validFrom: null, retiresAt: null, registeredAt: at }, metadata: {} },
          { id: `00000000-0000-4000-9000-00000000001${i}`, type: 'SystemKeyRetired', data: { systemId: 'city-b', kid, retiresAt: at, retiredAt: at }, metadata: {} },
        ],
        { expectedVersion: 'any' },
      );
    }
    await victimStillServed(s);
    // A hub process rebuilt from these events resolves each kid to city-a alone, unretired.
    const rebuilt = new KeyRegistry();
    await new Projector(s.store, new KeyBookProjection(rebuilt), undefined, 1000, 'keys', 0).catchUp();
    expect(rebuilt.keysOf('city-a').map((k) => [k.kid, k.retiresAt])).toEqual([
      [s.victim.signing.kid, null],
      [s.victim.decryption[0]!.kid, null],
    ]);
    expect(rebuilt.keysOf('city-b').map((k) => k.kid)).toEqual([s.own.signing.kid, s.own.decryption[0]!.kid]);
    // city-b's own stream names the kids, yet it cannot act on them nor list them as its own.
    await expect(s.keys.retire('city-b', s.victim.signing.kid)).rejects.toMatchObject({ code: 'key_not_found' });
    expect((await s.keys.list('city-b')).map((k) => k.kid)).toEqual([s.own.signing.kid, s.own.decryption[0]!.kid]);
  });
});
