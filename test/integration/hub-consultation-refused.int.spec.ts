// A consultation message the hub refuses for good, on the real hub over the real broker with message security on:
// the SDK's request names an expert who retired, so the consultation never exists (GET 404) and the request is
// dead-lettered as before; and because the SDK said on the message that it reads 'consultation.refused' (AMQP
// application property rts_accepts), its system gets that notice too, signed and encrypted like every downlink
// message. A sender that does not say so (an older client, sending raw here) gets the dead letter and nothing else.
import { randomUUID } from 'node:crypto';
import type { Message } from 'rhea';
import { DurableSender, DLQ_REASON, type AmqpConnection } from '../../src/adapters/amqp';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry } from '../../src/adapters/crypto/jose-keys';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, fetchHubJwks, generatePartyKeys, joseCodecFor, registerHubJwks, registerSystem, type ConsultationDownlinkOf, type PartyKeys } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { DLQ, UPLINK, connect, downlinkQueue, getJson, postJson, profile, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(180_000);

const QUESTION = 'Suspected aortic dissection, tearing chest pain radiating to the back';

let broker: TestBroker;
let connection: AmqpConnection;
let raw: DurableSender;
let hub: RunningHub;
let data: { dir: string; remove(): void };
const clients: RtsClient[] = [];
/** Dead letters read so far (reading takes them off the queue), by our envelope id. */
const deadLetters = new Map<string, Message>();

const client = async (systemId: string, keys: PartyKeys) => {
  const c = await RtsClient.connect({ systemId, url: broker.url, codec: await joseCodecFor({ keys, hubUrl: hub.url }) });
  clients.push(c);
  return c;
};
const deadLetter = async (envelopeId: string): Promise<Message> => {
  await until(`the dead letter of ${envelopeId}`, async () => {
    for (const m of await readQueue(broker, DLQ, { count: 50, idleMs: 500 })) deadLetters.set(String(m.application_properties?.messageId), m);
    return deadLetters.has(envelopeId);
  });
  return deadLetters.get(envelopeId)!;
};

beforeAll(async () => {
  broker = await startBroker();
  connection = connect(broker);
  await connection.waitConnected();
  raw = new DurableSender(connection);
  data = tempDir('rts-hub-consultation-refused-');
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_MESSAGE_SECURITY: 'jose', RTS_AUTH: 'off' } });

  // ref-b's expert retires before anyone asks for them.
  const keys = await generatePartyKeys('ref-b');
  await registerSystem(hub.url, { id: 'ref-b', name: 'Ref B', area: 'Sichuan' }, keys);
  const b = await client('ref-b', keys);
  await b.joinWithExperts([{ localExpertId: 'old', ...profile(1) }]);
  await until('ref-b:old known', async () => (await getJson(hub.url, '/experts/ref-b:old')).status === 200);
  await b.retireExpert('old');
  await until('ref-b:old retired', async () => (await getJson(hub.url, '/experts/ref-b:old')).body.status === 'retired');
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  await raw?.close();
  await connection?.close();
  await broker?.destroy();
  data?.remove();
});

it('tells an SDK applicant that its request was refused (onConsultationRefused), and still dead-letters the request', async () => {
  const keys = await generatePartyKeys('ref-a');
  await registerSystem(hub.url, { id: 'ref-a', name: 'Ref A', area: 'Hubei' }, keys);
  const a = await client('ref-a', keys);
  await a.joinWithExperts([]);
  await until('ref-a joined', async () => (await getJson(hub.url, '/systems/ref-a')).body.status === 'joined');
  const refused: ConsultationDownlinkOf<'consultation.refused'>[] = [];
  await a.subscribe({ onConsultationRefused: (m) => void refused.push(m) });

  const request = await a.requestConsultation({ applicantClinician: 'dr-a', candidates: ['ref-b:old'], clinicalQuestion: QUESTION, summary: '' });
  await until('the refusal notice', async () => refused.length > 0);
  expect(refused).toHaveLength(1);
  expect(refused[0]).toMatchObject({
    type: 'consultation.refused',
    systemId: 'ref-a',
    correlationId: request.correlationId,
    payload: { consultationId: request.consultationId, refusedType: 'consultation.requested', refusedMessageId: request.id, reason: 'candidate_retired', detail: 'candidates.0 retired' },
  });
  expect((await getJson(hub.url, `/consultations/${request.consultationId}`)).status).toBe(404);

  // The dead letter is there as before, with its reason (and the capability the request carried).
  const dead = await deadLetter(request.id);
  expect(dead.application_properties?.[DLQ_REASON]).toBe('candidate_retired: candidates.0 retired');
  expect(dead.application_properties?.rts_accepts).toBe('consultation.refused');
});

