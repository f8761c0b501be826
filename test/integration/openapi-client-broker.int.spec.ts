// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomUUID } from 'node:crypto';
import type { RunningHub } from '../../src/bootstrap/main';
import { openApiClient, type OpenApiClient } from '../support/openapi-client';
import { DLQ, profile, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

/**
 * The hub as a hospital's generated client sees it, connected to a real ActiveMQ: what openapi-client.int.spec.ts
 * cannot provoke on a hub without a broker (there the dead letter routes answer only 503). Every answer is held to
 * the served document's own JSON Schemas (test/support/openapi-client.ts): the dead letter routes' lists, a dead
 * letter with its body and history, replays and discards and each of their refusals (404, 409, 410, 422, 400),
 * /health and /metrics of a hub whose uplink is consuming, and a system's downlink queue depth as the broker counts it.
 */
jest.setTimeout(120_000);

const amq = useBroker();
const data = tempDir('rts-openapi-broker-');
let hub: RunningHub | undefined;
let api: OpenApiClient;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the served document, read as JSON
let doc: any;
let operator = '';

type Letter = { id: string; deadLetterId: string; envelopeId: string };
const listed = async (): Promise<Letter[]> => (await api.call('GET /dead-letters', '/dead-letters?limit=1000', { token: operator })).body.items;
/** Registrations of a system the hub does not know: each is dead-lettered (unknown_system) from rts.uplink. */
const deadLetters = async (count: number): Promise<Letter[]> => {
  // Ids of letters only: a UUID glued to a letter is looked into as text, and about one in 1,050 reads as a CPR
  // number (cpr-like.ts), which the contract refuses in a localExpertId (this test then failed at random).
  const envelopes = Array.from({ length: count }, (_, i) => uplink.registered('ghost-sys', `g${randomUUID().replace(/\d/g, (d) => 'ghijklmnop'[Number(d)]!)}`, profile(i)));
  await Promise.all(envelopes.map((e) => sendUplink(amq.sender, e)));
  const ids = new Set(envelopes.map((e) => e.id));
  let found: Letter[] = [];
  await until(`${count} dead letters`, async () => (found = (await listed()).filter((l) => ids.has(l.envelopeId))).length === count);
  return found;
};
/** A dead letter written straight to the queue, as a system's account may (client-side dead-lettering): its properties are the sender's. */
const forged = async (sourceQueue: string | null): Promise<string> => {
  const id = randomUUID();
  const body = { id, type: 'expert.retired', version: 1, systemId: 'ghost-sys', correlationId: id, time: new Date().toISOString(), payload: { localExpertId: 'x' } };
  await amq.sender.sendRaw(DLQ, {
    body: JSON.stringify(body),
    durable: true,
    application_properties: { messageId: id, rts_dlq_id: id, 'x-dlq-reason': 'bad_schema: forged', 'x-dlq-attempts': 1, ...(sourceQueue ? { 'x-dlq-source-queue': sourceQueue } : {}) },
  });
  await until(`forged dead letter ${id} listed`, async () => (await listed()).some((l) => l.id === id));
  return id;
};

beforeAll(async () => {
  // Depths read every second: the systems' answers carry their downlink queue's depth soon.
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_AUTH: 'on', RTS_AUTH_DEV_LOGIN: 'on', RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' } });
  doc = await (await fetch(`${hub.url}/openapi.json`)).json();
  api = openApiClient(doc, hub.url);
  operator = await api.login({ role: 'operator', sub: 'ops-openapi' });
  await until('uplink consuming', async () => (await api.call('GET /health', '/health')).body.uplink === 'consuming');
});
afterAll(async () => {
  await hub?.stop();
  data.remove();
});

describe("a connected hub's answers against the served document's JSON Schemas (ajv)", () => {
  it('health and metrics of a hub consuming its uplink', async () => {
    const health = await api.call('GET /health', '/health');
    expect(health.body).toMatchObject({ uplink: 'consuming' });
    expect((await api.call('GET /metrics', '/metrics', { token: operator })).status).toBe(200);
  });

  it("a system with its downlink queue's depth as the broker counts it: for operators, and for that system only", async () => {
    for (const id of ['oc-depth', 'oc-other']) expect((await api.call('POST /systems', '/systems', { token: operator, body: { id, name: id, area: 'Hubei' } })).status).toBe(201);
    // Both systems' depths: each is read on its own, and under load the second can come a poll later than the first.
    const hasDepth = (items: { downlinkQueueDepth: unknown }[]) => items.length === 2 && items.every((s) => s.downlinkQueueDepth !== null);
    await until('the depths read', async () => hasDepth((await api.call('GET /systems', '/systems', { token: operator })).body.items));
    const all = (await api.call('GET /systems', '/systems', { token: operator })).body.items;
    expect(all.map((s: { id: string; downlinkQueueDepth: unknown }) => [s.id, s.downlinkQueueDepth !== null])).toEqual([['oc-depth', true], ['oc-other', true]]);
    expect(all[0].downlinkQueueDepth).toMatchObject({ messages: 0 });
    // Another city sees its own backlog, not this one's; nor does a clinician of it.
    const other = await api.login({ role: 'system', systemId: 'oc-other' });
    const clinician = await api.login({ role: 'clinician', systemId: 'oc-other', sub: 'dr-other' });
    for (const token of [other, clinician]) {
      expect((await api.call('GET /systems/{id}', '/systems/oc-depth', { token })).body.downlinkQueueDepth).toBeNull();
      expect((await api.call('GET /systems/{id}', '/systems/oc-other', { token })).body.downlinkQueueDepth).toMatchObject({ messages: 0 });
      expect((await api.call('GET /systems', '/systems', { token })).body.items.map((s: { id: string; downlinkQueueDepth: unknown }) => [s.id, s.downlinkQueueDepth !== null])).toEqual([['oc-depth', false], ['oc-other', true]]);
    }
  });

  it('the dead letters: listed, one shown, replayed, discarded, and each refusal', async () => {
    const patient = await api.login({ role: 'patient', patient: '251248-1234' });
    const [toReplay, toDiscard, toShow] = await deadLetters(3);
    expect((await api.call('GET /dead-letters', '/dead-letters?limit=1', { token: operator })).body).toMatchObject({ count: 1, more: true });
    expect((await api.call('GET /dead-letters', '/dead-letters?limit=0', { token: operator })).status).toBe(400);
    expect((await api.call('GET /dead-letters', '/dead-letters', { token: patient })).status).toBe(403);

    const shown = await api.call('GET /dead-letters/{id}', `/dead-letters/${toShow!.id}`, { token: operator });
    expect(shown.body).toMatchObject({ id: toShow!.id, replays: [], discards: [] });
    expect((await api.call('GET /dead-letters/{id}', `/dead-letters/${randomUUID()}`, { token: operator })).status).toBe(404);

    // Replayed to rts.uplink, where the hub dead-letters it again (the system is still unknown): shown with its replay.
    const replayed = await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${toReplay!.id}/replay`, { token: operator, body: { by: 'ops-bob', reason: 'system registered since' } });
    expect(replayed.body).toMatchObject({ sourceQueue: 'rts.uplink', moved: 1 });
    await until('the replayed message dead-lettered again', async () => (await listed()).some((l) => l.envelopeId === toReplay!.envelopeId));
    const again = (await listed()).find((l) => l.envelopeId === toReplay!.envelopeId)!;
    expect((await api.call('GET /dead-letters/{id}', `/dead-letters/${again.id}`, { token: operator })).body.replays).toHaveLength(1);
    expect((await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${randomUUID()}/replay`, { token: operator })).status).toBe(404);
    expect((await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${toShow!.id}/replay`, { token: operator, body: { reason: 'patient 251248-1234' } })).status).toBe(400);
    expect((await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${await forged('rts.secret.queue')}/replay`, { token: operator })).status).toBe(422);
    expect((await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${await forged(null)}/replay`, { token: operator })).status).toBe(409);

    const discarded = await api.call('POST /dead-letters/{id}/discard', `/dead-letters/${toDiscard!.id}/discard`, { token: operator, body: { reason: 'a duplicate' } });
    expect(discarded.body).toMatchObject({ removed: 1, discard: { by: 'ops-openapi' } });
    expect((await api.call('POST /dead-letters/{id}/discard', `/dead-letters/${toDiscard!.id}/discard`, { token: operator, body: { reason: 'again' } })).status).toBe(410);
    expect((await api.call('GET /dead-letters/{id}', `/dead-letters/${toDiscard!.id}`, { token: operator })).status).toBe(410);
    expect((await api.call('POST /dead-letters/{id}/replay', `/dead-letters/${toDiscard!.id}/replay`, { token: operator })).status).toBe(410);
    expect((await api.call('POST /dead-letters/{id}/discard', `/dead-letters/${toShow!.id}/discard`, { token: operator, body: {} })).status).toBe(400);
    expect((await api.call('POST /dead-letters/{id}/discard', `/dead-letters/${randomUUID()}/discard`, { token: operator, body: { reason: 'gone' } })).status).toBe(404);
  });

  it('what the document and the answers disagree on: nothing', () => {
    expect([...api.mismatches]).toEqual([]);
  });

  it('answered every dead letter operation with each status provoked above', () => {
    const expected = [
      'GET /dead-letters 200',
      'GET /dead-letters 400',
      'GET /dead-letters 403',
      'GET /dead-letters/{id} 200',
      'GET /dead-letters/{id} 404',
      'GET /dead-letters/{id} 410',
      'POST /dead-letters/{id}/replay 200',
      'POST /dead-letters/{id}/replay 400',
      'POST /dead-letters/{id}/replay 404',
      'POST /dead-letters/{id}/replay 409',
      'POST /dead-letters/{id}/replay 410',
      'POST /dead-letters/{id}/replay 422',
      'POST /dead-letters/{id}/discard 200',
      'POST /dead-letters/{id}/discard 400',
      'POST /dead-letters/{id}/discard 404',
      'POST /dead-letters/{id}/discard 410',
    ];
    expect(expected.filter((e) => !api.answered.has(e))).toEqual([]);
    // Every success the document lists for the dead letter operations was among them.
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)) {
      if (!path.startsWith('/dead-letters')) continue;
      for (const [method, op] of Object.entries(ops)) {
        for (const status of Object.keys(op.responses).filter((s) => s.startsWith('2'))) expect(api.answered).toContain(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
  });
});
