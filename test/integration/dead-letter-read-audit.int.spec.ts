// GET /dead-letters/{id} shows a sender's message as it came, body included; a clear body may hold patient data (a
// consultation's question or diagnosis from a system sending without message security). Such a read is in the audit
// trail, as every access to patient data is: who read which dead letter, and when (action dead_letters.read, resource
// the dead letter's id). It was recorded only when refused, so an operator could read a diagnosis on the record of nothing.
// Against the real broker and a hub with access control on.
// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { DurableSender, type AmqpConnection } from '../../src/adapters/amqp';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import pino from 'pino';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { connect, hubEnv, profile, sendUplink, tempDir, until, uplink } from './hub-support';

jest.setTimeout(180_000);

const data = tempDir('rts-dlq-read-audit-');
let broker: TestBroker;
let connection: AmqpConnection;
let sender: DurableSender;
let hub: RunningHub;

/** In the dead letter's body only: what an operator reads there (a stand-in for a clinical text). */
const MARKER = 'Dr. Readmarker Zq4';

const call = async (method: 'GET' | 'POST', path: string, token: string | null, body?: unknown): Promise<{ status: number; body: any }> => {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
};
const login = async (claims: Record<string, string>): Promise<string> => {
  const res = await call('POST', '/auth/dev-login', null, claims);
  if (res.status !== 200) throw new Error(`dev-login: HTTP ${res.status}`);
  return res.body.token as string;
};

beforeAll(async () => {
  // Ports of the review's range (18200-18299), where its machine lets it listen.
  broker = await startBroker();
  connection = connect(broker);
  await connection.waitConnected();
  sender = new DurableSender(connection);
  hub = await startHub(loadConfig(hubEnv(broker, data.dir, { RTS_AUTH: 'on', RTS_AUTH_DEV_LOGIN: 'on', RTS_HTTP_PORT: '0' })), pino({ level: 'silent' }));
});
afterAll(async () => {
  await hub?.stop();
  await sender?.close();
  await connection?.close();
  await broker?.destroy();
  data.remove();
});

it("records an operator's read of a dead letter, whose body it shows, in the audit trail", async () => {
  const operator = await login({ role: 'operator', sub: 'ops-reader' });
  // A registration from a system the hub does not know: dead-lettered (unknown_system), its body as it came.
  const envelope = uplink.registered('ghost-sys', 'x1', profile(1, { name: MARKER }));
  await sendUplink(sender, envelope);
  let id = '';
  await until('the dead letter', async () => {
    const items = (await call('GET', '/dead-letters?limit=1000', operator)).body.items as Array<{ id: string; envelopeId: string }>;
    id = items.find((l) => l.envelopeId === envelope.id)?.id ?? '';
    return id !== '';
  });

  const shown = await call('GET', `/dead-letters/${id}`, operator);
  expect(shown.status).toBe(200);
  expect(JSON.stringify(shown.body.body)).toContain(MARKER);

  // Reads do not wait for their audit event: looked for until it is there.
  const readsOf = async () => ((await call('POST', '/audit/search', operator, { resource: id })).body.items as Array<Record<string, unknown>>).filter((e) => e.action === 'dead_letters.read');
  await until('the read in the audit trail', async () => (await readsOf()).length > 0, 10_000);
  const [read] = await readsOf();
  expect(read).toMatchObject({ subject: 'ops-reader', role: 'operator', action: 'dead_letters.read', resource: id, outcome: 'allowed', status: 200, patientKey: null });
  expect(JSON.stringify(read)).not.toContain(MARKER);

  // Refused to anyone else, and that refusal is on record under the same action.
  const clinician = await login({ role: 'clinician', systemId: 'xian', sub: 'dr-nosy' });
  expect((await call('GET', `/dead-letters/${id}`, clinician)).status).toBe(403);
  await until('the refusal in the audit trail', async () => (await readsOf()).some((e) => e.subject === 'dr-nosy' && e.outcome === 'denied'), 10_000);
});
