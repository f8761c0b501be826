// `rts dlq list|show|replay` against a fake hub (fetch), checking requests, output and exit codes.
import { runDlq } from '../../src/adapters/cli/dlq';
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
    const code = await runDlq(['list', '--limit', '5', '--url', 'http://hub:9'], { stdout: out, stderr: collector(), env: {}, fetch: fakeFetch(200, { items: [summary], count: 1 }, calls) });
    expect(code).toBe(EXIT.ok);
    expect(calls[0]!.url).toBe('http://hub:9/dead-letters?limit=5');
    expect(out.text()).toContain('dlq-1');
    expect(out.text()).toContain('reason: unknown_system');
  });

  it('shows one and replays it with who and why', async () => {
    const out = collector();
    const calls: Array<{ url: string; init: RequestInit }> = [];
    await runDlq(['show', 'env-1'], { stdout: out, stderr: collector(), env: { RTS_URL: 'http://h:1' }, fetch: fakeFetch(200, { ...summary, body: '{"id":"env-1"}', applicationProperties: {}, replays: [] }, calls) });
    expect(calls[0]!.url).toBe('http://h:1/dead-letters/env-1');
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
});