it('sends no notice to a sender that does not say it reads consultation.refused; one that says so gets it, encrypted for it', async () => {
  const keys = await generatePartyKeys('ref-c');
  await registerSystem(hub.url, { id: 'ref-c', name: 'Ref C', area: 'Hubei' }, keys);
  const c = await client('ref-c', keys); // joins only; nothing reads its downlink queue but this test
  await c.joinWithExperts([]);
  await until('ref-c joined', async () => (await getJson(hub.url, '/systems/ref-c')).body.status === 'joined');

  // As an older client sends: signed and encrypted for the hub, the envelope fields as properties, no rts_accepts.
  const hubRegistry = new KeyRegistry();
  await registerHubJwks(hubRegistry, await fetchHubJwks(hub.url));
  const codec = new JoseCodec({ keys, registry: hubRegistry });
  const sendRequest = async (extra: Record<string, string>) => {
    const consultationId = randomUUID();
    const envelope = { id: randomUUID(), type: 'consultation.requested', version: 1, systemId: 'ref-c', correlationId: consultationId, time: new Date().toISOString(), payload: { consultationId, applicantClinician: 'dr-c', candidates: ['ref-b:old'], clinicalQuestion: QUESTION, summary: '', attachments: [] } };
    const { body, applicationProperties } = await codec.encode(envelope, { to: 'hub' });
    await raw.send(UPLINK, { body, applicationProperties: { messageId: envelope.id, type: envelope.type, version: 1, systemId: 'ref-c', correlationId: consultationId, ...applicationProperties, ...extra }, groupId: `consultation/${consultationId}` });
    return envelope.id;
  };

  const silent = await sendRequest({});
  expect((await deadLetter(silent)).application_properties?.[DLQ_REASON]).toBe('candidate_retired: candidates.0 retired');
  // Handled (dead-lettered) before the next is sent: a notice for it would be on the queue ahead of the next one's.
  const asking = await sendRequest({ rts_accepts: 'consultation.refused' });
  expect((await deadLetter(asking)).application_properties?.[DLQ_REASON]).toBe('candidate_retired: candidates.0 retired');

  const queued = await readQueue(broker, downlinkQueue('ref-c'), { count: 100, idleMs: 3000 });
  const notices = queued.filter((m) => m.application_properties?.type === 'consultation.refused');
  expect(notices).toHaveLength(1);
  const notice = notices[0]!;
  expect(notice.application_properties).toMatchObject({ systemId: 'ref-c', contentType: 'application/jose' });
  const opened = await codec.open(notice.body, { from: 'hub' });
  expect(opened.envelope).toMatchObject({ type: 'consultation.refused', systemId: 'ref-c', payload: { refusedMessageId: asking, reason: 'candidate_retired', detail: 'candidates.0 retired' } });
  expect(String(notice.body)).not.toContain('aortic');
});

it('accepts the notice, and logs it at info, for an SDK subscriber without onConsultationRefused (never a dead letter)', async () => {
  const keys = await generatePartyKeys('ref-d');
  await registerSystem(hub.url, { id: 'ref-d', name: 'Ref D', area: 'Hubei' }, keys);
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  const at = (level: string) => (fields: object, message: string) => void lines.push({ level, fields: fields as Record<string, unknown>, message });
  const d = await RtsClient.connect({ systemId: 'ref-d', url: broker.url, codec: await joseCodecFor({ keys, hubUrl: hub.url }), logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } });
  clients.push(d);
  await d.joinWithExperts([]);
  await until('ref-d joined', async () => (await getJson(hub.url, '/systems/ref-d')).body.status === 'joined');
  const outcomes: string[] = [];
  await d.subscribe({ onConsultationOffered: () => undefined }, { onOutcome: (e) => void outcomes.push(e.kind) });

  const request = await d.requestConsultation({ applicantClinician: 'dr-d', candidates: ['ref-b:old'], clinicalQuestion: QUESTION, summary: '' });
  await until('the notice logged', async () => lines.some((l) => l.message.startsWith('the hub refused a consultation message')), 30_000, 50, () => JSON.stringify(lines));
  const line = lines.find((l) => l.message.startsWith('the hub refused a consultation message'))!;
  expect(line).toMatchObject({ level: 'info', fields: { refusedMessageId: request.id, refusedType: 'consultation.requested', reason: 'candidate_retired', consultationId: request.consultationId } });
  expect(JSON.stringify(lines)).not.toContain('aortic');
  expect(outcomes).not.toContain('dead-lettered');
  expect((await deadLetter(request.id)).application_properties?.[DLQ_REASON]).toBe('candidate_retired: candidates.0 retired');
  expect([...deadLetters.values()].filter((m) => m.application_properties?.['x-dlq-source-queue'] === downlinkQueue('ref-d'))).toEqual([]);
});

