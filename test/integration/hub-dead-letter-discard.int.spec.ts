// An operator discards a dead letter after review, against the real broker and a hub with access control on:
// the message leaves the dead letter queue (and only that one), the discard is recorded as DeadLetterDiscarded and in
// the audit trail, neither with the body; a discarded id answers 410 with the record; bad reasons and callers who are
// no operators are refused; `rts dlq discard` does the same; a replay and a discard of one message at once leave one
// outcome. The dead letters are made as in hub-poison: registrations of a system the hub does not know.
// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { join } from 'node:path';
import { runDlq } from '../../src/adapters/cli/dlq';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { DeadLetterDiscardResponse } from '../../src/adapters/http/response-schemas';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { RunningHub } from '../../src/bootstrap/main';
import { DLQ, profile, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(180_000);

const amq = useBroker();
const data = tempDir('rts-hub-discard-');
let hub: RunningHub | undefined;
let operator = '';

/** In every dead letter's body, and nowhere else: what must never reach an event or the audit trail. */
const MARKER = 'Dr. Bodymarker Qx7';

type Answer = { status: number; body: any };
const call = async (method: 'GET' | 'POST', path: string, token: string | null, body?: unknown): Promise<Answer> => {
  const res = await fetch(`${hub!.url}${path}`, {
    method,
    headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
};
const login = async (claims: Record<string, string>): Promise<string> => {
  const res = await call('POST', '/auth/dev-login', null, claims);
  if (res.status !== 200) throw new Error(`dev-login ${JSON.stringify(claims)}: HTTP ${res.status}`);
  return res.body.token as string;
};

type Letter = { id: string; deadLetterId: string; envelopeId: string; reason: string };
const letters = async (): Promise<Letter[]> => (await call('GET', '/dead-letters?limit=1000', operator)).body.items;
/** Registrations of an unknown system: each is dead-lettered (unknown_system), its body holding MARKER. */
const deadLetter = async (prefix: string, count: number): Promise<Letter[]> => {
  const envelopes = Array.from({ length: count }, (_, i) => uplink.registered('ghost-sys', `${prefix}${i}`, profile(i, { name: MARKER })));
  await Promise.all(envelopes.map((e) => sendUplink(amq.sender, e)));
  const ids = new Set(envelopes.map((e) => e.id));
  let found: Letter[] = [];
  await until(`${count} dead letters ${prefix}*`, async () => {
    found = (await letters()).filter((l) => ids.has(l.envelopeId));
    return found.length === count;
  });
  return found;
};
/**
 * The dead letter queue as the broker has it, browsed apart from the hub: on a connection of its own, which the
 * broker serves apart from the hub's, so an accept the hub sent just before its answer may not be applied yet when
 * this browse is (the hub's own browses, on its connection, come after it).
 */
const onQueue = async (): Promise<string[]> => (await new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: DLQ, timeoutMs: 10_000 }).browse(1000)).map((d) => d.deadLetterId ?? '');
/** The hub's list no longer has it at once; the broker, seen from another connection, soon after (not put back). */
const gone = async (letter: Letter): Promise<void> => {
  expect((await letters()).map((l) => l.deadLetterId)).not.toContain(letter.deadLetterId);
  await until(`${letter.id} off the dead letter queue`, async () => !(await onQueue()).includes(letter.deadLetterId), 10_000);
};

/** Filled in by the tests, checked against the store once the hub has stopped. */
const discarded: Letter[] = [];
const raced: Array<{ letter: Letter; winner: 'replay' | 'discard'; loser: string }> = [];

beforeAll(async () => {
  hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_AUTH: 'on', RTS_AUTH_DEV_LOGIN: 'on' } });
  operator = await login({ role: 'operator', sub: 'ops-alice' });
});
afterAll(async () => {
  await hub?.stop();
  data.remove();
});

