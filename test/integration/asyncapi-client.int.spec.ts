// The message contract as a city system in another language sees it: only docs/asyncapi.yaml (its JSON Schemas,
// built by buildAsyncApiDocument, which asyncapi.unit.spec.ts keeps equal to the committed file). A team that
// generates its model classes and validators from that document must get from the hub only what the document
// describes, and the hub must take what the document says it takes and refuse what it says it refuses.
//
// On a real ActiveMQ and a hub with message security off (the document's payloads are the envelope inside the JWE
// otherwise; its jose headers are checked by the SDK's suites), three systems join, register, change and retire
// experts, and run consultations to every end (reported and acknowledged, cancelled, unassigned, refused). Every
// delivery on their downlink queues is held to the document with ajv (draft-07, strict, formats checked): its body
// against the payload schema of the message its `type` names, its application properties against that message's
// headers schema. Every uplink message sent is held to the document first. Then probes: messages the document
// refuses are dead-lettered as unreadable (`bad_schema`, `bad_json`), none of those it takes.
import { randomUUID } from 'node:crypto';
import { DLQ_REASON, QueueConsumer } from '../../src/adapters/amqp';
import type { RunningHub } from '../../src/bootstrap/main';
import { messageTypes, refusals } from '../support/asyncapi-client';
import { readQueue } from '../support/sdk-queues';
import { DLQ, UPLINK, downlinkQueue, getJson, registerSystem, startInProcessHub, tempDir, until, useBroker } from './hub-support';

jest.setTimeout(180_000);

const amq = useBroker();
const data = tempDir('rts-asyncapi-client-');
let hub: RunningHub | undefined;
const consumers: QueueConsumer[] = [];

/** Every delivery on the systems' downlink queues, as the broker handed it over. */
const received: Array<{ systemId: string; type: string; body: string; properties: Record<string, unknown> }> = [];
const receivedTypes = () => new Set(received.map((r) => r.type));

type Envelope = { id: string; type: string; version: 1; systemId: string; correlationId: string; time: string; payload: Record<string, unknown> };
const envelope = (systemId: string, type: string, payload: Record<string, unknown>, correlationId: string = randomUUID()): Envelope => ({ id: randomUUID(), type, version: 1, systemId, correlationId, time: new Date().toISOString(), payload });
const propertiesOf = (e: Envelope): Record<string, unknown> => ({ messageId: e.id, type: e.type, version: e.version, systemId: e.systemId, correlationId: e.correlationId });
const groupOf = (e: Envelope): string => {
  const p = e.payload;
  if (typeof p.consultationId === 'string') return `consultation/${p.consultationId}`;
  if (typeof p.localExpertId === 'string') return `expert/${e.systemId}:${p.localExpertId}`;
  return `system/${e.systemId}`;
};
const sendRaw = (body: string, properties: Record<string, unknown>, groupId?: string) =>
  amq.sender.send(UPLINK, { body, applicationProperties: properties as Record<string, string>, ...(groupId ? { groupId } : {}) });
/** Sends what the document takes (checked first: a test message the document refuses would prove nothing). */
/** The ids of the messages `send` sent: each one the document takes. */
const taken = new Set<string>();
const send = async (e: Envelope, extra: Record<string, unknown> = {}): Promise<Envelope> => {
  const body = JSON.stringify(e);
  taken.add(e.id);
  const properties = { ...propertiesOf(e), ...extra };
  expect({ id: e.id, type: e.type, refusals: refusals('uplink', body, properties) }).toEqual({ id: e.id, type: e.type, refusals: [] });
  await sendRaw(body, properties, groupOf(e));
  return e;
};
const expert = (name: string) => ({ name, title: 'Chief physician', specialties: ['cardiology'], location: { city: '成都', hospital: '华西医院' }, languages: ['zh', 'en'], availability: 'available' });
const status = async (consultationId: string): Promise<string | undefined> => (await getJson(hub!.url, `/consultations/${consultationId}`)).body.status;
const waitStatus = (consultationId: string, want: string) => until(`consultation ${want}`, async () => (await status(consultationId)) === want);

