// jose ships as ESM only: hand jest the module as Node loads it (as jose-codec.unit.spec.ts does).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});

import { decodeProtectedHeader, type JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, generateEncryptionKey, generatePartyKeys, generateSigningKey, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { parseDownlink } from '../../src/adapters/messaging/messages';
import { HUB_KEYS_MAX_AGE_MS, HUB_PARTY, SdkJoseCodec, checkedHubUrl, joseCodecFor, registerHubJwks, registerSystem } from '../../src/sdk/security';

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
  it("starts without the hub's HTTP API when given hubJwks, keeps hubUrl for a rotation, and reads the keys at first use", async () => {
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
      await expect(joseCodecFor({ keys: xian, hubUrl: 'https://hub.invalid:8080' })).rejects.toThrow(/the hub is down/);
      fetched.length = 0;
      const codec = await joseCodecFor({ keys: xian, hubJwks: jwksOf(hubKeys), hubUrl: 'https://hub.invalid:8080' });
      expect(fetched).toEqual([]);
      expect(codec.hubKeysReadAt).toBeNull(); // saved keys: of unknown age
      // It encrypts for the saved hub key; the first use tried to read them again first (the hub is down: kept).
      const envelope = { ...downlink, type: 'expert.registered', payload: {} };
      await expect(codec.encode(envelope as never, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' })).resolves.toMatchObject({ body: expect.any(String) });
      expect(fetched).toEqual(['https://hub.invalid:8080/.well-known/jwks.json']);
      // Once the hub answers, the next read (after the interval) dates them.
      globalThis.fetch = (async () => new Response(JSON.stringify(jwksOf(hubKeys)), { status: 200, headers: { 'content-type': 'application/json' } })) as typeof fetch;
      const again = await joseCodecFor({ keys: xian, hubJwks: jwksOf(hubKeys), hubUrl: 'https://hub.invalid:8080' });
      expect(again.hubKeysReadAt).toBeNull();
      const before = Date.now();
      await again.encode(envelope as never, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' });
      // The codec's clock is steady (it does not follow the wall clock back): within a second of the wall clock here.
      expect(Math.abs(again.hubKeysReadAt!.getTime() - before)).toBeLessThan(1_000);
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});

describe('SDK: the hub URL must be https:, or http: to loopback', () => {
  it.each(['https://hub.example.org', 'https://10.0.0.7:8443/', 'http://127.0.0.1:8080', 'http://127.8.9.10', 'http://localhost:8080', 'http://[::1]:8080'])('%s is taken', (url) => {
    expect(checkedHubUrl(url).href).toBe(new URL(url).href);
  });

  it.each(['http://hub:8080', 'http://10.0.0.7:8080', 'http://127.0.0.1.evil.example', 'http://localhost.evil.example', 'http://[::2]:8080'])('%s is refused, naming the way out', (url) => {
    expect(() => checkedHubUrl(url)).toThrow(/is not https: .*insecureHubUrl: true/);
    expect(checkedHubUrl(url, { insecureHubUrl: true }).href).toBe(new URL(url).href);
  });

  it.each(['ftp://hub.example.org', 'file:///etc/passwd', 'hub.example.org', ''])('%s is not a hub URL at all, insecureHubUrl or not', (url) => {
    expect(() => checkedHubUrl(url, { insecureHubUrl: true })).toThrow(TypeError);
  });

  it('joseCodecFor and registerSystem refuse a plain http: hub before anything is sent (no JWKS read, no token)', async () => {
    const xian = await generatePartyKeys('xian');
    const realFetch = globalThis.fetch;
    const fetch = jest.fn(async () => new Response('{}'));
    globalThis.fetch = fetch as unknown as typeof globalThis.fetch;
    try {
      await expect(joseCodecFor({ keys: xian, hubUrl: 'http://hub:8080' })).rejects.toThrow(/insecureHubUrl/);
      // Saved keys do not hide a bad URL: it would be used at the first read.
      await expect(joseCodecFor({ keys: xian, hubUrl: 'http://hub:8080', hubJwks: jwksOf(await generatePartyKeys(HUB_PARTY)) })).rejects.toThrow(/insecureHubUrl/);
      await expect(registerSystem('http://hub:8080', { id: 'xian', name: 'Xian', area: 'Xian' }, xian, { authorization: 'Bearer secret' })).rejects.toThrow(/operator's token/);
      expect(fetch).not.toHaveBeenCalled();
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});

describe("SDK: the hub's keys are read again once older than their max age", () => {
  const ctx = { from: HUB_PARTY, to: 'xian', queue: 'rts.downlink.xian', parse: parseDownlink };
  let xian: PartyKeys;
  let hub: PartyKeys;
  let rotated: PartyKeys;
  beforeAll(async () => {
    xian = await generatePartyKeys('xian');
    hub = await generatePartyKeys(HUB_PARTY);
    rotated = { ...hub, signing: await generateSigningKey() }; // the old signing key leaked: listed nowhere
  });
  const hubCodec = async (keys: PartyKeys): Promise<JoseCodec> => {
    const registry = new KeyRegistry();
    await registry.register('xian', publicJwks(xian).encryption);
    return new JoseCodec({ keys, registry });
  };
  const message = (n: number) => ({ ...downlink, id: `${String(n).padStart(8, '0')}-1c2b-4c1a-9d7e-0a1b2c3d4e5f` });

  it('a revoked signing key is refused after the max age, though no message came under the new one', async () => {
    let now = 0;
    const refresh = jest.fn(async () => jwksOf(rotated));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const leaked = await hubCodec(hub);
    // Within the max age, the leaked key is still trusted: that is the window.
    now = HUB_KEYS_MAX_AGE_MS;
    const early = await leaked.encode(message(1), { to: 'xian' });
    await expect(sdk.decode(early.body, early.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).not.toHaveBeenCalled();
    // Past it, the keys are read again before the next message is opened: the dropped key is gone.
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const forged = await leaked.encode(message(2), { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(sdk.hubKeysReadAt?.getTime()).toBe(HUB_KEYS_MAX_AGE_MS + 1);
    // The hub's own messages, under its new key, are taken; the keys are fresh: no read for them.
    const real = await (await hubCodec(rotated)).encode(message(3), { to: 'xian' });
    await expect(sdk.decode(real.body, real.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('what the system sends is encrypted for the keys read again too', async () => {
    let now = 0;
    const newer = await generateEncryptionKey();
    const refresh = jest.fn(async () => ({ keys: [...jwksOf(hub).keys, newer.publicJwk] }));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now, maxAgeMs: 60_000 });
    const uplink = { ...downlink, type: 'expert.registered', payload: {} } as never;
    const send = async () => decodeProtectedHeader(String((await sdk.encode(uplink, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' })).body)).kid;
    expect(await send()).toBe(hub.decryption[0]!.kid);
    now = 60_001;
    expect(await send()).toBe(newer.kid);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('a read that fails keeps the keys, the message goes on, and the next try waits for the interval', async () => {
    let now = 0;
    const refresh = jest.fn(async (): Promise<{ keys: JWK[] }> => {
      throw new Error('connect ECONNREFUSED');
    });
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now, refreshIntervalMs: 30_000 });
    const codec = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    for (let i = 0; i < 3; i++) {
      const sent = await codec.encode(message(10 + i), { to: 'xian' });
      await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    }
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(sdk.hubKeysReadAt?.getTime()).toBe(0); // still the first read's
    now += 30_000;
    refresh.mockImplementation(async () => jwksOf(hub));
    const sent = await codec.encode(message(20), { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(2);
    // After a failed read the next runs beside the message: its end is not the message's.
    await expectKeysReadAt(sdk, now);
  });

  it('a wall clock stepped back (NTP) does not make old keys look fresh, nor hold off the next read', async () => {
    let now = 1_000_000_000;
    const refresh = jest.fn(async () => jwksOf(rotated));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const leaked = await hubCodec(hub);
    now -= 3_600_000; // the clock is set back an hour: the keys' age cannot be told, so they are read again
    const forged = await leaked.encode(message(40), { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(sdk.hubKeysReadAt?.getTime()).toBe(now);
  });

  it('a timed read (even a failed one, the hub restarting) does not hold off the read for a new hub signing key', async () => {
    let now = 0;
    const newSigning = { ...hub, signing: await generateSigningKey() };
    const refresh = jest.fn(async (): Promise<{ keys: JWK[] }> => {
      throw new Error('connect ECONNREFUSED'); // the hub restarts with its new signing key
    });
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const uplink = { ...downlink, type: 'expert.registered', payload: {} } as never;
    now = HUB_KEYS_MAX_AGE_MS + 1;
    await sdk.encode(uplink, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' }); // the keys are old: a timed read, failed
    expect(refresh).toHaveBeenCalledTimes(1);
    // 5 s later the hub is back, listing its new signing key (and the old one), and signs with the new one.
    now += 5_000;
    refresh.mockImplementation(async () => ({ keys: [...jwksOf(hub).keys, publicJwks(newSigning).signing] }));
    const sent = await (await hubCodec(newSigning)).encode(message(41), { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(2);
  });

  it('a successful timed read does not hold off the read for a new hub signing key either', async () => {
    let now = 0;
    const newSigning = { ...hub, signing: await generateSigningKey() };
    const refresh = jest.fn(async () => jwksOf(hub));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const codec = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const before = await codec.encode(message(42), { to: 'xian' });
    await expect(sdk.decode(before.body, before.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(1); // timed
    now += 10_000; // the hub rotates its signing key right after
    refresh.mockImplementation(async () => ({ keys: [...jwksOf(hub).keys, publicJwks(newSigning).signing] }));
    const sent = await (await hubCodec(newSigning)).encode(message(43), { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(2);
  });

  it('after a read that failed, the next one runs beside the messages: a hub that never answers stalls none', async () => {
    let now = 0;
    let answer: ((jwks: { keys: JWK[] }) => void) | undefined;
    const refresh = jest.fn((): Promise<{ keys: JWK[] }> => {
      const call = refresh.mock.calls.length;
      if (call === 1) return Promise.reject(new Error('connect ECONNREFUSED'));
      if (call === 2) return new Promise((resolve) => (answer = resolve)); // taken, and not answered until told to
      return Promise.resolve(jwksOf(rotated));
    });
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now, refreshIntervalMs: 30_000 });
    const leaked = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const first = await leaked.encode(message(50), { to: 'xian' });
    await expect(sdk.decode(first.body, first.applicationProperties, ctx)).resolves.toMatchObject({ ok: true }); // the read failed: kept
    now += 30_000;
    // The hub's HTTP API takes the request and does not answer: the message does not wait for it.
    const second = await leaked.encode(message(51), { to: 'xian' });
    await expect(sdk.decode(second.body, second.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(2);
    // Once it answers (the hub dropped that key meanwhile), the keys are the new ones, and the reads wait again.
    answer!(jwksOf(rotated));
    await expectKeysReadAt(sdk, now);
    const third = await leaked.encode(message(52), { to: 'xian' });
    await expect(sdk.decode(third.body, third.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
  });

  it('a read that failed long ago does not let the next message under a revoked key through beside the read', async () => {
    // The hub restarts to drop a leaked signing key; a read while it is down fails. Then no message for an hour: the
    // next one, forged under the leaked key, must wait for the read (the JWKS is reachable again) and be refused.
    let now = 0;
    const refresh = jest.fn(failingOnceThen(() => jwksOf(rotated)));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const leaked = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const during = await leaked.encode(message(60), { to: 'xian' });
    await expect(sdk.decode(during.body, during.applicationProperties, ctx)).resolves.toMatchObject({ ok: true }); // failed: kept
    now += 3_600_000;
    const forged = await leaked.encode(message(61), { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(2);
  });

  it('a failed unknown-key read while the keys were fresh does not let a revoked key through past their max age', async () => {
    let now = 0;
    const refresh = jest.fn(failingOnceThen(() => jwksOf(rotated)));
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const stranger = await hubCodec({ ...hub, signing: await generateSigningKey() });
    now = 10_000; // a message under a key nobody published; its read fails (a blip)
    const odd = await stranger.encode(message(62), { to: 'xian' });
    await expect(sdk.decode(odd.body, odd.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    now = 10_000 + HUB_KEYS_MAX_AGE_MS; // the keys are old (read at 0), the blip max age ago: the read is waited for
    const forged = await (await hubCodec(hub)).encode(message(63), { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(refresh).toHaveBeenCalledTimes(2);
  });

  it('a refreshHubKeys that throws at once (not a rejected promise) does not stop later reads', async () => {
    let now = 0;
    const refresh = jest.fn((): Promise<{ keys: JWK[] }> => {
      if (refresh.mock.calls.length === 1) throw new Error('thrown, not rejected');
      return Promise.resolve(jwksOf(rotated));
    });
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const leaked = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const first = await leaked.encode(message(64), { to: 'xian' });
    await expect(sdk.decode(first.body, first.applicationProperties, ctx)).resolves.toMatchObject({ ok: true }); // failed: kept
    now += 60_000;
    await sdk.encode({ ...downlink, type: 'expert.registered', payload: {} } as never, { from: 'xian', to: HUB_PARTY, queue: 'rts.uplink' }); // the next read
    await expectKeysReadAt(sdk, now);
    expect(refresh).toHaveBeenCalledTimes(2);
    const forged = await leaked.encode(message(66), { to: 'xian' });
    await expect(sdk.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
  });

  it('by default, the wall clock set back (an NTP step) changes nothing: no read, no fresher keys', async () => {
    const realNow = Date.now.bind(Date);
    let back = 0;
    const wall = jest.spyOn(Date, 'now').mockImplementation(() => realNow() - back); // before the codec: its default clock could be this one
    try {
      const refresh = jest.fn(async () => jwksOf(hub));
      const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh);
      const readAt = sdk.hubKeysReadAt!.getTime();
      for (back of [60_000, 3_600_000, 86_400_000]) {
        const sent = await (await hubCodec(hub)).encode(message(60), { to: 'xian' });
        await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
      }
      expect(refresh).not.toHaveBeenCalled();
      expect(sdk.hubKeysReadAt!.getTime()).toBe(readAt);
    } finally {
      wall.mockRestore();
    }
  });

  it('their age counts from when the read was asked for, not from its slow answer', async () => {
    let now = 0;
    const refresh = jest.fn(async () => {
      now += 9_000; // the hub took 9 s to answer
      return jwksOf(hub);
    });
    const sdk = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now });
    const codec = await hubCodec(hub);
    now = HUB_KEYS_MAX_AGE_MS + 1;
    const sent = await codec.encode(message(40), { to: 'xian' });
    await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(sdk.hubKeysReadAt?.getTime()).toBe(HUB_KEYS_MAX_AGE_MS + 1);
  });

  it('maxAgeMs null: never read for their age; keys given without a way to read them: never read', async () => {
    let now = 0;
    const refresh = jest.fn(async () => jwksOf(rotated));
    const off = new SdkJoseCodec(xian, await registered(jwksOf(hub)), refresh, { clock: () => now, maxAgeMs: null });
    const fixed = new SdkJoseCodec(xian, await registered(jwksOf(hub)), undefined, { clock: () => now, keysReadAt: null });
    const leaked = await hubCodec(hub);
    now = 10 * HUB_KEYS_MAX_AGE_MS;
    for (const sdk of [off, fixed]) {
      const sent = await leaked.encode(message(30), { to: 'xian' });
      await expect(sdk.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
    }
    expect(refresh).not.toHaveBeenCalled();
    expect(() => new SdkJoseCodec(xian, new KeyRegistry(), refresh, { maxAgeMs: -1 })).toThrow(TypeError);
    expect(() => new SdkJoseCodec(xian, new KeyRegistry(), refresh, { maxAgeMs: Number.NaN })).toThrow(TypeError);
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

/** A read that runs beside a message ends on its own: wait (bounded) until the keys carry its date, then check it. */
const expectKeysReadAt = async (sdk: SdkJoseCodec, at: number): Promise<void> => {
  for (let i = 0; i < 200 && sdk.hubKeysReadAt?.getTime() !== at; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(sdk.hubKeysReadAt?.getTime()).toBe(at);
};

/** A refreshHubKeys whose first read fails (the hub unreachable) and whose later ones answer `then()`. */
const failingOnceThen = (then: () => { keys: JWK[] }): (() => Promise<{ keys: JWK[] }>) => {
  let calls = 0;
  return async () => {
    if (++calls === 1) throw new Error('connect ECONNREFUSED');
    return then();
  };
};
