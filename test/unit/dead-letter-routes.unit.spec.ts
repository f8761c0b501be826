// The dead-letter routes (adapters/http/dead-letter-routes.ts) on a bare fastify app with a fake service: what an
// operator sees of a misbehaving sender's message, who a replay is recorded as, and what its texts may hold.
import Fastify, { type FastifyInstance } from 'fastify';
import { deadLetterSummary, registerDeadLetterRoutes } from '../../src/adapters/http/dead-letter-routes';
import { problemInstance, sendProblem, toProblem } from '../../src/adapters/http/problem';
import { DeadLetterDiscardedError, type DeadLetter, type DeadLetterService, type DiscardInput, type DiscardRecord, type ReplayInput } from '../../src/application/directory/dead-letter-operations';

const DLQ_ID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const letter: DeadLetter = {
  id: DLQ_ID,
  deadLetterId: DLQ_ID,
  envelopeId: 'm-251248-1234',
  brokerMessageId: 'm-251248-1234',
  contentId: 'c-abcdefghijklmnopabcdefgh',
  type: null,
  systemId: '251248-1234',
  correlationId: '20261201251248-1234',
  reason: 'bad_schema: payload is required',
  sourceQueue: 'rts.uplink',
  attempts: 1,
  deadLetteredAt: '2026-12-01T03:21:00.000Z',
  replayCount: 0,
  body: '{"patient":"251248-1234"}',
  applicationProperties: { systemId: '251248-1234', correlationId: '12512481234', 'x-dlq-reason': 'bad_schema: payload is required', 'x-dlq-attempts': 1 },
};

let app: FastifyInstance;
let base = '';
const replays: ReplayInput[] = [];
const discards: DiscardInput[] = [];
const GONE = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const record: DiscardRecord = {
  deadLetterId: GONE,
  envelopeId: null,
  deadLetterIds: [GONE],
  at: '2026-12-01T04:00:00.000Z',
  by: 'ops-7',
  reason: 'garbage',
  sourceQueue: 'rts.uplink',
  deadLetterReason: 'bad_json: the body is not valid JSON',
  attempts: 1,
  replayCount: 0,
  removed: 1,
  recordedIn: `dead-letter-${GONE}`,
};
const gone = () => new DeadLetterDiscardedError(record);
const BINARY = '3d6f0e2a-5b1c-4e8f-9a7d-2c4b6e8f0a1b';
const binaryLetter: DeadLetter = {
  ...letter,
  id: BINARY,
  deadLetterId: BINARY,
  applicationProperties: { note: Buffer.from('251248-1234'), raw: Buffer.from([0xff, 0x00, 0x41]), list: ['x', '251248-1234'], n: 5, ok: true },
};

beforeAll(async () => {
  app = Fastify();
  app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, problemInstance(request.url))));
  // As security.ts leaves it: the verified caller.
  app.addHook('onRequest', async (request) => {
    request.principal = { subject: 'ops-7', role: 'operator', via: 'jwt' };
  });
  const deadLetters = {
    listPage: async () => ({ items: [letter], more: false }),
    get: async (id: string) => {
      if (id === GONE) throw gone();
      return id === BINARY ? binaryLetter : letter;
    },
    history: async () => ({ replays: [], discards: [] }),
    replay: async (id: string, input: ReplayInput) => {
      if (id === GONE) throw gone();
      replays.push(input);
      return { deadLetter: letter, moved: 1, sourceQueue: 'rts.uplink', event: { ...input }, streamName: `dead-letter-${DLQ_ID}` };
    },
    discard: async (id: string, input: DiscardInput) => {
      if (id === GONE) throw gone();
      discards.push(input);
      return { deadLetter: letter, removed: 1, event: { ...record, ...input }, streamName: `dead-letter-${DLQ_ID}` };
    },
  } as unknown as DeadLetterService;
  registerDeadLetterRoutes(app, { deadLetters });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => app.close());

const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
  const res = await fetch(`${base}${url}`, { method, ...(payload ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) } : {}) });
  return { status: res.status, text: await res.text() };
};