/** Dead letters read off the queue so far, by envelope id: reason. */
const deadLetters = new Map<string, string>();
const deadLetterOf = async (id: string): Promise<string> => {
  await until(`the dead letter of ${id}`, async () => {
    for (const m of await readQueue(amq.broker, DLQ, { count: 50, idleMs: 300 })) deadLetters.set(String(m.application_properties?.messageId), String(m.application_properties?.[DLQ_REASON]));
    return deadLetters.has(id);
  });
  return deadLetters.get(id)!;
};

const SYSTEMS = ['ac-a', 'ac-b', 'ac-c'];

beforeAll(async () => {
  hub = await startInProcessHub(amq.broker, data.dir);
  for (const systemId of SYSTEMS) {
    await registerSystem(hub.url, systemId);
    const consumer = new QueueConsumer(amq.connection, {
      queue: downlinkQueue(systemId),
      deadLetterQueue: `${downlinkQueue(systemId)}.test-dlq`,
      prefetch: 50,
      maxAttempts: 10,
      handler: async (m) => {
        const type = (() => {
          try {
            return String((JSON.parse(m.body) as { type?: unknown }).type);
          } catch {
            return '(not JSON)';
          }
        })();
        received.push({ systemId, type, body: m.body, properties: { ...m.applicationProperties } });
        return 'accept';
      },
    });
    consumers.push(consumer);
    await consumer.start();
  }
});
afterAll(async () => {
  for (const c of consumers) await c.stop().catch(() => undefined);
  await hub?.stop();
  data.remove();
});

describe('every message type the hub sends, held to docs/asyncapi.yaml', () => {
  it('joins, expert changes and consultations to every end', async () => {
    // ac-b and ac-c join with experts, ac-a with none: each gets a snapshot, the others system.joined and upserts.
    await send(envelope('ac-b', 'system.join.requested', { name: 'City ac-b', expectedBatches: 1, expectedExperts: 3 }));
    await send(envelope('ac-b', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: ['e1', 'e2', 'e3'].map((id) => ({ localExpertId: id, ...expert(`张医生 ${id}`) })) }));
    await send(envelope('ac-c', 'system.join.requested', { expectedBatches: 1, expectedExperts: 1 }));
    await send(envelope('ac-c', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'c1', ...expert('李医生') }] }));
    await send(envelope('ac-a', 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }));
    for (const id of SYSTEMS) await until(`${id} joined`, async () => (await getJson(hub!.url, `/systems/${id}`)).body.status === 'joined');
    await send(envelope('ac-b', 'expert.registered', { localExpertId: 'e4', profile: expert('王医生') }));
    await send(envelope('ac-b', 'expert.changed', { localExpertId: 'e4', profile: { ...expert('王医生'), availability: 'limited' } }));
    await send(envelope('ac-b', 'expert.retired', { localExpertId: 'e4' }));
    await until('ac-b:e4 retired', async () => (await getJson(hub!.url, '/experts/ac-b:e4')).body.status === 'retired');

    const request = (consultationId: string, candidates: string[]) =>
      envelope('ac-a', 'consultation.requested', { consultationId, applicantClinician: 'dr-wang', candidates, clinicalQuestion: '胸痛，肌钙蛋白临界', summary: 'Male, 58', attachments: [], deadlineSeconds: 3600 }, consultationId);
    // Reported and acknowledged: ac-c declines, ac-b accepts and reports.
    const one = randomUUID();
    await send(request(one, ['ac-c:c1', 'ac-b:e1']));
    await waitStatus(one, 'offered');
    await send(envelope('ac-c', 'consultation.decline', { consultationId: one, expertId: 'ac-c:c1', reason: '本周休假' }, one));
    await send(envelope('ac-b', 'consultation.accept', { consultationId: one, expertId: 'ac-b:e1' }, one));
    await waitStatus(one, 'accepted');
    await send(envelope('ac-b', 'consultation.report', { consultationId: one, expertId: 'ac-b:e1', diagnosis: '不稳定型心绞痛', recommendations: '72 小时内负荷超声' }, one));
    await waitStatus(one, 'reported');
    await send(envelope('ac-a', 'consultation.acknowledge', { consultationId: one }, one));
    await waitStatus(one, 'acknowledged');
    // Cancelled by the applicant.
    const two = randomUUID();
    await send(request(two, ['ac-b:e2']));
    await waitStatus(two, 'offered');
    await send(envelope('ac-a', 'consultation.cancel', { consultationId: two, reason: 'Patient transferred' }, two));
    await waitStatus(two, 'cancelled');
    // Unassigned: its only candidate declines.
    const three = randomUUID();
    await send(request(three, ['ac-c:c1']));
    await waitStatus(three, 'offered');
    await send(envelope('ac-c', 'consultation.decline', { consultationId: three, expertId: 'ac-c:c1', reason: '' }, three));
    await waitStatus(three, 'unassigned');
    // Refused (a retired candidate), to a sender that says it reads the notice.
    const refused = await send(request(randomUUID(), ['ac-b:e4']), { rts_accepts: 'consultation.refused' });
    expect(await deadLetterOf(refused.id)).toMatch(/^candidate_retired: /);

    const downlinkTypes = messageTypes('downlink');
    await until('every downlink message type received', () => downlinkTypes.every((t) => receivedTypes().has(t)), 60_000, 100, () => `missing: ${downlinkTypes.filter((t) => !receivedTypes().has(t)).join(', ')}`);
  });

  it('every delivery is one the document describes: its body and its application properties', () => {
    expect(received.length).toBeGreaterThan(20);
    const wrong = new Set(received.flatMap((r) => refusals('downlink', r.body, r.properties).map((p) => `${r.systemId}: ${p}`)));
    expect([...wrong]).toEqual([]);
  });
});

