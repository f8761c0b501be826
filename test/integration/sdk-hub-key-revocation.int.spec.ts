// A hub key revoked as README "Revoking a compromised hub key" says, on a real hub: the leaked signing key replaced
// in the key file, listed nowhere, every hub process restarted. A running SDK client whose codec reads the hub's
// JWKS from the hub's URL stops trusting the leaked key once its keys are older than hubKeysMaxAgeMs, although the
// hub has sent it nothing under the new key (before the timed re-read, only such a message made it re-read).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { HUB_KEYS_FILE_NAME, type HubKeyFile } from '../../src/adapters/crypto/hub-keys';
import { exportPartyKeys, generateSigningKey, importPartyKeys } from '../../src/adapters/crypto/jose-keys';
import { parseDownlink } from '../../src/adapters/messaging/messages';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { HUB_PARTY, JoseCodec, KeyRegistry, generatePartyKeys, joseCodecFor, publicJwks } from '../../src/sdk';
import { freePort, tempDataDir } from '../support/hub-process';

jest.setTimeout(60_000);

const data = tempDataDir('rts-sdk-revocation-');
afterAll(() => data.remove());

const downlink = (n: number) => ({
  id: `${String(n).padStart(8, '0')}-1c2b-4c1a-9d7e-0a1b2c3d4e5f`,
  type: 'system.joined',
  version: 1,
  systemId: 'city-r',
  correlationId: `c-${n}`,
  time: new Date().toISOString(),
  payload: { systemId: 'city-r', name: 'City R', area: 'Hubei' },
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('a running SDK client drops a revoked hub signing key within its max age, with no hub message under the new key', async () => {
  const port = await freePort();
  const start = () => startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: String(port), RTS_LOG_LEVEL: 'silent' }), pino({ level: 'silent' }));
  const keyFile = join(data.dir, HUB_KEYS_FILE_NAME);

  let hub = await start();
  const city = await generatePartyKeys('city-r');
  const maxAgeMs = 1_500;
  const codec = await joseCodecFor({ keys: city, hubUrl: hub.url, hubKeysMaxAgeMs: maxAgeMs, refreshIntervalMs: 100 });
  const readAtStart = codec.hubKeysReadAt!.getTime();

  // Whoever holds the hub's signing key once it leaks, and can write to the city's queue, signs "hub" messages.
  const stored = JSON.parse(readFileSync(keyFile, 'utf8')) as HubKeyFile;
  const leaked = await importPartyKeys(stored);
  const cityKeys = new KeyRegistry();
  await cityKeys.register('city-r', publicJwks(city).encryption);
  const forger = new JoseCodec({ keys: leaked, registry: cityKeys });
  const ctx = { from: HUB_PARTY, to: 'city-r', queue: 'rts.downlink.city-r', parse: parseDownlink };

  // The revocation: a new signing key in the file, the leaked one listed nowhere (not in previousSigning); the
  // hub restarted on it (the same encryption key: no RTS_HUB_KEYS_ACCEPT_NEW needed).
  await hub.stop();
  const rotated = await exportPartyKeys({ ...leaked, signing: await generateSigningKey() });
  writeFileSync(keyFile, JSON.stringify(rotated, null, 2), { mode: 0o600 });
  hub = await start();
  try {
    const jwks = (await (await fetch(`${hub.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).not.toContain(leaked.signing.kid);

    // Past the max age, the keys are read again before the next message is opened: the leaked key is refused.
    // (Within it, the client still took the forgery: test/unit/sdk-jwks-refresh.unit.spec.ts shows that window.)
    await sleep(Math.max(0, readAtStart + maxAgeMs + 50 - Date.now()));
    const forged = await forger.encode(downlink(2), { to: 'city-r' });
    await expect(codec.decode(forged.body, forged.applicationProperties, ctx)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(codec.hubKeysReadAt!.getTime()).toBeGreaterThan(readAtStart);
    // What the hub signs with its new key is taken.
    const genuine = new JoseCodec({ keys: await importPartyKeys(rotated), registry: cityKeys });
    const sent = await genuine.encode(downlink(3), { to: 'city-r' });
    await expect(codec.decode(sent.body, sent.applicationProperties, ctx)).resolves.toMatchObject({ ok: true });
  } finally {
    await hub.stop();
  }
});
