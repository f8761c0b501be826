// A consultation in Chinese at the contract's longest texts, through the real broker with message security on (the
// hub's default): request, offer, accept, report and its delivery carry every character as written (3 UTF-8 bytes
// each, the most a BMP character takes), and each message stays under the broker's 1 MiB frame. A lone surrogate
// never leaves the SDK: it would have been turned into U+FFFD by the JOSE encoder.
import { DurableSender } from '../../src/adapters/amqp';
import { MAX_DOWNLINK_BODY_BYTES } from '../../src/adapters/messaging/amqp-hub-outbox';
import { ContractViolationError } from '../../src/adapters/messaging/envelope';
import type { RunningHub } from '../../src/bootstrap/main';
import { RtsClient, generatePartyKeys, joseCodecFor, registerSystem, type PartyKeys } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { connect, downlinkQueue, getJson, profile, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(240_000);

/** `length` UTF-16 code units of `phrase` repeated (BMP only: a cut never splits a pair). */
const textOf = (phrase: string, length: number): string => phrase.repeat(Math.ceil(length / phrase.length)).slice(0, length);
/** `length` Han characters in a pseudo-random order (the worst case in bytes: 3 each, no ASCII among them). */
const hanOf = (length: number, seed: number): string => {
  let x = seed;
  return Array.from({ length }, () => String.fromCharCode(0x4e00 + ((x = (x * 1103515245 + 12345) % 2 ** 31) % 0x5000))).join('');
};
const QUESTION = hanOf(10_000, 1);
const SUMMARY = hanOf(100_000, 2);
const DIAGNOSIS = textOf('Stanford B型主动脉夹层，无灌注不良。', 10_000);
const RECOMMENDATIONS = textOf('严格控制血压与心率；β受体阻滞剂；复查CTA；请血管外科会诊。', 100_000);

let broker: TestBroker;
let hub: RunningHub;
const data = tempDir('rts-hub-consultation-text-');
const clients: RtsClient[] = [];

beforeAll(async () => {
  broker = await startBroker();
  hub = await startInProcessHub(broker, data.dir, { env: { RTS_MESSAGE_SECURITY: 'jose', RTS_AUTH: 'off' } });
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.stop();
  await broker?.destroy();
  data.remove();
});

const client = async (systemId: string, keys: PartyKeys) => {
  const c = await RtsClient.connect({ systemId, url: broker.url, codec: await joseCodecFor({ keys, hubUrl: hub.url }) });
  clients.push(c);
  return c;
};

it('carries the longest Chinese texts whole from the applicant to the expert and the report back', async () => {
  expect([QUESTION.length, SUMMARY.length, DIAGNOSIS.length, RECOMMENDATIONS.length]).toEqual([10_000, 100_000, 10_000, 100_000]);
  const applicantKeys = await generatePartyKeys('wuhan');
  const expertKeys = await generatePartyKeys('chengdu');
  await registerSystem(hub.url, { id: 'wuhan', name: '武汉市远程医疗平台', area: '湖北省' }, applicantKeys);
  await registerSystem(hub.url, { id: 'chengdu', name: '成都市远程会诊中心', area: '四川省' }, expertKeys);
  const b = await client('chengdu', expertKeys);
  const a = await client('wuhan', applicantKeys);
  const expert = profile(1, { name: '王建国', title: '主任医师、教授', specialties: ['血管外科'], location: { city: '成都', hospital: '四川大学华西医院' }, languages: ['zh'] });
  await b.joinWithExperts([{ localExpertId: 'wang', ...expert }]);
  await a.joinWithExperts([]);
  await until('both joined', async () => (await getJson(hub.url, '/systems')).body.items.filter((s: { status: string }) => s.status === 'joined').length === 2);
  expect((await getJson(hub.url, '/systems/wuhan')).body.name).toBe('武汉市远程医疗平台');

  // The SDK refuses a text that is not Unicode before anything is sent.
  await expect(a.requestConsultation({ applicantClinician: '李医生', candidates: ['chengdu:wang'], clinicalQuestion: '胸痛\ud800', summary: '' })).rejects.toThrow(ContractViolationError);

  const { consultationId } = await a.requestConsultation({ applicantClinician: '李医生', candidates: ['chengdu:wang'], clinicalQuestion: QUESTION, summary: SUMMARY });
  await until('offered', async () => (await getJson(hub.url, `/consultations/${consultationId}`)).body.status === 'offered', 60_000);
  // Measured on the queue: the offer (question and summary, 330,000 bytes of UTF-8) as a JWE, under the hub's limit
  // for a downlink body (1 MiB less 32 KiB; the broker's frame is 1 MiB).
  const offer = (await readQueue(broker, downlinkQueue('chengdu'), { count: 50, idleMs: 3000 })).filter((m) => m.application_properties?.type === 'consultation.offered');
  expect(offer).toHaveLength(1);
  const offerBytes = Buffer.byteLength(String(offer[0]!.body), 'utf8');
  expect(Buffer.byteLength(QUESTION + SUMMARY, 'utf8')).toBe(330_000);
  expect(offerBytes).toBeLessThan(MAX_DOWNLINK_BODY_BYTES);
  process.stdout.write(`offer body: ${offerBytes} bytes\n`);
  // Put back as it was read, for the expert's system to receive.
  const connection = connect(broker);
  await connection.waitConnected();
  const raw = new DurableSender(connection);
  await raw.sendRaw(downlinkQueue('chengdu'), { body: offer[0]!.body, application_properties: offer[0]!.application_properties, message_id: offer[0]!.message_id, correlation_id: offer[0]!.correlation_id, subject: offer[0]!.subject });
  await raw.close();
  await connection.close();

  const offered: { question: string; summary: string }[] = [];
  const reports: { diagnosis: string; recommendations: string }[] = [];
  await b.subscribe({
    onConsultationOffered: async (m) => {
      offered.push({ question: m.payload.clinicalQuestion, summary: m.payload.summary });
      await b.acceptConsultation(m.payload.consultationId, m.payload.expertId, { correlationId: m.correlationId });
      await b.issueReport(m.payload.consultationId, m.payload.expertId, { diagnosis: DIAGNOSIS, recommendations: RECOMMENDATIONS }, { correlationId: m.correlationId });
    },
  });
  await a.subscribe({ onConsultationReport: (m) => void reports.push({ diagnosis: m.payload.diagnosis, recommendations: m.payload.recommendations }) });
  await until('acknowledged', async () => (await getJson(hub.url, `/consultations/${consultationId}`)).body.status === 'acknowledged', 90_000);
  expect(offered).toHaveLength(1);
  expect(offered[0]!.question === QUESTION && offered[0]!.summary === SUMMARY).toBe(true);
  expect(reports).toHaveLength(1);
  expect(reports[0]!.diagnosis === DIAGNOSIS && reports[0]!.recommendations === RECOMMENDATIONS).toBe(true);
});
