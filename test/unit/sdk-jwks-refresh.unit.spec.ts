// jose ships as ESM only: hand jest the module as Node loads it (as jose-codec.unit.spec.ts does).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});

import type { JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, generatePartyKeys, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
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
