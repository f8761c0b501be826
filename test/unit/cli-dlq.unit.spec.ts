// `rts dlq list|show|replay` against a fake hub (fetch), checking requests, output and exit codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDlq } from '../../src/adapters/cli/dlq';
import { runErasures } from '../../src/adapters/cli/erasures';
import { EXIT } from '../../src/adapters/cli/exit-codes';

const collector = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

const fakeFetch = (status: number, body: unknown, calls: Array<{ url: string; init: RequestInit }>) =>
  (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof fetch;

const summary = { id: 'dlq-1', envelopeId: 'env-1', type: 'expert.registered', systemId: 'city-x', reason: 'unknown_system', sourceQueue: 'rts.uplink', attempts: 1, deadLetteredAt: '2024-05-01T10:00:00.000Z', replayCount: 0 };

describe('rts dlq', () => {
  it('lists the dead letters from --url', async () => {
    const out = collector();
    const calls: Array<{ url: string; init: RequestInit }> = [];
    const code = await runDlq(['list', '--limit', '5', '--url', 'https://hub:9'], { stdout: out, stderr: collector(), env: {}, fetch: fakeFetch(200, { items: [summary], count: 1 }, calls) });
    expect(code).toBe(EXIT.ok);
    expect(calls[0]!.url).toBe('https://hub:9/dead-letters?limit=5');
    expect(out.text()).toContain('dlq-1');
    expect(out.text()).toContain('reason: unknown_system');
    expect(out.text()).toContain('\n1 dead letter(s)\n');
  });

  it('says when the list was cut at its limit, so its length is not read as the size of the queue', async () => {
    const out = collector();
    const code = await runDlq(['list', '--limit', '1'], { stdout: out, stderr: collector(), env: {}, fetch: fakeFetch(200, { items: [summary], count: 1, more: true }, []) });
    expect(code).toBe(EXIT.ok);
    expect(out.text()).toContain('1 dead letter(s) shown, the oldest; more are on the queue (--limit, at most 1000, shows more)');
  });

  it('shows one and replays it with who and why', async () => {
    const out = collector();
    const calls: Array<{ url: string; init: RequestInit }> = [];
    await runDlq(['show', 'env-1'], { stdout: out, stderr: collector(), env: { RTS_URL: 'https://h:1' }, fetch: fakeFetch(200, { ...summary, body: '{"id":"env-1"}', applicationProperties: {}, replays: [] }, calls) });
    expect(calls[0]!.url).toBe('https://h:1/dead-letters/env-1');
    expect(out.text()).toContain('{"id":"env-1"}');

    const code = await runDlq(['replay', 'dlq-1', '--by', 'alice', '--reason', 'registered now'], {
      stdout: out,
      stderr: collector(),
      env: {},
      fetch: fakeFetch(200, { id: 'dlq-1', sourceQueue: 'rts.uplink', moved: 1, recordedIn: 'dead-letter-env-1' }, calls),
    });
    expect(code).toBe(EXIT.ok);
    expect(calls[1]!.init.method).toBe('POST');
    expect(JSON.parse(String(calls[1]!.init.body))).toEqual({ by: 'alice', reason: 'registered now' });
    expect(out.text()).toContain('Replayed dlq-1 to rts.uplink');
  });

  it('maps refusals, hub failures and usage errors to the exit codes', async () => {
    const err = collector();
    expect(await runDlq(['show', 'nope'], { stdout: collector(), stderr: err, env: {}, fetch: fakeFetch(404, { title: 'Request failed', code: 'dead_letter_not_found', status: 404 }, []) })).toBe(EXIT.refused);
    expect(err.text()).toContain('dead_letter_not_found');
    expect(await runDlq(['list'], { stdout: collector(), stderr: collector(), env: {}, fetch: fakeFetch(503, { title: 'The service is not available', code: 'service_unavailable' }, []) })).toBe(EXIT.serverError);
    expect(await runDlq(['replay'], { stdout: collector(), stderr: collector(), env: {} })).toBe(EXIT.usage);
    expect(await runDlq(['list', '--limit', '0'], { stdout: collector(), stderr: collector(), env: {} })).toBe(EXIT.usage);
    expect(await runDlq(['purge'], { stdout: collector(), stderr: collector(), env: {} })).toBe(EXIT.usage);
    const help = collector();
    expect(await runDlq(['--help'], { stdout: help, stderr: collector(), env: {} })).toBe(EXIT.ok);
    expect(help.text()).toContain('rts dlq replay ID');
  });
  describe('access control (the hub asks every caller for a token)', () => {
    type Call = { url: string; init: RequestInit };
    const authOf = (c: Call) => (c.init.headers as Record<string, string>)['authorization'];
    /** A hub that wants `Bearer good` on /dead-letters and hands it out at its development login. */
    const hubWanting = (calls: Call[], devLogin = true) =>
      (async (url: string, init: RequestInit) => {
        calls.push({ url, init });
        const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
        if (url.endsWith('/auth/dev-login')) return devLogin ? json(200, { token: 'good' }) : json(404, { title: 'Not found', status: 404 });
        if (authOf({ url, init }) !== 'Bearer good') return json(401, { title: 'Authentication is required', status: 401, code: 'unauthenticated' });
        return json(200, { items: [summary], count: 1 });
      }) as unknown as typeof fetch;

    it('sends the operator token of RTS_TOKEN', async () => {
      const calls: Call[] = [];
      const out = collector();
      expect(await runDlq(['list'], { stdout: out, stderr: collector(), env: { RTS_TOKEN: 'good' }, fetch: hubWanting(calls) })).toBe(EXIT.ok);
      expect(calls.map(authOf)).toEqual(['Bearer good']);
      expect(out.text()).toContain('dlq-1');
    });

    it('without RTS_TOKEN, logs in as an operator at a local hub and asks again', async () => {
      const calls: Call[] = [];
      expect(await runDlq(['list'], { stdout: collector(), stderr: collector(), env: {}, fetch: hubWanting(calls) })).toBe(EXIT.ok);
      expect(calls.map((c) => c.url)).toEqual(['http://127.0.0.1:8080/dead-letters', 'http://127.0.0.1:8080/auth/dev-login', 'http://127.0.0.1:8080/dead-letters']);
      expect(JSON.parse(String(calls[1]!.init.body))).toEqual({ role: 'operator' });
      expect(authOf(calls[2]!)).toBe('Bearer good');
    });

    it('a token that is refused: exit 3 and what to do, without trying the development login', async () => {
      const calls: Call[] = [];
      const err = collector();
      expect(await runDlq(['list'], { stdout: collector(), stderr: err, env: { RTS_TOKEN: 'expired' }, fetch: hubWanting(calls) })).toBe(EXIT.refused);
      expect(calls).toHaveLength(1);
      expect(err.text()).toContain('unauthenticated');
      expect(err.text()).toContain("dead letters need an operator's token: set RTS_TOKEN");
    });

    it('a hub without a development login: the 401 and the hint', async () => {
      const err = collector();
      expect(await runDlq(['list'], { stdout: collector(), stderr: err, env: {}, fetch: hubWanting([], false) })).toBe(EXIT.refused);
      expect(err.text()).toContain('set RTS_TOKEN');
    });
  });

  it('names the sub-command a typo is near (dlq and erasures), and repeats nothing typed', async () => {
    const err = collector();
    expect(await runDlq(['lsit'], { stdout: collector(), stderr: err, env: {} })).toBe(EXIT.usage);
    expect(err.text()).toContain('rts: unknown dlq command (did you mean list?); the commands are list, show, replay and discard\n');
    const cpr = collector();
    expect(await runDlq(['251248-1234'], { stdout: collector(), stderr: cpr, env: {} })).toBe(EXIT.usage);
    expect(cpr.text()).toContain('rts: unknown dlq command; the commands are');
    expect(cpr.text()).not.toContain('251248');
    const erasures = collector();
    expect(await runErasures(['aply', '--from', '/nowhere'], { stdout: collector(), stderr: erasures, env: {} })).toBe(EXIT.usage);
    expect(erasures.text()).toContain('rts: unknown erasures command (did you mean apply?); the commands are list and apply\n');
  });

  it('words option errors as the other commands do, repeating nothing typed', async () => {
    const err = collector();
    expect(await runDlq(['list', '--251248-1234'], { stdout: collector(), stderr: err, env: {} })).toBe(EXIT.usage);
    expect(err.text()).toContain('rts: unknown option\n');
    expect(err.text()).not.toContain('251248');
    const missing = collector();
    expect(await runDlq(['list', '--limit'], { stdout: collector(), stderr: missing, env: {} })).toBe(EXIT.usage);
    expect(missing.text()).toContain('option --limit needs a value');
  });

  it('discards one with its reason, and answers a discarded id with the discard record', async () => {
    const out = collector();
    const calls: Array<{ url: string; init: RequestInit }> = [];
    const code = await runDlq(['discard', 'dlq-1', '--reason', 'a duplicate', '--url', 'https://hub:9'], {
      stdout: out,
      stderr: collector(),
      env: { USER: 'alice' },
      fetch: fakeFetch(200, { id: 'dlq-1', envelopeId: 'env-1', removed: 1, discard: {}, recordedIn: 'dead-letter-env-1' }, calls),
    });
    expect(code).toBe(EXIT.ok);
    expect(calls[0]!.url).toBe('https://hub:9/dead-letters/dlq-1/discard');
    expect(calls[0]!.init.method).toBe('POST');
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ reason: 'a duplicate' }); // no $USER: the token's subject is who
    expect(out.text()).toBe('Discarded dlq-1 (1 message removed from the dead letter queue); recorded in dead-letter-env-1\n');

    const err = collector();
    const gone = { type: '/problems/dead_letter_discarded', title: 'The dead-lettered message was discarded', status: 410, code: 'dead_letter_discarded', detail: 'the dead letter was discarded at 2026-12-01T04:00:00.000Z', discard: { at: '2026-12-01T04:00:00.000Z', by: 'ops-7', reason: 'a duplicate' } };
    expect(await runDlq(['discard', 'dlq-1', '--reason', 'again'], { stdout: collector(), stderr: err, env: {}, fetch: fakeFetch(410, gone, []) })).toBe(EXIT.refused);
    expect(err.text()).toBe(
      'rts: the hub refused the request: The dead-lettered message was discarded (HTTP 410, dead_letter_discarded)\n  the dead letter was discarded at 2026-12-01T04:00:00.000Z\n  discarded 2026-12-01T04:00:00.000Z by ops-7 (a duplicate)\n',
    );
  });

  it('refuses a discard without a reason, or with --by, before sending anything', async () => {
    const calls: Array<{ url: string; init: RequestInit }> = [];
    for (const argv of [['discard', 'dlq-1'], ['discard', 'dlq-1', '--reason', '  '], ['discard', 'dlq-1', '--reason', 'x'.repeat(501)], ['discard', 'dlq-1', '--reason', 'dup', '--by', 'alice'], ['discard', '--reason', 'dup']]) {
      const err = collector();
      expect({ argv, code: await runDlq(argv, { stdout: collector(), stderr: err, env: {}, fetch: fakeFetch(200, {}, calls) }) }).toEqual({ argv, code: EXIT.usage });
      expect(err.text()).toContain("Run 'rts dlq --help' for usage.");
    }
    expect(calls).toEqual([]);
    const help = collector();
    await runDlq(['--help'], { stdout: help, stderr: collector(), env: {} });
    expect(help.text()).toContain('rts dlq discard ID --reason TEXT');
  });

  it('does not send a discard twice after a network error', async () => {
    const calls: string[] = [];
    const refused = (async (url: string) => {
      calls.push(url);
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    }) as unknown as typeof fetch;
    expect(await runDlq(['discard', 'dlq-1', '--reason', 'dup'], { stdout: collector(), stderr: collector(), env: { RTS_TOKEN: 'good' }, fetch: refused })).toBe(EXIT.unreachable);
    expect(calls).toEqual(['http://127.0.0.1:8080/dead-letters/dlq-1/discard']);
  });

  it('does not send a replay twice after a network error (its answer may be what was lost)', async () => {
    const calls: string[] = [];
    const refused = (async (url: string) => {
      calls.push(url);
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    }) as unknown as typeof fetch;
    const err = collector();
    expect(await runDlq(['replay', 'dlq-1'], { stdout: collector(), stderr: err, env: { RTS_TOKEN: 'good' }, fetch: refused })).toBe(EXIT.unreachable);
    expect(calls).toEqual(['http://127.0.0.1:8080/dead-letters/dlq-1/replay']);
    expect(err.text()).toBe('rts: cannot reach the hub at http://127.0.0.1:8080: connection refused (is the hub running?)\n');
  });

  it.each([['replay'], ['discard']])('a %s whose answer was lost (the connection closed after it was sent) says it may be done, and how to look', async (action) => {
    const reset = (async () => {
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    }) as unknown as typeof fetch;
    const err = collector();
    const argv = action === 'discard' ? ['discard', 'dlq-1', '--reason', 'dup'] : ['replay', 'dlq-1'];
    expect(await runDlq(argv, { stdout: collector(), stderr: err, env: { RTS_TOKEN: 'good' }, fetch: reset })).toBe(EXIT.unreachable);
    expect(err.text()).toContain(`The ${action} was sent and may have been done: run 'rts dlq show dlq-1' before you ${action} it again`);
  });

  it('a replay refused at connect (nothing sent) says nothing of being done', async () => {
    const refused = (async () => {
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    }) as unknown as typeof fetch;
    const err = collector();
    await runDlq(['replay', 'dlq-1'], { stdout: collector(), stderr: err, env: { RTS_TOKEN: 'good' }, fetch: refused });
    expect(err.text()).not.toContain('may have been done');
  });
});