// A read shows the body as it came, which may hold patient data (a consultation's text sent without message security):
// audited as dead_letters.read, allowed or refused, as a discard is. Before, only a refused read was on record.
describe('reading a dead letter', () => {
  it("records an operator's read, whose answer shows the body, in the audit trail, and a refused one too, never with the body", async () => {
    const [letter] = await deadLetter('r', 1);
    const shown = await call('GET', `/dead-letters/${letter!.id}`, operator);
    expect(shown.status).toBe(200);
    expect(JSON.stringify(shown.body.body)).toContain(MARKER);
    // Reads do not wait for their audit event: looked for until it is there.
    const readsOf = async () => ((await call('POST', '/audit/search', operator, { resource: letter!.id })).body.items as Array<Record<string, unknown>>).filter((e) => e.action === 'dead_letters.read');
    await until('the read in the audit trail', async () => (await readsOf()).length > 0, 10_000);
    expect((await readsOf())[0]).toMatchObject({ subject: 'ops-alice', role: 'operator', action: 'dead_letters.read', resource: letter!.id, outcome: 'allowed', status: 200, patientKey: null });
    const clinician = await login({ role: 'clinician', systemId: 'xian', sub: 'dr-nosy' });
    expect((await call('GET', `/dead-letters/${letter!.id}`, clinician)).status).toBe(403);
    await until('the refusal in the audit trail', async () => (await readsOf()).some((e) => e.subject === 'dr-nosy' && e.outcome === 'denied'), 10_000);
    expect(JSON.stringify(await readsOf())).not.toContain(MARKER);
  });
});

