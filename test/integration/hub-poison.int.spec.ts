// Poison messages of each kind land in the dead letter queue with their reasons while good traffic flows;
// operators list, inspect and replay them over HTTP (and `rts dlq`), and each replay is recorded.
import { join } from 'node:path';
import pino from 'pino';
import { runDlq } from '../../src/adapters/cli/dlq';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import type { UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { getJson, postJson, profile, registerSystem, sendRawBody, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();

/** When each attempt at the failing expert's message began (ms). */
const failedAttemptsAt: number[] = [];

/** A store that fails for one expert, whatever happens: a transient failure that never clears. */
const failingFor = (localExpertId: string) => (real: UplinkLike): UplinkLike => ({
  handleUplink: async (envelope) => {
    if ('localExpertId' in envelope.payload && envelope.payload.localExpertId === localExpertId) {
      failedAttemptsAt.push(Date.now());
      throw new Error('the store is not answering');
    }
    return real.handleUplink(envelope);
  },
});

type Summary = { id: string; envelopeId: string | null; reason: string; sourceQueue: string; attempts: number; type: string | null };

it('dead-letters every kind of poison with its cause while 200 good registrations are applied; replay of a fixed cause applies it and is recorded', async () => {
  const data = tempDir('rts-hub-poison-');
  const logLines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  let hub: RunningHub | undefined = await startInProcessHub(amq.broker, data.dir, { env: { RTS_UPLINK_MAX_ATTEMPTS: '3' }, wrapUplink: failingFor('boom'), logger });
  try {
    await registerSystem(hub.url, 'good-a');
    await registerSystem(hub.url, 'other-b');
    await sendUplink(amq.sender, uplink.join('good-a', 0, 0));
    await sendUplink(amq.sender, uplink.join('other-b', 0, 0));
    await until('both systems joined', async () => (await getJson(hub!.url, '/systems')).body.items.filter((s: { status: string }) => s.status === 'joined').length === 2);
    await sendUplink(amq.sender, uplink.registered('other-b', 'b1', profile(1)));

    const unknownSystem = uplink.registered('ghost-c', 'x1', profile(2));
    const otherOwner = uplink.registered('good-a', 'b1', profile(3), 'other-b');
    const transient = uplink.registered('good-a', 'boom', profile(4));
    const badSchema = { ...uplink.registered('good-a', 'e-bad', profile(5)) } as Record<string, unknown>;
    delete (badSchema.payload as Record<string, unknown>).profile;
    const unknownType = { ...uplink.registered('good-a', 'e-odd', profile(6)), type: 'expert.exploded' };
    const poison: Array<() => Promise<void>> = [
      () => sendRawBody(amq.sender, '{"id": "not-json", ', { messageId: 'not-json-1' }),
      () => sendRawBody(amq.sender, JSON.stringify(badSchema)),
      () => sendUplink(amq.sender, unknownSystem),
      () => sendUplink(amq.sender, otherOwner),
      () => sendUplink(amq.sender, transient),
      () => sendRawBody(amq.sender, JSON.stringify(unknownType)),
    ];
    const started = Date.now();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      sends.push(sendUplink(amq.sender, uplink.registered('good-a', `e${i}`, profile(i))));
      if (i % 30 === 20) sends.push(poison.shift()!());
    }
    await Promise.all(sends);
    expect(poison).toHaveLength(0);

    await until('200 good experts applied', async () => (await getJson(hub!.url, '/systems/good-a')).body.activeExperts === 200);
    let letters: Summary[] = [];
    await until('6 dead letters', async () => {
      letters = (await getJson(hub!.url, '/dead-letters')).body.items;
      return letters.length >= 6;
    }, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}; found: ${JSON.stringify(letters.map((l) => l.reason))}`);
    });
    const goodIn = Date.now() - started;

    const reasons = letters.map((l) => l.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'bad_json: the body is not valid JSON',
        expect.stringMatching(/^bad_schema: payload\.profile/),
        expect.stringMatching(/^unknown_system: /),
        expect.stringMatching(/^expert_owned_by_other_system: /),
        expect.stringMatching(/^retry limit \(3\) reached: transient failure: Error/),
        expect.stringMatching(/^unknown_type: type: must be one of /),
      ]),
    );
    for (const l of letters) expect(l.sourceQueue).toBe('rts.uplink');
    expect(letters.find((l) => l.reason.startsWith('unknown_system: '))!.attempts).toBe(1);
    expect(letters.find((l) => l.reason.startsWith('retry limit'))!.attempts).toBe(3);
    // Retries are spaced out (RTS_UPLINK_RETRY_DELAY_MS, 250 ms doubling), not handed back at once.
    expect(failedAttemptsAt).toHaveLength(3);
    expect(failedAttemptsAt[1]! - failedAttemptsAt[0]!).toBeGreaterThanOrEqual(240);
    expect(failedAttemptsAt[2]! - failedAttemptsAt[1]!).toBeGreaterThanOrEqual(490);
    expect(letters.find((l) => l.reason.startsWith('expert_owned_by_other_system: '))!.envelopeId).toBe(otherOwner.id);
    // Browsing consumed nothing.
    expect((await getJson(hub.url, '/dead-letters')).body.count).toBe(letters.length);
    // Each dead-lettering's log line names its dead letter, so on-call goes from the log to `rts dlq show <id>`.
    const logged = logLines.filter((l) => l['msg'] === 'uplink message dead-lettered').map((l) => l['deadLetterId']);
    expect(logged.slice().sort()).toEqual(letters.map((l) => l.id).sort());
    // The other system's expert is untouched.
    expect((await getJson(hub.url, '/experts/other-b:b1')).body.profile.name).toBe(profile(1).name);

    // Inspect by envelope id: body and the x-dlq-* properties.
    const shown = await getJson(hub.url, `/dead-letters/${unknownSystem.id}`);
    expect(shown.status).toBe(200);
    expect(JSON.parse(shown.body.body).id).toBe(unknownSystem.id);
    expect(shown.body.applicationProperties).toMatchObject({ 'x-dlq-reason': expect.stringMatching(/^unknown_system: /), 'x-dlq-source-queue': 'rts.uplink', 'x-dlq-attempts': 1 });
    expect(shown.body.replays).toEqual([]);
    const missing = await getJson(hub.url, '/dead-letters/no-such-letter');
    expect(missing.status).toBe(404);
    expect(missing.contentType).toMatch(/application\/problem\+json/);

    // `rts dlq list` against the live hub.
    let printed = '';
    expect(await runDlq(['list', '--url', hub.url], { stdout: { write: (s: string) => (printed += s) }, stderr: { write: () => true }, env: {} })).toBe(EXIT.ok);
    expect(printed).toContain('unknown_system');

    // Fix the cause (register the system and let it join), then replay: the message is applied.
    await registerSystem(hub.url, 'ghost-c');
    await sendUplink(amq.sender, uplink.join('ghost-c', 0, 0));
    await until('ghost-c joined', async () => (await getJson(hub!.url, '/systems/ghost-c')).body.status === 'joined');
    const replayed = await postJson(hub.url, `/dead-letters/${unknownSystem.id}/replay`, { by: 'alice', reason: 'ghost-c registered' });
    expect(replayed.status).toBe(200);
    expect(replayed.body).toMatchObject({ envelopeId: unknownSystem.id, sourceQueue: 'rts.uplink', moved: 1, recordedIn: `dead-letter-${unknownSystem.id}` });
    await until('the replayed registration applied', async () => (await getJson(hub!.url, '/experts/ghost-c:x1')).status === 200);
    const after = (await getJson(hub.url, '/dead-letters')).body.items as Summary[];
    expect(after.map((l) => l.envelopeId)).not.toContain(unknownSystem.id);
    expect(after).toHaveLength(letters.length - 1);
    expect((await postJson(hub.url, `/dead-letters/${unknownSystem.id}/replay`, {})).status).toBe(404);

    // A replay of a cause that is not fixed dead-letters again, with the replay count kept.
    const again = await postJson(hub.url, `/dead-letters/${otherOwner.id}/replay`, { by: 'bob' });
    expect(again.status).toBe(200);
    await until('the unfixed replay is back in the DLQ', async () => {
      const items = (await getJson(hub!.url, '/dead-letters')).body.items as Array<Summary & { replayCount: number }>;
      return items.some((l) => l.envelopeId === otherOwner.id && l.replayCount === 1);
    });

    await hub.stop();
    hub = undefined;
    const store = SqliteEventStore.open({ file: join(data.dir, 'telemed.sqlite') });
    try {
      const { events } = await store.readStream(`dead-letter-${unknownSystem.id}`);
      expect(events.map((e) => e.type)).toEqual(['DeadLetterReplayed']);
      // Who replayed is the caller (anonymous: this hub runs with RTS_AUTH=off); the body's by is a note.
      expect(events[0]!.data).toMatchObject({ by: 'anonymous', note: 'alice', reason: 'ghost-c registered', sourceQueue: 'rts.uplink', deadLetterReason: expect.stringMatching(/^unknown_system: /), envelopeId: unknownSystem.id, moved: 1 });
    } finally {
      await store.close();
    }
    // eslint-disable-next-line no-console
    console.log(`hub-poison: 200 good + 5 poison settled in ${goodIn} ms`);
  } finally {
    await hub?.stop();
    data.remove();
  }
});

it('without a broker the hub serves the directory and answers 503 for dead letters', async () => {
  const data = tempDir('rts-hub-embedded-');
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH: 'off' }), logger);
  try {
    expect((await postJson(hub.url, '/systems', { id: 'solo', name: 'Solo', area: 'Hubei' })).status).toBe(201);
    expect((await getJson(hub.url, '/systems/solo')).body.status).toBe('registered');
    const res = await getJson(hub.url, '/dead-letters');
    expect(res.status).toBe(503);
    expect(res.contentType).toMatch(/application\/problem\+json/);
    expect(res.body.code).toBe('service_unavailable');
    expect((await fetch(`${hub.url}/dead-letters`)).headers.get('retry-after')).toBe('5');
    // The log line says which part is missing, as the answer does.
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request refused: a part it needs is unavailable now', problem: 'service_unavailable', detail: res.body.detail }));
  } finally {
    await hub.stop();
    data.remove();
  }
});
