// The hub's message keys belong with its store: startHub (as `npm start` composes it, embedded SQLite) records
// their ids at the first start, refuses unrelated keys with a ConfigError (main.ts exits 78 on it), takes them
// once when told to, and checks nothing when message security is off.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { join } from 'node:path';
import pino from 'pino';
import { loadHubKeys } from '../../src/adapters/crypto/hub-keys';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { HUB_KEYS_STREAM, recordedHubKeys } from '../../src/application/security/hub-keys-check';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

jest.setTimeout(60_000);

const data = tempDataDir('rts-hub-keys-');
const elsewhere = tempDataDir('rts-hub-keys-other-');
afterAll(() => {
  data.remove();
  elsewhere.remove();
});

const start = (env: Record<string, string> = {}) =>
  startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', ...env }), pino({ level: 'silent' }));

const recorded = async () => {
  const store = SqliteEventStore.open({ file: join(data.dir, 'telemed.sqlite') });
  try {
    return { ...(await recordedHubKeys(store)), count: (await store.readStream(HUB_KEYS_STREAM)).events.length };
  } finally {
    await store.close();
  }
};

it('records the keys at the first start, refuses unrelated ones, and takes them once when told to', async () => {
  const own = await start();
  const jwks = (await (await fetch(`${own.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string; use: string }[] };
  await own.stop();
  const first = await recorded();
  expect(first.count).toBe(1);
  expect(first.keys!.signingKid).toBe(jwks.keys.find((k) => k.use === 'sig')!.kid);
  expect(first.keys!.encryptionKids).toEqual(jwks.keys.filter((k) => k.use === 'enc').map((k) => k.kid));

  // The same data directory again: its key file matches; nothing new is recorded.
  await (await start()).stop();
  expect((await recorded()).count).toBe(1);

  // Another process's keys (another key file): refused, with what to do, and the store is left closed.
  const other = (await loadHubKeys({ dataDir: elsewhere.dir })).file;
  const refused = start({ RTS_HUB_KEYS_FILE: other });
  await expect(refused).rejects.toBeInstanceOf(ConfigError);
  await expect(refused).rejects.toThrow(/RTS_HUB_KEYS_FILE: this store's hub processes use other message keys than the RTS_HUB_KEYS_FILE given/);
  expect((await recorded()).count).toBe(1);

  // Message security off: the keys do not travel, nothing is checked or recorded.
  await (await start({ RTS_HUB_KEYS_FILE: other, RTS_MESSAGE_SECURITY: 'off' })).stop();
  expect((await recorded()).count).toBe(1);

  // Replaced on purpose: accepted once and recorded; then the data directory's own keys are the strangers.
  await (await start({ RTS_HUB_KEYS_FILE: other, RTS_HUB_KEYS_ACCEPT_NEW: 'on' })).stop();
  expect((await recorded()).count).toBe(2);
  await (await start({ RTS_HUB_KEYS_FILE: other })).stop();
  await expect(start()).rejects.toBeInstanceOf(ConfigError);
});
