// The message contract as deployed (message security on, the hub's default): what reaches a city system's downlink
// queue is a compact JWE, and its application properties (contentType, codec, kid, alg, enc beside the envelope's
// copies) are what a system in another language routes and picks its key by. Each delivery's properties are held
// to asyncapi.yaml's headers schema and its envelope, once opened with the system's own keys, to the payload schema
// (test/support/asyncapi-client.ts). The JSON-bodied run of every message type is asyncapi-client.int.spec.ts.
import type { Message } from 'rhea';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry } from '../../src/adapters/crypto/jose-keys';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, fetchHubJwks, generatePartyKeys, joseCodecFor, registerHubJwks, registerSystem, type PartyKeys } from '../../src/sdk';
import { refusals } from '../support/asyncapi-client';
import { readQueue } from '../support/sdk-queues';
import { downlinkQueue, getJson, profile, startInProcessHub, tempDir, until, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();
const data = tempDir('rts-asyncapi-jose-');
let hub: RunningHub | undefined;
const clients: RtsClient[] = [];

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  data.remove();
});

/** A system registered with its keys, joined through the SDK, whose downlink queue nobody consumes (the test reads it). */
const joined = async (id: string, experts: number): Promise<PartyKeys> => {
  const keys = await generatePartyKeys(id);
  await registerSystem(hub!.url, { id, name: `City ${id}`, area: 'Sichuan' }, keys);
  const client = await RtsClient.connect({ systemId: id, url: amq.broker.url, codec: await joseCodecFor({ keys, hubUrl: hub!.url }) });
  clients.push(client);
  await client.joinWithExperts(Array.from({ length: experts }, (_, i) => ({ localExpertId: `x${i}`, ...profile(i) })));
  await until(`${id} joined`, async () => (await getJson(hub!.url, `/systems/${id}`)).body.status === 'joined');
  return keys;
};

it("every downlink delivery's application properties and opened envelope are ones the document describes", async () => {
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_MESSAGE_SECURITY: 'jose' } });
  const keysA = await joined('acj-a', 2);
  const keysB = await joined('acj-b', 1);
  const registry = new KeyRegistry();
  await registerHubJwks(registry, await fetchHubJwks(hub.url));

  const wrong: string[] = [];
  const types = new Set<string>();
  for (const [id, keys] of [['acj-a', keysA], ['acj-b', keysB]] as const) {
    const codec = new JoseCodec({ keys, registry });
    // acj-a: its snapshot, acj-b's system.joined and upsert; acj-b: its snapshot (with acj-a's experts).
    let messages: Message[] = [];
    await until(`${id}'s downlink`, async () => (messages = [...messages, ...(await readQueue(amq.broker, downlinkQueue(id), { count: 50, idleMs: 500 }))]).length >= (id === 'acj-a' ? 3 : 1));
    for (const m of messages) {
      const properties = { ...(m.application_properties ?? {}) } as Record<string, unknown>;
      expect({ contentType: properties.contentType, codec: properties.codec }).toEqual({ contentType: 'application/jose', codec: 'jose' });
      const { envelope } = await codec.open(String(m.body), { from: 'hub' });
      types.add(String(envelope.type));
      wrong.push(...refusals('downlink', JSON.stringify(envelope), properties).map((r) => `${id}: ${r}`));
    }
  }
  expect([...types].sort()).toEqual(['directory.expert.upserted', 'directory.snapshot', 'system.joined']);
  expect(wrong).toEqual([]);
});