it("refuses a request whose attachment is not registered or was replaced by a correction: the notice and the dead letter name the place (and the current version), never the patient", async () => {
  const keys = await generatePartyKeys('ref-e');
  await registerSystem(hub.url, { id: 'ref-e', name: 'Ref E', area: 'Hubei' }, keys);
  const e = await client('ref-e', keys);
  const expertKeys = await generatePartyKeys('ref-f');
  await registerSystem(hub.url, { id: 'ref-f', name: 'Ref F', area: 'Sichuan' }, expertKeys);
  await (await client('ref-f', expertKeys)).joinWithExperts([{ localExpertId: 'on-duty', ...profile(2) }]);
  await e.joinWithExperts([]);
  await until('ref-e joined, ref-f:on-duty known', async () => (await getJson(hub.url, '/systems/ref-e')).body.status === 'joined' && (await getJson(hub.url, '/experts/ref-f:on-duty')).status === 200);
  const refused: ConsultationDownlinkOf<'consultation.refused'>[] = [];
  await e.subscribe({ onConsultationRefused: (m) => void refused.push(m) });
  // A reading, corrected: the first document is replaced by the second.
  const patient = '251248-1234';
  const uploaded = await postJson(hub.url, '/observations', { patientId: patient, systolic: 150, diastolic: 80, observationId: 'o-refused-1' });
  expect(uploaded.status).toBe(201);
  const corrected = await postJson(hub.url, `/documents/${uploaded.body.uniqueId}/corrections`, { systolic: 145, diastolic: 80, measuredAt: uploaded.body.measuredAt, correctionId: 'fix-refused-1' });
  expect(corrected.status).toBe(201);

  const ask = (attachments: string[]) => e.requestConsultation({ applicantClinician: 'dr-e', candidates: ['ref-f:on-duty'], clinicalQuestion: QUESTION, summary: '', attachments });
  const cases: [string[], string][] = [
    [['2.25.1234567890'], 'unknown_attachment: attachments.0 no document of this hub has this uniqueId'],
    [[String(uploaded.body.uniqueId)], `attachment_replaced: attachments.0 replaced by a correction; attach its current version ${corrected.body.uniqueId}`],
  ];
  for (const [attachments, reason] of cases) {
    const request = await ask(attachments);
    const dead = await deadLetter(request.id);
    expect(dead.application_properties?.[DLQ_REASON]).toBe(reason);
    await until('the refusal notice', async () => refused.some((m) => m.payload.refusedMessageId === request.id));
    const [code, detail] = [reason.slice(0, reason.indexOf(':')), reason.slice(reason.indexOf(':') + 2)];
    expect(refused.find((m) => m.payload.refusedMessageId === request.id)!.payload).toMatchObject({ consultationId: request.consultationId, refusedType: 'consultation.requested', reason: code, detail });
    expect((await getJson(hub.url, `/consultations/${request.consultationId}`)).status).toBe(404);
    expect(JSON.stringify(dead.application_properties)).not.toContain('251248');
  }
  // The current version is taken.
  const taken = await ask([String(corrected.body.uniqueId)]);
  await until('the consultation requested', async () => (await getJson(hub.url, `/consultations/${taken.consultationId}`)).status === 200);
});

it("keeps the envelope id, type and system it read on the dead letter of a JOSE message sent without their copies, so `rts dlq show <envelope id>` finds it", async () => {
  // As a system in another language may send (docs/messaging.md: a message without the application-property copies is
  // handled as its envelope says): signed and encrypted, no properties. Its body shows nothing without the hub's key.
  const keys = await generatePartyKeys('ref-d');
  await registerSystem(hub.url, { id: 'ref-d', name: 'Ref D', area: 'Hubei' }, keys);
  const d = await client('ref-d', keys);
  await d.joinWithExperts([{ localExpertId: 'gone', ...profile(4) }]);
  await until('ref-d:gone known', async () => (await getJson(hub.url, '/experts/ref-d:gone')).status === 200);
  await d.retireExpert('gone');
  await until('ref-d:gone retired', async () => (await getJson(hub.url, '/experts/ref-d:gone')).body.status === 'retired');

  const hubRegistry = new KeyRegistry();
  await registerHubJwks(hubRegistry, await fetchHubJwks(hub.url));
  const codec = new JoseCodec({ keys, registry: hubRegistry });
  const envelope = { id: randomUUID(), type: 'expert.changed', version: 1, systemId: 'ref-d', correlationId: 'no-copies-1', time: new Date().toISOString(), payload: { localExpertId: 'gone', profile: profile(5) } };
  const { body } = await codec.encode(envelope, { to: 'hub' });
  await raw.send(UPLINK, { body });

  type Letter = { envelopeId: string | null; type: string | null; systemId: string | null; reason: string };
  let letters: Letter[] = [];
  await until('its dead letter', async () => (letters = (await getJson<{ items: Letter[] }>(hub.url, '/dead-letters')).body.items).some((l) => l.reason.startsWith('expert_retired')));
  expect(letters.find((l) => l.reason.startsWith('expert_retired'))).toMatchObject({ envelopeId: envelope.id, type: 'expert.changed', systemId: 'ref-d' });
  expect((await getJson(hub.url, `/dead-letters/${envelope.id}`)).status).toBe(200);
});
