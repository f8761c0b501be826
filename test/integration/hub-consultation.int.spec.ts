// A cross-area consultation end to end over the real broker with message security on (RTS_MESSAGE_SECURITY=jose):
// two city systems registered over HTTP with their public keys, joined with the SDK's JOSE codec; an applicant
// requests, the expert's system accepts and reports, the applicant receives the report and acknowledges it.
// The broker's queues are read raw on the way: no clinical text and no expert name in any body. Forged,
// tampered and misaddressed messages are dead-lettered with their reason and never processed.
import { randomUUID } from 'node:crypto';
import type { Message } from 'rhea';
import { DurableSender, DLQ_REASON, type AmqpConnection } from '../../src/adapters/amqp';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry } from '../../src/adapters/crypto/jose-keys';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, fetchHubJwks, generatePartyKeys, joseCodecFor, publicJwks, registerHubJwks, registerSystem, type PartyKeys } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { DLQ, UPLINK, connect, downlinkQueue, getJson, profile, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(180_000);

const QUESTION = 'Suspected aortic dissection, tearing chest pain radiating to the back';
const SUMMARY = 'CT angiography pending; blood pressure asymmetry between arms';
const EXPERT_NAME = 'Dr. Wei Zhangsecret';
const DIAGNOSIS = 'Stanford type B dissection, no malperfusion';

let broker: TestBroker;
let connection: AmqpConnection;
let raw: DurableSender;
let hub: RunningHub;
let data: { dir: string; remove(): void };
const clients: RtsClient[] = [];

const bytes = (m: Message): string => (typeof m.body === 'string' ? m.body : JSON.stringify(m.body));
const restore = async (queue: string, messages: readonly Message[]) => {
  for (const m of messages) await raw.sendRaw(queue, { body: m.body, application_properties: m.application_properties, message_id: m.message_id, correlation_id: m.correlation_id, subject: m.subject });
};
const noPersonalData = (messages: readonly Message[]) => {
  for (const m of messages) {
    const body = bytes(m);
    expect(body).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/); // a compact JWE
    for (const secret of [QUESTION, SUMMARY, EXPERT_NAME, DIAGNOSIS, 'Zhangsecret', 'aortic']) {
      expect(body).not.toContain(secret);
      expect(JSON.stringify(m.application_properties ?? {})).not.toContain(secret);
    }
  }
};

const client = async (systemId: string, keys: PartyKeys, extra: Partial<Parameters<typeof RtsClient.connect>[0]> = {}) => {
  const c = await RtsClient.connect({ systemId, url: broker.url, codec: await joseCodecFor({ keys, hubUrl: hub.url }), ...extra });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  broker = await startBroker();
  connection = connect(broker);
  await connection.waitConnected();
  raw = new DurableSender(connection);
  data = tempDir('rts-hub-consultation-');
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_MESSAGE_SECURITY: 'jose', RTS_AUTH: 'off' } });
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  await raw?.close();
  await connection?.close();
  await broker?.destroy();
  data?.remove();
});

it('publishes the hub JWKS and registers system keys over HTTP', async () => {
  const jwks = await fetchHubJwks(hub.url);
  expect(jwks.keys.map((k) => k.use).sort()).toEqual(['enc', 'sig']);
  expect(jwks.keys.every((k) => typeof k.kid === 'string' && !('d' in k))).toBe(true);
});

