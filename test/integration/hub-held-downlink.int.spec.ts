// A system without a valid encryption key loses nothing: over the real broker, with message security on, a system
// that registered only its signing key joins and is offered a consultation; the hub holds its downlink (nothing
// on its queue it could not open), keeps holding across a hub restart, and once the system's encryption key is
// valid (registered with a validFrom a few seconds ahead: no event marks the moment) sends every message, in
// the order they were held, each one decryptable by the system.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import type { Message } from 'rhea';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry } from '../../src/adapters/crypto/jose-keys';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, fetchHubJwks, generatePartyKeys, joseCodecFor, publicJwks, registerHubJwks, registerSystem, type PartyKeys } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { downlinkQueue, getJson, postJson, profile, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(180_000);

let broker: TestBroker;
let hub: RunningHub;
let data: { dir: string; remove(): void };
const clients: RtsClient[] = [];
const ENV = { RTS_MESSAGE_SECURITY: 'jose', RTS_AUTH: 'off' };

const client = async (systemId: string, keys: PartyKeys) => {
  const c = await RtsClient.connect({ systemId, url: broker.url, codec: await joseCodecFor({ keys, hubUrl: hub.url }) });
  clients.push(c);
  return c;
};
const metric = async (name: string): Promise<number> => {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
};

beforeAll(async () => {
  broker = await startBroker();
  data = tempDir('rts-hub-held-');
  hub = await startInProcessHub(broker, data.dir, { env: ENV });
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  await broker?.destroy();
  data?.remove();
});

it('holds the downlink of a system without an encryption key, across a restart, and delivers it in order once its key is valid', async () => {
  const applicantKeys = await generatePartyKeys('city-a');
  const expertKeys = await generatePartyKeys('city-b');
  await registerSystem(hub.url, { id: 'city-a', name: 'City A', area: 'Hubei' }, applicantKeys);
  // city-b registers only its signing key: it can send, but the hub has nothing to encrypt for it.
  const registered = await postJson(hub.url, '/systems', { id: 'city-b', name: 'City B', area: 'Sichuan', keys: [publicJwks(expertKeys).signing] });
  expect(registered.status).toBe(201);

  const b = await client('city-b', expertKeys);
  const a = await client('city-a', applicantKeys);
  await b.joinWithExperts([{ localExpertId: 'wei', ...profile(1) }]);
  await until('city-b joined', async () => (await getJson(hub.url, '/systems/city-b')).body.status === 'joined');
  await a.joinWithExperts([]);
  await until('city-a joined', async () => (await getJson(hub.url, '/systems/city-a')).body.status === 'joined');
  const { consultationId } = await a.requestConsultation({ applicantClinician: 'dr-li', candidates: ['city-b:wei'], clinicalQuestion: 'Chest pain radiating to the back', summary: '' });
  await until('offered to city-b:wei', async () => (await getJson(hub.url, `/consultations/${consultationId}`)).body.status === 'offered');

  // Four messages for city-b: its join's confirmation and snapshot, city-a's join, the offer. None on its queue.
  await until('four held for city-b', async () => (await metric('rts_downlink_held_pending')) === 4);
  expect(await readQueue(broker, downlinkQueue('city-b'), { count: 10, idleMs: 1500 })).toEqual([]);

  // The publishers' checkpoints are past those messages: only the store still has them.
  await hub.stop();
  hub = await startInProcessHub(broker, data.dir, { env: ENV });
  expect(await readQueue(broker, downlinkQueue('city-b'), { count: 10, idleMs: 1500 })).toEqual([]);

  // The key, valid from a few seconds on: its registration wakes the releaser too early; its timer does the rest.
  const validFrom = new Date(Date.now() + 3000).toISOString();
  const keys = await postJson(hub.url, '/systems/city-b/keys', { keys: [publicJwks(expertKeys).encryption], validFrom });
  expect(keys.status).toBeLessThan(300);

  const got: Message[] = [];
  await until('the offer reached city-b', async () => {
    got.push(...(await readQueue(broker, downlinkQueue('city-b'), { count: 20, idleMs: 1000 })));
    return got.some((m) => m.application_properties?.type === 'consultation.offered');
  }, 60_000, 200);
  expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(validFrom));

  // Every one opens with city-b's own key, signed by the hub, in the order held.
  const hubRegistry = new KeyRegistry();
  await registerHubJwks(hubRegistry, await fetchHubJwks(hub.url));
  const codec = new JoseCodec({ keys: expertKeys, registry: hubRegistry });
  type Opened = { id: string; type: string; payload: Record<string, unknown> };
  const opened: Opened[] = [];
  for (const m of got) opened.push((await codec.open(m.body, { from: 'hub' })).envelope as unknown as Opened);
  const distinct = opened.filter((e, i) => opened.findIndex((x) => x.id === e.id) === i); // a restart may resend: receivers dedupe by id
  expect(distinct.map((e) => e.type)).toHaveLength(4);
  expect(new Set(distinct.slice(0, 2).map((e) => e.type))).toEqual(new Set(['system.joined', 'directory.snapshot']));
  expect(distinct[2]).toMatchObject({ type: 'system.joined', payload: { systemId: 'city-a' } });
  expect(distinct[3]).toMatchObject({ type: 'consultation.offered', payload: { consultationId, expertId: 'city-b:wei' } });
  await until('nothing held any more', async () => (await metric('rts_downlink_held_pending')) === 0);

  // From now on city-b's downlink goes straight out.
  await a.cancelConsultation(consultationId, 'patient transferred');
  await until('the cancellation reached city-b', async () => {
    got.push(...(await readQueue(broker, downlinkQueue('city-b'), { count: 5, idleMs: 1000 })));
    return got.some((m) => m.application_properties?.type === 'consultation.cancelled');
  });
  expect(await metric('rts_downlink_held_pending')).toBe(0);
});