describe('what the document refuses the hub refuses, as unreadable; what it takes the hub does not call unreadable', () => {
  const base = () => envelope('ac-b', 'expert.registered', { localExpertId: `p-${randomUUID().slice(0, 8)}`, profile: expert('赵医生') });
  const probes: Array<[string, () => { body: string; properties: Record<string, unknown> }]> = [
    ['a payload member the document does not name', () => { const e = base(); (e.payload as Record<string, unknown>).note = 'x'; return { body: JSON.stringify(e), properties: propertiesOf(e) }; }],
    ['an upper-case system id', () => { const e = { ...base(), systemId: 'AC-B' }; return { body: JSON.stringify(e), properties: propertiesOf(e) }; }],
    ['a time without an offset', () => { const e = { ...base(), time: '2026-12-03T10:00:00' }; return { body: JSON.stringify(e), properties: propertiesOf(e) }; }],
    ['an expert name holding a CPR number', () => { const e = base(); (e.payload as { profile: { name: string } }).profile.name = 'Dr 251248-1234'; return { body: JSON.stringify(e), properties: propertiesOf(e) }; }],
    ['no correlationId', () => { const { correlationId: _, ...e } = base(); return { body: JSON.stringify(e), properties: { messageId: e.id, type: e.type, version: 1, systemId: e.systemId } }; }],
    ['a version the document does not have', () => { const e = { ...base(), version: 2 }; return { body: JSON.stringify(e), properties: { ...propertiesOf(e as Envelope), version: 2 } }; }],
    ['a body that is not JSON', () => ({ body: '{"id":', properties: { messageId: randomUUID(), type: 'expert.registered', version: 1, systemId: 'ac-b', correlationId: 'c' } })],
  ];

  it.each(probes)('%s: the document refuses it, the hub dead-letters it as bad_schema or bad_json', async (_what, make) => {
    const { body, properties } = make();
    expect(refusals('uplink', body, properties)).not.toEqual([]);
    await sendRaw(body, properties);
    expect(await deadLetterOf(String(properties.messageId))).toMatch(/^(bad_schema|bad_json)[: ]/);
  });

  it('the messages the document took: none dead-lettered, but the request refused by rule (a retired candidate)', async () => {
    // Every one was handled before the flows above went on (each waited for its effect), so the queue has them all.
    for (const m of await readQueue(amq.broker, DLQ, { count: 200, idleMs: 500 })) deadLetters.set(String(m.application_properties?.messageId), String(m.application_properties?.[DLQ_REASON]));
    expect(taken.size).toBeGreaterThan(15);
    const dead = [...taken].filter((id) => deadLetters.has(id)).map((id) => deadLetters.get(id)!.split(':')[0]);
    expect(dead).toEqual(['candidate_retired']);
  });
});