describe('dead letters shown to operators', () => {
  it('redact what a sender set that may hold a CPR number, in the list and in the detail view; the body is shown as sent', async () => {
    const list = await call('GET', '/dead-letters');
    expect(list.status).toBe(200);
    expect(list.text).not.toMatch(/251248/);
    expect(JSON.parse(list.text).items[0]).toMatchObject({ id: DLQ_ID, deadLetterId: DLQ_ID, envelopeId: '[redacted]', brokerMessageId: '[redacted]', systemId: '[redacted]', sourceQueue: 'rts.uplink' });

    const one = JSON.parse((await call('GET', `/dead-letters/${DLQ_ID}`)).text);
    expect(one).toMatchObject({ systemId: '[redacted]', correlationId: '[redacted]', reason: 'bad_schema: payload is required' });
    expect(one.applicationProperties).toEqual({ systemId: '[redacted]', correlationId: '[redacted]', 'x-dlq-reason': 'bad_schema: payload is required', 'x-dlq-attempts': 1 });
    expect(one.body).toBe(letter.body); // as the sender sent it (README: "Dead letters and patient data")
  });

  it('checks binary and structured property values as text: a binary "251248-1234" was shown as hex, unredacted', async () => {
    const detail = JSON.parse((await call('GET', `/dead-letters/${BINARY}`)).text);
    expect(detail.applicationProperties).toEqual({ note: '[redacted]', raw: 'ff0041', list: '[redacted]', n: 5, ok: true });
  });

  it("records a replay as the caller's authenticated subject; the body's by is kept as a note", async () => {
    replays.length = 0;
    expect((await call('POST', `/dead-letters/${DLQ_ID}/replay`, { by: 'alice', reason: 'fixed' })).status).toBe(200);
    expect((await call('POST', `/dead-letters/${DLQ_ID}/replay`)).status).toBe(200);
    expect(replays).toEqual([{ by: 'ops-7', note: 'alice', reason: 'fixed' }, { by: 'ops-7' }]);
  });

  it('a dead letter a sender put on the queue itself: its non-UUID ids and its x-dlq-at are not shown as they came', () => {
    const forged: DeadLetter = { ...letter, id: '251248-1234', deadLetterId: '251248-1234', deadLetteredAt: '251248-1234' };
    const summary = deadLetterSummary(forged);
    expect(summary).toMatchObject({ id: '[redacted]', deadLetterId: '[redacted]', deadLetteredAt: null });
    expect(JSON.stringify(summary)).not.toContain('251248');
    // The hub's own: a UUID and an instant, as they are.
    expect(deadLetterSummary(letter)).toMatchObject({ id: DLQ_ID, deadLetterId: DLQ_ID, deadLetteredAt: letter.deadLetteredAt });
    expect(deadLetterSummary({ ...letter, id: 'pat-7', deadLetterId: 'pat-7' })).toMatchObject({ id: 'pat-7', deadLetterId: 'pat-7' });
  });

  it("answers a replay with the sender's ids redacted where they hold a CPR number, as the list does", async () => {
    const answer = await call('POST', `/dead-letters/${DLQ_ID}/replay`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ id: DLQ_ID, envelopeId: '[redacted]' });
    expect(answer.text).not.toContain('251248');
  });

  it.each([
    [{ by: 'dpo 251248-1234' }],
    [{ reason: 'patient 251248-1234 asked' }],
    [{ reason: 'cpr 2512481234' }],
  ])('refuses a CPR number in a replay text (400 invalid_request): %j', async (body) => {
    replays.length = 0;
    const answer = await call('POST', `/dead-letters/${DLQ_ID}/replay`, body);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'invalid_request', errors: [expect.objectContaining({ message: expect.stringContaining('must not hold a CPR number') })] });
    expect(answer.text).not.toMatch(/251248/);
    expect(replays).toEqual([]);
  });

  it.each([
    [{ by: 'ops\u0000' }],
    [{ by: 'ops\nadmin' }],
    [{ by: 'dpo \u202enaj' }],
    [{ reason: 'x \u202e y' }],
    [{ reason: 'two\nlines' }],
  ])('refuses a replay text that is not one line (400, nothing moved: NUL failed the record on PostgreSQL after the move): %j', async (body) => {
    replays.length = 0;
    const answer = await call('POST', `/dead-letters/${DLQ_ID}/replay`, body);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'invalid_request', errors: [expect.objectContaining({ message: expect.stringContaining('one line') })] });
    expect(replays).toEqual([]);
  });
});

describe('discarding a dead letter', () => {
  it("records the caller's authenticated subject and the reason; the answer redacts what the sender set", async () => {
    discards.length = 0;
    const answer = await call('POST', `/dead-letters/${DLQ_ID}/discard`, { reason: '  a duplicate of an applied registration ' });
    expect(answer.status).toBe(200);
    expect(discards).toEqual([{ by: 'ops-7', reason: 'a duplicate of an applied registration' }]);
    expect(JSON.parse(answer.text)).toMatchObject({ id: DLQ_ID, envelopeId: '[redacted]', removed: 1, recordedIn: `dead-letter-${DLQ_ID}` });
    expect(answer.text).not.toMatch(/251248/);
  });

  it.each([
    ['no body', undefined],
    ['no reason', {}],
    ['an empty reason', { reason: '   ' }],
    ['a reason too long', { reason: 'x'.repeat(501) }],
    ['a reason with a CPR number', { reason: 'patient 251248-1234 asked' }],
    ['a reason with a CPR number without its dash', { reason: 'cpr 2512481234' }],
    ['a name besides the reason', { reason: 'garbage', by: 'alice' }],
    ['a reason with NUL', { reason: 'garbage\u0000' }],
    ['a reason with a line break', { reason: 'garbage\r\nreplayed: yes' }],
    ['a reason with a bidirectional override', { reason: 'garbage \u2066x\u2069' }],
  ])('refuses %s (400 invalid_request), and discards nothing', async (_what, body) => {
    discards.length = 0;
    const answer = await call('POST', `/dead-letters/${DLQ_ID}/discard`, body);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'invalid_request' });
    expect(answer.text).not.toMatch(/251248/);
    expect(discards).toEqual([]);
  });

  it('answers a discarded id 410 dead_letter_discarded with the discard record, on each route of one dead letter', async () => {
    for (const [method, url, body] of [
      ['POST', `/dead-letters/${GONE}/discard`, { reason: 'again' }],
      ['GET', `/dead-letters/${GONE}`, undefined],
      ['POST', `/dead-letters/${GONE}/replay`, {}],
    ] as const) {
      const answer = await call(method, url, body);
      expect({ url, status: answer.status }).toEqual({ url, status: 410 });
      expect(JSON.parse(answer.text)).toMatchObject({ type: '/problems/dead_letter_discarded', code: 'dead_letter_discarded', status: 410, instance: url, discard: { by: 'ops-7', reason: 'garbage', at: record.at } });
    }
  });
});
