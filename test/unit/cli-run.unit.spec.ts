import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { run } from '../../src/adapters/cli/run';

/**
 * run() against a scripted fetch: what reaches the hub, which exit code each kind of answer gives, and what
 * the user reads. The real hub is driven in test/e2e/cli.e2e.spec.ts.
 */
const CPR = '251248-1234';
const URL_ = 'https://hub.test:8080';

type Step = Response | Error;

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers } });

const networkError = (code: string): Error => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });

const harness = async (argv: string[], steps: Step[], env: Record<string, string> = {}, zone = 'UTC') => {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const step = steps.shift();
    if (!step) throw new Error('unexpected request');
    if (step instanceof Error) throw step;
    return step;
  }) as unknown as typeof globalThis.fetch;
  let out = '';
  let err = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: { RTS_URL: URL_, ...env },
    fetch,
    zone,
    now: () => new Date('2026-05-10T12:00:00Z'),
    newObservationId: () => 'rts-test-id',
    http: { retryDelayMs: 1, timeoutMs: 1000 },
  });
  return { code, out, err, calls, bodies: calls.map((c) => (c.init.body ? JSON.parse(String(c.init.body)) : undefined)) };
};

const upload = ['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-05-10T08:15:00+02:00'];
const stored = (status: number) => json(status, { uniqueId: '2.25.1', observationId: 'rts-test-id', measuredAt: '2026-05-10T06:15:00Z', document: '/documents/2.25.1' });