describe('rts dlq and rts erasures apply: answers that are not the hub API', () => {
  /** A server that answers every request with this status, content type and body text. */
  const answering = (status: number, body: string, headers: Record<string, string> = {}) =>
    (async () => new Response(body, { status, headers: { 'content-type': 'application/json', ...headers } })) as unknown as typeof fetch;
  const html404 = answering(404, '<html><body>Not Found</body></html>', { 'content-type': 'text/html' });
  const html502 = answering(502, '<html><body>Bad Gateway</body></html>', { 'content-type': 'text/html' });
  const busy = answering(429, JSON.stringify({ title: 'Too many requests', status: 429, code: 'rate_limited' }), { 'retry-after': '30' });
  const emptyObject = answering(200, '{}');
  const run = async (argv: string[], fetch: typeof globalThis.fetch) => {
    const out = collector();
    const err = collector();
    const code = await runErasuresOrDlq(argv, { stdout: out, stderr: err, env: { RTS_TOKEN: 'good' }, fetch });
    return { code, out: out.text(), err: err.text() };
  };
  // `apply`: rts erasures apply of a record of one patient's erasure; the rest: rts dlq.
  let record = '';
  const runErasuresOrDlq = (argv: string[], deps: Parameters<typeof runDlq>[1]) => (argv[0] === 'apply' ? runErasures([...argv, '--from', record], deps) : runDlq(argv, deps));
  beforeAll(() => {
    record = join(mkdtempSync(join(tmpdir(), 'rts-erasures-')), 'erasures.jsonl');
    writeFileSync(record, `${JSON.stringify({ event: 'PatientErased', patientKey: `p${'a'.repeat(32)}`, erasedAt: '2026-12-01T10:00:00.000Z' })}\n`);
  });
  afterAll(() => rmSync(join(record, '..'), { recursive: true, force: true }));

  it.each([['list'], ['show', 'dlq-1'], ['replay', 'dlq-1'], ['apply']])('%s: a 404 that is not the hub\'s is a wrong URL (exit 4), as the help says', async (...argv) => {
    const r = await run(argv, html404);
    expect(r).toEqual(expect.objectContaining({ code: EXIT.unreachable }));
    expect(r.err).toContain('is the URL right?');
  });

  it.each([['list'], ['show', 'dlq-1'], ['apply']])('%s: a hub that stays busy (429) is exit 5, to send again later, not a refusal', async (...argv) => {
    const r = await run(argv, busy);
    expect(r).toEqual(expect.objectContaining({ code: EXIT.serverError }));
    expect(r.err).toContain('HTTP 429');
    expect(r.err).not.toContain('refused');
  });

  it.each([['list'], ['show', 'dlq-1'], ['replay', 'dlq-1'], ['discard', 'dlq-1', '--reason', 'dup'], ['apply']])('%s: a 200 that is not what the hub sends is exit 5, never a success', async (...argv) => {
    const r = await run(argv, emptyObject);
    expect(r).toEqual(expect.objectContaining({ code: EXIT.serverError }));
    expect(r.err).toContain('not what the hub API sends');
    expect(r.out).not.toMatch(/empty|Done|Replayed|Discarded/);
  });

  it('a proxy\'s 502 page is said to be not the hub\'s answer (exit 5)', async () => {
    const r = await run(['list'], html502);
    expect(r.code).toBe(EXIT.serverError);
    expect(r.err).toContain('not an answer of the hub API');
    expect(r.err).not.toContain('HTTP 502 (HTTP 502)');
  });
});