it('runs a consultation signed and encrypted end to end, nothing personal in clear on the broker', async () => {
  const applicantKeys = await generatePartyKeys('city-a');
  const expertKeys = await generatePartyKeys('city-b');
  await registerSystem(hub.url, { id: 'city-a', name: 'City A', area: 'Hubei' }, applicantKeys);
  await registerSystem(hub.url, { id: 'city-b', name: 'City B', area: 'Sichuan' }, expertKeys);
  expect((await getJson(hub.url, '/systems/city-a/keys')).body.items.map((k: { use: string }) => k.use).sort()).toEqual(['enc', 'sig']);

  const b = await client('city-b', expertKeys);
  const a = await client('city-a', applicantKeys);
  await b.joinWithExperts([{ localExpertId: 'wei', ...profile(1, { name: EXPERT_NAME }) }]);
  await a.joinWithExperts([]);
  await until('both joined', async () => (await getJson(hub.url, '/systems')).body.items.filter((s: { status: string }) => s.status === 'joined').length === 2);

  // The directory downlink to the applicant names the expert: encrypted on the queue.
  await until('city-a has its directory downlink', async () => (await getJson(hub.url, '/experts?system=city-b')).body.items.length === 1);
  const directory = await readQueue(broker, downlinkQueue('city-a'), { count: 50, idleMs: 3000 });
  expect(directory.length).toBeGreaterThan(0);
  noPersonalData(directory);
  await restore(downlinkQueue('city-a'), directory);

  // The request, as the SDK puts it on the uplink queue (captured on the way, then forwarded unchanged).
  const capture = `test.capture.${randomUUID().slice(0, 8)}`;
  const aCapture = await client('city-a', applicantKeys, { uplinkQueue: capture });
  const { consultationId, correlationId } = await aCapture.requestConsultation({ applicantClinician: 'dr-li', candidates: ['city-b:wei'], clinicalQuestion: QUESTION, summary: SUMMARY });
  expect(correlationId).toBe(consultationId);
  const uplinkRaw = await readQueue(broker, capture, { count: 1, idleMs: 3000 });
  expect(uplinkRaw).toHaveLength(1);
  noPersonalData(uplinkRaw);
  await restore(UPLINK, uplinkRaw);

  // The offer on the expert system's queue, read raw, then put back.
  await until('offered', async () => (await getJson(hub.url, `/consultations/${consultationId}`)).body.status === 'offered');
  const offer = await readQueue(broker, downlinkQueue('city-b'), { count: 50, idleMs: 3000 });
  expect(offer.some((m) => m.application_properties?.type === 'consultation.offered')).toBe(true);
  noPersonalData(offer);
  await restore(downlinkQueue('city-b'), offer);

  const seen: { type: string; correlationId: string; system: string }[] = [];
  const reports: string[] = [];
  await b.subscribe({
    onConsultationOffered: async (m) => {
      seen.push({ type: m.type, correlationId: m.correlationId, system: 'city-b' });
      expect(m.payload.clinicalQuestion).toBe(QUESTION);
      await b.acceptConsultation(m.payload.consultationId, m.payload.expertId, { correlationId: m.correlationId });
      await b.issueReport(m.payload.consultationId, m.payload.expertId, { diagnosis: DIAGNOSIS, recommendations: 'Blood pressure control' }, { correlationId: m.correlationId });
    },
  });
  await a.subscribe({
    onConsultationAccepted: (m) => void seen.push({ type: m.type, correlationId: m.correlationId, system: 'city-a' }),
    onConsultationReport: (m) => {
      seen.push({ type: m.type, correlationId: m.correlationId, system: 'city-a' });
      reports.push(m.payload.diagnosis);
    },
  });
  await until('acknowledged', async () => (await getJson(hub.url, `/consultations/${consultationId}`)).body.status === 'acknowledged');
  expect(reports).toEqual([DIAGNOSIS]);
  expect(seen.map((s) => s.type).sort()).toEqual(['consultation.accepted', 'consultation.offered', 'consultation.report']);
  expect(new Set(seen.map((s) => s.correlationId))).toEqual(new Set([consultationId]));
});

it('declines, unassigns and cancels through the typed handlers; an illegal step is dead-lettered with its reason', async () => {
  const applicantKeys = await generatePartyKeys('city-c');
  const expertKeys = await generatePartyKeys('city-d');
  await registerSystem(hub.url, { id: 'city-c', name: 'City C', area: 'Hubei' }, applicantKeys);
  await registerSystem(hub.url, { id: 'city-d', name: 'City D', area: 'Sichuan' }, expertKeys);
  const d = await client('city-d', expertKeys);
  const cc = await client('city-c', applicantKeys);
  await d.joinWithExperts([{ localExpertId: 'busy', ...profile(3) }, { localExpertId: 'slow', ...profile(4) }]);
  await cc.joinWithExperts([]);
  await until('c and d joined', async () => (await getJson(hub.url, '/systems/city-d')).body.status === 'joined' && (await getJson(hub.url, '/systems/city-c')).body.status === 'joined');

  const got: string[] = [];
  await d.subscribe({
    onConsultationOffered: async (m) => {
      got.push(`d:offered:${m.payload.expertId}`);
      if (m.payload.expertId === 'city-d:busy') await d.declineConsultation(m.payload.consultationId, m.payload.expertId, 'in theatre all day', { correlationId: m.correlationId });
    },
    onConsultationCancelled: (m) => void got.push(`d:cancelled:${m.payload.expertId}:${m.correlationId === m.payload.consultationId}`),
  });
  await cc.subscribe({
    onConsultationDeclined: (m) => void got.push(`c:declined:${m.payload.outcome}`),
    onConsultationUnassigned: (m) => void got.push(`c:unassigned:${m.correlationId === m.payload.consultationId}`),
  });

  const first = await cc.requestConsultation({ applicantClinician: 'dr-c', candidates: ['city-d:busy'], clinicalQuestion: QUESTION, summary: SUMMARY });
  await until('unassigned', async () => got.includes('c:unassigned:true'));
  expect((await getJson(hub.url, `/consultations/${first.consultationId}`)).body.status).toBe('unassigned');
  expect(got).toEqual(expect.arrayContaining(['d:offered:city-d:busy', 'c:declined:declined']));

  const second = await cc.requestConsultation({ applicantClinician: 'dr-c', candidates: ['city-d:slow'], clinicalQuestion: QUESTION, summary: SUMMARY });
  await until('offered to slow', async () => got.includes('d:offered:city-d:slow'));
  await cc.cancelConsultation(second.consultationId, 'patient transferred');
  await until('cancelled at the expert system', async () => got.includes('d:cancelled:city-d:slow:true'));
  expect((await getJson(hub.url, `/consultations/${second.consultationId}`)).body.status).toBe('cancelled');

  // A report on a cancelled consultation: refused by the aggregate, dead-lettered with the code, state unchanged.
  const reportId = await d.issueReport(second.consultationId, 'city-d:slow', { diagnosis: DIAGNOSIS, recommendations: '' });
  let reason: string | undefined;
  await until('the refused report in the DLQ', async () => {
    const dead = await readQueue(broker, DLQ, { count: 20, idleMs: 1000 });
    reason ??= dead.map((m) => m.application_properties ?? {}).find((p) => p.messageId === reportId)?.[DLQ_REASON] as string | undefined;
    return reason !== undefined;
  });
  expect(reason).toMatch(/^[a-z_]+: \S/); // the code, then what is wrong
  expect((await getJson(hub.url, `/consultations/${second.consultationId}`)).body.status).toBe('cancelled');
});

