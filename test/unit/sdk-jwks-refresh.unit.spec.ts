// jose ships as ESM only: hand jest the module as Node loads it (as jose-codec.unit.spec.ts does).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});

import { decodeProtectedHeader, type JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, generateEncryptionKey, generatePartyKeys, generateSigningKey, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { parseDownlink } from '../../src/adapters/messaging/messages';
import { HUB_PARTY, SdkJoseCodec, joseCodecFor, registerHubJwks } from '../../src/sdk/security';

const downlink = { id: '7f1c1d7e-1c2b-4c1a-9d7e-0a1b2c3d4e5f', type: 'system.joined', version: 1, systemId: 'xian', correlationId: 'c', time: new Date().toISOString(), payload: { systemId: 'xian', name: 'Xian', area: 'Xian' } };
const jwksOf = (keys: PartyKeys): { keys: JWK[] } => ({ keys: [publicJwks(keys).signing, publicJwks(keys).encryption] });

/** A hub codec (under `hubKeys`) that knows xian, and xian's SDK codec that knows only `known` as the hub. */
const setUp = async (hubKeys: PartyKeys, xian: PartyKeys, known: PartyKeys, refresh: () => Promise<{ keys: JWK[] }>, clock: () => number) => {
  const hubRegistry = new KeyRegistry();
  await hubRegistry.register('xian', publicJwks(xian).signing);
  await hubRegistry.register('xian', publicJwks(xian).encryption);
  const hub = new JoseCodec({ keys: hubKeys, registry: hubRegistry });
  const xianRegistry = new KeyRegistry();
  await registerHubJwks(xianRegistry, jwksOf(known));
  const sdk = new SdkJoseCodec(xian, xianRegistry, refresh, { refreshIntervalMs: 30_000, clock });
  return { hub, sdk };
};

describe("SDK: the hub's JWKS is read again for unknown keys, but not for every message", () => {
  let oldHub: PartyKeys;
  let newHub: PartyKeys;
  let stranger: PartyKeys;
  let xian: PartyKeys;
  beforeAll(async () => {
    oldHub = await generatePartyKeys(HUB_PARTY);
    newHub = await generatePartyKeys(HUB_PARTY);
    stranger = await generatePartyKeys(HUB_PARTY); // claims to be the hub, under a key the hub never published
    xian = await generatePartyKeys('xian');
  });
  const ctx = { from: HUB_PARTY, to: 'xian', queue: 'rts.downlink.xian', parse: parseDownlink };

  it('a rotation is picked up by the first message under the new key', async () => {
    let now = 0;
    const refresh = jest.fn(async () => jwksOf(newHub));
    const { hub, sdk } = await setUp(newHub, xian, oldHub, refresh, () => now);
    const sent = await hub.encode(downlink, { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toEqual({ ok: true, envelope: downlink });
    expect(refresh).toHaveBeenCalledTimes(1);
    now += 1_000;
    const again = await hub.encode({ ...downlink, id: '8f1c1d7e-1c2b-4c1a-9d7e-0a1b2c3d4e5f' }, { to: 'xian' });
    await expect(sdk.decode(again.body, again.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(1); // known now: no second read
  });

  it('a flood of messages under an unknown key makes one request per interval, shared by concurrent ones', async () => {
    let now = 0;
    const refresh = jest.fn(async () => jwksOf(oldHub));
    const { hub, sdk } = await setUp(stranger, xian, oldHub, refresh, () => now);
    const forged = await hub.encode(downlink, { to: 'xian' });
    const results = await Promise.all(Array.from({ length: 20 }, () => sdk.decode(forged.body, forged.applicationProperties, ctx)));
    for (const r of results) expect(r).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(1);

    now += 29_999;
    for (let i = 0; i < 5; i++) await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(1);

    now += 1;
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(2);
  });

  it('a hub that cannot be reached: the message is refused as unknown_key, decode does not throw', async () => {
    let now = 0;
    const refresh = jest.fn(async (): Promise<{ keys: JWK[] }> => {
      throw new Error('connect ECONNREFUSED');
    });
    const { hub, sdk } = await setUp(newHub, xian, oldHub, refresh, () => now);
    const sent = await hub.encode(downlink, { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(1);
    // Once the hub answers again (after the interval), the same message is taken.
    refresh.mockImplementation(async () => jwksOf(newHub));
    now += 30_000;
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toEqual({ ok: true, envelope: downlink });
    expect(refresh).toHaveBeenCalledTimes(2);
  });
});

describe('joseCodecFor with saved hub keys', () => {
  it('starts without the hub\'s HTTP API when given hubJwks, and keeps hubUrl for a rotation', async () => {
    const hubKeys = await generatePartyKeys(HUB_PARTY);
    const xian = await generatePartyKeys('xian');
    const fetched: string[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async (url: unknown) => {
      fetched.push(String(url));
      throw new TypeError('fetch failed: the hub is down');
    }) as typeof fetch;
    try {
      // Only hubUrl: the start needs the hub.
      await expect(joseCodecFor({ keys: xian, hubUrl: 'http://hub.invalid:8080' })).rejects.toThrow(/the hub is down/);
      fetched.length = 0;
      const codec = await joseCodecFor({ keys: xian, hubJwks: jwksOf(hubKeys), hubUrl: 'http://hub.invalid:8080' });
      expect(fetched).toEqual([]);
      // And it encrypts for the saved hub key.
      const envelope = { ...downlink, type: 'expert.registered', payload: {} };
      await expect(codec.encode(envelope as never, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' })).resolves.toMatchObject({ body: expect.any(String) });
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});

describe("SDK: the hub's keys are what its JWKS lists now, not every key it ever listed", () => {
  const ctx = { from: HUB_PARTY, to: 'xian', queue: 'rts.downlink.xian', parse: parseDownlink };
  const uplink = { ...downlink, type: 'expert.registered', payload: {} } as never;
  const jweKid = (body: unknown): unknown => decodeProtectedHeader(String(body)).kid;
  let xian: PartyKeys;
  let hub: PartyKeys;
  beforeAll(async () => {
    xian = await generatePartyKeys('xian');
    hub = await generatePartyKeys(HUB_PARTY);
  });
  const hubCodec = async (keys: PartyKeys): Promise<JoseCodec> => {
    const registry = new KeyRegistry();
    await registry.register('xian', publicJwks(xian).encryption);
    return new JoseCodec({ keys, registry });
  };

  it('a signing key the hub dropped (leaked) is refused once the JWKS is read again', async () => {
    const rotated: PartyKeys = { ...hub, signing: await generateSigningKey() }; // the leaked key is not in previousSigning
    const refresh = jest.fn(async () => jwksOf(rotated));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { refreshIntervalMs: 30_000, clock: () => 0 });
    const sent = await (await hubCodec(rotated)).encode(downlink, { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(1);
    // Whoever holds the dropped key and can write to xian's queue:
    const forged = await (await hubCodec(hub)).encode({ ...downlink, id: '9f1c1d7e-1c2b-4c1a-9d7e-0a1b2c3d4e5f' }, { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
  });

  it('an encryption key the hub dropped is no longer used for what the system sends', async () => {
    const newer = await generateEncryptionKey();
    const registry = await registered({ keys: [...jwksOf(hub).keys, newer.publicJwk] });
    const sdk = new SdkJoseCodec(xian, registry, async () => jwksOf(hub));
    expect(jweKid((await sdk.encode(uplink, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' })).body)).toBe(newer.kid);
    await registerHubJwks(registry, jwksOf(hub)); // the newest one leaked: the hub lists the older one only
    expect(jweKid((await sdk.encode(uplink, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' })).body)).toBe(hub.decryption[0]!.kid);
    expect(registry.keysOf(HUB_PARTY).map((r) => r.kid)).toEqual([hub.signing.kid, hub.decryption[0]!.kid]);
  });

  it('a retired signing key the JWKS still lists keeps its date; one it no longer lists is gone', async () => {
    const old = await generateSigningKey();
    const registry = await registered({ keys: [{ ...old.publicJwk, rts_retires_at: '2999-01-01T00:00:00Z' } as JWK, ...jwksOf(hub).keys] });
    expect(registry.keysOf(HUB_PARTY).find((r) => r.kid === old.kid)).toMatchObject({ retiresAt: '2999-01-01T00:00:00Z' });
    await registerHubJwks(registry, jwksOf(hub));
    expect(registry.ownerOf(old.kid)).toBeNull();
  });

  it('an unusable JWKS is refused whole: the keys known before stay, none is added', async () => {
    const other = await generatePartyKeys(HUB_PARTY);
    const registry = await registered(jwksOf(hub));
    const before = registry.keysOf(HUB_PARTY);
    const past = '2000-01-01T00:00:00Z';
    const bad: unknown[] = [
      { keys: [] },
      { keys: [publicJwks(other).encryption] }, // no signing key
      { keys: [publicJwks(other).signing] }, // no encryption key
      { keys: [{ ...publicJwks(other).signing, rts_retires_at: past }, publicJwks(other).encryption] }, // its only signing key retired
      { keys: [...jwksOf(other).keys, { kty: 'EC', crv: 'P-256', x: 'not-a-point', y: 'x', alg: 'ES256', use: 'sig' }] }, // one key broken
      {},
      null,
    ];
    for (const jwks of bad) {
      await expect(registerHubJwks(registry, jwks as { keys: JWK[] })).rejects.toThrow();
      expect(registry.keysOf(HUB_PARTY)).toEqual(before);
    }
    // And the codec goes on opening the hub's messages when such an answer comes on a refresh.
    const sdk = new SdkJoseCodec(xian, registry, async () => ({ keys: [publicJwks(other).encryption] }), { refreshIntervalMs: 0 });
    const stray = await (await hubCodec(other)).encode(downlink, { to: 'xian' }); // an unknown kid: makes it read the JWKS
    await expect(sdk.decode(stray.body, stray.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    const sent = await (await hubCodec(hub)).encode(downlink, { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toEqual({ ok: true, envelope: downlink });
  });
});

const registered = async (jwks: { keys: JWK[] }): Promise<KeyRegistry> => {
  const registry = new KeyRegistry();
  await registerHubJwks(registry, jwks);
  return registry;
};