describe('rts dlq and rts erasures apply: --timeout and RTS_TIMEOUT, as upload and review take them', () => {
  /** A local server that takes every request and never answers it. */
  const silentHub = async () => {
    const held: ServerResponse[] = [];
    const server = createServer((_req, res) => void held.push(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requests: () => held.length,
      close: async () => {
        for (const res of held) res.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  };
  let record = '';
  beforeAll(() => {
    record = join(mkdtempSync(join(tmpdir(), 'rts-erasures-')), 'erasures.jsonl');
    writeFileSync(record, `${JSON.stringify({ event: 'PatientErased', patientKey: `p${'b'.repeat(32)}`, erasedAt: '2026-12-01T10:00:00.000Z' })}\n`);
  });
  afterAll(() => rmSync(join(record, '..'), { recursive: true, force: true }));
  const runEither = (argv: string[], deps: Parameters<typeof runDlq>[1]) => (argv[0] === 'apply' ? runErasures([...argv, '--from', record], deps) : runDlq(argv, deps));
  const runOn = async (argv: string[], env: Record<string, string>, fetch?: typeof globalThis.fetch) => {
    const out = collector();
    const err = collector();
    const code = await runEither(argv, { stdout: out, stderr: err, env: { RTS_TOKEN: 'good', ...env }, ...(fetch ? { fetch } : {}) });
    return { code, out: out.text(), err: err.text() };
  };

  it.each([['list'], ['show', 'dlq-1'], ['discard', 'dlq-1', '--reason', 'dup'], ['apply']])('%s --timeout 1: a hub that never answers is given up after it, exit 4', async (...argv) => {
    const hub = await silentHub();
    try {
      const r = await runOn([...argv, '--timeout', '1', '--url', hub.url], {});
      expect(r.code).toBe(EXIT.unreachable);
      expect(r.err).toContain(`cannot reach the hub at ${hub.url}: no answer within 1 s`);
      expect(hub.requests()).toBeGreaterThan(0);
    } finally {
      await hub.close();
    }
  });

  it.each([['list'], ['replay', 'dlq-1'], ['apply']])('%s: RTS_TIMEOUT is the wait when --timeout is not given', async (...argv) => {
    const hub = await silentHub();
    try {
      const r = await runOn(argv, { RTS_URL: hub.url, RTS_TIMEOUT: '1' });
      expect(r.code).toBe(EXIT.unreachable);
      expect(r.err).toContain('no answer within 1 s');
    } finally {
      await hub.close();
    }
  });

  it.each([['list'], ['show', 'dlq-1'], ['apply']])('%s: a wrong --timeout or RTS_TIMEOUT is a usage error, worded as for upload, before anything is sent', async (...argv) => {
    const calls: Array<{ url: string; init: RequestInit }> = [];
    const hub = fakeFetch(200, {}, calls);
    for (const [extra, env, message] of [
      [['--timeout', '0'], {}, '--timeout must be a whole number from 1 to 600'],
      [['--timeout', 'soon'], {}, '--timeout must be a whole number from 1 to 600'],
      [[], { RTS_TIMEOUT: '601' }, 'RTS_TIMEOUT must be a whole number from 1 to 600'],
    ] as const) {
      const r = await runOn([...argv, ...extra], env, hub);
      expect(r.code).toBe(EXIT.usage);
      expect(r.err).toContain(`rts: ${message}\n`);
    }
    expect(calls).toEqual([]);
  });

  it('rts erasures list reads files only: --timeout is refused there, as --url is', async () => {
    const err = collector();
    expect(await runErasures(['list', '--from', record, '--timeout', '5'], { stdout: collector(), stderr: err, env: {} })).toBe(EXIT.usage);
    expect(err.text()).toContain('--timeout belongs to rts erasures apply');
  });

  it('their help names --timeout and RTS_TIMEOUT', async () => {
    for (const runIt of [runDlq, runErasures]) {
      const help = collector();
      expect(await runIt(['--help'], { stdout: help, stderr: collector(), env: {} })).toBe(EXIT.ok);
      expect(help.text()).toContain('[--timeout S]');
      expect(help.text().replace(/\s+/g, ' ')).toContain("seconds to wait for the hub's answer, 1-600 (default: $RTS_TIMEOUT, else 60)");
    }
  });
});