it('dead-letters forged, tampered, misaddressed and plaintext uplink messages with the reason, never processing them', async () => {
  const hubRegistry = new KeyRegistry();
  await registerHubJwks(hubRegistry, await fetchHubJwks(hub.url));
  const keys = await generatePartyKeys('forge-c');
  await registerSystem(hub.url, { id: 'forge-c', name: 'Forge C', area: 'Hubei' }, keys);
  const stranger = await generatePartyKeys('forge-c'); // keys never registered
  const otherReceiver = await generatePartyKeys('elsewhere');
  const strangerRegistry = new KeyRegistry();
  await registerHubJwks(strangerRegistry, await fetchHubJwks(hub.url));
  await strangerRegistry.register('elsewhere', publicJwks(otherReceiver).encryption);

  const requestOf = (systemId: string, consultationId: string) => ({
    id: randomUUID(),
    type: 'consultation.requested',
    version: 1,
    systemId,
    correlationId: consultationId,
    time: new Date().toISOString(),
    payload: { consultationId, applicantClinician: 'dr-x', candidates: ['city-b:wei'], clinicalQuestion: QUESTION, summary: '', attachments: [] },
  });
  const ids = { mismatch: randomUUID(), unknown: randomUUID(), notForUs: randomUUID(), tampered: randomUUID(), plain: randomUUID() };
  const mine = new JoseCodec({ keys, registry: hubRegistry });
  const theirs = new JoseCodec({ keys: stranger, registry: strangerRegistry });

  const mismatch = await mine.encode(requestOf('city-a', ids.mismatch), { to: 'hub' }); // forge-c signs, claims city-a
  const unknown = await theirs.encode(requestOf('forge-c', ids.unknown), { to: 'hub' });
  const notForUs = await theirs.encode(requestOf('forge-c', ids.notForUs), { to: 'elsewhere' });
  const good = await mine.encode(requestOf('forge-c', ids.tampered), { to: 'hub' });
  const parts = good.body.split('.');
  parts[3] = parts[3]!.slice(0, 10) + (parts[3]![10] === 'A' ? 'B' : 'A') + parts[3]!.slice(11);
  const tampered = parts.join('.');
  for (const [name, body] of [['mismatch', mismatch.body], ['unknown', unknown.body], ['notForUs', notForUs.body], ['tampered', tampered], ['plain', JSON.stringify(requestOf('forge-c', ids.plain))]] as const) {
    await raw.send(UPLINK, { body, applicationProperties: { test: name } });
  }
  const dead: Message[] = [];
  await until('five dead letters', async () => {
    dead.push(...(await readQueue(broker, DLQ, { count: 10, idleMs: 1000 })).filter((m) => typeof m.application_properties?.test === 'string'));
    return dead.length >= 5;
  });
  const reasons = Object.fromEntries(dead.map((m) => [m.application_properties!.test, String(m.application_properties![DLQ_REASON]).split(':')[0]]));
  expect(reasons).toEqual({ mismatch: 'sender_mismatch', unknown: 'unknown_key', notForUs: 'not_for_us', tampered: 'bad_signature', plain: 'malformed_jose' });
  for (const id of Object.values(ids)) expect((await getJson(hub.url, `/consultations/${id}`)).status).toBe(404);
});