describe('discarding a dead letter', () => {
  it('takes that message off the dead letter queue, leaves the others, and answers 410 with the record from then on', async () => {
    const [first, ...kept] = await deadLetter('a', 3);
    const answer = await call('POST', `/dead-letters/${first!.id}/discard`, operator, { reason: 'a duplicate of a registration already applied' });
    expect(answer.status).toBe(200);
    expect(DeadLetterDiscardResponse.parse(answer.body)).toMatchObject({
      id: first!.deadLetterId,
      envelopeId: first!.envelopeId,
      removed: 1,
      recordedIn: `dead-letter-${first!.envelopeId}`,
      discard: { by: 'ops-alice', reason: 'a duplicate of a registration already applied', deadLetterId: first!.deadLetterId, envelopeId: first!.envelopeId, deadLetterIds: [first!.deadLetterId], sourceQueue: 'rts.uplink', deadLetterReason: expect.stringMatching(/^unknown_system: /), attempts: 1, removed: 1 },
    });
    expect(JSON.stringify(answer.body)).not.toContain(MARKER);
    discarded.push(first!);

    // Gone from the broker's queue, the others still there.
    await gone(discarded[0]!);
    const browsed = await onQueue();
    for (const k of kept) expect(browsed).toContain(k.deadLetterId);
    expect((await letters()).map((l) => l.id)).toEqual(expect.arrayContaining(kept.map((k) => k.id)));

    // Its own id and its envelope id: 410 with who, when and why (problem+json); so does a second discard.
    for (const [method, path, body] of [
      ['GET', `/dead-letters/${first!.id}`, undefined],
      ['GET', `/dead-letters/${first!.envelopeId}`, undefined],
      ['POST', `/dead-letters/${first!.id}/discard`, { reason: 'again' }],
      ['POST', `/dead-letters/${first!.envelopeId}/replay`, {}],
    ] as const) {
      const again = await call(method, path, operator, body);
      expect({ path, status: again.status, code: again.body.code }).toEqual({ path, status: 410, code: 'dead_letter_discarded' });
      expect(again.body.discard).toMatchObject({ by: 'ops-alice', reason: 'a duplicate of a registration already applied', at: answer.body.discard.at, recordedIn: `dead-letter-${first!.envelopeId}` });
    }
    // The others are untouched: shown as before.
    expect((await call('GET', `/dead-letters/${kept[0]!.id}`, operator)).body).toMatchObject({ id: kept[0]!.id, replays: [], discards: [] });
    // A list cut at its limit says that more are on the queue; one that holds them all says not (on-call read
    // "100 dead letter(s)" as the size of a queue that held 5,000).
    const cut = await call('GET', '/dead-letters?limit=1', operator);
    expect(cut.body).toMatchObject({ count: 1, more: true });
    const whole = await call('GET', '/dead-letters?limit=1000', operator);
    expect(whole.body).toMatchObject({ count: whole.body.items.length, more: false });
    expect(whole.body.items.length).toBeGreaterThanOrEqual(2);
  });

  it('is in the audit trail, allowed and refused, without the body', async () => {
    const trail = await call('GET', '/audit?user=ops-alice', operator);
    expect(trail.status).toBe(200);
    const discards = (trail.body.items as Array<Record<string, unknown>>).filter((e) => e.action === 'dead_letters.discard');
    expect(discards).toHaveLength(2); // the GETs of the discarded id are no discards, and a replay is audited only when refused
    const [first, again] = discards;
    expect(first).toMatchObject({ subject: 'ops-alice', role: 'operator', resource: discarded[0]!.deadLetterId, outcome: 'allowed', status: 200, reason: null });
    expect(again).toMatchObject({ subject: 'ops-alice', resource: discarded[0]!.deadLetterId, outcome: 'error', status: 410, reason: 'dead_letter_discarded' });
    expect(JSON.stringify(trail.body)).not.toContain(MARKER);
  });

  it('refuses a missing, empty, overlong or CPR-holding reason, and callers who are no operators; the message stays', async () => {
    const [letter] = await deadLetter('b', 1);
    const path = `/dead-letters/${letter!.id}/discard`;
    for (const body of [undefined, {}, { reason: '   ' }, { reason: 'x'.repeat(501) }, { reason: 'patient 251248-1234 asked for it' }, { reason: 'cpr 2512481234' }, { reason: 'garbage', by: 'alice' }]) {
      const answer = await call('POST', path, operator, body);
      expect({ body, status: answer.status, code: answer.body.code }).toEqual({ body, status: 400, code: 'invalid_request' });
      expect(JSON.stringify(answer.body)).not.toContain('251248');
    }
    const system = await login({ role: 'system', systemId: 'city-a', sub: 'sys-city-a' });
    const patient = await login({ role: 'patient', patient: '251248-1234' });
    for (const token of [system, patient]) expect((await call('POST', path, token, { reason: 'garbage' })).status).toBe(403);
    expect((await call('POST', path, null, { reason: 'garbage' })).status).toBe(401);
    expect((await call('GET', `/dead-letters/${letter!.id}`, operator)).status).toBe(200);
    expect(await onQueue()).toContain(letter!.deadLetterId);
    // The refusal of a system is audited under its subject, with the discard's own action.
    const trail = (await call('GET', '/audit?user=sys-city-a', operator)).body.items as Array<Record<string, unknown>>;
    expect(trail).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'dead_letters.discard', outcome: 'denied', status: 403, reason: 'operator_only' })]));
  });

  it('rts dlq discard: exit 0 and what it removed; a discarded id again exit 3 with the record; a reason with a CPR number exit 3; none, exit 2', async () => {
    const [letter, other] = await deadLetter('c', 2);
    const io = () => {
      let out = '';
      let err = '';
      return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, out: () => out, err: () => err };
    };
    const env = { RTS_TOKEN: operator };
    const ok = io();
    expect(await runDlq(['discard', letter!.id, '--reason', 'garbage from a test system', '--url', hub!.url], { ...ok, env })).toBe(EXIT.ok);
    expect(ok.out()).toBe(`Discarded ${letter!.id} (1 message removed from the dead letter queue); recorded in dead-letter-${letter!.envelopeId}\n`);
    discarded.push(letter!);
    await gone(letter!);

    const again = io();
    expect(await runDlq(['discard', letter!.id, '--reason', 'again', '--url', hub!.url], { ...again, env })).toBe(EXIT.refused);
    expect(again.err()).toContain('(HTTP 410, dead_letter_discarded)');
    expect(again.err()).toMatch(/discarded \S+ by ops-alice \(garbage from a test system\)/);
    const show = io();
    expect(await runDlq(['show', letter!.id, '--url', hub!.url], { ...show, env })).toBe(EXIT.refused);
    expect(show.err()).toContain('dead_letter_discarded');

    const cpr = io();
    expect(await runDlq(['discard', other!.id, '--reason', 'patient 251248-1234', '--url', hub!.url], { ...cpr, env })).toBe(EXIT.refused);
    expect(cpr.err()).toContain('(HTTP 400, invalid_request)');
    const none = io();
    expect(await runDlq(['discard', other!.id, '--url', hub!.url], { ...none, env })).toBe(EXIT.usage);
    expect(await onQueue()).toContain(other!.deadLetterId);
  });

  it('a replay and a discard of the same dead letter at once: one of them gets it, the other answers so', async () => {
    const batch = await deadLetter('r', 8);
    for (const [i, letter] of batch.entries()) {
      const replay = () => call('POST', `/dead-letters/${letter.id}/replay`, operator, { reason: 'race' });
      const discard = () => call('POST', `/dead-letters/${letter.id}/discard`, operator, { reason: 'race' });
      // Sent together, each one first in turn.
      const [r, d] = i % 2 === 0 ? await Promise.all([replay(), discard()]) : (await Promise.all([discard(), replay()])).reverse();
      const outcome = { id: letter.id, replay: [r!.status, r!.body.code], discard: [d!.status, d!.body.code] };
      expect([r!.status, d!.status].filter((s) => s === 200)).toHaveLength(1);
      const loser = r!.status === 200 ? d! : r!;
      // Taken while the other was at it (409), or the other was done before this one looked: a discarded id is 410,
      // a replayed one no longer on the queue 404 (its replayed copy is dead-lettered again under a new id).
      const allowed = r!.status === 200 ? ['409 dead_letter_taken', '404 dead_letter_not_found'] : ['409 dead_letter_taken', '410 dead_letter_discarded'];
      expect({ outcome, loser: allowed.includes(`${loser.status} ${loser.body.code}`) }).toEqual({ outcome, loser: true });
      raced.push({ letter, winner: r!.status === 200 ? 'replay' : 'discard', loser: `${loser.status} ${loser.body.code}` });
      expect((await call('GET', `/dead-letters/${letter.id}`, operator)).status).toBe(r!.status === 200 ? 404 : 410);
      await gone(letter);
    }
    // eslint-disable-next-line no-console
    console.log(`discard/replay race: ${raced.map((x) => `${x.winner} won, the other ${x.loser}`).join('; ')}`);
  });

  it('the store holds one outcome per raced dead letter, each discard recorded in the replays\' stream, and no body anywhere', async () => {
    await hub!.stop();
    hub = undefined;
    const store = SqliteEventStore.open({ file: join(data.dir, 'telemed.sqlite') });
    try {
      const events: RecordedEvent[] = [];
      for (let after = 0n; ; ) {
        const page = await store.readAll({ after, maxCount: 1000 });
        if (page.length === 0) break;
        events.push(...page);
        after = page[page.length - 1]!.globalPosition;
      }
      const readable = JSON.stringify(events.map((e) => ({ stream: e.streamName, type: e.type, data: e.data, metadata: e.metadata })));
      expect(readable).not.toContain(MARKER);

      for (const letter of discarded) {
        const { events: own } = await store.readStream(`dead-letter-${letter.envelopeId}`);
        expect(own.map((e) => e.type)).toEqual(['DeadLetterDiscarded']);
        expect(own[0]!.data).toMatchObject({ by: 'ops-alice', deadLetterIds: [letter.deadLetterId], removed: 1 });
        const { events: link } = await store.readStream(`dead-letter-${letter.deadLetterId}`);
        expect(link.map((e) => [e.type, e.data.recordedIn])).toEqual([['DeadLetterDiscardLinked', `dead-letter-${letter.envelopeId}`]]);
      }
      for (const { letter, winner } of raced) {
        const fates = events.filter(
          (e) =>
            (e.type === 'DeadLetterReplayed' && e.data.deadLetterId === letter.deadLetterId) ||
            (e.type === 'DeadLetterDiscarded' && (e.data.deadLetterIds as string[]).includes(letter.deadLetterId)),
        );
        expect({ id: letter.id, fates: fates.map((e) => e.type) }).toEqual({ id: letter.id, fates: [winner === 'replay' ? 'DeadLetterReplayed' : 'DeadLetterDiscarded'] });
      }
    } finally {
      await store.close();
    }
  });
});