describe('run upload', () => {
  it('posts the reading with a generated observation id and reports the document', async () => {
    const h = await harness(upload, [stored(201)]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.calls[0]!.url).toBe(`${URL_}/observations`);
    expect(h.bodies[0]).toEqual({ observationId: 'rts-test-id', patientId: CPR, systolic: 126, diastolic: 70, measuredAt: '2026-05-10T08:15:00+02:00' });
    // The message, then the id on a line of its own (a screen reader read the 39 digits out mid-sentence).
    expect(h.out).toBe('Uploaded: 126/70 mmHg at 2026-05-10 06:15:00 +00:00\nDocument id: 2.25.1\n');
  });

  it('says "already stored" when the hub had the observation id (200)', async () => {
    const h = await harness([...upload, '--id', 'mine-1'], [stored(200)]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.bodies[0]).toMatchObject({ observationId: 'mine-1' });
    expect(h.out).toMatch(/^Already stored, nothing added: 126\/70 mmHg at [^\n]*; observation id mine-1 was uploaded before\nDocument id: 2\.25\.1\n$/);
  });

  it('says when a reading stored before was corrected since, and names the document that holds it now', async () => {
    const h = await harness([...upload, '--id', 'mine-1'], [json(200, { uniqueId: '2.25.1', observationId: 'mine-1', measuredAt: '2026-05-10T06:15:00Z', document: '/documents/2.25.1', currentUniqueId: '2.25.7' })]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.out).toMatch(/^Already stored, nothing added: [^\n]*\nDocument id: 2\.25\.1\nIt was corrected since: these values are replaced\. Current document id: 2\.25\.7\n$/);
  });

  it('retries a network error once with the same observation id; a 200 then means the first one got through', async () => {
    const h = await harness(upload, [networkError('ECONNRESET'), stored(200)]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.calls).toHaveLength(2);
    expect(h.bodies[1]).toEqual(h.bodies[0]);
    expect(h.out).toMatch(/^Uploaded: /);
  });

  it('exits 4 when the hub cannot be reached twice, naming the URL and not the patient', async () => {
    const h = await harness(upload, [networkError('ECONNREFUSED'), networkError('ECONNREFUSED')]);
    expect(h.code).toBe(EXIT.unreachable);
    expect(h.calls).toHaveLength(2);
    expect(h.err).toBe(`rts: cannot reach the hub at ${URL_}: connection refused (is the hub running?)\n`);
  });

  it('exits 3 on a problem, printing title and field errors without a stack, and no detail that only restates them', async () => {
    const problem = {
      type: '/problems/implausible_observation',
      title: 'The observation has implausible values',
      status: 422,
      detail: 'the observation is not valid: systolic must be above the diastolic pressure',
      code: 'implausible_observation',
      errors: [{ path: 'systolic', message: 'must be above the diastolic pressure' }],
    };
    const h = await harness(upload, [json(422, problem)]);
    expect(h.code).toBe(EXIT.refused);
    expect(h.calls).toHaveLength(1);
    expect(h.err).toContain('The observation has implausible values (HTTP 422, implausible_observation)');
    expect(h.err).not.toContain('the observation is not valid');
    expect(h.err.match(/must be above the diastolic pressure/g)).toHaveLength(1);
    // Named by the flag that gave it, with what to do.
    expect(h.err).toContain('- --systolic: must be above the diastolic pressure\n    The systolic pressure is the higher number: check that --systolic and --diastolic are not swapped.\n');
    expect(h.err).not.toMatch(/\bat .*\(.*:\d+:\d+\)/);
  });

  it('prints a detail that says more than the field errors', async () => {
    const problem = {
      type: '/problems/invalid_observation',
      title: 'The observation is not valid',
      status: 400,
      detail: 'the body does not match the schema of POST /observations',
      code: 'invalid_observation',
      errors: [{ path: 'systolic', message: 'expected number, received string' }],
    };
    const h = await harness(upload, [json(400, problem)]);
    expect(h.code).toBe(EXIT.refused);
    expect(h.err).toContain('  the body does not match the schema of POST /observations\n  - --systolic: expected number, received string');
  });

  it("names the hub's fields by the flags that gave them (measuredAt is --at), with a suggestion for the common ones", async () => {
    const problem = (errors: { path: string; message: string }[]) => ({
      type: '/problems/implausible_observation',
      title: 'The observation has implausible values',
      status: 422,
      detail: `the observation is not valid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
      code: 'implausible_observation',
      errors,
    });
    const future = await harness(upload, [json(422, problem([{ path: 'measuredAt', message: 'lies in the future' }]))]);
    expect(future.code).toBe(EXIT.refused);
    expect(future.err).toBe(
      'rts: the hub refused the request: The observation has implausible values (HTTP 422, implausible_observation)\n' +
        '  - --at: lies in the future\n' +
        '    Give the time you measured, or leave --at out (the time is then now).\n',
    );
    const range = await harness(upload, [json(422, problem([{ path: 'diastolic', message: 'must be between 30 and 200 mmHg' }, { path: 'systolic.unit', message: 'unit must be mmHg' }]))]);
    expect(range.err).toContain('  - --diastolic: must be between 30 and 200 mmHg\n    Check the number given with --diastolic.\n');
    expect(range.err).toContain('  - --systolic (unit): unit must be mmHg\n');
    const born = await harness(upload, [json(422, problem([{ path: 'measuredAt', message: "lies before the patient's date of birth" }, { path: 'patientId', message: 'x' }, { path: 'observationId', message: 'y' }, { path: 'other', message: 'z' }]))]);
    expect(born.err).toContain("  - --at: lies before the patient's date of birth\n    Check the date in --at (its year), and the CPR number.\n");
    expect(born.err).toContain('  - --patient: x\n  - --id: y\n  - other: z\n');
    // A review: the interval's fields are --from and --to, or --days when the interval came from it.
    const interval = { type: '/problems/invalid_interval', title: 'The interval is not valid', status: 422, code: 'invalid_interval', errors: [{ path: 'body.from', message: 'lies in the future (without a to, the interval ends now)' }] };
    const fromAlone = await harness(['review', '--patient', CPR, '--from', '2026-06-01T00:00:00Z'], [json(422, interval)]);
    expect(fromAlone.code).toBe(EXIT.refused);
    expect(fromAlone.err).toContain('  - --from: lies in the future');
    const days = await harness(['review', '--patient', CPR, '--days', '7'], [json(422, interval)]);
    expect(days.err).toContain('  - --days: lies in the future');
  });

  it('exits 4, "is the URL right?", on a 4xx that is not a problem document: not the hub refusing the input (3)', async () => {
    for (const status of [403, 405, 401]) {
      const h = await harness(upload, [new Response('<html>nope</html>', { status })]);
      expect({ status, code: h.code }).toEqual({ status, code: EXIT.unreachable });
      // Said once, and with what to check: the URL may not be a hub at all.
      expect(h.err.match(new RegExp(`HTTP ${status}`, 'g'))).toHaveLength(1);
      expect(h.err).toContain('is the URL right?');
      expect(h.err).not.toContain('refused');
    }
    // A 5xx that is no problem document says what may have answered (python's http.server answers POST with 501).
    const h = await harness(upload, [new Response('<html>Unsupported method</html>', { status: 501 })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('not an answer of the hub API (a proxy in front of the hub, or no hub at');
  });

  it('exits 4, "is the URL right?", on a 404 for the route itself (a wrong path in --url, or not a hub), not 3', async () => {
    for (const answer of [json(404, { type: '/problems/not_found', title: 'No such resource', status: 404, code: 'not_found' }), new Response('<html>not here</html>', { status: 404 })]) {
      const h = await harness(upload, [answer]);
      expect(h.code).toBe(EXIT.unreachable);
      expect(h.err).toContain('is the URL right?');
      expect(h.err).not.toContain('refused');
    }
  });

  it('exits 5 on a server error, with the request id for the log', async () => {
    const h = await harness(upload, [json(500, { type: '/problems/internal_error', title: 'Internal error', status: 500, detail: 'an internal error occurred', code: 'internal_error' }, { 'x-request-id': 'req-42' })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('the hub failed: Internal error (HTTP 500, internal_error)');
    expect(h.err).toContain('request id req-42');
    // It may be stored all the same (a proxy's 504, a commit that went through): the id to send it again with.
    expect(h.err).toContain('may be stored all the same');
    expect(h.err).toContain('Run the same command again with --id rts-test-id');
  });

  it('a proxy\'s 502 page on an upload: exit 5 and the id to send it again with; a 429 says it was not taken', async () => {
    const h = await harness(upload, [new Response('<html>Bad Gateway</html>', { status: 502 })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('--id rts-test-id');
    const busy = await harness(upload, [json(429, { type: '/problems/rate_limited', title: 'Too many requests', status: 429, code: 'rate_limited' }), json(429, { type: '/problems/rate_limited', title: 'Too many requests', status: 429, code: 'rate_limited' }), json(429, { type: '/problems/rate_limited', title: 'Too many requests', status: 429, code: 'rate_limited' })]);
    expect(busy.code).toBe(EXIT.serverError);
    expect(busy.err).toContain('did not take the request');
    expect(busy.err).not.toContain('may be stored');
  });

  it('exits 5 when a 2xx answer is not the API', async () => {
    const h = await harness(upload, [new Response('hello', { status: 200 })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('not what the hub API sends');
    expect(h.err).toContain('--id rts-test-id');
  });

  it('exits 5, not "Already stored at Invalid DateTime", for an answer of the right shape with a time that is none', async () => {
    const h = await harness(upload, [json(200, { uniqueId: '2.25.1', observationId: 'rts-test-id', measuredAt: 'garbage', document: '/documents/2.25.1' })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.out).toBe('');
  });
});

/** The hub's answer to GET /patients/{id}/observations: readings as [uniqueId, measuredAt, systolic, diastolic]. */
const answerOf = (from: string, to: string, readings: readonly (readonly [string, string, number, number])[]) => ({
  from,
  to,
  bounds: '[from,to)',
  count: readings.length,
  observations: readings.map(([uniqueId, measuredAt, s, d]) => ({ uniqueId, measuredAt, systolic: { value: s, unit: 'mmHg' }, diastolic: { value: d, unit: 'mmHg' } })),
});

/** The review's request: POST /observations/search with the patient and the interval in the body (no CPR number in the URL). */
const expectSearch = (h: { calls: { url: string; init: RequestInit }[] }, index: number, from: string, to: string): void => {
  expect(h.calls[index]!.url).toBe(`${URL_}/observations/search`);
  expect(h.calls[index]!.init.method).toBe('POST');
  expect(JSON.parse(String(h.calls[index]!.init.body))).toEqual({ patientId: CPR, from, to });
};

describe('run review', () => {
  const list = answerOf('2026-05-03T12:00:00Z', '2026-05-10T12:00:01Z', [
    ['2.25.2', '2026-05-09T07:00:00Z', 131, 85],
    ['2.25.1', '2026-05-05T07:00:00Z', 126, 70],
  ]);

  it('asks for the last N days and prints a table in time order and a chart', async () => {
    const h = await harness(['review', '--patient', CPR, '--days', '7'], [json(200, list)], { LANG: 'C.UTF-8' });
    expect(h.code).toBe(EXIT.ok);
    // Ending 10 minutes ahead, as the page does: a reading the hub took with a time up to 5 minutes ahead is listed.
    expectSearch(h, 0, '2026-05-03T12:00:00Z', '2026-05-10T12:10:00Z');
    const lines = h.out.split('\n');
    const first = lines.findIndex((l) => l.startsWith('Tue 2026-05-05 07:00'));
    const second = lines.findIndex((l) => l.startsWith('Sat 2026-05-09 07:00'));
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(first);
    expect(lines[first]).toMatch(/126 mmHg\s+70 mmHg$/);
    // The summary the web page gives: count and average, the range of each series, and the latest reading.
    expect(h.out).toContain('\n2 readings, average 129/78 mmHg\nSystolic: lowest 126, highest 131 mmHg\nDiastolic: lowest 70, highest 85 mmHg\nLatest: 131/85 mmHg on 2026-05-09 07:00\n');
    expect(h.out).toContain('▲ systolic  ▼ diastolic');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('exits 5, not an unexpected RangeError, for a reading no hub would send (1e300 mmHg)', async () => {
    const bad = { ...list, observations: [{ ...list.observations[0]!, systolic: { value: 1e300, unit: 'mmHg' } }] };
    const h = await harness(['review', '--patient', CPR, '--days', '7'], [json(200, bad)]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('not what the hub API sends');
  });

  it("counts the days by the hub's clock when this machine's is more than a minute off (its Date header)", async () => {
    // This machine says 12:00; the hub's clock is 12:20, and it stored a reading at 12:24 (5 minutes ahead of it).
    const hubDate = { date: new Date('2026-05-10T12:20:00Z').toUTCString() };
    const h = await harness(['review', '--patient', CPR, '--days', '7'], [json(200, list, hubDate), json(200, list, hubDate)]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.calls).toHaveLength(2);
    expectSearch(h, 1, '2026-05-03T12:20:00Z', '2026-05-10T12:30:00Z');
    expect(h.err).toBe("rts: this machine's clock is 20 minutes behind the hub's: the last 7 days are counted by the hub's clock\n");
    // Ahead of the hub: the interval moves back.
    const behind = { date: new Date('2026-05-10T10:00:00Z').toUTCString() };
    const h2 = await harness(['review', '--patient', CPR, '--days', '1'], [json(200, list, behind), json(200, list, behind)]);
    expectSearch(h2, 1, '2026-05-09T10:00:00Z', '2026-05-10T10:10:00Z');
    expect(h2.err).toContain('120 minutes ahead of the hub');
  });

  it('asks once when the clocks agree within a minute, and never re-asks an interval given with --from/--to', async () => {
    const close = await harness(['review', '--patient', CPR, '--days', '7'], [json(200, list, { date: new Date('2026-05-10T12:00:50Z').toUTCString() })]);
    expect(close.calls).toHaveLength(1);
    expect(close.err).toBe('');
    const given = await harness(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00Z', '--to', '2026-05-08T00:00:00Z'], [json(200, list, { date: new Date('2026-05-11T12:00:00Z').toUTCString() })]);
    expect(given.calls).toHaveLength(1);
  });

  it('--days 366 asks for 366 days exactly (the hub refuses wider), ending 10 minutes ahead', async () => {
    const h = await harness(['review', '--patient', CPR, '--days', '366'], [json(200, list)]);
    expectSearch(h, 0, '2025-05-09T12:10:00Z', '2026-05-10T12:10:00Z');
  });

  it('--from without --to ends 10 minutes ahead, as --days does, so a reading stored a few minutes ahead is listed', async () => {
    const h = await harness(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00+02:00'], [json(200, list)]);
    expect(h.code).toBe(EXIT.ok);
    expectSearch(h, 0, '2026-05-01T00:00:00+02:00', '2026-05-10T12:10:00Z');
    // Up to 10 minutes more than 366 days back starts 366 days back, as --days 366 does; further back is a usage
    // error naming --from (the hub refused it naming body.to, which the user never gave), and nothing is sent.
    const year = await harness(['review', '--patient', CPR, '--from', '2025-05-09T12:05:00Z'], [json(200, list)]);
    expectSearch(year, 0, '2025-05-09T12:10:00Z', '2026-05-10T12:10:00Z');
    const edge = await harness(['review', '--patient', CPR, '--from', '2025-05-09T12:00:00Z'], [json(200, list)]);
    expectSearch(edge, 0, '2025-05-09T12:10:00Z', '2026-05-10T12:10:00Z');
    const older = await harness(['review', '--patient', CPR, '--from', '2025-05-09T11:59:00Z'], [json(200, list)]);
    expect({ code: older.code, calls: older.calls.length, err: older.err }).toEqual({ code: EXIT.usage, calls: 0, err: 'rts: --from lies more than 366 days back: give --to as well (at most 366 days after --from), or a later --from\n' });
    // A --from past that end goes alone: the hub's refusal then names --from, not a --to the user never gave.
    const future = await harness(['review', '--patient', CPR, '--from', '2026-05-10T12:10:00Z'], [json(200, list)]);
    expect(future.bodies[0]).toEqual({ patientId: CPR, from: '2026-05-10T12:10:00Z' });
  });

  it("--from without --to is counted up to the hub's clock when this machine's is more than a minute off; one day is singular", async () => {
    const hubDate = { date: new Date('2026-05-10T12:20:00Z').toUTCString() };
    const h = await harness(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00Z'], [json(200, list, hubDate), json(200, list, hubDate)]);
    expect(h.calls).toHaveLength(2);
    expectSearch(h, 1, '2026-05-01T00:00:00Z', '2026-05-10T12:30:00Z');
    expect(h.err).toBe("rts: this machine's clock is 20 minutes behind the hub's: the interval from --from is counted up to the hub's clock\n");
    const one = await harness(['review', '--patient', CPR, '--days', '1'], [json(200, list, hubDate), json(200, list, hubDate)]);
    expect(one.err).toBe("rts: this machine's clock is 20 minutes behind the hub's: the last 1 day is counted by the hub's clock\n");
  });

  it('passes --from and --to as given', async () => {
    const h = await harness(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00+02:00', '--to', '2026-05-08T00:00:00+02:00'], [json(200, { ...list, count: 0, observations: [] })]);
    expect(h.code).toBe(EXIT.ok);
    expectSearch(h, 0, '2026-05-01T00:00:00+02:00', '2026-05-08T00:00:00+02:00');
    // Said in words, with no empty chart after it (it was 19 lines of axes).
    expect(h.out).toMatch(/\n\nNo readings in this interval\.\n$/);
    expect(h.out).not.toContain('mmHg');
    expect(h.out).not.toContain('(no readings)');
  });

  it('a patient the hub has no document for has no readings yet: exit 0, as the web page says', async () => {
    const h = await harness(['review', '--patient', CPR], [json(404, { type: '/problems/unknown_patient', title: 'No document is registered for this patient', status: 404, detail: 'no document is registered for this patient', code: 'unknown_patient' })]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.out).toBe('No readings have been uploaded for this patient yet.\n');
    expect(h.err).toBe('');
  });

  it('across a change of summer time, the header names both offsets and each reading its own', async () => {
    const dst = answerOf('2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z', [
      ['2.25.1', '2026-10-25T00:30:00Z', 120, 80],
      ['2.25.2', '2026-10-25T01:30:00Z', 121, 80.25],
    ]);
    const h = await harness(['review', '--patient', CPR, '--from', '2026-10-25T00:00:00+02:00', '--to', '2026-10-26T00:00:00+01:00'], [json(200, dst)], {}, 'Europe/Copenhagen');
    expect(h.code).toBe(EXIT.ok);
    const out = h.out.replace(/\n {2}/g, ' '); // the header is wrapped at 80 columns
    expect(out).toContain('(local time, UTC+02:00 to UTC+01:00; each reading with its own)');
    expect(out).toContain('Sun 2026-10-25 02:30 UTC+02:00');
    expect(out).toContain('Sun 2026-10-25 02:30 UTC+01:00');
    expect(out).toContain('80.25 mmHg'); // as stored, not rounded to 80.3
  });
});

describe('run upload: a hub that takes the reading and holds its answer', () => {
  // A real local server that stores the reading (by observation id, as the hub does) but answers only when the
  // test lets it: the CLI's timeout runs out while the reading is stored.
  const slowHub = async () => {
    const stored = new Map<string, number>();
    const held: ServerResponse[] = [];
    let answering = false;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        const id = (JSON.parse(text) as { observationId: string }).observationId;
        const known = stored.has(id);
        if (!known) stored.set(id, stored.size + 1);
        if (!answering) return void held.push(res);
        res.writeHead(known ? 200 : 201, { 'content-type': 'application/json' }).end(JSON.stringify({ uniqueId: `2.25.${stored.get(id)!}`, measuredAt: '2026-12-01T20:20:00Z' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      url,
      stored,
      answer: () => (answering = true),
      close: async () => {
        for (const res of held) res.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  };
  const runAgainst = async (argv: string[], url: string, newId: string) => {
    let out = '';
    let err = '';
    const code = await run(argv, {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env: { RTS_URL: url, RTS_TOKEN: 'tok' },
      zone: 'UTC',
      newObservationId: () => newId,
      http: { retryDelayMs: 1, timeoutMs: 300 },
    });
    return { code, out, err };
  };
  const reading = ['upload', '--patient', '110590-1236', '--systolic', '123', '--diastolic', '77', '--at', '2026-12-01T20:20:00Z'];

  it('says the reading was sent and may be stored, and gives the --id that stores it once on a re-run', async () => {
    const hub = await slowHub();
    try {
      const first = await runAgainst(reading, hub.url, 'rts-first');
      expect(first.code).toBe(EXIT.unreachable);
      expect(hub.stored.size).toBe(1);
      expect(first.err).not.toContain('cannot reach');
      expect(first.err).toContain('the reading was sent to the hub');
      expect(first.err).toContain('Run the same command again with --id rts-first');
      expect(first.err).not.toContain('110590');

      hub.answer();
      const again = await runAgainst([...reading, '--id', 'rts-first'], hub.url, 'rts-second');
      expect(again.code).toBe(EXIT.ok);
      expect(again.out).toMatch(/^Already stored/);
      expect(hub.stored.size).toBe(1);
    } finally {
      await hub.close();
    }
  });

  it.each([
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'is not trusted on this machine (DEPTH_ZERO_SELF_SIGNED_CERT): one of an in-house CA needs that CA in NODE_EXTRA_CA_CERTS'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'is not trusted on this machine (UNABLE_TO_VERIFY_LEAF_SIGNATURE)'],
    ['CERT_HAS_EXPIRED', "the hub's TLS certificate has expired (CERT_HAS_EXPIRED)"],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'is not for this host name (ERR_TLS_CERT_ALTNAME_INVALID)'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'no TLS at this address (ERR_SSL_WRONG_VERSION_NUMBER)'],
  ])('a TLS failure (%s) says what is wrong with the certificate, not a bare "network error"', async (code, words) => {
    const h = await harness(['review', '--patient', CPR], [networkError(code), networkError(code)]);
    expect(h.code).toBe(EXIT.unreachable);
    expect(h.err).toContain(words);
  });

  it('a connection refused is "cannot reach", with no word of a reading that may be stored', async () => {
    const h = await harness(upload, [networkError('ECONNREFUSED'), networkError('ECONNREFUSED')]);
    expect(h.err).not.toContain('--id');
  });
});

describe('run review: the terminal it prints to', () => {
  const answer = () => json(200, answerOf('2026-05-03T12:00:00Z', '2026-05-10T12:10:00Z', [['2.25.1', '2026-05-05T07:00:00Z', 126, 70]]));
  const runWith = async (env: Record<string, string>) => {
    let out = '';
    let err = '';
    const code = await run(['review', '--patient', CPR], {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env: { RTS_URL: URL_, RTS_TOKEN: 'tok', ...env },
      fetch: (async () => answer()) as unknown as typeof fetch,
      now: () => new Date('2026-05-10T12:00:00Z'),
    });
    return { code, out, err };
  };

  it('draws with ASCII characters when the locale is not UTF-8 (LANG=C printed box characters as mojibake)', async () => {
    for (const env of [{ LANG: 'C' }, { LC_ALL: 'C', LANG: 'da_DK.UTF-8' }, { LC_CTYPE: 'POSIX' }] as Record<string, string>[]) {
      const h = await runWith({ TZ: 'UTC', ...env });
      expect(h.code).toBe(EXIT.ok);
      expect(h.out).toMatch(/^[\x20-\x7e\n]*$/);
    }
    expect((await runWith({ TZ: 'UTC', LANG: 'en_DK.UTF-8' })).out).toContain('▲');
  });

  it('draws with ASCII characters under a Chinese, Japanese or Korean locale, whose terminals draw the box characters two columns wide', async () => {
    // East Asian Width "A" (ambiguous): wide in those terminals. Every glyph of the Unicode chart is one of them.
    const ambiguous = /[\u2500-\u257f\u25a0-\u25ff]/u;
    expect('▲▼◆┤│└─┬'.split('').every((c) => ambiguous.test(c))).toBe(true);
    /** Columns as such a terminal draws them. */
    const columns = (line: string): number => [...line].reduce((n, c) => n + (ambiguous.test(c) || /\p{Script=Han}/u.test(c) ? 2 : 1), 0);
    for (const env of [{ LANG: 'zh_CN.UTF-8' }, { LC_ALL: 'zh_TW.UTF-8' }, { LC_CTYPE: 'ja_JP.UTF-8' }, { LANG: 'ko_KR.utf8' }] as Record<string, string>[]) {
      const h = await runWith({ TZ: 'Asia/Shanghai', COLUMNS: '60', ...env });
      expect(h.code).toBe(EXIT.ok);
      expect(h.out).toContain('S systolic');
      expect(h.out.split('\n').filter((l) => columns(l) > 60)).toEqual([]);
    }
    // Elsewhere the box characters stay, and there they fit because they are one column each.
    expect((await runWith({ TZ: 'UTC', COLUMNS: '60', LANG: 'da_DK.UTF-8' })).out).toContain('▲');
    expect((await runWith({ TZ: 'UTC', COLUMNS: '60', LANG: 'zu_ZA.UTF-8' })).out).toContain('▲');
  });

  it('draws with ASCII characters when TERM=dumb, or when no locale is set at all (the POSIX default is "C")', async () => {
    for (const env of [{ TERM: 'dumb', NO_COLOR: '1', LANG: 'en_DK.UTF-8' }, {}, { LANG: '', LC_ALL: '', LC_CTYPE: '' }] as Record<string, string>[]) {
      const h = await runWith({ TZ: 'UTC', ...env });
      expect(h.code).toBe(EXIT.ok);
      expect(h.out).toContain('S systolic');
      expect(h.out).toMatch(/^[\x20-\x7e\n]*$/);
    }
    expect((await runWith({ TZ: 'UTC', TERM: 'xterm-256color', LC_CTYPE: 'C.UTF-8' })).out).toContain('▲');
  });

  // The auditor's week: 11 readings, three of them 120/80 within two minutes.
  const week = answerOf('2026-05-03T12:00:00Z', '2026-05-10T12:10:00Z', [
    ['2.25.1', '2026-05-04T14:03:00Z', 128, 78],
    ['2.25.2', '2026-05-05T14:03:00Z', 135, 83],
    ['2.25.3', '2026-05-06T14:03:00Z', 142, 88],
    ['2.25.4', '2026-05-07T14:03:00Z', 130, 82],
    ['2.25.5', '2026-05-08T14:03:00Z', 137, 87],
    ['2.25.6', '2026-05-09T14:03:00Z', 144, 81],
    ['2.25.7', '2026-05-10T09:03:00Z', 132, 86],
    ['2.25.8', '2026-05-10T11:04:00Z', 120, 80],
    ['2.25.9', '2026-05-10T11:05:00Z', 120, 80],
    ['2.25.10', '2026-05-10T11:05:30Z', 120, 80],
    ['2.25.11', '2026-05-10T11:06:00Z', 125, 75],
  ]);
  const review = async (argv: string[], env: Record<string, string>, stdout: { isTTY?: boolean; columns?: number } = {}) => {
    let out = '';
    let err = '';
    const code = await run(['review', '--patient', CPR, ...argv], {
      stdout: { write: (s: string) => (out += s), ...stdout },
      stderr: { write: (s: string) => (err += s) },
      env: { RTS_URL: URL_, RTS_TOKEN: 'tok', TZ: 'UTC', LANG: 'C.UTF-8', ...env },
      fetch: (async () => json(200, week)) as unknown as typeof fetch,
      zone: 'UTC',
      now: () => new Date('2026-05-10T12:00:00Z'),
    });
    return { code, out, err };
  };

  it('leaves the chart out with --no-chart or RTS_NO_CHART, and keeps the table and summary', async () => {
    const full = await review([], {});
    expect(full.out).toContain('▲ systolic');
    for (const [argv, env] of [[['--no-chart'], {}], [[], { RTS_NO_CHART: '1' }]] as [string[], Record<string, string>][]) {
      const h = await review(argv, env);
      expect(h.code).toBe(EXIT.ok);
      expect(h.out).not.toMatch(/[▲▼┤]|systolic {2}/);
      expect(h.out).toContain('Wed 2026-05-06 14:03');
      expect(h.out).toMatch(/\nLatest: 125\/75 mmHg on 2026-05-10 11:06\n$/);
    }
  });

  it('fits 40 columns, piped (COLUMNS=40) or in a terminal 40 wide: no line longer, the table in its compact form', async () => {
    for (const [env, stdout] of [[{ COLUMNS: '40' }, {}], [{}, { isTTY: true, columns: 40 }], [{ COLUMNS: '40' }, { isTTY: true, columns: 120 }]] as [Record<string, string>, { isTTY?: boolean; columns?: number }][]) {
      const h = await review([], env, stdout);
      expect(h.code).toBe(EXIT.ok);
      const lines = h.out.split('\n');
      expect(lines.filter((l) => l.length > 40)).toEqual([]);
      expect(lines).toContain('Measured              Systolic/diastolic');
      expect(lines).toContain('Wed 2026-05-06 14:03  142/88 mmHg');
      expect(lines.some((l) => /^ +\d+ ┤/.test(l))).toBe(true); // the chart, 40 wide
      expect(h.out).toContain('Blood pressure, 2026-05-03 12:00 to\n  2026-05-10 12:10 (local time,');
    }
    // 80 columns: the table as before, a column each.
    expect((await review([], { COLUMNS: '80' })).out).toContain('Wed 2026-05-06 14:03  142 mmHg    88 mmHg');
  });

  it('draws the chart down to 30 columns, and below that leaves it out and says so', async () => {
    const narrow = await review([], { COLUMNS: '32' });
    expect(narrow.out.split('\n').filter((l) => l.length > 32)).toEqual([]);
    expect(narrow.out).toMatch(/^ +\d+ ┤/m);
    const tooNarrow = await review([], { COLUMNS: '25' });
    expect(tooNarrow.out).not.toMatch(/┤/);
    expect(tooNarrow.out.replace(/\n {2}/g, ' ')).toContain('The chart is left out: it needs 30 columns, and 25 are given');
    // --width wins over COLUMNS; a COLUMNS that is no number is passed over.
    expect((await review(['--width', '30'], { COLUMNS: '25' })).out).toMatch(/^ +\d+ ┤/m);
    expect((await review([], { COLUMNS: 'wide' })).out).toContain('142 mmHg    88 mmHg');
  });

  it('notes readings that share a mark in the chart (11 readings drew 10 marks without a word)', async () => {
    const h = await review([], {});
    expect(h.out).toContain('11 readings, average 130/82 mmHg');
    expect(h.out.replace(/\n\s*/g, ' ')).toContain('3 readings share a mark (close in time and value; the table lists each).');
  });

  it('warns when TZ names no zone this machine knows, and labels the times UTC rather than "local time"', async () => {
    const h = await runWith({ TZ: 'Europe/Atlantis', LANG: 'C.UTF-8' });
    expect(h.code).toBe(EXIT.ok);
    expect(h.err).toBe('rts: warning: TZ (Europe/Atlantis) is not a time zone this machine knows (e.g. Europe/Copenhagen): times are shown in UTC\n');
    // The header said "(local time, UTC+00:00)" under that warning: times in UTC, called the patient's local time.
    expect(h.out).toContain('Blood pressure, 2026-05-03 12:00 to 2026-05-10 12:10 (UTC)');
    expect(h.out).not.toContain('local time');
    expect((await runWith({ TZ: 'Europe/Copenhagen' })).err).toBe('');
  });

  it('takes a TZ that names a zoneinfo file (TZ=/usr/share/zoneinfo/Asia/Kolkata, as glibc and node take it): its zone, no warning', async () => {
    // node shows such a TZ's times in its zone; rts warned it knew no such zone and printed every reading in UTC.
    for (const TZ of ['/usr/share/zoneinfo/Asia/Kolkata', ':/usr/share/zoneinfo/Asia/Kolkata', '/usr/lib/zoneinfo/Asia/Kolkata']) {
      const h = await runWith({ TZ, LANG: 'C.UTF-8' });
      expect(h.code).toBe(EXIT.ok);
      expect(h.err).toBe('');
      expect(h.out).toContain('Tue 2026-05-05 12:30'); // 07:00Z at +05:30
      expect(h.out).toContain('(local time, UTC+05:30)');
    }
  });
});

describe('run: a server that redirects', () => {
  it('is not followed (a POST would come back as a GET): exit 5, naming only where it points', async () => {
    const h = await harness(upload, [new Response(null, { status: 302, headers: { location: `https://hub.test/patients/${CPR}/observations` } })]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]!.init.redirect).toBe('manual');
    expect(h.err).toBe(`rts: the server at ${URL_} redirects to https://hub.test: give the hub's own address with --url or RTS_URL\n`);
  });
});

describe('run: a busy hub (429)', () => {
  const busy = (after = '0') => json(429, { type: '/problems/rate_limited', title: 'Too many requests', status: 429, code: 'rate_limited', detail: 'slow down' }, { 'retry-after': after });

  it('waits its Retry-After and sends the same request again, up to twice', async () => {
    const h = await harness(upload, [busy(), busy(), stored(201)]);
    expect(h.code).toBe(EXIT.ok);
    expect(h.calls).toHaveLength(3);
    expect(h.bodies[2]).toEqual(h.bodies[0]);
  });

  it('still busy: exit 5 (send it again later), not 3 (which says sending again will not help)', async () => {
    const h = await harness(upload, [busy(), busy(), busy()]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('the hub is busy (HTTP 429, rate limited)');
  });

  it('a busy development login says the hub is busy, not that it has no development login', async () => {
    const unauthenticated = json(401, { type: '/problems/unauthenticated', title: 'Authentication is required', status: 401, code: 'unauthenticated', detail: 'send a bearer token' });
    const h = await harness(['review', '--patient', CPR], [unauthenticated, busy('20')]);
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('the hub is busy');
    expect(h.err).not.toContain('no development login');
  });
});

describe('run: --timeout bounds the whole command, not each attempt', () => {
  // A hub that takes the request and never answers: the fetch ends only when the CLI gives up on it.
  const hanging = (calls: number[]) =>
    (async (_url: string, init: RequestInit) => {
      calls.push(Date.now());
      return new Promise<Response>((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)));
    }) as unknown as typeof globalThis.fetch;
  const runWith = async (argv: string[], fetch: typeof globalThis.fetch, timeoutMs: number) => {
    let err = '';
    const code = await run(argv, {
      stdout: { write: () => undefined },
      stderr: { write: (s: string) => (err += s) },
      env: { RTS_URL: URL_, RTS_TOKEN: 'tok' },
      fetch,
      zone: 'UTC',
      now: () => new Date('2026-05-10T12:00:00Z'),
      newObservationId: () => 'rts-test-id',
      http: { retryDelayMs: 1, timeoutMs },
    });
    return { code, err };
  };

  it('an upload whose answer did not come within the timeout is not sent again for another whole timeout', async () => {
    const calls: number[] = [];
    const h = await runWith(upload, hanging(calls), 1000);
    expect(calls).toHaveLength(1); // before: a second attempt with a fresh 1000 ms, twice the wait the user asked for
    expect(h.code).toBe(EXIT.unreachable);
    expect(h.err).toContain('no answer came within 1 s: it may be stored');
    expect(h.err).toContain('Run the same command again with --id rts-test-id');
  });

  it('a quick network failure is still retried, within what is left of the timeout', async () => {
    const signals: AbortSignal[] = [];
    const steps: Step[] = [networkError('ECONNRESET'), stored(201)];
    const fetch = (async (_url: string, init: RequestInit) => {
      signals.push(init.signal!);
      const step = steps.shift()!;
      if (step instanceof Error) throw step;
      return step;
    }) as unknown as typeof globalThis.fetch;
    const h = await runWith(upload, fetch, 5000);
    expect(h.code).toBe(EXIT.ok);
    expect(signals).toHaveLength(2);
  });

  it("a 429 whose Retry-After would leave no time for the request is the answer, without the wait", async () => {
    const calls: number[] = [];
    const busyFor = (s: string) => json(429, { type: '/problems/rate_limited', title: 'Too many requests', status: 429, code: 'rate_limited' }, { 'retry-after': s });
    const fetch = (async () => {
      calls.push(Date.now());
      return calls.length === 1 ? busyFor('5') : stored(201);
    }) as unknown as typeof globalThis.fetch;
    const h = await runWith(upload, fetch, 2000);
    expect(calls).toHaveLength(1); // before: a 5 s wait past a 2 s timeout, then the request again
    expect(h.code).toBe(EXIT.serverError);
    expect(h.err).toContain('the hub is busy');
  });

  it('a development login that got no answer within the time left is no answer, not "no development login", and no upload stored', async () => {
    // The upload is refused (401, nothing stored), then the hub takes the login and never answers it.
    const urls: string[] = [];
    const fetch = (async (url: string, init: RequestInit) => {
      urls.push(url);
      if (urls.length === 1) return json(401, { type: '/problems/unauthenticated', title: 'Authentication is required', status: 401, code: 'unauthenticated', detail: 'send a bearer token' });
      return new Promise<Response>((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)));
    }) as unknown as typeof globalThis.fetch;
    let err = '';
    const code = await run(upload, {
      stdout: { write: () => undefined },
      stderr: { write: (s: string) => (err += s) },
      env: { RTS_URL: URL_ },
      fetch,
      zone: 'UTC',
      now: () => new Date('2026-05-10T12:00:00Z'),
      newObservationId: () => 'rts-test-id',
      http: { retryDelayMs: 1, timeoutMs: 1000 },
    });
    expect(urls).toEqual([`${URL_}/observations`, `${URL_}/auth/dev-login`]);
    expect(code).toBe(EXIT.unreachable);
    expect(err).toContain('cannot reach the hub at https://hub.test:8080: no answer within 1 s');
    expect(err).not.toContain('no development login');
    expect(err).not.toContain('may be stored'); // the hub refused the reading (401): it is not stored
  });
});

describe('run: access control', () => {
  const unauthenticated = () => json(401, { type: '/problems/unauthenticated', title: 'Authentication is required', status: 401, code: 'unauthenticated', detail: 'send a bearer token (Authorization: Bearer ...) or an API key (X-Api-Key)' });
  const review = ['review', '--patient', CPR, '--days', '7'];

  it('sends the token of RTS_TOKEN, and says when the hub does not accept it', async () => {
    const h = await harness(review, [unauthenticated()], { RTS_TOKEN: 'tok-1' });
    expect(h.code).toBe(EXIT.refused);
    expect((h.calls[0]!.init.headers as Record<string, string>)['authorization']).toBe('Bearer tok-1');
    expect(h.calls).toHaveLength(1); // a token of our own: no development login
    expect(h.err).toContain('  the token in RTS_TOKEN was not accepted (expired, or made for another hub)\n');
  });

  it('without RTS_TOKEN, at a hub with no development login: tells the user to set it', async () => {
    const h = await harness(review, [unauthenticated(), json(404, { title: 'Not found', status: 404, code: 'not_found' })]);
    expect(h.code).toBe(EXIT.refused);
    expect(h.calls.map((c) => c.url)).toEqual([`${URL_}/observations/search`, `${URL_}/auth/dev-login`]);
    expect(h.err).toContain('no token was sent (this hub has no development login): set RTS_TOKEN to your access token');
  });

  it('a token for someone else: 403 and what it means', async () => {
    const h = await harness(upload, [json(403, { title: 'You may not do this', status: 403, code: 'forbidden', detail: 'you may not do this with this resource' })], { RTS_TOKEN: 'tok-2' });
    expect(h.code).toBe(EXIT.refused);
    expect(h.err).toContain('the token in RTS_TOKEN does not allow this (it is for another patient, or another role)');
  });
});

describe('run export', () => {
  // Made when the first test runs, not when the file is read: a run filtered to other tests (jest -t, a mutation
  // tester's per-test runs) skips this block's afterAll and left the directory behind.
  let dir = '';
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'rts-cli-export-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const exported = (erasedAt: string | null = null) =>
    json(200, {
      format: 'telemed-rts/patient-export',
      formatVersion: 1,
      exportedAt: '2026-05-10T12:00:00.000Z',
      patient: { cpr: CPR, patientKey: `p${'a'.repeat(32)}` },
      erasure: erasedAt === null ? null : { erasedAt },
      observations: erasedAt === null ? [{ uniqueId: '2.25.1' }, { uniqueId: '2.25.2' }] : [],
      consultations: [{ consultationId: 'c-1' }],
      audit: { from: '2026-01-01T00:00:00.000Z', to: '2026-05-10T12:00:00.000Z', bounds: '[from,to)', count: 1, entries: [{ action: 'observations.write' }] },
    });

  it('posts the CPR number in the body (never the URL), prints the export as JSON and the counts on stderr', async () => {
    const h = await harness(['export', '--patient', CPR], [exported()], { RTS_TOKEN: 'tok' });
    expect(h.code).toBe(EXIT.ok);
    expect(h.calls.map((c) => [c.url, c.init.method])).toEqual([[`${URL_}/patients/export`, 'POST']]);
    expect(h.bodies[0]).toEqual({ patient: CPR });
    expect(JSON.parse(h.out)).toMatchObject({ format: 'telemed-rts/patient-export', observations: [{ uniqueId: '2.25.1' }, { uniqueId: '2.25.2' }] });
    expect(h.err).toBe('Exported 2 readings, 1 consultation, 1 audit entry.\n');
  });

  it('--out: writes the export to a new file of mode 0600, whatever the umask, and prints nothing of it', async () => {
    const file = join(dir, 'export.json');
    const umask = process.umask(0o000);
    try {
      const h = await harness(['export', '--patient', CPR, '--out', file], [exported()], { RTS_TOKEN: 'tok' });
      expect(h.code).toBe(EXIT.ok);
      expect(h.out).toBe('');
      expect(h.err).toBe('Exported 2 readings, 1 consultation, 1 audit entry to the file given with --out (mode 0600).\n');
    } finally {
      process.umask(umask);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ patient: { cpr: CPR }, audit: { count: 1 } });
  });

  it('--out naming a file that exists, or in a directory that does not: exit 2 before any request, the path not repeated', async () => {
    const taken = join(dir, `taken-${CPR}.json`);
    writeFileSync(taken, 'keep');
    const exists = await harness(['export', '--patient', CPR, '--out', taken], []);
    expect(exists.code).toBe(EXIT.usage);
    expect(exists.calls).toHaveLength(0);
    expect(exists.err).toContain('exists already');
    expect(exists.err).not.toContain(CPR);
    expect(readFileSync(taken, 'utf8')).toBe('keep');
    const nowhere = await harness(['export', '--patient', CPR, '--out', join(dir, 'no-such-dir', 'x.json')], []);
    expect(nowhere.code).toBe(EXIT.usage);
    expect(nowhere.calls).toHaveLength(0);
  });

  it('--out naming a dangling symlink: exit 2 before any request (it is a file that exists), nothing written through it', async () => {
    const target = join(dir, 'elsewhere.json');
    const link = join(dir, 'link.json');
    symlinkSync(target, link);
    const h = await harness(['export', '--patient', CPR, '--out', link], [exported()], { RTS_TOKEN: 'tok' });
    expect(h.code).toBe(EXIT.usage);
    expect(h.calls).toHaveLength(0); // no export made, so none audited
    expect(h.err).toContain('exists already');
    expect(existsSync(target)).toBe(false);
  });

  it('a file that cannot be created after all (a symlink put in its place during the request is not written through): exit 6, nothing left', async () => {
    const target = join(dir, 'elsewhere-2.json');
    const link = join(dir, 'link-2.json');
    // The answer arrives after someone made the name a symlink: the exclusive open refuses it.
    const answerAfterRace = { then: (ok: (r: Response) => void) => { symlinkSync(target, link); ok(exported()); } } as unknown as Response;
    const h = await harness(['export', '--patient', CPR, '--out', link], [answerAfterRace], { RTS_TOKEN: 'tok' });
    expect(h.code).toBe(EXIT.files);
    expect(h.calls).toHaveLength(1);
    expect(h.err).toContain('could not be written to the file given with --out (EEXIST)');
    expect(existsSync(target)).toBe(false);
  });

  it("says when the patient was erased: the export is what is left of them", async () => {
    const h = await harness(['export', '--patient', CPR], [exported('2026-05-01T09:00:00Z')], { RTS_TOKEN: 'tok' });
    expect(h.code).toBe(EXIT.ok);
    expect(h.err).toBe('The patient was erased at 2026-05-01 09:00:00 +00:00: their readings no longer exist. Exported 0 readings, 1 consultation, 1 audit entry.\n');
  });

  it('an unknown patient, or a token for another: exit 3 with the hub\'s problem, and no file', async () => {
    const file = join(dir, 'refused.json');
    const unknown = await harness(['export', '--patient', CPR, '--out', file], [json(404, { title: 'No document is registered for this patient', status: 404, code: 'unknown_patient', detail: 'the hub holds nothing of this patient' })], { RTS_TOKEN: 'tok' });
    expect(unknown.code).toBe(EXIT.refused);
    expect(unknown.err).toContain('(HTTP 404, unknown_patient)');
    expect(existsSync(file)).toBe(false);
    const other = await harness(['export', '--patient', CPR], [json(403, { title: 'You may not do this', status: 403, code: 'forbidden' })], { RTS_TOKEN: 'tok' });
    expect(other.code).toBe(EXIT.refused);
    expect(other.err).toContain('the token in RTS_TOKEN does not allow this');
    expect(other.out).toBe('');
  });

  it('a hub that is down: exit 4 after one retry; one that fails or answers something else: exit 5', async () => {
    const down = await harness(['export', '--patient', CPR], [networkError('ECONNREFUSED'), networkError('ECONNREFUSED')]);
    expect(down.code).toBe(EXIT.unreachable);
    expect(down.calls).toHaveLength(2);
    expect(down.err).toBe(`rts: cannot reach the hub at ${URL_}: connection refused (is the hub running?)\n`);
    expect((await harness(['export', '--patient', CPR], [json(503, { title: 'Audit unavailable', status: 503, code: 'audit_unavailable' })], { RTS_TOKEN: 'tok' })).code).toBe(EXIT.serverError);
    const notApi = await harness(['export', '--patient', CPR], [json(200, { hello: 'world' })], { RTS_TOKEN: 'tok' });
    expect(notApi.code).toBe(EXIT.serverError);
    expect(notApi.out).toBe('');
  });
});
